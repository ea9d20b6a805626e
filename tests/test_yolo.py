"""builder.publish.polygon, builder.publish.yolo and scripts/export_yolo.py: polygons that fill back to their mask,
label files read back and rasterised against `instance_mask == k` (several objects) and `mask` (one object),
data.yaml, classes by cut-out source or by category (tests/test_sources.py exports a dataset with categories), empty
label files, and the exit 2."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml
from PIL import Image, ImageDraw

from builder.publish.polygon import outer_polygon
from builder.publish.yolo import classes, write_split
from builder.store.reader import open_dataset
from tests.conftest import ROOT, encoded, env, read_config

EXPORT = ROOT / "scripts" / "export_yolo.py"
MIN_PIXELS, MIN_IOU = 100, 0.9


def export(source, folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXPORT), str(source), str(folder)], capture_output=True, text=True,
                          env=env(), timeout=300)


def filled(xy: list[tuple[float, float]], shape: tuple[int, int]) -> np.ndarray:
    """A polygon drawn with its boundary, as the YOLO readers rasterise one (cv2.fillPoly; here PIL)."""
    image = Image.new("1", shape[::-1])
    ImageDraw.Draw(image).polygon(xy, fill=1)
    return np.asarray(image)


def disc(shape, centre, radius) -> np.ndarray:
    yy, xx = np.mgrid[:shape[0], :shape[1]]
    return (yy - centre[0]) ** 2 + (xx - centre[1]) ** 2 < radius ** 2


def test_a_polygon_fills_back_to_its_mask_with_holes_filled():
    shape = (40, 60)
    whole = disc(shape, (20, 22), 15)
    ring = whole & ~disc(shape, (20, 22), 6)  # the outer contour has no hole
    ring_and_piece = ring.copy()
    ring_and_piece[18:23, 20:25] = True  # a piece inside the hole: inside the outer contour already
    bar, dot, square = (np.zeros(shape, bool) for _ in range(3))
    bar[3:30, 50] = True
    dot[7, 55] = True
    square[30:36, 45:52] = True
    for mask, expected in ((whole, whole), (ring, whole), (ring_and_piece, whole), (bar, bar), (dot, dot),
                           (square, square)):
        points = outer_polygon(mask)
        assert len(points) >= 3  # two points would read as a box
        assert np.array_equal(filled([tuple(p) for p in points.tolist()], shape), expected)
    assert sorted(map(tuple, outer_polygon(square).tolist())) == [(45, 30), (45, 35), (51, 30), (51, 35)]


def test_pieces_are_one_polygon_joined_by_thin_bridges():
    shape = (40, 60)
    pieces = disc(shape, (20, 15), 9) | disc(shape, (20, 40), 9)
    pieces[5, 55] = True
    drawn = filled([tuple(p) for p in outer_polygon(pieces).tolist()], shape)
    assert not (pieces & ~drawn).any()  # every piece is inside
    extra = (drawn & ~pieces).sum()
    assert 0 < extra <= 7 + 15  # one-pixel bridges: 6 pixels between the discs, about 15 to the dot


def test_classes_are_the_coco_exports_categories_in_order():
    sources = [{"fg_id": i, "source": f"fg_{i}.png"} for i in (2, 0, 1)]
    assert classes(sources) == (["fg_0.png", "fg_1.png", "fg_2.png"], {0: 0, 1: 1, 2: 2})
    named = [{**sources[0], "category": "dog", "category_id": 18}, {**sources[1], "category": None,
             "category_id": None}, {**sources[2], "category": "cat", "category_id": 17}]
    assert classes(named + named) == (["cat", "dog", "uncategorised"], {2: 1, 0: 2, 1: 0})  # each cut-out once


def test_a_row_without_a_visible_object_gets_an_empty_label_file(tmp_path):
    composite = encoded(Image.new("RGB", (8, 6), "gray"), "JPEG")
    instances = np.zeros((6, 8), np.uint8)
    instances[1:4, 2:5] = 2  # object 1 is hidden entirely: no line
    rows = [{"sample_id": 7, "fg_bg": {"bytes": composite}, "fg_id": 0,
             "mask": {"bytes": encoded(Image.new("L", (8, 6)), "PNG")}},
            {"sample_id": 9, "fg_bg": {"bytes": composite}, "objects": [{"fg_id": 0}, {"fg_id": 1}],
             "mask": {"bytes": encoded(Image.fromarray(instances * 127), "PNG")},
             "instance_mask": {"bytes": encoded(Image.fromarray(instances), "PNG")}}]
    assert write_split(iter(rows), "train", tmp_path, {0: 5, 1: 6}) == (2, 1)
    assert (tmp_path / "images" / "train" / "00000007.jpg").read_bytes() == composite
    assert (tmp_path / "labels" / "train" / "00000007.txt").read_text() == ""
    line = (tmp_path / "labels" / "train" / "00000009.txt").read_text()
    assert line.endswith("\n") and line.split()[0] == "6" and len(line.split()) == 1 + 2 * 4


def split_rows(out: Path, split: str) -> list[dict]:
    return list(open_dataset(out).rows("default", split))


def decoded(cell: dict) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(cell["bytes"])))


def check_export(out: Path, folder: Path, class_name: dict[int, str]) -> list[float]:
    """Everything an export of `out` must hold, read back from the files; returns the IoU of every object of
    MIN_PIXELS or more with its polygon drawn at the image size."""
    data = yaml.safe_load((folder / "data.yaml").read_text())
    assert data["path"] == str(folder.resolve()) and data["train"] == "images/train"
    assert sorted(data["names"].values()) == sorted(set(class_name.values()))
    assert all(".." not in p.relative_to(folder).parts for p in folder.rglob("*"))
    ious, splits = [], sorted({p.name.split("-")[0] for p in (out / "data" / "default").glob("*.arrow")})
    assert sorted(p.name for p in (folder / "images").iterdir()) == splits
    for split in splits:
        rows = split_rows(out, split)
        names = [f"{r['sample_id']:08d}" for r in rows]
        assert sorted(p.name for p in (folder / "images" / split).iterdir()) == [f"{n}.jpg" for n in names]
        assert sorted(p.name for p in (folder / "labels" / split).iterdir()) == [f"{n}.txt" for n in names]
        for row in rows:
            image = (folder / "images" / split / f"{row['sample_id']:08d}.jpg").read_bytes()
            assert image == row["fg_bg"]["bytes"]
            instances = decoded(row["instance_mask"]) if "instance_mask" in row else decoded(row["mask"]) // 255
            objects = row.get("objects") or [{"fg_id": row["fg_id"]}]
            visible = [(k, o) for k, o in enumerate(objects, start=1) if (instances == k).any()]
            lines = (folder / "labels" / split / f"{row['sample_id']:08d}.txt").read_text().splitlines()
            assert len(lines) == len(visible)
            for line, (k, obj) in zip(lines, visible):
                numbers = [float(v) for v in line.split()[1:]]
                assert data["names"][int(line.split()[0])] == class_name[obj["fg_id"]]
                assert len(numbers) >= 6 and len(numbers) % 2 == 0 and 0 <= min(numbers) <= max(numbers) <= 1
                height, width = instances.shape
                xy = [(round(x * width), round(y * height)) for x, y in zip(numbers[::2], numbers[1::2])]
                drawn, truth = filled(xy, instances.shape), instances == k
                if truth.sum() >= MIN_PIXELS:
                    ious.append((drawn & truth).sum() / (drawn | truth).sum())
    return ious


def sources(out: Path) -> dict[int, str]:
    return {r["fg_id"]: r["source"] for r in read_config(out, "foregrounds").to_pylist()}


def test_labels_fill_back_to_the_visible_objects(scenes_reference, tmp_path):
    done = export(scenes_reference, tmp_path / "yolo")
    assert done.returncode == 0, done.stderr[-3000:]
    ious = check_export(scenes_reference, tmp_path / "yolo", sources(scenes_reference))
    assert len(ious) >= 40 and min(ious) >= MIN_IOU, sorted(ious)[:5]
    data = yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())
    assert data["val"] == "images/validation" and data["names"] == sources(scenes_reference)  # class id = fg_id


def test_one_object_rows_are_labelled_from_their_mask(no_depth_reference, tmp_path):
    done = export(no_depth_reference, tmp_path / "yolo")
    assert done.returncode == 0, done.stderr[-3000:]
    ious = check_export(no_depth_reference, tmp_path / "yolo", sources(no_depth_reference))
    assert len(ious) == len(read_config(no_depth_reference, "default")) and min(ious) >= MIN_IOU
    assert yaml.safe_load((tmp_path / "yolo" / "data.yaml").read_text())["val"] == "images/train"  # no validation


def test_not_a_dataset_exits_2(tmp_path):
    done = export(tmp_path / "nothing", tmp_path / "yolo")
    assert done.returncode == 2 and "not an fgbg-depth dataset" in done.stderr
    assert not (tmp_path / "yolo").exists()
