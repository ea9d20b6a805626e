"""builder.rows.sources.coco: cut-outs from a COCO instances file built here (polygons, compressed and uncompressed
RLE, a crowd annotation, a tiny one, one touching the border), checked against pycocotools' own decoding; the
categories in every config, the card, stats.json and the COCO export; exact resume checks; every bad input refused
with exit 2, naming the file and the annotation ids, before anything is written."""

from __future__ import annotations

import contextlib
import gc
import importlib.util
import io
import json
from pathlib import Path

import datasets
import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as coco_mask

from builder.rows.sources.coco import compressed_runs
from builder.verify.runner import verify
from tests.conftest import ROOT, read_config, write_tampered_copy
from tests.test_bad_inputs import background, encode, generate_script, refused

spec = importlib.util.spec_from_file_location("export_coco_script", ROOT / "scripts" / "export_coco.py")
export_coco = importlib.util.module_from_spec(spec)
spec.loader.exec_module(export_coco)

FAST = ["--workers", "0", "--no-depth"]
CATEGORIES = [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}, {"id": 7, "name": "bird"}]


def disc(height: int, width: int, cx: int, cy: int, radius: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    return ((xx - cx) ** 2 + (yy - cy) ** 2 < radius ** 2).astype(np.uint8)


def uncompressed(mask: np.ndarray) -> dict:
    """COCO's uncompressed RLE, written out here (column-major runs, starting with 0s)."""
    flat = mask.ravel(order="F")
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], edges, [flat.size]))).tolist()
    return {"size": list(mask.shape), "counts": [0, *counts] if flat[0] else counts}


def compressed(mask: np.ndarray) -> dict:
    rle = coco_mask.encode(np.asfortranarray(mask))
    return {"size": rle["size"], "counts": rle["counts"].decode()}


def annotations() -> list[dict]:
    """Image 1 is 120 x 90, image 2 is 100 x 80. Kept by default: 3, 5, 9 (in that order)."""
    return [
        {"id": 5, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[10, 10, 50, 12, 45, 55, 12, 50]]},
        {"id": 3, "image_id": 1, "category_id": 2, "iscrowd": 0, "segmentation": compressed(disc(90, 120, 80, 40, 22))},
        {"id": 9, "image_id": 2, "category_id": 1, "segmentation": uncompressed(disc(80, 100, 50, 40, 25))},
        {"id": 7, "image_id": 2, "category_id": 1, "iscrowd": 1,
         "segmentation": uncompressed(disc(80, 100, 20, 20, 12))},
        {"id": 2, "image_id": 1, "category_id": 1, "iscrowd": 0, "segmentation": [[60, 60, 66, 60, 66, 66]]},
        {"id": 4, "image_id": 2, "category_id": 2, "iscrowd": 0, "segmentation": [[0, 30, 40, 30, 40, 75, 0, 75]]},
    ]


def write_coco(root: Path, anns: list[dict] | None = None, images: list[dict] | None = None) -> list[str]:
    """The images (a JPEG, a grayscale PNG in a sub-folder), a background and the COCO file; the flags."""
    (root / "images" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "bg").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    (root / "images" / "a.jpg").write_bytes(encode(Image.fromarray(rng.integers(0, 256, (90, 120, 3), np.uint8)),
                                                   "JPEG", quality=90))
    (root / "images" / "sub" / "b.png").write_bytes(encode(Image.fromarray(rng.integers(0, 256, (80, 100),
                                                                                        np.uint8), "L")))
    (root / "bg" / "bg.jpg").write_bytes(encode(background(), "JPEG"))
    (root / "outside.jpg").write_bytes((root / "images" / "a.jpg").read_bytes())  # what `..` would reach
    images = [{**image, "file_name": image["file_name"].format(root=root)} for image in images or []]
    coco = {"images": images or [{"id": 1, "file_name": "a.jpg", "width": 120, "height": 90},
                                 {"id": 2, "file_name": "sub/b.png", "width": 100, "height": 80}],
            "annotations": annotations() if anns is None else anns, "categories": CATEGORIES}
    (root / "instances.json").write_text(json.dumps(coco))
    return ["--fg-coco", str(root / "instances.json"), "--fg-images", str(root / "images"), "--bg-dir",
            str(root / "bg")]


