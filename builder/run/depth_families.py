"""The depth-estimation families of transformers (`MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES`): what each one's
model outputs (relative inverse depth or metres) and how its own image processor prepares an image and
`post_process_depth_estimation` brings the prediction back, decided from the model's config and image processor
before any weight is loaded or anything written. A family that cannot run here is refused, saying why (exit 2)."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
from collections.abc import Callable

from builder.contract.depth_kinds import DEPTH_KINDS, METRIC, RELATIVE, DepthKind
from builder.contract.errors import DepthModelError

TORCHVISION_EXTRA = "pip install 'fgbg-depth[torchvision]'"


@dataclasses.dataclass(frozen=True)
class InputRules:
    """How the estimator turns R x R uint8 images into the model's S x S input and the prediction into an R x R map,
    as the family's image processor and its `post_process_depth_estimation` do."""

    size: int  # S
    resample: str  # the image's resize to S: "bicubic" or "bilinear"
    mean: tuple[float, ...] | None  # normalisation; None where the processor does not normalise (GLPN, TIPSv2)
    std: tuple[float, ...] | None
    rescale_first: bool = False  # ZoeDepth, Depth Pro: to [0, 1] before a float resize (no rounding to uint8)
    normalise_first: bool = False  # Depth Pro: normalised before the resize too
    antialias: bool = True  # PIL and torchvision antialias a downscale; Depth Pro resizes without
    align_corners: bool = False  # ZoeDepth resizes with align_corners=True
    reflect_pad: bool = False  # ZoeDepth: reflect-pad int(sqrt(R / 2) * 3) px per side first, cut off the prediction
    output_resample: str = "bicubic"  # the prediction's resize to R (Depth Pro, TIPSv2: bilinear)
    field_of_view: bool = False  # Depth Pro: inverse depth at focal length = width, rescaled by the predicted FOV

    def pad(self, resolution: int) -> int:
        """ZoeDepth's reflect padding per side for an R x R image (0 for the others)."""
        return int(math.sqrt(resolution / 2) * 3) if self.reflect_pad else 0


@dataclasses.dataclass(frozen=True)
class DepthModelSpec:
    """Everything decided from a depth model's config and processor: its output kind and input rules."""

    kind: DepthKind
    rules: InputRules
    output_conv: bool  # the head's last convolution makes the map (see Family.output_conv)


@dataclasses.dataclass(frozen=True)
class Family:
    title: str
    kind: Callable[[object], DepthKind]  # what the config says the model outputs
    kind_fixed: bool  # the architecture fixes it: a different --depth-kind is refused
    rules: Callable[[object, object, int | None, int], InputRules] | None  # (config, processor, size, R) -> rules
    refusal: str | None = None  # why this family cannot run here
    needs_torchvision: bool = False  # its image processor exists for the torchvision backend only
    output_conv: bool = False  # its head's last convolution makes the map: kept in float32 under bf16 (`auto` on CUDA)


def _size(processor) -> tuple[int, int]:
    size = processor.size
    return int(size["height"]), int(size["width"])


def _resample(processor) -> str:
    """The processor's PIL resampling filter as a torch mode (2 bilinear, 3 bicubic)."""
    value = int(getattr(processor, "resample", 3))
    if value not in (2, 3):
        raise DepthModelError(f"the image processor resamples with PIL filter {value}; only bilinear (2) and bicubic "
                              "(3) are reproduced here")
    return {2: "bilinear", 3: "bicubic"}[value]


def _normalisation(processor) -> tuple[tuple | None, tuple | None]:
    if not getattr(processor, "do_normalize", False) or processor.image_mean is None:
        return None, None
    return tuple(map(float, processor.image_mean)), tuple(map(float, processor.image_std))


def patch_size(config) -> int:
    """The model's patch size (its own, or its backbone's)."""
    backbone = getattr(config, "backbone_config", None)
    patch = getattr(backbone, "patch_size", None) or getattr(config, "patch_size", None) or 1
    return int(patch[0] if isinstance(patch, (list, tuple)) else patch)


