"""builder.rows.sources (folders): photos with a mask folder, and categories from `--fg-dir`'s sub-folders, carried
to the `foregrounds` rows, `default` rows, `objects` entries, the card, stats.json and the COCO export; a folder
without sub-folders keeps today's columns and order. Bad photo + mask pairs are refused naming both files."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image

from builder.verify.runner import verify
from tests.conftest import read_config
from tests.test_bad_inputs import background, encode, foreground, refused
from tests.test_coco_source import FAST, export_coco, run
from tests.test_yolo import MIN_IOU, check_export
from tests.test_yolo import export as export_yolo

PHOTOS = {  # path under --fg-dir: (mode, width, height)
    "cat/a.jpg": ("RGB", 60, 50), "cat/b.png": ("L", 40, 44), "dog/c.png": ("RGBA", 52, 48), "d.jpg": ("RGB", 50, 50)}
MASKS = {"cat/a.jpg": "cat/a.png", "cat/b.png": "cat/b.png", "dog/c.png": "dog/c.png", "d.jpg": "d.png"}


def soft_mask(width: int, height: int, seed: int) -> np.ndarray:
    """A soft-edged blob away from the borders, so cropping to its box matters."""
    yy, xx = np.mgrid[:height, :width]
    distance = np.hypot(xx - width * (0.4 + 0.05 * seed), yy - height * 0.55)
    return np.clip((min(width, height) * 0.3 - distance) * 60, 0, 255).astype(np.uint8)


def write_photos(root: Path) -> list[str]:
    """Photos in several modes, in category sub-folders and directly in --fg-dir, each with its mask (PNG L, and
    one bilevel PNG); a background. Returns the flags."""
    rng = np.random.default_rng(5)
    for n, (name, (mode, width, height)) in enumerate(PHOTOS.items()):
        photo, mask = root / "fgs" / name, root / "masks" / MASKS[name]
        photo.parent.mkdir(parents=True, exist_ok=True)
        mask.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (height, width, len(mode)), dtype=np.uint8).squeeze()
        photo.write_bytes(encode(Image.fromarray(pixels, mode), "JPEG" if name.endswith(".jpg") else "PNG"))
        matte = Image.fromarray(soft_mask(width, height, n), "L")
        mask.write_bytes(encode(matte.point(lambda v: 255 if v >= 128 else 0).convert("1") if n == 2 else matte))
    (root / "bg").mkdir()
    (root / "bg" / "bg.jpg").write_bytes(encode(background(), "JPEG"))
    return ["--fg-dir", str(root / "fgs"), "--fg-mask-dir", str(root / "masks"), "--bg-dir", str(root / "bg")]


def expected_cutout(root: Path, name: str) -> np.ndarray:
    """The photo as RGB with its mask as alpha, cropped to the mask's box (computed here from the files)."""
    rgb = np.asarray(Image.open(root / "fgs" / name).convert("RGB"))
    alpha = np.asarray(Image.open(root / "masks" / MASKS[name]).convert("L"))
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return np.dstack([rgb[box], alpha[box]])


