"""One mapping from errors to exit codes and messages."""

from builder.cli import run_command
from builder.errors import DepthModelError, DiskFullError, RemoteError, UsageError


def outcome(action):
    messages = []
    return run_command(action, "do it", report=messages.append), messages


def raising(err):
    def action():
        raise err
    return action


def test_exit_codes_follow_the_error():
    assert outcome(lambda: None) == (0, [])
    assert outcome(lambda: 3)[0] == 3
    code, messages = outcome(raising(UsageError(["bad flag"], ["odd file"])))
    assert code == 2 and messages == ["error: cannot do it:\n  - bad flag\n  warning: odd file"]
    assert outcome(raising(DepthModelError("no model")))[0] == 2
    assert outcome(raising(RemoteError("denied", 2)))[0] == 2
    assert outcome(raising(RemoteError("retry", 1)))[0] == 1
    assert outcome(raising(KeyboardInterrupt()))[0] == 130


def test_disk_full_is_printed_by_every_process(capsys):
    code, messages = outcome(raising(DiskFullError("out of disk space")))
    assert code == 1 and messages == [] and "error: out of disk space" in capsys.readouterr().err