def run(out: Path, args: list[str]) -> tuple[int, str]:
    """scripts/generate.py in this process (as tests/test_bad_inputs.py runs it): exit code, stdout + stderr. The
    folder lock a run holds until its process exits is let go here by collecting its store (a refused run's error
    keeps it in a reference cycle)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = generate_script.main(["--output-dir", str(out), "--resolution", "64", "--placements", "1", *args])
    gc.collect()
    return code, stdout.getvalue() + stderr.getvalue()


def reference_alpha(annotation: dict, height: int, width: int) -> np.ndarray:
    """pycocotools' decoding of the annotation, 0/255, cropped to the box of its pixels."""
    seg = annotation["segmentation"]
    if isinstance(seg, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(seg, height, width))
    elif isinstance(seg["counts"], list):
        rle = coco_mask.frPyObjects(seg, height, width)
    else:
        rle = seg
    mask = coco_mask.decode(rle)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    return mask[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1] * 255, (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1)


def test_compressed_runs_read_as_pycocotools_reads_them():
    rng = np.random.default_rng(3)
    for shape in ((9, 13), (40, 7), (1, 1)):
        for mask in (rng.random(shape) > 0.6, np.ones(shape, bool), np.zeros(shape, bool)):
            rle = compressed(mask.astype(np.uint8))
            runs = compressed_runs(rle["counts"])
            assert sum(runs) == mask.size
            assert runs == uncompressed(mask.astype(np.uint8))["counts"]
    assert compressed_runs("0") == [0] and compressed_runs("`") is None  # a continuation with nothing after it


@pytest.fixture(scope="module")
def coco_out(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("coco_source")
    assert run(root / "out", [*write_coco(root), *FAST, "--objects", "1-2"])[0] == 0
    return root, root / "out"


def test_instances_become_exactly_the_expected_cutouts(coco_out):
    root, out = coco_out
    rows = read_config(out, "foregrounds").to_pylist()
    by_id = {a["id"]: a for a in annotations()}
    assert [(r["fg_id"], r["annotation_id"], r["source"], r["category"], r["category_id"]) for r in rows] == [
        (0, 3, "a.jpg#3", "dog", 2), (1, 5, "a.jpg#5", "cat", 1), (2, 9, "sub/b.png#9", "cat", 1)]
    pixels = {"a.jpg": np.asarray(Image.open(root / "images" / "a.jpg").convert("RGB")),
              "sub/b.png": np.asarray(Image.open(root / "images" / "sub" / "b.png").convert("RGB"))}
    for row in rows:
        file_name = row["source"].rpartition("#")[0]
        image = pixels[file_name]
        alpha, (y0, y1, x0, x1) = reference_alpha(by_id[row["annotation_id"]], *image.shape[:2])
        rgba = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])))
        assert rgba.shape == (*alpha.shape, 4)
        assert np.array_equal(rgba[..., 3], alpha)
        assert np.array_equal(rgba[..., :3], image[y0:y1, x0:x1])
    report = verify(out)
    assert report.ok, "\n".join(report.problems)


def test_categories_reach_rows_objects_card_stats_and_manifest(coco_out):
    _, out = coco_out
    categories = {r["fg_id"]: r["category"] for r in datasets.load_dataset(str(out), "foregrounds", split="train")}
    default = datasets.load_dataset(str(out), "default", split="train")
    assert default.features["category"] == datasets.Value("string")
    for row in default:
        assert row["category"] == categories[row["fg_id"]]
        assert [o["category"] for o in row["objects"]] == [categories[o["fg_id"]] for o in row["objects"]]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["source"]["counts"] == {"annotations": 6, "crowd": 1, "other_categories": 0, "small": 1,
                                         "truncated": 1, "kept": 3}
    assert stats["source"]["filters"] == {"min_area": 1024, "categories": None, "keep_truncated": False}
    rows_per = {name: sum(1 for r in default if r["category"] == name) for name in ("cat", "dog")}
    assert stats["categories"] == {"cat": {"cutouts": 2, "rows": rows_per["cat"]},
                                   "dog": {"cutouts": 1, "rows": rows_per["dog"]}}
    card = (out / "README.md").read_text()
    assert "6 annotations, left out 1 crowd, 0 of other categories, 1 below the minimum area, 1 touching the border; " \
           "3 kept" in card
    assert f"  | cat | 2 | {rows_per['cat']} |" in card and f"  | dog | 1 | {rows_per['dog']} |" in card
    manifest = json.loads((out / "manifest.json").read_text())
    assert [(f["name"], f["annotation_id"], f["category"]) for f in manifest["inputs"]["foregrounds"]] == [
        ("a.jpg#3", 3, "dog"), ("a.jpg#5", 5, "cat"), ("sub/b.png#9", 9, "cat")]