def _constrain(value: float, multiple: float) -> int:
    return int(round(value / multiple) * multiple)


def _own_size(processor, side: int, multiple: float) -> int:
    """The side S the processor resizes a square image of this side to (keep_aspect_ratio picks the scale closest to 1,
    then each side is rounded to the multiple); DepthModelError if that is not square."""
    height, width = _size(processor)
    scale_h, scale_w = height / side, width / side
    if getattr(processor, "keep_aspect_ratio", False):
        scale_h = scale_w = scale_w if abs(1 - scale_w) < abs(1 - scale_h) else scale_h
    out_h, out_w = _constrain(scale_h * side, multiple), _constrain(scale_w * side, multiple)
    if out_h != out_w:
        raise DepthModelError(f"its image processor resizes a square image to {out_h} x {out_w}; pass "
                              "--depth-input-size S for a square input")
    return out_h


def _checked_size(size: int | None, own: int, multiple: int, title: str) -> int:
    if size is None:
        return own
    if size < multiple or size % multiple:
        raise DepthModelError(f"--depth-input-size {size}: a {title} model takes a multiple of {multiple} "
                              f"(its own size is {own})")
    return size


def _dpt_like(config, processor, size, resolution) -> InputRules:
    """Depth Anything, DPT and a model of a family not listed (with --depth-kind): resize (PIL / torchvision on
    uint8), rescale, normalise; the prediction resized back bicubic. Padding to a size divisor is a no-op on a
    multiple of it."""
    multiple = patch_size(config)
    if getattr(processor, "do_pad", False) and getattr(processor, "size_divisor", None):
        multiple = math.lcm(multiple, int(processor.size_divisor))
    own = _own_size(processor, resolution, max(1, int(getattr(processor, "ensure_multiple_of", 1) or 1)))
    mean, std = _normalisation(processor)
    title = FAMILIES[config.model_type].title if config.model_type in FAMILIES else config.model_type
    return InputRules(_checked_size(size, own, multiple, title), _resample(processor), mean, std)


def _glpn(config, processor, size, resolution) -> InputRules:
    """GLPN: R rounded down to a multiple of its size divisor (32), bilinear, not normalised."""
    divisor = int(getattr(processor, "size_divisor", 32))
    own = resolution // divisor * divisor
    mean, std = _normalisation(processor)
    return InputRules(_checked_size(size, own, divisor, "GLPN"), _resample(processor), mean, std)


def _zoedepth(config, processor, size, resolution) -> InputRules:
    """ZoeDepth: rescale, reflect padding, bilinear resize with align_corners=True, normalise; the prediction resized
    bicubic to the padded size and the padding cut off."""
    rules = InputRules(0, _resample(processor), *_normalisation(processor), rescale_first=True,
                       antialias=False, align_corners=True, reflect_pad=True)
    padded = resolution + 2 * rules.pad(resolution)
    own = _own_size(processor, padded, float(getattr(processor, "ensure_multiple_of", 1) or 1))
    return dataclasses.replace(rules, size=_checked_size(size, own, patch_size(config), "ZoeDepth"))


def _depth_pro(config, processor, size, resolution) -> InputRules:
    """Depth Pro: rescale and normalise, then a bilinear resize without antialiasing to its one size; the prediction
    (inverse depth at focal length = width) rescaled by the predicted field of view and resized bilinear."""
    if not config.use_fov_model:
        raise DepthModelError("its config has use_fov_model false: without the field-of-view head its depth has no "
                              "metric scale; use a Depth Pro model with it (e.g. apple/DepthPro-hf)")
    own = int(config.patch_size / min(config.scaled_images_ratios))
    if size not in (None, own):
        raise DepthModelError(f"--depth-input-size {size}: a Depth Pro model takes exactly {own} x {own}; drop "
                              "--depth-input-size")
    mean, std = _normalisation(processor)
    return InputRules(own, _resample(processor), mean, std, rescale_first=True, normalise_first=True,
                      antialias=False, output_resample="bilinear", field_of_view=True)