@pytest.fixture(scope="module")
def photos_out(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("photos")
    code, output = run(root / "out", [*write_photos(root), *FAST, "--objects", "1-2"])
    assert code == 0, output
    return root, root / "out"


def test_photos_with_masks_become_cutouts(photos_out):
    root, out = photos_out
    rows = read_config(out, "foregrounds").to_pylist()
    assert [(r["source"], r["category"], r["category_id"]) for r in rows] == [
        ("cat/a.jpg", "cat", 1), ("cat/b.png", "cat", 1), ("d.jpg", None, None), ("dog/c.png", "dog", 2)]
    assert "annotation_id" not in rows[0]
    for row in rows:
        stored = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
        assert np.array_equal(stored, expected_cutout(root, row["source"])), row["source"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["source"] == {"kind": "masks"}
    assert [f["mask"]["name"] for f in manifest["inputs"]["foregrounds"]] == ["cat/a.png", "cat/b.png", "d.png",
                                                                              "dog/c.png"]
    report = verify(out)
    assert report.ok, "\n".join(report.problems)


def test_folder_categories_reach_rows_card_and_export(photos_out, tmp_path):
    _, out = photos_out
    categories = {r["fg_id"]: r["category"] for r in datasets.load_dataset(str(out), "foregrounds", split="train")}
    default = datasets.load_dataset(str(out), "default", split="train")
    for row in default:
        assert row["category"] == categories[row["fg_id"]]
        assert [o["category"] for o in row["objects"]] == [categories[o["fg_id"]] for o in row["objects"]]
    per = {name: sum(1 for r in default if r["category"] == name) for name in ("cat", "dog", None)}
    stats = json.loads((out / "stats.json").read_text())
    assert stats["categories"] == {"(none)": {"cutouts": 1, "rows": per[None]},
                                   "cat": {"cutouts": 2, "rows": per["cat"]}, "dog": {"cutouts": 1, "rows": per["dog"]}}
    card = (out / "README.md").read_text()
    assert "the names of `--fg-dir`'s sub-folders" in card and f"  | cat | 2 | {per['cat']} |" in card
    assert export_coco.export(str(out), tmp_path / "coco") == 0
    exported = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert [(c["id"], c["name"]) for c in exported["categories"]] == [(1, "cat"), (2, "dog"), (3, "uncategorised")]
    names = {c["id"]: c["name"] for c in exported["categories"]}
    rows = {r["sample_id"]: r for r in read_config(out, "default").to_pylist()}
    for annotation in exported["annotations"]:
        obj = rows[annotation["image_id"]]["objects"][annotation["id"] % 256 - 1]
        assert names[annotation["category_id"]] == (obj["category"] or "uncategorised")
    done = export_yolo(out, tmp_path / "yolo")
    assert done.returncode == 0, done.stderr[-3000:]
    class_name = {fg_id: category or "uncategorised" for fg_id, category in categories.items()}
    assert min(check_export(out, tmp_path / "yolo", class_name)) >= MIN_IOU


def test_rgba_subfolders_are_categories_and_a_flat_folder_has_none(tmp_path):
    bg = tmp_path / "bg"
    bg.mkdir()
    (bg / "bg.jpg").write_bytes(encode(background(), "JPEG"))
    for name in ("b.png", "a.png", "zebra/z.png", "ant/y.png", "ant/x.png"):
        (tmp_path / "fgs" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "fgs" / name).write_bytes(encode(foreground(30 + len(name))))
    code, output = run(tmp_path / "out", ["--fg-dir", str(tmp_path / "fgs"), "--bg-dir", str(bg), *FAST])
    assert code == 0, output
    rows = read_config(tmp_path / "out", "foregrounds").to_pylist()
    assert [(r["source"], r["category"]) for r in rows] == [
        ("a.png", None), ("ant/x.png", "ant"), ("ant/y.png", "ant"), ("b.png", None), ("zebra/z.png", "zebra")]
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("b.png", "a.png"):
        (flat / name).write_bytes((tmp_path / "fgs" / name).read_bytes())
    code, output = run(tmp_path / "flat_out", ["--fg-dir", str(flat), "--bg-dir", str(bg), *FAST])
    assert code == 0, output
    for config in ("default", "foregrounds"):
        features = datasets.load_dataset(str(tmp_path / "flat_out"), config, split="train").features
        assert not {"category", "category_id", "annotation_id"} & set(features)
    assert [r["source"] for r in read_config(tmp_path / "flat_out", "foregrounds").to_pylist()] == ["a.png", "b.png"]
    assert "source" not in json.loads((tmp_path / "flat_out" / "manifest.json").read_text())


def test_bad_photo_and_mask_pairs_are_refused(tmp_path, capsys):
    args = write_photos(tmp_path)
    fgs, masks = tmp_path / "fgs", tmp_path / "masks"
    (masks / "d.png").unlink()
    (masks / "cat" / "b.png").write_bytes(encode(Image.new("L", (41, 44), 255)))
    (masks / "dog" / "c.jpg").write_bytes(encode(Image.new("L", (52, 48), 255), "JPEG"))
    refused(tmp_path, args, capsys,
            f"{fgs / 'd.jpg'}: no mask {masks / 'd'}.png (any image type with the photo's file stem) in --fg-mask-dir",
            f"{fgs / 'cat' / 'b.png'} is 40x44 but its mask {masks / 'cat' / 'b.png'} is 41x44",
            f"{fgs / 'dog' / 'c.png'}: 2 masks with its stem ({masks / 'dog' / 'c.jpg'}, {masks / 'dog' / 'c.png'})")
    refused(tmp_path, ["--fg-mask-dir", str(masks), "--bg-dir", str(tmp_path / "bg")], capsys,
            "--fg-mask-dir holds the masks of the photos of --fg-dir: give --fg-dir too")
