"""One error hierarchy. Each error carries the exit code the command line returns for it, so the scripts map
errors to exit codes in one place (`builder.contract.cli`)."""

from __future__ import annotations


class FgbgError(Exception):
    """A failure reported to the user as a message, without a traceback."""

    exit_code = 1


class UsageError(FgbgError):
    """Bad settings, inputs or output folder: fix them and rerun. Reported before any work is done."""

    exit_code = 2

    def __init__(self, problems: list[str], warnings: list[str] = ()):
        self.problems, self.warnings = list(problems), list(warnings)
        super().__init__("\n".join([f"  - {p}" for p in self.problems]
                                   + [f"  warning: {w}" for w in self.warnings]))


class DepthModelError(FgbgError):
    """The depth model cannot be loaded; raised before any sample is produced."""

    exit_code = 2


class DiskFullError(FgbgError):
    """The disk, a quota or a file-size limit filled up while writing; finished shards are kept."""

    exit_code = 1


class RemoteError(FgbgError):
    """The Hub refused or failed a request. Access problems are the user's to fix (exit 2), others are retried
    by rerunning (exit 1)."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code