def test_verify_names_a_wrong_category(coco_out, tmp_path):
    _, out = coco_out
    table = read_config(out, "default")
    rows = table.to_pylist()
    two = next(n for n, r in enumerate(rows) if len(r["objects"]) == 2)
    rows[0]["category"] = "bird"
    rows[two]["objects"][1]["category"] = "bird"
    tampered = write_tampered_copy(out, tmp_path / "tampered", rows, table.schema)
    problems = "\n".join(verify(tampered).problems)
    assert f"sample_id {rows[0]['sample_id']}: category 'bird', but cut-out {rows[0]['fg_id']}'s is" in problems
    assert f"sample_id {rows[two]['sample_id']}: object 2: category = 'bird' (expected" in problems, problems


def test_coco_export_carries_the_source_categories(coco_out, tmp_path):
    _, out = coco_out
    assert export_coco.export(str(out), tmp_path / "coco") == 0
    exported = json.loads((tmp_path / "coco" / "annotations" / "instances_train.json").read_text())
    assert exported["categories"] == [{"id": 1, "name": "cat", "supercategory": "object"},
                                      {"id": 2, "name": "dog", "supercategory": "object"}]
    rows = {r["sample_id"]: r for r in read_config(out, "default").to_pylist()}
    ids = {"cat": 1, "dog": 2}
    for annotation in exported["annotations"]:
        row, k = rows[annotation["image_id"]], annotation["id"] % 256
        assert annotation["category_id"] == ids[row["objects"][k - 1]["category"]]


def test_filters_select_the_instances(tmp_path):
    args = write_coco(tmp_path)
    code, err = run(tmp_path / "all", [*args, *FAST, "--fg-keep-truncated", "--fg-min-area", "10",
                                       "--fg-categories", "cat,dog"])
    assert code == 0, err
    rows = read_config(tmp_path / "all", "foregrounds").to_pylist()
    assert [r["annotation_id"] for r in rows] == [2, 3, 4, 5, 9]  # the crowd one is always left out
    code, err = run(tmp_path / "dogs", [*args, *FAST, "--fg-categories", "dog"])
    assert code == 0, err
    stats = json.loads((tmp_path / "dogs" / "stats.json").read_text())
    assert stats["source"]["counts"] == {"annotations": 6, "crowd": 1, "other_categories": 3, "small": 0,
                                         "truncated": 1, "kept": 1}
    assert [r["annotation_id"] for r in read_config(tmp_path / "dogs", "foregrounds").to_pylist()] == [3]


def test_resume_checks_the_coco_file_the_images_and_the_filters(tmp_path):
    args, out = [*write_coco(tmp_path), *FAST], tmp_path / "out"
    assert run(out, args)[0] == 0
    code, output = run(out, args)
    assert code == 0 and "this run wrote 0 rows" in output, output
    code, output = run(out, [*args, "--fg-min-area", "1000"])  # the same cut-outs, other filter settings
    assert code == 2 and "made with different source" in output, output
    coco = json.loads((tmp_path / "instances.json").read_text())
    coco["annotations"][3]["segmentation"] = uncompressed(disc(80, 100, 30, 30, 12))  # the crowd one: not used
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    code, output = run(out, args)
    assert code == 2 and "made with different source" in output, output
    coco["annotations"] = annotations()
    (tmp_path / "instances.json").write_text(json.dumps(coco))
    code, output = run(out, args)
    assert code == 0, output
    image = np.asarray(Image.open(tmp_path / "images" / "sub" / "b.png")).copy()
    image[0, 0] ^= 1  # one pixel outside every kept box
    (tmp_path / "images" / "sub" / "b.png").write_bytes(encode(Image.fromarray(image, "L")))
    code, output = run(out, args)
    assert code == 2 and "made with different inputs" in output, output


# ------------------------------------------------------------------------------------------ refused

def polygon_of_two_points() -> list[dict]:
    anns = annotations()
    anns[0]["segmentation"] = [[1, 1, 30, 30]]
    return anns


def rle_of_another_size() -> list[dict]:
    anns = annotations()
    anns[2]["segmentation"] = uncompressed(disc(40, 50, 20, 20, 10))
    return anns


def broken_compressed_rle() -> list[dict]:
    anns = annotations()
    anns[1]["segmentation"]["counts"] = anns[1]["segmentation"]["counts"][:-3] + "`"
    return anns


def images_with(file_name: str) -> list[dict]:
    return [{"id": 1, "file_name": file_name, "width": 120, "height": 90},
            {"id": 2, "file_name": "sub/b.png", "width": 100, "height": 80}]


