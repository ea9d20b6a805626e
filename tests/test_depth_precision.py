"""bf16 depth keeps 16-bit precision: backbone and neck in bf16, the head's last layer and all after it in float32.

Measured here (tiny random model, last conv scaled to outputs of order 1, 4 scenes at 518 x 518):
distinct levels per stored map float32 45,594-53,787, bf16 with the float32 head 45,588-53,984, everything
in bf16 594-1,111; bf16 against float32: at most 907 levels of 65,535 apart (1.4%), mean 97, correlation
0.99995. The bf16 backbone makes that difference; the tolerance below is 2% of the range, mean 200 levels."""

import numpy as np
import pytest
import torch

from builder.run import depth
from builder.run.depth import DepthEstimator, NonFiniteDepthError, resolve_dtype
from builder.run.depth_families import InputRules
from tests.test_depth_parity import scenes

transformers = pytest.importorskip("transformers")
SIDE = 518


@pytest.fixture(scope="module")
def order_one_model(tmp_path_factory) -> str:
    """The tiny random model, its last conv rescaled so that depth is ~3 +- 1 (unscaled: ~1e-7, 79% zeros
    after the ReLU), as a trained model's would be of order 1."""
    from builder.testing.random_model import save_random_depth_model

    folder = save_random_depth_model(tmp_path_factory.mktemp("tiny") / "model", "tiny")
    model = transformers.AutoModelForDepthEstimation.from_pretrained(folder).eval()
    outputs = []
    model.head.conv3.register_forward_hook(lambda module, args, out: outputs.append(out))
    rules = InputRules(SIDE, "bicubic", (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    DepthEstimator(model, rules, torch.device("cpu"), torch.float32, "local").predict_raw(scenes(1, SIDE))
    std, mean = outputs[0].std(), outputs[0].mean()
    with torch.no_grad():
        model.head.conv3.weight /= std
        model.head.conv3.bias.copy_((model.head.conv3.bias - mean) / std + 3)
    model.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module")
def maps(order_one_model) -> dict:
    images = scenes(2, SIDE)
    return {name: DepthEstimator.load(order_one_model, SIDE, torch.device("cpu"), name).predict(images)
            for name in ("float32", "bfloat16")}


def test_bf16_loads_the_backbone_in_bf16_and_the_head_output_layer_in_float32(order_one_model):
    estimator = DepthEstimator.load(order_one_model, SIDE, torch.device("cpu"), "bfloat16")
    model = estimator.model
    assert model.head.conv3.weight.dtype == model.head.conv3.bias.dtype == torch.float32
    assert {p.dtype for name, p in model.named_parameters() if not name.startswith("head.conv3.")} == {torch.bfloat16}
    with torch.inference_mode():
        output = model(pixel_values=estimator.preprocess(scenes(1, 56))).predicted_depth
    assert output.dtype == torch.float32


def test_bf16_maps_keep_tens_of_thousands_of_levels(maps):
    for name, batch in maps.items():
        assert batch.depth.shape == (2, SIDE, SIDE)
        assert min(len(np.unique(image)) for image in batch.depth) >= 30_000, name
        assert 2.0 < batch.depth_max.min() < 10 and batch.depth_min.max() < 2.0  # outputs of order 1


def test_bf16_is_close_to_float32(maps):
    ours, reference = (maps[name].depth.astype(np.int64) for name in ("bfloat16", "float32"))
    difference = np.abs(ours - reference)
    assert difference.max() <= 0.02 * 65535 and difference.mean() <= 200
    assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.9999


def test_a_non_finite_prediction_names_its_batch_positions(order_one_model):
    estimator = DepthEstimator.load(order_one_model, 56, torch.device("cpu"), "float32")

    def poison(module, args, output):
        output.predicted_depth[1, 3, 4] = float("nan")
        output.predicted_depth[3] = float("inf")

    estimator.model.register_forward_hook(poison)
    with pytest.raises(NonFiniteDepthError, match=r"batch positions \[1, 3\]") as raised:
        estimator.predict(scenes(4, 56))
    assert raised.value.positions == [1, 3]


def test_auto_dtype_asks_for_native_bf16_only(monkeypatch):
    calls = []

    def bf16_supported(including_emulation=True):
        calls.append(including_emulation)
        return including_emulation  # a GPU that only emulates bf16 (e.g. a T4)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", bf16_supported)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert calls == [False]
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert resolve_dtype("auto", torch.device("cpu")) == torch.float32
    assert resolve_dtype("bfloat16", torch.device("cpu")) == torch.bfloat16


def test_cuda_tuning_turns_on_tf32_and_cudnn_benchmark(monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)  # a CPU build of torch has none
    flags = [(torch.backends.cuda.matmul, "allow_tf32"), (torch.backends.cudnn, "allow_tf32"),
             (torch.backends.cudnn, "benchmark")]
    saved = [getattr(module, name) for module, name in flags]
    try:
        for module, name in flags:
            setattr(module, name, False)
        depth._tune_cuda()
        assert all(getattr(module, name) is True for module, name in flags)
    finally:
        for (module, name), value in zip(flags, saved):
            setattr(module, name, value)
