"""Optional speed features the platform refuses: one warning line and the plain path (builder/run/fallback.py), here
cuDNN (missing, or its algorithm search failing) with its calls stood in for on CPU. The feed's fallbacks
(page-locking, copy stream, torch.compile) are in tests/test_feed.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from builder.run import depth
from builder.run.depth import DepthEstimator
from builder.run.depth_families import InputRules
from builder.run.fallback import PlainOnFailure, warn_fallback


def warnings_in(captured) -> list[str]:
    return [line for line in captured.err.splitlines() if line.startswith("warning:")]


def test_warning_is_one_line_naming_feature_reason_and_plain_path(capsys):
    warn_fallback("torch.compile", RuntimeError("no compiler\n  traceback line\n"), "running the model uncompiled")
    assert capsys.readouterr().err == ("warning: torch.compile refused (RuntimeError: no compiler traceback line); "
                                       "running the model uncompiled\n")


def test_plain_on_failure_switches_once_and_for_good(capsys):
    calls = []

    def fast(x):
        calls.append("fast")
        raise OSError("cc1: not found")

    guarded = PlainOnFailure(fast, lambda x: calls.append("plain") or x + 1, "torch.compile", "plain")
    assert guarded(1) == 2 and guarded(2) == 3
    assert calls == ["fast", "plain", "plain"] and len(warnings_in(capsys.readouterr())) == 1


def test_an_error_of_the_plain_path_is_raised():
    def fail(x):
        raise MemoryError("out of memory")

    with pytest.raises(MemoryError):
        PlainOnFailure(fail, fail, "torch.compile", "plain")(1)


@pytest.fixture
def cudnn_flags():
    flags = [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"),
             (torch.backends.cudnn, "benchmark")]
    saved = [getattr(module, name) for module, name in flags]
    for module, name in flags:
        setattr(module, name, False)
    yield
    for (module, name), value in zip(flags, saved):
        setattr(module, name, value)


def test_missing_cudnn_leaves_its_flags_off_with_a_warning(cudnn_flags, monkeypatch, capsys):
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: False)
    depth._tune_cuda()
    assert torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.benchmark
    [warning] = warnings_in(capsys.readouterr())
    assert warning.startswith("warning: cuDNN refused (torch finds no cuDNN library)")


class Output:
    def __init__(self, predicted_depth):
        self.predicted_depth = predicted_depth


class AutotuneRefusingModel:
    """Fails like cuDNN's algorithm search under memory pressure while cudnn.benchmark is on."""

    def __init__(self):
        self.calls = 0

    def __call__(self, pixel_values):
        self.calls += 1
        if torch.backends.cudnn.benchmark:
            raise RuntimeError("Unable to find a valid cuDNN algorithm to run convolution")
        return Output(pixel_values.mean(dim=1))


RULES = InputRules(16, "bicubic", (0.5,) * 3, (0.25,) * 3)


def test_failed_cudnn_autotuning_runs_again_without_it(cudnn_flags, capsys):
    torch.backends.cudnn.benchmark = True
    model = AutotuneRefusingModel()
    estimator = DepthEstimator(model, RULES, torch.device("cpu"), torch.float32, "test")
    images = np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3), dtype=np.uint8)
    first, second = estimator.predict_raw(images), estimator.predict_raw(images)
    torch.testing.assert_close(first, second)
    assert model.calls == 3 and not torch.backends.cudnn.benchmark
    [warning] = warnings_in(capsys.readouterr())
    assert "cudnn.benchmark" in warning and "valid cuDNN algorithm" in warning


def test_other_model_errors_are_not_taken_for_cudnn(cudnn_flags):
    torch.backends.cudnn.benchmark = True

    def broken(pixel_values):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    estimator = DepthEstimator(broken, RULES, torch.device("cpu"), torch.float32, "test")
    with pytest.raises(RuntimeError, match="shapes cannot be multiplied"):
        estimator.predict_raw(np.zeros((1, 16, 16, 3), np.uint8))
    assert torch.backends.cudnn.benchmark
