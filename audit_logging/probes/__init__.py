"""Start-of-run probes: is the code committed, can the run reach its bucket and its tracker?

Each probe returns a small frozen result object and, when something is
wrong, logs a persistent warning record (``warning_type`` in ``extra``) that
:class:`~audit_logging.writers.warnings.WarningFileHandler` writes to
``training_logs/warnings/``. Probes never raise: a training script calls them
first thing and carries on whatever they find.
"""

from audit_logging.probes.gcs import GcsStatus, check_gcs
from audit_logging.probes.git import GitStatus, check_git
from audit_logging.probes.wandb import WandbStatus, check_wandb

__all__ = ["GcsStatus", "GitStatus", "WandbStatus", "check_gcs", "check_git", "check_wandb"]
