"""Our batched DepthEstimator against transformers' pipeline("depth-estimation") on the same tiny model.

Documented tolerance (README, Performance):
- model input: equal to the image processor's pixels except where PIL's fixed-point bicubic rounds the
  other way: at most 3 levels (of 255), in at most 10% of the values (measured: 3 levels, 6%, on these
  scenes; sharp edges and gradients are where the rounding differs);
- raw predicted depth, no input resize (input size = image size): equal within 1e-4 of the prediction's
  range (float32 batch-vs-single differences only);
- raw predicted depth with the resize: within 5% of the range, correlation > 0.999 (measured: 1.2%,
  0.99996). A random-weight model amplifies the few-level input differences more than a trained one.
"""

import numpy as np
import pytest
import torch
from PIL import Image

from builder.run.depth import DepthEstimator

transformers = pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from builder.testing.random_model import save_random_depth_model

    return str(save_random_depth_model(tmp_path_factory.mktemp("tiny") / "model", "tiny"))


def scenes(count: int, side: int) -> np.ndarray:
    """Smooth images with edges (a resize of noise would be all rounding boundaries)."""
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:side, :side] / side
    images = []
    for _ in range(count):
        a, b, c = rng.uniform(0, 1, 3)
        base = np.stack([255 * (a * xx + (1 - a) * yy), 255 * (b * yy), 255 * (c * (1 - xx))], axis=-1)
        x0, y0 = rng.integers(0, side // 2, 2)
        base[y0:y0 + side // 3, x0:x0 + side // 4] = rng.uniform(0, 255, 3)
        images.append(base.clip(0, 255).astype(np.uint8))
    return np.stack(images)


def reference(model_dir: str, images: np.ndarray, input_size: int) -> tuple[np.ndarray, torch.Tensor]:
    pipe = transformers.pipeline("depth-estimation", model=model_dir, device="cpu")
    pipe.image_processor.size = {"height": input_size, "width": input_size}
    outputs = [pipe(Image.fromarray(image)) for image in images]
    pixels = pipe.image_processor([Image.fromarray(image) for image in images], return_tensors="pt")["pixel_values"]
    return np.stack([o["predicted_depth"].float().numpy() for o in outputs]), pixels


def relative_error(ours: np.ndarray, ref: np.ndarray) -> float:
    return float(np.abs(ours - ref).max() / (ref.max() - ref.min()))


def test_raw_depth_equals_the_pipeline_without_resize(tiny):
    images = scenes(3, 56)
    estimator = DepthEstimator.load(tiny, 56, torch.device("cpu"), "float32")
    ref, _ = reference(tiny, images, 56)
    ours = estimator.predict_raw(images).numpy()
    assert ours.shape == ref.shape == (3, 56, 56)
    assert relative_error(ours, ref) < 1e-4


def test_model_input_and_raw_depth_with_resize(tiny):
    images = scenes(3, 64)
    estimator = DepthEstimator.load(tiny, 126, torch.device("cpu"), "float32")
    ref, ref_pixels = reference(tiny, images, 126)
    pixels = estimator.preprocess(images).float()
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    levels = ((pixels - ref_pixels) * std * 255).abs()
    assert pixels.shape == ref_pixels.shape == (3, 3, 126, 126)
    assert levels.max() <= 3.001 and (levels > 0.01).float().mean() <= 0.10
    ours = estimator.predict_raw(images).numpy()
    assert ours.shape == ref.shape == (3, 64, 64)
    assert relative_error(ours, ref) < 0.05
    assert np.corrcoef(ours.ravel(), ref.ravel())[0, 1] > 0.999


def test_micro_batches_give_the_same_depth(tiny):
    from builder.run import depth

    images = scenes(depth.CPU_MICRO_BATCH + 3, 56)
    estimator = DepthEstimator.load(tiny, 56, torch.device("cpu"), "float32")
    whole = estimator.predict_raw(images).numpy()
    one_by_one = np.concatenate([estimator.predict_raw(images[i:i + 1]).numpy() for i in range(len(images))])
    assert relative_error(whole, one_by_one) < 1e-4
