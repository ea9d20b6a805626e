"""Batched monocular depth with device-side resize and normalisation."""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from builder.contract.depth_kinds import RELATIVE, DepthKind
from builder.contract.depth_storage import QUANTISED
from builder.contract.errors import DepthModelError
from builder.run.depth_families import DepthModelSpec, InputRules, depth_model_spec
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
    """Per image: depth min-max scaled to uint16, the raw prediction's range, and for a model that predicts its field
    of view (Depth Pro) the focal length it implies."""

    depth: np.ndarray  # B x R x R uint16
    depth_min: np.ndarray  # B float32
    depth_max: np.ndarray  # B float32
    focal: np.ndarray | None = None  # B float32: pixels of the R x R image, R / 2 / tan(fov / 2); None: no FOV


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


def scale_to_uint16(raw: torch.Tensor, focal: torch.Tensor | None = None) -> DepthBatch:
    """B x R x R float32 -> per image min-max scaled to 0..65535 (in float32), with the raw range (and the focal
    lengths, B, of a model that predicts its field of view)."""
    scaled, low, high, finite = scale_on_device(raw)
    check_finite(finite.cpu().numpy())
    depth = scaled.cpu().numpy().astype(np.uint16)
    return DepthBatch(depth, low.cpu().numpy().astype(np.float32), high.cpu().numpy().astype(np.float32),
                      None if focal is None else focal.cpu().numpy().astype(np.float32))


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


