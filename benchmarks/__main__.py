"""``python -m benchmarks``: run every scenario, print the table, write the JSON."""

import sys

from benchmarks.run import main

sys.exit(main())
