"""Every depth-estimation family of the pinned transformers (`MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES`), each as a
tiny random-weight model (builder/testing/random_families.py): our batched estimator against the family's own image
processor + `post_process_depth_estimation`, its input-size rules, its depth kind, and the families refused up front.

Tolerance against the processor, as a share of the reference map's range (max abs difference):
- no resize of the image before the model (input size = R), and ZoeDepth and Depth Pro, whose processors resize in
  float as we do: 1e-4 (measured at most 1.4e-6, with the PIL processors here and the torchvision ones);
- a resize of the uint8 image (Depth Anything, DPT, TIPSv2 at another size): 2%, correlation > 0.9999 (measured
  0.4% to 0.9%: PIL's fixed-point resampling rounds a few % of the pixels the other way, tests/test_depth_parity.py).
Depth Pro and TIPSv2 have torchvision-only processors: compared where torchvision is installed, refused here."""

from __future__ import annotations

import importlib.util
import json
import shutil
import types

import datasets
import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from builder.contract.errors import DepthModelError
from builder.run.depth import DepthEstimator, load_spec
from builder.run.depth_families import FAMILIES, RUNNABLE
from tests.conftest import run_generate
from tests.test_depth_parity import scenes

transformers = pytest.importorskip("transformers")
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None
METRIC_DA = {"depth_estimation_type": "metric", "max_depth": 20}


def test_every_family_of_the_pinned_transformers_is_known():
    from transformers.models.auto.modeling_auto import MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES

    assert set(FAMILIES) == set(MODEL_FOR_DEPTH_ESTIMATION_MAPPING_NAMES)


@pytest.fixture(scope="session")
def family_model(tmp_path_factory):
    """family, config overrides -> a tiny random model's folder, built once per session."""
    from builder.testing.random_families import save_random_family_model

    built = {}

    def get(family: str, processor: bool = True, **config) -> str:
        key = (family, processor, tuple(sorted(config.items())))
        if key not in built:
            folder = tmp_path_factory.mktemp(family) / "model"
            built[key] = str(save_random_family_model(folder, family, processor=processor, **config))
        return built[key]

    return get


@pytest.fixture
def zoedepth_resize_without_torchvision(monkeypatch):
    """ZoeDepth's PIL processor removes its padding with torchvision's tensor resize (bicubic, no antialiasing),
    which is torch's interpolate; stand that in where torchvision is not installed."""
    if HAS_TORCHVISION:
        return
    from transformers.models.zoedepth import image_processing_pil_zoedepth as module

    def resize(tensor, size, interpolation, antialias):
        return torch.nn.functional.interpolate(tensor[None], size=size, mode=interpolation, align_corners=False,
                                               antialias=antialias)[0]

    monkeypatch.setattr(module, "tvF", types.SimpleNamespace(
        InterpolationMode=types.SimpleNamespace(BICUBIC="bicubic"), resize=resize), raising=False)


def processor_maps(folder: str, images: np.ndarray, size: int | None) -> np.ndarray:
    """The family's own processor and post-processing, image by image (`size`: its resize target, else its own)."""
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    if size is not None:
        processor.size = {"height": size, "width": size}
    model = transformers.AutoModelForDepthEstimation.from_pretrained(folder).eval()
    side, maps = images.shape[1], []
    for image in images:
        with torch.no_grad():
            output = model(**processor(images=Image.fromarray(image), return_tensors="pt"))
        extra = {"source_sizes": [(side, side)]} if model.config.model_type == "zoedepth" else {}
        maps.append(processor.post_process_depth_estimation(output, target_sizes=[(side, side)], **extra)[0][
            "predicted_depth"].float().numpy())
    return np.stack(maps)


# family, config overrides, R, --depth-input-size (None: the family's own), tolerance, kind
CASES = [
    ("depth_anything", METRIC_DA, 56, 56, 1e-4, "metric"),
    ("depth_anything", METRIC_DA, 64, 56, 0.02, "metric"),
    ("dpt", {}, 64, 64, 1e-4, "relative"),
    ("dpt", {}, 64, 32, 0.02, "relative"),
    ("glpn", {}, 64, None, 1e-4, "metric"),
    ("zoedepth", {}, 64, None, 1e-4, "metric"),
    ("zoedepth", {}, 100, None, 1e-4, "metric"),
    ("depth_pro", {}, 64, None, 1e-4, "metric"),
    ("tipsv2_dpt", {}, 56, 56, 1e-4, "metric"),
    ("tipsv2_dpt", {}, 64, 56, 0.02, "metric"),
]


@pytest.mark.parametrize("family, config, side, size, tolerance, kind", CASES,
                         ids=[f"{c[0]}{'-metric' if c[1] else ''}-{c[2]}-{c[3]}" for c in CASES])
