"""One mapping from errors to exit codes and messages; flags taken only as spelled in full."""

import subprocess
import sys

import pytest

from builder.contract.cli import StrictParser, run_command
from builder.contract.errors import DepthModelError, DiskFullError, RemoteError, UsageError
from tests.conftest import ROOT, env


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


@pytest.mark.parametrize("script,args", [
    ("generate.py", ["--demo", "--output-dir", "out", "--resol", "128"]),
    ("generate.py", ["--demo", "--output-dir", "out", "--placement=3"]),
    ("verify.py", ["out", "--sampl", "3"]),
    ("push_to_hub.py", ["out", "user/name", "--export", "dir"]),
    ("benchmark.py", ["--quic"]),
    ("benchmark.py", ["--round", "3"]),
    ("gpu_check.py", ["out", "--cpu-smok"]),
    ("export_coco.py", ["out", "coco", "--hel"]),
    ("export_yolo.py", ["out", "yolo", "--hel"]),
    ("train.py", ["--dataset", "d", "--output-dir", "o", "--max-step", "3"]),
    ("evaluate.py", ["run", "out", "--out", "x"]),
    ("data_value.py", ["--work-dir", "w", "--step", "3"]),
])
def test_an_abbreviated_flag_exits_2_and_names_the_flag(script, args, tmp_path):
    """argparse would read `--resol` as `--resolution`: a typo, or a flag of a newer version, would change the
    data without a word."""
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / script), *args], capture_output=True, text=True,
                            env=env(), timeout=120, cwd=tmp_path)
    given = next(a for a in args if a.startswith("--") and a not in ("--demo", "--output-dir", "--bg-dir", "--fg-dir",
                                                                     "--dataset", "--work-dir"))
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr, result.stderr
    assert f"{given.split('=')[0]}: did you mean --" in result.stderr, result.stderr


def test_a_flag_far_from_every_known_one_gets_no_suggestion(capsys):
    parser = StrictParser(prog="tool")
    parser.add_argument("--resolution", type=int)
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--zzz", "1"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "unrecognized arguments: --zzz 1" in error and "did you mean" not in error
    assert parser.parse_args(["--resolution", "64"]).resolution == 64
