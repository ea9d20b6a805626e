"""Tiny random-weight models of every depth-estimation family of transformers, saved as a local folder with an image
processor configured as the family's published checkpoints are (scaled down), for tests where no weights can be
downloaded. Their last layer is rescaled so that predictions vary across the image (random weights predict nearly
a constant), so a comparison with the family's own processor has something to compare."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from builder.testing.random_model import save_random_depth_model, scale_output_to_order_one, spread_output


@dataclasses.dataclass(frozen=True)
class Recipe:
    config: object
    processor: Callable[[], object] | None  # makes the image processor (Depth Pro's and TIPSv2's need torchvision;
    #                                         none for the refused families, refused before it is read)
    spreads: tuple = ()  # (path of a last convolution, its output's mean after spread_output): 3 before a ReLU,
    #                      0 before a sigmoid or softplus
    side: int = 64  # an input side the model takes


HALF = [0.5, 0.5, 0.5]  # DPT, ZoeDepth and Depth Pro checkpoints normalise with mean = std = 0.5
TINY_VIT = {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 64}
TINY_HEAD = {"neck_hidden_sizes": [16, 16, 16, 16], "fusion_hidden_size": 16, "reassemble_factors": [4, 2, 1, 0.5]}


def _dinov2(**extra):
    from transformers import Dinov2Config

    return Dinov2Config(image_size=518, patch_size=14, layerscale_value=1.0, apply_layernorm=True,
                        reshape_hidden_states=False, out_features=["stage1", "stage2", "stage3", "stage4"],
                        **TINY_VIT, **extra)


def _dpt():
    from transformers import DPTConfig
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    config = DPTConfig(image_size=384, patch_size=16, backbone_out_indices=[0, 1, 2, 3], **TINY_VIT, **TINY_HEAD)
    return Recipe(config, lambda: DPTImageProcessorPil(size={"height": 384, "width": 384}, keep_aspect_ratio=False,
                                                       ensure_multiple_of=1, resample=3, image_mean=HALF,
                                                       image_std=HALF), ((("head", "head", 4), 3.0),))


def _glpn():
    from transformers import GLPNConfig
    from transformers.models.glpn.image_processing_pil_glpn import GLPNImageProcessorPil

    config = GLPNConfig(num_encoder_blocks=4, depths=[1, 1, 1, 1], sr_ratios=[8, 4, 2, 1], hidden_sizes=[8, 16, 16, 16],
                        num_attention_heads=[1, 1, 1, 1], mlp_ratios=[2, 2, 2, 2], decoder_hidden_size=16, max_depth=10)
    return Recipe(config, lambda: GLPNImageProcessorPil(size_divisor=32, resample=2), ((("head", "head", 2), 0.0),))


def _zoedepth():
    from transformers import ZoeDepthConfig
    from transformers.models.zoedepth.image_processing_pil_zoedepth import ZoeDepthImageProcessorPil

    config = ZoeDepthConfig(backbone_config=_dinov2(), bottleneck_features=16, num_relative_features=8,
                            bin_embedding_dim=8, num_attractors=[4, 4, 4, 1], patch_transformer_hidden_size=16,
                            patch_transformer_intermediate_size=16, patch_transformer_num_attention_heads=2,
                            num_patch_transformer_layers=1, **TINY_HEAD,
                            bin_configurations=[{"n_bins": 16, "min_depth": 0.001, "max_depth": 10.0}])
    # the published one: 384 x 512, multiples of 32 (its BEiT's patch is 16); here scaled down for the tiny Dinov2
    return Recipe(config, lambda: ZoeDepthImageProcessorPil(size={"height": 84, "width": 112}, keep_aspect_ratio=True,
                                                            ensure_multiple_of=14, resample=2, image_mean=HALF,
                                                            image_std=HALF),
                  ((("metric_head", "seed_bin_regressor", "conv2"), 0.0),), side=84)


def _depth_pro():
    from transformers import DepthProConfig

    def processor():  # torchvision only
        from transformers.models.depth_pro.image_processing_depth_pro import DepthProImageProcessor

        return DepthProImageProcessor(size={"height": 112, "width": 112}, image_mean=HALF, image_std=HALF)

    vit = {"model_type": "dinov2", "patch_size": 14, **TINY_VIT}
    config = DepthProConfig(patch_size=28, use_fov_model=True, fusion_hidden_size=16, intermediate_hook_ids=[1, 0],
                            intermediate_feature_dims=[16, 16], scaled_images_feature_dims=[16, 16, 16],
                            image_model_config=vit, patch_model_config=vit, fov_model_config=vit)
    # inverse depth of order one, and a field of view of 50 degrees
    return Recipe(config, processor, ((("head", "layers", -2), 10.0), (("fov_model", "head", "layers", -1), 50.0)),
                  side=112)


def _tipsv2():
    from transformers import Tipsv2DptConfig

    def processor():  # torchvision only
        from transformers.models.tipsv2_dpt.image_processing_tipsv2_dpt import Tipsv2DptImageProcessor

        return Tipsv2DptImageProcessor(size={"height": 56, "width": 56})

    backbone = {"model_type": "tipsv2_vision_model", "image_size": 56, "patch_size": 14, "mlp_ratio": 2,
                "out_indices": [1, 2, 3, 4], "apply_layernorm": True, "reshape_hidden_states": False,
                **{k: v for k, v in TINY_VIT.items() if k != "intermediate_size"}}
    config = Tipsv2DptConfig(backbone_config=backbone, num_depth_bins=16, **TINY_HEAD)
    return Recipe(config, processor, side=56)


def _prompt_depth_anything():
    from transformers import PromptDepthAnythingConfig

    config = PromptDepthAnythingConfig(backbone_config=_dinov2(), depth_estimation_type="metric", patch_size=14,
                                       head_hidden_size=8, reassemble_hidden_size=32, **TINY_HEAD)
    return Recipe(config, None)  # refused before its processor is read


def _chmv2():
    from transformers import CHMv2Config

    backbone = {"model_type": "dinov3_vit", "patch_size": 16, "out_indices": [1, 2, 3, 4], "return_class_token": True,
                "reshape_hidden_states": False, **TINY_VIT}
    config = CHMv2Config(backbone_config=backbone, post_process_channels=[16, 16, 16, 16], fusion_hidden_size=16,
                         head_hidden_size=8, number_output_channels=16)
    return Recipe(config, None)  # torchvision only, and refused before it is read


BUILDERS = {"dpt": _dpt, "glpn": _glpn, "zoedepth": _zoedepth, "depth_pro": _depth_pro, "tipsv2_dpt": _tipsv2,
            "prompt_depth_anything": _prompt_depth_anything, "chmv2": _chmv2}


def save_random_family_model(folder: str | Path, family: str, seed: int = 0, processor: bool = True,
                             **config) -> Path:
    """A tiny random `family` model (a model_type of transformers' depth-estimation mapping) in `folder`; `config`
    overrides its config (e.g. depth_estimation_type="metric" for Depth Anything). `processor=False` leaves out the
    image processor (Depth Pro's and TIPSv2's need torchvision; a refusal reads the config only)."""
    import torch
    from transformers import AutoConfig, AutoModelForDepthEstimation

    folder = Path(folder)
    if family == "depth_anything":
        save_random_depth_model(folder, "tiny", seed, **config)
        metric = AutoConfig.from_pretrained(folder).depth_estimation_type == "metric"
        return scale_output_to_order_one(folder, side=56, centre=0.0 if metric else 3.0)
    recipe = BUILDERS[family]()
    for key, value in config.items():
        setattr(recipe.config, key, value)
    torch.manual_seed(seed)
    model = AutoModelForDepthEstimation.from_config(recipe.config).eval()
    for path, centre in recipe.spreads:
        spread_output(model, path, centre, recipe.side)
    model.save_pretrained(folder)
    if processor and recipe.processor is not None:
        recipe.processor().save_pretrained(folder)
    return folder


def save_metric_twin(relative: str | Path, folder: str | Path, max_depth: int = 10) -> Path:
    """The metric twin of a relative Depth Anything folder: the same weights with the metric head, its last
    convolution negated, so that it predicts `max_depth * sigmoid(-z)` metres where the relative model predicts
    `relu(z)`: far where the relative model says far, as a metric model of the same scene would."""
    import torch
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(relative, depth_estimation_type="metric", max_depth=max_depth)
    with torch.no_grad():
        model.head.conv3.weight.neg_()
        model.head.conv3.bias.neg_()
    model.save_pretrained(folder)
    AutoImageProcessor.from_pretrained(relative).save_pretrained(folder)
    return Path(folder)