def test_the_map_equals_the_family_processors(family_model, zoedepth_resize_without_torchvision, family, config,
                                              side, size, tolerance, kind):
    if FAMILIES[family].needs_torchvision and not HAS_TORCHVISION:
        pytest.skip("its image processor needs torchvision (the refusal is tested below)")
    folder = family_model(family, **config)
    images = scenes(2, side)
    estimator = DepthEstimator.load(folder, size, torch.device("cpu"), "float32", resolution=side)
    ours = estimator.predict_raw(images).numpy()
    reference = processor_maps(folder, images, size if family in ("depth_anything", "dpt", "tipsv2_dpt") else None)
    assert estimator.kind.name == kind
    assert ours.shape == reference.shape == (2, side, side)
    span = reference.max() - reference.min()
    assert span > 0.05 * np.abs(reference).max()  # the map varies: there is something to compare
    assert np.abs(ours - reference).max() / span < tolerance
    assert np.corrcoef(ours.ravel(), reference.ravel())[0, 1] > 0.9999


def spec_error(folder: str, size: int | None = None, side: int = 64, kind: str | None = None) -> str:
    with pytest.raises(DepthModelError) as caught:
        load_spec(folder, size, side, kind)
    return str(caught.value)


def test_input_sizes_follow_the_family(family_model):
    dpt, anything, glpn = family_model("dpt"), family_model("depth_anything"), family_model("glpn")
    assert load_spec(dpt, 384, 224)[0].rules.size == 384  # DPT's own 384 (patch 16), refused before as not 14k
    assert load_spec(dpt, None, 224)[0].rules.size == 384
    assert "a multiple of 16" in spec_error(dpt, 518)
    assert load_spec(anything, 518, 224)[0].rules.size == 518 == load_spec(anything, None, 224)[0].rules.size
    assert "a multiple of 14" in spec_error(anything, 384)
    assert load_spec(glpn, None, 100)[0].rules.size == 96  # as its processor: R rounded down to a multiple of 32
    assert "a multiple of 32" in spec_error(glpn, 100)
    spec = load_spec(family_model("zoedepth"), None, 64)[0]
    assert (spec.rules.size, spec.rules.pad(64), spec.rules.reflect_pad) == (84, 16, True)
    assert spec.rules.mean is not None and load_spec(glpn, None, 64)[0].rules.mean is None  # GLPN: not normalised


def test_the_kind_comes_from_the_config_and_a_contradiction_is_refused(family_model):
    relative, metric = family_model("depth_anything"), family_model("depth_anything", **METRIC_DA)
    assert load_spec(relative, 56, 56)[0].kind.name == "relative"
    assert load_spec(metric, 56, 56)[0].kind.name == "metric"
    assert "outputs metric-m depth (from its config); drop --depth-kind" in spec_error(metric, 56, 56, "relative")
    assert load_spec(family_model("dpt"), 64, 64, "metric")[0].kind.name == "metric"  # DPT's is a convention only


def test_a_family_not_listed_needs_depth_kind(family_model, monkeypatch):
    """A model_type the generator does not list (a later transformers' family): exit 2 naming the supported ones,
    unless --depth-kind says what it outputs; then it runs with DPT's rules from its own processor."""
    folder = family_model("dpt")
    monkeypatch.delitem(FAMILIES, "dpt")
    message = spec_error(folder)
    assert "model_type 'dpt' is not a depth family this generator knows" in message
    assert all(name in message for name in RUNNABLE if name != "dpt") and "--depth-kind" in message
    spec = load_spec(folder, None, 64, "metric")[0]
    assert (spec.kind.name, spec.rules.size, spec.rules.resample) == ("metric", 384, "bicubic")


REFUSED = [("prompt_depth_anything", "a low-resolution metric depth prompt (LiDAR)"),
           ("chmv2", "canopy height above the ground"),
           *([] if HAS_TORCHVISION else [("depth_pro", "pip install 'fgbg-depth[torchvision]'"),
                                         ("tipsv2_dpt", "pip install 'fgbg-depth[torchvision]'")])]


@pytest.mark.parametrize("family, reason", REFUSED, ids=[family for family, _ in REFUSED])
def test_families_that_cannot_run_are_refused_from_their_config(family_model, family, reason):
    assert reason in spec_error(family_model(family, processor=False))


def test_a_refused_family_exits_2_before_anything_is_written(tmp_path, family_model):
    out = tmp_path / "out"
    result = run_generate(out, "--demo", "--depth-model", family_model("chmv2", processor=False), check=False)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "canopy height" in result.stderr and not out.exists()


@pytest.mark.skipif(not HAS_TORCHVISION, reason="Depth Pro's processor needs torchvision")
def test_depth_pro_takes_its_one_size_and_needs_its_field_of_view(family_model, tmp_path):
    folder = family_model("depth_pro")
    assert load_spec(folder, None, 64)[0].rules.size == 112  # patch 28 / scaled image ratio 0.25
    assert "takes exactly 112 x 112" in spec_error(folder, 56)
    without = shutil.copytree(folder, tmp_path / "without-fov")
    config = json.loads((without / "config.json").read_text())
    (without / "config.json").write_text(json.dumps({**config, "use_fov_model": False}))
    assert "use_fov_model false" in spec_error(str(without))