def _tipsv2(config, processor, size, resolution) -> InputRules:
    """TIPSv2 DPT: a bilinear resize (torchvision, uint8), not normalised; the prediction resized bilinear."""
    own = _own_size(processor, resolution, 1)
    mean, std = _normalisation(processor)
    return InputRules(_checked_size(size, own, patch_size(config), "TIPSv2 DPT"), _resample(processor), mean, std,
                      output_resample="bilinear")


def _stated_kind(config) -> DepthKind:
    return METRIC if getattr(config, "depth_estimation_type", "relative") == "metric" else RELATIVE


FAMILIES = {
    "depth_anything": Family("Depth Anything", _stated_kind, True, _dpt_like, output_conv=True),
    "dpt": Family("DPT", lambda config: RELATIVE, False, _dpt_like, output_conv=True),
    "glpn": Family("GLPN", lambda config: METRIC, True, _glpn, output_conv=True),
    "zoedepth": Family("ZoeDepth", lambda config: METRIC, True, _zoedepth),
    "depth_pro": Family("Depth Pro", lambda config: METRIC, True, _depth_pro, needs_torchvision=True),
    "tipsv2_dpt": Family("TIPSv2 DPT", lambda config: METRIC, True, _tipsv2, needs_torchvision=True),
    "prompt_depth_anything": Family(
        "Prompt Depth Anything", _stated_kind, True, None,
        refusal="it refines a low-resolution metric depth prompt (LiDAR) given with each image, and the generator "
                "has none; use a Depth Anything model"),
    "chmv2": Family(
        "CHMv2", lambda config: METRIC, True, None,
        refusal="it predicts canopy height above the ground from aerial images, not the distance from the camera"),
}
RUNNABLE = tuple(name for name, family in FAMILIES.items() if family.refusal is None)


def _kind(family: Family | None, config, override: str | None, model_type: str) -> DepthKind:
    if family is None:
        if override is None:
            raise DepthModelError(
                f"model_type {model_type!r} is not a depth family this generator knows ({', '.join(RUNNABLE)}), so "
                "what its depth means is unknown: pass --depth-kind relative (inverse depth, larger = nearer) or "
                "--depth-kind metric (metres), as its model card says")
        return DEPTH_KINDS[override]
    stated = family.kind(config)
    if override is not None and override != stated.name and family.kind_fixed:
        raise DepthModelError(f"--depth-kind {override}: this {family.title} model outputs {stated.label} depth "
                              "(from its config); drop --depth-kind")
    return DEPTH_KINDS[override] if override else stated


def depth_model_spec(model_id: str, config, load_processor: Callable[[], object], size: int | None,
                     resolution: int, kind_override: str | None = None) -> DepthModelSpec:
    """The family, kind and input rules of a model from its config; the processor is loaded only for a family that
    can run here. DepthModelError (exit 2) saying why the model cannot run, or what to pass."""
    model_type = config.model_type
    family = FAMILIES.get(model_type)
    try:
        if family is not None and family.refusal:
            raise DepthModelError(f"a {family.title} model ({model_type}), which the generator does not run: "
                                  f"{family.refusal}")
        kind = _kind(family, config, kind_override, model_type)
        if family is not None and family.needs_torchvision and importlib.util.find_spec("torchvision") is None:
            raise DepthModelError(f"a {family.title} model ({model_type}), whose image processor needs torchvision, "
                                  f"which is not installed; install the extra: {TORCHVISION_EXTRA}")
    except DepthModelError as err:
        raise DepthModelError(f"--depth-model {model_id!r}: {err}") from None
    processor = load_processor()
    try:
        rules = (family.rules if family is not None else _dpt_like)(config, processor, size, resolution)
    except DepthModelError as err:
        raise DepthModelError(f"--depth-model {model_id!r}: {err}") from None
    return DepthModelSpec(kind, rules, family is not None and family.output_conv)
