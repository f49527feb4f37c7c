"""``python -m audit_logging``: the ``audit-logging`` command."""

import sys

from audit_logging.cli import main

sys.exit(main())
