"""The dataset card in every mode: depth or not, license known, unknown or `other`, every size category."""

from __future__ import annotations

import inspect
import io
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import yaml
from datasets import Image as ImageFeature
from datasets import load_dataset
from huggingface_hub import DatasetCardData
from PIL import Image

from builder.contract.errors import UsageError
from builder.contract.settings import Manifest
from builder.publish.card import License, render_card, size_category
from builder.publish.license import license_terms
from fgbg_depth import CONFIG_NAMES
from tests.conftest import ROOT, env

REPO = "someone/fgbg-depth"


def header_and_body(text: str) -> tuple[dict, str]:
    assert text.startswith("---\n")
    _, header, body = text.split("---\n", 2)
    return yaml.safe_load(header), body


def render(out, license: License | None) -> str:
    """The card of a generated folder, as scripts/generate.py and the Hub export render it."""
    manifest = Manifest.from_json(json.loads((out / "manifest.json").read_text()))
    stats = json.loads((out / "stats.json").read_text())
    data_files = {name: [{"split": "train", "path": f"data/{name}/train-*.arrow"}] for name in CONFIG_NAMES}
    return render_card(manifest, stats, data_files, stats["num_bytes"], {}, REPO, license)


@pytest.fixture(scope="module")
def no_depth_out(no_depth_reference):
    return no_depth_reference  # read only: the card is rendered from it, and exported elsewhere


def hub_size_categories() -> list[str]:
    """The options huggingface_hub documents for DatasetCardData.size_categories."""
    doc = inspect.getdoc(DatasetCardData)
    options = doc.split("size_categories")[1].split("source_datasets")[0]
    return re.findall(r"'([^']+)'", options)


@pytest.mark.parametrize("n, label", [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (9_999, "1K<n<10K"),
                                      (10**8 - 1, "10M<n<100M"), (10**8, "100M<n<1B"), (10**9, "1B<n<10B"),
                                      (10**9 + 1, "1B<n<10B"), (10**12 - 1, "100B<n<1T"), (10**12, "n>1T")])
def test_size_category_boundaries(n, label):
    assert size_category(n) == label


def test_size_categories_are_huggingface_hubs_list():
    ours = [size_category(10**power) for power in range(2, 14)]
    assert sorted(set(ours)) == sorted(set(hub_size_categories()) - {"other"})


def test_card_with_depth_lists_depth_and_shows_how_to_read_it(reference_dataset):
    text = (reference_dataset / "README.md").read_text()
    header, body = header_and_body(text)
    assert header["task_categories"] == ["depth-estimation", "image-segmentation"]
    assert "depth" in header["tags"]
    assert "license" not in header  # a local random model: no license yet, and no invalid `other`
    assert body.startswith("\n# fgbg-depth: composite + mask + depth\n")
    assert "Paired **composite + mask + depth** samples" in body and "and a depth map" in body
    assert "## Reading depth" in body and 'cast_column("depth", Image(mode="F"))' in body
    assert "lossy" in body and "JPEG" in body  # the viewer's mask previews


def test_card_without_depth_mentions_no_depth_task_or_column(no_depth_out):
    text = (no_depth_out / "README.md").read_text()
    header, body = header_and_body(text)
    assert header["task_categories"] == ["image-segmentation"]
    assert "depth" not in header["tags"]
    assert body.startswith("\n# fgbg-depth: composite + mask\n")
    assert "Paired **composite + mask** samples" in body and "depth map" not in body
    assert "depth-estimation" not in text and "Reading depth" not in body and "depth_min" not in body
    assert "generated without depth" in body
    assert "lossy" in body and "JPEG" in body
    assert all(f["name"] != "depth" for info in header["dataset_info"] for f in info["features"])


def test_license_other_carries_name_and_link(no_depth_out):
    header, body = header_and_body(render(no_depth_out, License("other", "my-terms-1.0", "LICENSE")))
    assert (header["license"], header["license_name"], header["license_link"]) == ("other", "my-terms-1.0", "LICENSE")
    assert "**my-terms-1.0**" in body and "(LICENSE)" in body
    header, _ = header_and_body(render(no_depth_out, License("cc-by-4.0")))
    assert header["license"] == "cc-by-4.0" and "license_name" not in header and "license_link" not in header


def test_license_terms_for_other():
    assert license_terms("other", None, "https://example.com/terms", REPO) == \
        License("other", "fgbg-depth-license", "https://example.com/terms")
    assert license_terms("apache-2.0", None, None, REPO) == License("apache-2.0")
    for args, message in [((None, None), "--license-link"), (("Bad Name", "LICENSE"), "--license-name"),
                          ((None, "../LICENSE"), "--license-link")]:
        with pytest.raises(UsageError, match=message):
            license_terms("other", *args, REPO)
    with pytest.raises(UsageError, match="--license other"):
        license_terms("apache-2.0", "x", None, REPO)


def test_export_with_license_other_is_valid_and_loads(no_depth_out, tmp_path):
    def push(*args):
        return subprocess.run([sys.executable, str(ROOT / "scripts" / "push_to_hub.py"), str(no_depth_out), REPO,
                               "--license", "other", *args], capture_output=True, text=True, env=env(), timeout=300)

    refused = push("--export-only", str(tmp_path / "refused"))
    assert refused.returncode == 2 and "--license-link" in refused.stderr and not (tmp_path / "refused").exists()
    export = tmp_path / "export"
    done = push("--license-link", "LICENSE", "--export-only", str(export))
    assert done.returncode == 0, done.stderr
    header, body = header_and_body((export / "README.md").read_text())
    assert (header["license"], header["license_name"], header["license_link"]) == \
        ("other", "fgbg-depth-license", "LICENSE")
    assert header["task_categories"] == ["image-segmentation"] and header["size_categories"] == ["n<1K"]
    assert DatasetCardData(**header).license_name == "fgbg-depth-license"
    rows = load_dataset(str(export), "default", split="train", streaming=True)
    assert "depth" not in next(iter(rows))


def test_depth_reading_advice_holds(reference_dataset):
    """The card's snippet on a real row, and its clipping figure measured on a full-range 16-bit ramp."""
    body = (reference_dataset / "README.md").read_text()
    row = next(iter(load_dataset(str(reference_dataset), "default", split="train")))
    png = np.asarray(row["depth"])
    assert png.dtype == np.uint16 and png.max() == 65535  # min-max scaled per image
    raw = row["depth_min"] + png / 65535 * (row["depth_max"] - row["depth_min"])
    assert np.isclose(raw.min(), row["depth_min"]) and np.isclose(raw.max(), row["depth_max"], rtol=1e-6)
    samples = load_dataset(str(reference_dataset), "default", split="train")
    as_float = np.asarray(samples.cast_column("depth", ImageFeature(mode="F"))[0]["depth"])
    assert as_float.dtype == np.float32 and np.array_equal(as_float, png.astype(np.float32))

    buffer = io.BytesIO()
    Image.fromarray(np.arange(65536, dtype=np.uint16).reshape(256, 256)).save(buffer, "PNG")
    stated = float(re.search(r"ramp, ([\d.]+)% of the pixels become 255", body)[1])
    for mode in ("L", "RGB"):
        converted = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert(mode))
        assert round(100 * (converted == 255).mean(), 2) == stated