@pytest.mark.skipif(not HAS_TORCHVISION, reason="Depth Pro's processor needs torchvision")
def test_depth_pro_without_focal_px_sizes_by_its_stored_field_of_view(family_model, tmp_path_factory, monkeypatch):
    """Physical placement with a Depth Pro model and no --focal-px: each background stores the focal length its
    predicted field of view gives (R / 2 / tan(fov / 2), equal to its processor's `focal_length`), every physically
    placed row stands f_R * H / Z_foot tall by it, and verify (with `--depth`, the model run again) passes. A random
    Depth Pro's depth has no ground to stand on: its depth output is replaced by a floor (inverse depth at focal length
    = width rising linearly towards the bottom), its field of view is its own."""
    from transformers.models.depth_pro import modeling_depth_pro

    from builder.contract.depth_kinds import FOCAL_COLUMN
    from builder.contract.settings import GenerateConfig
    from builder.publish import card
    from builder.run.launch import generate
    from builder.verify.runner import verify
    from tests.test_physical import assert_sized_by, stored_metres_and_focal, write_scenes

    model_class = modeling_depth_pro.DepthProForDepthEstimation
    forward = model_class.forward

    def on_a_floor(self, *args, **kwargs):
        output = forward(self, *args, **kwargs)
        side = output.predicted_depth.shape[-2]
        floor = torch.linspace(0.02, 0.6, side, dtype=output.predicted_depth.dtype)[:, None]
        output.predicted_depth = floor.expand(output.predicted_depth.shape).clone()
        return output

    monkeypatch.setattr(model_class, "forward", on_a_floor)
    folder = family_model("depth_pro")
    bg_dir, fg_dir, _, heights = write_scenes(tmp_path_factory.mktemp("scenes"))
    out = tmp_path_factory.mktemp("depth-pro") / "out"
    generate(GenerateConfig.from_kwargs(output_dir=out, bg_dir=bg_dir, fg_dir=fg_dir, placement_mode="physical",
                                        fg_heights=heights, depth_model=folder, resolution=64, placements=1,
                                        batch_size=8, workers=0, scale_min=0.1, scale_max=0.9), card)
    report = verify(out, depth_rows=1)
    assert report.ok, report.summary()
    stored = stored_metres_and_focal(out)[1]
    assert assert_sized_by(out, stored.__getitem__) >= 12
    processor = transformers.AutoImageProcessor.from_pretrained(folder)
    model = transformers.AutoModelForDepthEstimation.from_pretrained(folder).eval()
    rows = datasets.load_dataset(str(out), "backgrounds", split="train")  # the stored images, as the model saw them
    with torch.no_grad():
        output = model(**processor(images=list(rows["image"]), return_tensors="pt"))
    own = processor.post_process_depth_estimation(output, target_sizes=[(64, 64)] * len(rows))
    for row, theirs in zip(rows, own):
        assert row[FOCAL_COLUMN] == stored[row["bg_id"]] == pytest.approx(float(theirs["focal_length"]), rel=1e-4)


@pytest.mark.parametrize("family", ["dpt", "glpn", "zoedepth"])
def test_a_family_generates_with_its_kind_in_the_card(tmp_path, family_model, family):
    """A small demo run (in this process); the card and manifest say the kind, verify passes, and `verify --depth`
    reruns the model on stored rows (metres for the metric ones). Depth Anything's metric twin: test_ground_e2e."""
    from builder.contract.settings import GenerateConfig
    from builder.publish import card
    from builder.run.launch import generate
    from builder.verify.runner import verify

    out = tmp_path / "out"
    generate(GenerateConfig.from_kwargs(output_dir=out, demo=True, resolution=64, placements=1, shard_size=50,
                                        batch_size=8, workers=0, depth_model=family_model(family)), card)
    kind = "relative" if family == "dpt" else "metric"
    text = (out / "README.md").read_text()
    label = "relative-inverse" if kind == "relative" else "metric-m"
    assert yaml.safe_load(text.split("---")[1])["depth_kind"] == label
    assert ("metric depth in metres" in text) == (kind == "metric")
    settings = json.loads((out / "manifest.json").read_text())["settings"]
    assert settings.get("depth_kind") == (None if kind == "relative" else "metric")
    report = verify(out, depth_rows=2)
    assert report.ok, report.summary()
    if kind == "metric":  # a manifest that says relative: verify --depth refuses the metric model up front
        manifest = json.loads((out / "manifest.json").read_text())
        manifest["settings"].pop("depth_kind")
        (tmp_path / "relative.json").write_text(json.dumps(manifest))
        with pytest.raises(DepthModelError, match="holds relative-inverse depth, but its model .* outputs metric-m"):
            verify(out, manifest=tmp_path / "relative.json", depth_rows=1)