def to_resolution(output, rules: InputRules, resolution: int) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The model's output as B x R x R float32, as its `post_process_depth_estimation` makes it: resized back (the
    prediction of ZoeDepth's padded input to the padded size, the padding then cut off); Depth Pro's inverse depth
    at focal length = width rescaled by its field of view, resized, then inverted to metres. With the focal lengths
    (B, pixels at R) its field of view implies, or None for a model without one."""
    predicted = output.predicted_depth.float()
    if rules.field_of_view:
        focal = 0.5 * resolution / torch.tan(0.5 * torch.deg2rad(output.field_of_view.float().reshape(-1)))
        inverse = predicted * (resolution / focal)[:, None, None]
        inverse = F.interpolate(inverse[:, None], size=(resolution, resolution), mode=rules.output_resample,
                                align_corners=False)[:, 0]
        return 1.0 / inverse.clamp(1e-4, 1e4), focal
    pad = rules.pad(resolution)
    side = resolution + 2 * pad
    maps = F.interpolate(predicted[:, None], size=(side, side), mode=rules.output_resample, align_corners=False)[:, 0]
    return (maps[:, pad:side - pad, pad:side - pad] if pad else maps), None


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


def resolve_dtype(name: str, device: torch.device, low_precision: bool = True) -> torch.dtype:
    """`auto`: bf16 (fp16 without bf16) on CUDA for a model whose output layer is kept in float32, else float32."""
    if name == "auto":
        if device.type == "cuda" and low_precision:
            return torch.bfloat16 if torch.cuda.is_bf16_supported(including_emulation=False) else torch.float16
        return torch.float32
    return _DTYPES[name]


def _load_failure(model_id: str, err: Exception) -> DepthModelError:
    offline = os.environ.get("HF_HUB_OFFLINE") or os.environ.get("TRANSFORMERS_OFFLINE")
    return DepthModelError(
        f"--depth-model {model_id!r} could not be loaded: {type(err).__name__}: {err}\n"
        "  Fix: check the model id (a transformers depth-estimation model on the Hub or a local folder "
        "holding config.json, the weights and preprocessor_config.json); "
        + ("HF_HUB_OFFLINE is set, so the model must already be in your HF cache; "
           if offline else "make sure this machine can reach the Hub (or its HF_ENDPOINT), ")
        + "or pass --no-depth to build composites and masks without depth.")


def _loaded(model_id: str, load: Callable[[], object]):
    try:
        return load()
    except Exception as err:  # transformers raises OSError, ValueError, HF hub errors...
        raise _load_failure(model_id, err) from err


def load_spec(model_id: str, input_size: int | None, resolution: int, depth_kind: str | None = None
              ) -> tuple[DepthModelSpec, object]:
    """The model's family, output kind and input rules (builder.run.depth_families) from its config and image
    processor, before any weight is loaded; with the config."""
    from transformers import AutoConfig, AutoImageProcessor

    config = _loaded(model_id, lambda: AutoConfig.from_pretrained(model_id))
    processor = functools.partial(_loaded, model_id, lambda: AutoImageProcessor.from_pretrained(model_id))
    return depth_model_spec(model_id, config, processor, input_size, resolution, depth_kind), config


def predicts_field_of_view(model_id: str, input_size: int | None, resolution: int, depth_kind: str | None) -> bool:
    """The model predicts its field of view (Depth Pro): its backgrounds store their focal lengths. Read from its
    config and processor, no weight loaded."""
    return load_spec(model_id, input_size, resolution, depth_kind)[0].rules.field_of_view


class DepthEstimator:
    """Same maths as the model's own image processor and `post_process_depth_estimation` for square inputs (per
    family: builder.run.depth_families.InputRules), but for a whole uint8 batch at once on the accelerator."""

    def __init__(self, model, rules: InputRules, device: torch.device, dtype: torch.dtype, revision: str,
                 kind: DepthKind = RELATIVE):
        self.model = model
        self.rules = rules
        self.input_size = rules.size
        self.kind = kind
        self.device = device
        self.dtype = dtype
        self.revision = revision
        scale = 1 if rules.rescale_first else 255  # mean and std on [0, 1] values, or on levels
        normalised = rules.mean is not None
        self.mean = torch.tensor(rules.mean if normalised else (0.0,) * 3, device=device).view(1, 3, 1, 1) * scale
        self.std = torch.tensor(rules.std if normalised else (1.0,) * 3, device=device).view(1, 3, 1, 1) * scale

    @classmethod
    def load(cls, model_id: str, input_size: int | None, device: torch.device, dtype_name: str = "auto",
             resolution: int | None = None, depth_kind: str | None = None) -> "DepthEstimator":
        """The model with its family's rules; `resolution` is the side R of the images it will see (default: the
        input size), `depth_kind` the --depth-kind override. DepthModelError (exit 2) when it cannot run."""
        from transformers import AutoModelForDepthEstimation

        spec, config = load_spec(model_id, input_size, resolution or input_size, depth_kind)
        dtype = resolve_dtype(dtype_name, device, spec.output_conv)
        model = _loaded(model_id, lambda: AutoModelForDepthEstimation.from_pretrained(model_id, dtype=dtype))
        if spec.output_conv:
            keep_output_layer_in_float32(model)
        model.to(device).eval()
        if device.type == "cuda":
            _tune_cuda()
        model.to(memory_format=torch.channels_last)  # the DPT neck and head are convolutions (CPU too)
        revision = getattr(config, "_commit_hash", None) or "local"
        estimator = cls(model, spec.rules, device, dtype, revision, spec.kind)
        estimator.check_runs(model_id)
        return estimator

    def check_runs(self, model_id: str) -> None:
        """One blank image through the model and back, so that an input size the architecture does not take (a
        backbone's window, say) is an error now, before anything is written, not a traceback later."""
        try:
            self.predict_raw(np.zeros((1, self.input_size, self.input_size, 3), dtype=np.uint8))
        except Exception as err:  # noqa: BLE001 - whatever the model raises on this input
            raise DepthModelError(f"--depth-model {model_id!r} does not run on {self.input_size} x {self.input_size} "
                                  f"inputs ({type(err).__name__}: {err}); leave out --depth-input-size for the "
                                  "model's own size") from err

    @property
    def field_of_view(self) -> bool:
        """It predicts its field of view (Depth Pro): `predict_maps` gives focal lengths."""
        return self.rules.field_of_view

    @torch.inference_mode()
    def predict_raw(self, images: np.ndarray) -> torch.Tensor:
        """B x R x R x 3 uint8 -> B x R x R float32 depth of the model's kind (on the device): relative inverse
        depth, or metres."""
        return self.predict_maps(images)[0]

    @torch.inference_mode()
    def predict_maps(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`predict_raw`'s maps, with the focal lengths (B, pixels at R, on the device) of a model that predicts its
        field of view, else None."""
        if self.device.type == "cpu" and len(images) > CPU_MICRO_BATCH:
            parts = [self._predict_maps(images[s:s + CPU_MICRO_BATCH]) for s in range(0, len(images), CPU_MICRO_BATCH)]
            focal = None if parts[0][1] is None else torch.cat([focal for _, focal in parts])
            return torch.cat([maps for maps, _ in parts]), focal
        return self._predict_maps(images)

    @torch.inference_mode()
    def preprocess(self, images: np.ndarray) -> torch.Tensor:
        """B x R x R x 3 uint8 -> the model's B x 3 x S x S input on the device, as its image processor makes it.
        Depth Anything, DPT, GLPN, TIPSv2: a resize of the uint8 image (PIL's or torchvision's kernel, antialiased)
        rounded to integers, then rescale (and normalise). Equals DPTImageProcessor's pixels except where PIL's
        fixed-point resampling rounds the other way (a few % of values, by at most 3 levels; see
        tests/test_depth_parity.py). ZoeDepth, Depth Pro: rescale (Depth Pro: and normalise), ZoeDepth's reflect
        padding, a float resize, then normalise."""
        batch = torch.from_numpy(images)
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        batch = batch.to(self.device, non_blocking=True).permute(0, 3, 1, 2).float()
        rules = self.rules
        if rules.rescale_first:
            batch = batch * (1 / 255)
            if rules.normalise_first:
                batch = self._normalise(batch)
            if pad := rules.pad(images.shape[1]):
                batch = F.pad(batch, (pad, pad, pad, pad), mode="reflect")
            batch = self._resize(batch)
            if not rules.normalise_first:
                batch = self._normalise(batch)
        else:
            batch = self._normalise(self._resize(batch).clamp_(0, 255).round_())  # PIL resizes to uint8: same rounding
        return batch.to(self.dtype).contiguous(memory_format=torch.channels_last)

    def _normalise(self, batch: torch.Tensor) -> torch.Tensor:
        return (batch - self.mean) / self.std

    def _resize(self, batch: torch.Tensor) -> torch.Tensor:
        size, rules = (self.input_size, self.input_size), self.rules
        if size == tuple(batch.shape[-2:]):
            return batch
        return F.interpolate(batch, size=size, mode=rules.resample, align_corners=rules.align_corners,
                             antialias=rules.antialias)

    def _predict_maps(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        output = self._run_model(self.preprocess(images))
        return to_resolution(output, self.rules, images.shape[1])

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
        return scale_to_uint16(*self.predict_maps(images))