@pytest.mark.parametrize("anns,images,expected", [
    (polygon_of_two_points(), None, ["instances.json annotation 5: polygon 1 has 2 point(s)"]),
    (rle_of_another_size(), None, ["instances.json annotation 9: RLE size [40, 50] differs from its image's",
                                   "(image 2, 'sub/b.png')"]),
    (broken_compressed_rle(), None, ["instances.json annotation 3: RLE counts are not a well-formed"]),
    (None, images_with("gone.jpg"), ["instances.json annotations 3, 5: image 1 'gone.jpg' is missing from "
                                     "--fg-images"]),
    (None, images_with("../outside.jpg"), ["annotations 3, 5: image 1 file_name '../outside.jpg' reaches outside "
                                           "--fg-images"]),
    (None, images_with("{root}/outside.jpg"), ["annotations 3, 5: image 1 file_name '/", "outside.jpg' reaches "
                                                                                       "outside --fg-images"]),
    (None, [{"id": 1, "file_name": "a.jpg", "width": 100, "height": 90},
            {"id": 2, "file_name": "sub/b.png", "width": 100, "height": 80}],
     ["annotation 3: RLE size [90, 120] differs from its image's [height, width] [90, 100]",
      "annotation 5: ", "a.jpg is 120x90 (EXIF orientation applied), but its images entry says 100x90"]),
    (polygon_of_two_points()[:1] + rle_of_another_size()[1:], images_with("gone.jpg"),
     ["annotation 5: polygon 1 has 2 point(s)", "annotation 9: RLE size [40, 50]", "annotation 3: image 1 'gone.jpg' "
                                                                                   "is missing"]),
], ids=["polygon-2-points", "rle-size", "rle-malformed", "image-missing", "dot-dot", "absolute", "entry-size",
        "all-at-once"])
def test_bad_annotations_are_refused(tmp_path, capsys, anns, images, expected):
    refused(tmp_path, [*write_coco(tmp_path, anns, images), "--workers", "0"], capsys, *expected)


def test_bad_files_are_refused(tmp_path, capsys):
    args = write_coco(tmp_path)
    (tmp_path / "instances.json").write_text('{"images": [}')
    refused(tmp_path, args, capsys, "instances.json: not valid JSON")
    (tmp_path / "instances.json").write_text('{"images": []}')
    refused(tmp_path, args, capsys, "instances.json: no 'annotations' / 'categories' list")


def test_truncated_images_are_refused_together_before_anything_is_written(tmp_path, capsys):
    """Listing reads only headers; the survey decodes every file once, so a truncated image is found up front."""
    args = write_coco(tmp_path)
    for path in (tmp_path / "images" / "a.jpg", tmp_path / "bg" / "bg.jpg"):
        path.write_bytes(path.read_bytes()[:-200])
    refused(tmp_path, args, capsys, "a.jpg (annotation 3): unreadable or truncated image",
            "bg.jpg (background): unreadable or truncated image")


@pytest.mark.parametrize("flags,expected", [
    (["--fg-categories", "cat,horse,cow"], ["--fg-categories horse,cow: not a category of",
                                            "its categories: bird, cat, dog"]),
    (["--validation-foregrounds", "3"], ["its filters leave 3 cut-outs (6 annotations, left out 1 crowd, 0 of other "
                                         "categories, 1 below the minimum area, 1 touching the border; 3 kept), but "
                                         "--validation-foregrounds 3 needs at least 4"]),
    (["--fg-min-area", "100000"], ["instances.json: no cut-out is left (6 annotations", "5 below the minimum area"]),
    (["--fg-dir", "fgs"], ["one source of cut-outs per run"]),
    (["--fg-mask-dir", "masks"], ["one source of cut-outs per run"]),
], ids=["unknown-category", "too-few-for-validation", "none-left", "with-fg-dir", "with-fg-mask-dir"])
def test_bad_settings_are_refused(tmp_path, capsys, flags, expected):
    refused(tmp_path, [*write_coco(tmp_path), *flags], capsys, *expected)


def test_flags_that_need_each_other(tmp_path, capsys):
    args = write_coco(tmp_path)
    refused(tmp_path, args[:2] + args[4:], capsys, "--fg-coco FILE and --fg-images DIR go together")
    refused(tmp_path, ["--fg-dir", str(tmp_path / "images"), "--bg-dir", str(tmp_path / "bg"), "--fg-min-area", "5",
                       "--fg-keep-truncated"], capsys,
            "--fg-min-area / --fg-keep-truncated filter the instances of --fg-coco")
