"""What every script shares: its argument parser, and the one mapping from errors to exit codes and messages."""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Callable

from builder.contract.errors import FgbgError, UsageError


class StrictParser(argparse.ArgumentParser):
    """An ArgumentParser that takes flags only as spelled in full: argparse's prefix matching would read
    `--resol 128` as `--resolution 128` (and a flag of a newer version as one of ours) without a word. An
    unknown flag exits 2 with "unrecognized arguments" and the closest known flags."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, allow_abbrev=False, **kwargs)

    def error(self, message: str):
        if message.startswith("unrecognized arguments"):
            message += "".join(self._suggestion(word) for word in message.split(":", 1)[1].split())
        super().error(message)

    def _suggestion(self, word: str) -> str:
        if not word.startswith("--"):
            return ""
        given = word.split("=", 1)[0]
        known = [flag for action in self._actions for flag in action.option_strings if flag.startswith("--")]
        close = [flag for flag in known if flag.startswith(given)] or difflib.get_close_matches(given, known, n=2)
        return f"\n  {given}: did you mean {' or '.join(close)}?" if close else ""


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
