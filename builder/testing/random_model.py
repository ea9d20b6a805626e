"""Random-weight Depth Anything models saved as a local folder, for tests and CPU benchmarks where no
weights can be downloaded (builder/testing/random_families.py: the other families). They load through the same
`from_pretrained` path as real models; the generator never creates one on its own."""

from __future__ import annotations

from pathlib import Path

# Same shapes (so the same FLOPs) as depth-anything/Depth-Anything-V2-Small-hf: 24.8M parameters.
V2_SMALL = {"backbone": {"hidden_size": 384, "num_hidden_layers": 12, "num_attention_heads": 6,
                         "intermediate_size": 1536, "out_indices": [3, 6, 9, 12]},
            "head": {"neck_hidden_sizes": [48, 96, 192, 384], "fusion_hidden_size": 64, "head_hidden_size": 32,
                     "reassemble_hidden_size": 384}}
TINY = {"backbone": {"hidden_size": 32, "num_hidden_layers": 4, "num_attention_heads": 2,
                     "intermediate_size": 64, "out_indices": [1, 2, 3, 4]},
        "head": {"neck_hidden_sizes": [16, 16, 16, 16], "fusion_hidden_size": 16, "head_hidden_size": 8,
                 "reassemble_hidden_size": 32}}
ARCHITECTURES = {"tiny": TINY, "v2-small": V2_SMALL}


def save_random_depth_model(folder: str | Path, architecture: str = "tiny", seed: int = 0, **config) -> Path:
    """Write config, random weights and the V2 preprocessor config (ImageNet mean/std, 518, bicubic); `config`
    overrides the config's head settings (e.g. depth_estimation_type="metric", max_depth=20)."""
    import torch
    from transformers import AutoModelForDepthEstimation, DepthAnythingConfig, Dinov2Config
    from transformers.models.dpt.image_processing_pil_dpt import DPTImageProcessorPil

    shapes = ARCHITECTURES[architecture]
    layers = shapes["backbone"]["num_hidden_layers"]
    backbone = Dinov2Config(image_size=518, patch_size=14, layerscale_value=1.0, apply_layernorm=True,
                            reshape_hidden_states=False,
                            out_features=[f"stage{i}" for i in shapes["backbone"]["out_indices"]],
                            **{k: v for k, v in shapes["backbone"].items() if k != "out_indices"})
    assert len(backbone.out_features) == 4 and max(shapes["backbone"]["out_indices"]) <= layers
    head = {"depth_estimation_type": "relative", **shapes["head"], **config}
    torch.manual_seed(seed)
    model = AutoModelForDepthEstimation.from_config(
        DepthAnythingConfig(backbone_config=backbone, reassemble_factors=[4, 2, 1, 0.5], patch_size=14, **head))
    folder = Path(folder)
    model.save_pretrained(folder)
    DPTImageProcessorPil(do_resize=True, size={"height": 518, "width": 518}, keep_aspect_ratio=True,
                         ensure_multiple_of=14, resample=3, do_rescale=True, rescale_factor=1 / 255,
                         do_normalize=True, image_mean=[0.485, 0.456, 0.406], image_std=[0.229, 0.224, 0.225],
                         do_pad=False).save_pretrained(folder)
    return folder


def spread_output(model, path: tuple, centre: float, side: int) -> None:
    """Rescale the convolution at `path` (attribute names, or indices of a Sequential) so that its output on a random
    image is `centre` +- 1: a ReLU after it then passes a spread of values, a sigmoid spans much of its range."""
    import torch

    layer = model
    for step in path:
        layer = layer[step] if isinstance(step, int) else getattr(layer, step)
    outputs = []
    hook = layer.register_forward_hook(lambda module, args, out: outputs.append(out))
    with torch.no_grad():
        model(pixel_values=torch.randn(1, 3, side, side, generator=torch.Generator().manual_seed(0)))
        hook.remove()
        mean = outputs[0].mean()
        std = outputs[0].std() if outputs[0].numel() > 1 else torch.ones(())  # a scalar output is only shifted
        layer.weight /= std
        layer.bias.copy_((layer.bias - mean) / std + centre)


def scale_output_to_order_one(folder: str | Path, side: int = 224, centre: float = 3.0) -> Path:
    """Rescale the head's last convolution so that predictions are ~centre +- 1, as a trained model's are of order
    one (random weights predict ~1e-7, mostly zeros after the ReLU): precision checks need a spread of values.
    `centre` is before the head's activation (3: clear of a relative head's ReLU, 0: mid a metric one's sigmoid)."""
    from transformers import AutoModelForDepthEstimation

    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    spread_output(model, ("head", "conv3"), centre, side)
    model.save_pretrained(folder)
    return Path(folder)
