"""Batched monocular depth with device-side resize and normalisation."""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import torch
import torch.nn.functional as F

from builder.contract.depth_storage import QUANTISED
from builder.contract.errors import DepthModelError
from builder.run.fallback import warn_fallback

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# On CPU a batch runs through the model in slices of this many images: the same FLOPs, and the
# activations (hundreds of MB per image at 518) stay bounded whatever --batch-size is.
CPU_MICRO_BATCH = 8


class NonFiniteDepthError(ValueError):
    """The model predicted NaN or infinity for some images; such a map is never written.

    `positions` are indices in the batch passed to predict(); the caller names the samples."""

    def __init__(self, positions: list[int]):
        super().__init__(f"non-finite depth predicted for batch positions {positions}; such maps are not "
                         "written. Fix: float16 can overflow, try --depth-dtype bfloat16 or float32")
        self.positions = positions


@dataclasses.dataclass(frozen=True)
class DepthBatch:
    """Per image: depth min-max scaled to uint16, and the raw prediction's range."""

    depth: np.ndarray  # B x R x R uint16
    depth_min: np.ndarray  # B float32
    depth_max: np.ndarray  # B float32


def scale_on_device(raw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """B x R x R float32 -> (per image min-max scaled to 0..65535 as int32, minima, maxima, finite flags), all
    still on raw's device, so a GPU caller can copy them back asynchronously."""
    flat = raw.flatten(1)
    finite = torch.isfinite(flat).all(dim=1)
    low, high = flat.amin(dim=1), flat.amax(dim=1)
    span = (high - low).clamp_min(torch.finfo(torch.float32).tiny)
    peak = QUANTISED.peak
    scaled = ((raw - low[:, None, None]) / span[:, None, None] * peak).round_().clamp_(0, peak)
    return scaled.to(torch.int32), low, high, finite


def check_finite(finite) -> None:
    """Raise NonFiniteDepthError naming the batch positions whose prediction held NaN or infinity."""
    finite = np.asarray(finite, dtype=bool)
    if not finite.all():
        raise NonFiniteDepthError(np.flatnonzero(~finite).tolist())


def scale_to_uint16(raw: torch.Tensor) -> DepthBatch:
    """B x R x R float32 -> per image min-max scaled to 0..65535 (in float32), with the raw range."""
    scaled, low, high, finite = scale_on_device(raw)
    check_finite(finite.cpu().numpy())
    depth = scaled.cpu().numpy().astype(np.uint16)
    return DepthBatch(depth, low.cpu().numpy().astype(np.float32), high.cpu().numpy().astype(np.float32))


def keep_output_layer_in_float32(model: torch.nn.Module) -> torch.nn.Module:
    """Run the last convolution of the model's head, and so everything after it, in float32.

    In bf16 that layer's output has 8 significant bits: a stored map then holds ~1,000 distinct levels
    of the 65,536 (tests/test_depth_precision.py). Its input is cast up; the backbone and neck, where
    the FLOPs are, stay in the low dtype. For Depth Anything this is head.conv3, then its ReLU (or
    sigmoid times max depth): the interpolation to the image size and the 16-bit scaling follow in
    float32 in DepthEstimator."""
    convolutions = [m for m in getattr(model, "head", model).modules() if isinstance(m, torch.nn.Conv2d)]
    if not convolutions:
        raise DepthModelError(f"{type(model).__name__} has no convolution in its head to keep in float32")
    last = convolutions[-1].float()
    last.register_forward_pre_hook(lambda module, args: tuple(a.float() for a in args))
    return model


def _tune_cuda() -> None:
    """TF32 for the float32 convolutions and matmuls (the head's last layer, or all of a float32
    model), and cuDNN's algorithm search: every batch has the same shapes."""
    torch.backends.cuda.matmul.allow_tf32 = True
    if not torch.backends.cudnn.is_available():
        warn_fallback("cuDNN", "torch finds no cuDNN library", "convolutions run on PyTorch's own CUDA kernels")
        return
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def _is_cudnn_error(err: RuntimeError) -> bool:
    return "cudnn" in str(err).lower()


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        return torch.float32
    return _DTYPES[name]


class DepthEstimator:
    """Same maths as transformers' depth-estimation pipeline for square inputs (bicubic resize to the
    model's input size, rescale, normalise; bicubic resize of the prediction back), but for a whole
    uint8 batch at once on the accelerator."""

    def __init__(self, model, image_mean, image_std, input_size: int, device: torch.device, dtype: torch.dtype,
                 revision: str):
        self.model = model
        self.input_size = input_size
        self.device = device
        self.dtype = dtype
        self.revision = revision
        self.mean = torch.tensor(image_mean, device=device, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(image_std, device=device, dtype=torch.float32).view(1, 3, 1, 1) * 255

    @classmethod
    def load(cls, model_id: str, input_size: int, device: torch.device, dtype_name: str = "auto") -> "DepthEstimator":
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        dtype = resolve_dtype(dtype_name, device)
        try:
            processor = AutoImageProcessor.from_pretrained(model_id)
            model = AutoModelForDepthEstimation.from_pretrained(model_id, dtype=dtype)
        except Exception as err:  # transformers raises OSError, ValueError, HF hub errors...
            offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
            hint = (f"--depth-model {model_id!r} could not be loaded: {type(err).__name__}: {err}\n"
                    "  Fix: check the model id (a transformers depth-estimation model on the Hub or a local folder "
                    "holding config.json, the weights and preprocessor_config.json); "
                    + ("HF_HUB_OFFLINE is set, so the model must already be in your HF cache; "
                       if offline else "make sure this machine can reach the Hub (or its HF_ENDPOINT), ")
                    + "or pass --no-depth to build composites and masks without depth.")
            raise DepthModelError(hint) from err
        keep_output_layer_in_float32(model).to(device).eval()
        if device.type == "cuda":
            _tune_cuda()
        model.to(memory_format=torch.channels_last)  # the DPT neck and head are convolutions (CPU too)
        revision = getattr(model.config, "_commit_hash", None) or "local"
        return cls(model, processor.image_mean, processor.image_std, input_size, device, dtype, revision)

    @torch.inference_mode()
    def predict_raw(self, images: np.ndarray) -> torch.Tensor:
        """B x R x R x 3 uint8 -> B x R x R float32 relative inverse depth (on the device)."""
        if self.device.type == "cpu" and len(images) > CPU_MICRO_BATCH:
            return torch.cat([self._predict_raw(images[s:s + CPU_MICRO_BATCH])
                              for s in range(0, len(images), CPU_MICRO_BATCH)])
        return self._predict_raw(images)

    @torch.inference_mode()
    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """B x R x R x 3 uint8 -> the model's B x 3 x S x S input on the device, as the pipeline's image
        processor makes it: bicubic (PIL's kernel, antialiased) resize rounded to integers, then
        rescale and normalise. Equals DPTImageProcessor's pixels except where PIL's fixed-point
        resampling rounds the other way (a few % of values, by at most 3 levels; see
        tests/test_depth_parity.py)."""
        batch = torch.from_numpy(images)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        size = (self.input_size, self.input_size)
        if size != tuple(batch.shape[-2:]):
            batch = F.interpolate(batch, size=size, mode="bicubic", align_corners=False, antialias=True)
            batch = batch.clamp_(0, 255).round_()  # PIL resizes to uint8: same rounding as the pipeline
        return ((batch - self.mean) / self.std).to(self.dtype).contiguous(memory_format=torch.channels_last)

    def _predict_raw(self, images: np.ndarray) -> torch.Tensor:
        resolution = images.shape[1]
        predicted = self._run_model(self.preprocess(images)).predicted_depth.float()
        return F.interpolate(predicted[:, None], size=(resolution, resolution), mode="bicubic",
                             align_corners=False)[:, 0]

    def _run_model(self, pixels: torch.Tensor):
        """The model's output; if cuDNN's algorithm search fails (it needs workspace memory that the default
        algorithms do without), warn once and run again without it."""
        try:
            return self.model(pixel_values=pixels)
        except RuntimeError as err:
            if not (torch.backends.cudnn.benchmark and _is_cudnn_error(err)):
                raise
            warn_fallback("cuDNN autotuning (cudnn.benchmark)", err, "using cuDNN's default algorithms")
            torch.backends.cudnn.benchmark = False
            return self.model(pixel_values=pixels)

    def predict(self, images: np.ndarray) -> DepthBatch:
        return scale_to_uint16(self.predict_raw(images))
