"""The one mapping from errors to exit codes and messages, shared by every script."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

from builder.errors import FgbgError, UsageError


def print_error(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def print_error_once(message: str) -> None:
    """Every process of a launch meets the same problem; one copy per machine (each node has its own log)."""
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print_error(message)


def run_command(action: Callable[[], object], verb: str, report: Callable[[str], None] = print_error,
                interrupted: str = "interrupted") -> int:
    """Run `action`; return its exit code (an int it returns, else 0), or the exit code of the error it raised
    after reporting the error's message."""
    try:
        result = action()
    except UsageError as err:
        report(f"error: cannot {verb}:\n{err}")
        return err.exit_code
    except FgbgError as err:
        # a disk-full error is reported by every process that meets it: any one of them may be the only one
        (print_error if err.exit_code == 1 else report)(f"error: {err}")
        return err.exit_code
    except KeyboardInterrupt:
        report(interrupted)
        return 130
    return result if isinstance(result, int) else 0
