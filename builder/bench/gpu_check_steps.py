"""The Python-level steps of builder/bench/gpu_check.py, each run in a process of its own:

    python -m builder.bench.gpu_check_steps STEP WORKDIR SIZES_JSON

A step prints its figures as one line (after gpu_check.RESULT) and exits 0, or 1 when a figure is out of bounds
(its "problem"); an exception fails it with its traceback."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

from builder.bench.common import ROOT
from builder.bench.gpu_check import NEEDED, RESULT, Sizes, model_dir, order_one_model_dir

FEED_BATCH, FEED_SIDE = 8, 224
SPREAD_LIMIT = 0.02  # of 65535 levels: verify --depth's tolerance, and tests/test_depth_precision.py's for bf16


def requirement_problems() -> list[str]:
    """Our dependencies and datasets' against what is installed (datasets is installed without its own)."""
    from importlib import metadata

    import tomllib
    from packaging.requirements import Requirement

    ours = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    problems = []
    for requirement in map(Requirement, [*ours, *(metadata.requires("datasets") or [])]):
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            version = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            problems.append(f"{requirement}: not installed")
            continue
        if not requirement.specifier.contains(version, prereleases=True):
            problems.append(f"{requirement}: {version} installed")
    return problems


def installed_version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def environment(work: Path, sizes: Sizes) -> dict:
    import torch

    cuda = torch.cuda.is_available()
    if sizes.cuda and not cuda:
        raise SystemExit(f"no CUDA device visible to torch {torch.__version__} (CUDA build {torch.version.cuda}): "
                         "this check is for a GPU machine; scripts/gpu_check.sh OUTDIR --cpu-smoke runs it on CPU")
    packages = {name: installed_version(name) for name in (*NEEDED, "transformers", "accelerate", "huggingface_hub",
                                                           "pyarrow", "numpy", "pillow", "fsspec", "scikit-image")}
    figures = {"python": platform.python_version(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
               "cuda": cuda, "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
               "packages": packages, "requirement_problems": requirement_problems()}
    for problem in figures["requirement_problems"]:
        print(f"warning: requirement not met: {problem}", file=sys.stderr)
    if cuda:
        properties = torch.cuda.get_device_properties(0)
        figures.update(gpu=properties.name, gpus=torch.cuda.device_count(),
                       capability=f"{properties.major}.{properties.minor}",
                       memory_gib=round(properties.total_memory / 2**30, 1),
                       bf16=torch.cuda.is_bf16_supported(including_emulation=False))
    return figures


def model(work: Path, sizes: Sizes) -> dict:
    """The random-weight model the generations and the benchmark use, and its order-one copy for the checks
    that compare maps (random weights predict ~1e-7, mostly zeros)."""
    from builder.testing.random_model import save_random_depth_model, scale_output_to_order_one

    save_random_depth_model(model_dir(work), sizes.architecture)
    scale_output_to_order_one(save_random_depth_model(order_one_model_dir(work), sizes.architecture))
    weights = sum(p.stat().st_size for p in model_dir(work).glob("*.safetensors"))
    return {"architecture": sizes.architecture, "weights_mb": round(weights / 2**20, 1)}


def photos(work: Path, sizes: Sizes) -> dict:
    from builder.bench.inputs import photo_dir, photo_inputs

    folder = photo_dir(None)
    if folder is None:
        raise SystemExit("scikit-image's photographs (skimage/data) not found: install scikit-image")
    photo_inputs(work / "photos", folder, sizes.photos, sizes.photos)
    return {"from": str(folder), "backgrounds": sizes.photos, "cut_outs": sizes.photos}


def device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def feed(work: Path, sizes: Sizes) -> dict:
    """builder.run.feed.DepthFeed on this device against DepthEstimator.predict: on CUDA with the rings page-locked
    (cudaHostRegister, the copy stream, events), then with page-locking refused (the pinned staging fallback)."""
    import numpy as np

    from builder.run.depth import DepthEstimator
    from builder.run.feed import CudaCalls, DepthFeed

    class RefusedPageLock(CudaCalls):
        def register(self, array):
            raise RuntimeError("cudaHostRegister refused on purpose by gpu_check")

    estimator = DepthEstimator.load(str(order_one_model_dir(work)), sizes.input_size, device(), "auto")
    images = np.random.default_rng(0).integers(0, 256, (3, FEED_BATCH, FEED_SIDE, FEED_SIDE, 3), dtype=np.uint8)
    counts = (FEED_BATCH, FEED_BATCH - 3)
    expected = [estimator.predict(images[slot, :count]).depth for slot, count in enumerate(counts)]
    variants = {"page-locked": CudaCalls(), "staging": RefusedPageLock()} if device().type == "cuda" else {"cpu": None}
    figures: dict = {"dtype": str(estimator.dtype).removeprefix("torch."), "device": device().type}
    for name, calls in variants.items():
        depths = np.zeros((2, FEED_BATCH, FEED_SIDE, FEED_SIDE), np.uint16)
        with DepthFeed(estimator, images, depths, cuda=calls) as depth_feed:
            for slot, count in enumerate(counts):
                depth_feed.start(slot, slot, count)
            depth_feed.finish(), depth_feed.finish()
            staged = depth_feed.staging is not None
        worst = max(int(np.abs(depths[slot, :count].astype(int) - want.astype(int)).max())
                    for slot, (count, want) in enumerate(zip(counts, expected)))
        figures[name] = {"max_level_difference": worst, "staged": staged}
        if worst > SPREAD_LIMIT * 65535:
            figures["problem"] = f"the feed's {name} maps differ from predict() by {worst} levels"
    return figures


def precision(work: Path, sizes: Sizes) -> dict:
    """bf16 (with the float32 head) against float32 on this device, the order-one model, photographs' crops."""
    import numpy as np
    from PIL import Image

    from builder.run.depth import DepthEstimator

    images = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted((work / "photos" / "bg").iterdir())])
    maps = {dtype: DepthEstimator.load(str(order_one_model_dir(work)), sizes.input_size, device(), dtype)
            .predict(images).depth.astype(np.int64) for dtype in ("float32", "bfloat16")}
    difference = np.abs(maps["bfloat16"] - maps["float32"])
    figures = {"device": device().type, "input_size": sizes.input_size, "maps": len(images),
               "distinct_levels_float32": [len(np.unique(m)) for m in maps["float32"]],
               "distinct_levels_bfloat16": [len(np.unique(m)) for m in maps["bfloat16"]],
               "max_level_difference": int(difference.max()), "mean_level_difference": float(difference.mean())}
    if figures["max_level_difference"] > SPREAD_LIMIT * 65535:
        figures["problem"] = f"bf16 maps are {figures['max_level_difference']} levels from float32's"
    return figures


STEPS = {"environment": environment, "model": model, "photos": photos, "feed": feed, "precision": precision}


def main(argv: list[str]) -> int:
    name, work, sizes = argv[0], Path(argv[1]), Sizes(**json.loads(argv[2]))
    figures = STEPS[name](work, sizes)
    print(RESULT + json.dumps(figures), flush=True)
    if "problem" in figures:
        print(f"error: {figures['problem']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
