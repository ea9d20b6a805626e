"""The bad-input matrix: each case is either refused with exit code 2, naming the file and the remedy, before
any model loads and with nothing written; or accepted with a documented handling (and a warning where the
user should know), producing data that passes `verify`.

The command line runs in-process (scripts/generate.py's `main`), with real encoded files in tmp_path.
Refused cases pass `--depth-model` pointing at a folder that does not exist: had the model been loaded
first, the error would be about the model.
"""

from __future__ import annotations

import importlib.util
import io
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builder.verify.runner import verify
from tests.conftest import GENERATE, read_config

spec = importlib.util.spec_from_file_location("generate_script", GENERATE)
generate_script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(generate_script)

RESOLUTION = 64


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def background(width: int = 120, height: int = 90, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:height, :width]
    array = np.dstack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 90)]).astype(np.uint8)
    array[rng.integers(0, height, 40), rng.integers(0, width, 40)] = 255
    return Image.fromarray(array, "RGB")


def foreground(size: int = 40, opaque_pixels: int | None = None) -> Image.Image:
    yy, xx = np.mgrid[:size, :size]
    inside = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (size / 2.5) ** 2
    alpha = np.where(inside, 255, 0).astype(np.uint8)
    if opaque_pixels is not None:
        alpha[:] = 0
        alpha[size // 2, size // 2:size // 2 + opaque_pixels] = 255
    colour = np.dstack([np.full((size, size), 200), xx * 6, yy * 6]).astype(np.uint8)
    return Image.fromarray(np.dstack([colour, alpha]), "RGBA")


def inputs(tmp_path: Path, bg: dict[str, bytes] | None = None, fg: dict[str, bytes] | None = None) -> list[str]:
    """A good background and foreground, plus the given files (name -> bytes); returns the folder arguments."""
    bg_dir, fg_dir = tmp_path / "bg", tmp_path / "fg"
    bg_dir.mkdir(exist_ok=True)
    fg_dir.mkdir(exist_ok=True)
    for folder, files in ((bg_dir, {"good_bg.jpg": encode(background(), "JPEG"), **(bg or {})}),
                          (fg_dir, {"good_fg.png": encode(foreground()), **(fg or {})})):
        for name, data in files.items():
            (folder / name).write_bytes(data)
    return ["--bg-dir", str(bg_dir), "--fg-dir", str(fg_dir)]


def generate(tmp_path: Path, args: list[str], capsys) -> tuple[int, str]:
    code = generate_script.main(["--output-dir", str(tmp_path / "out"), "--resolution", str(RESOLUTION),
                                 "--placements", "1", "--shard-size", "16", *args])
    return code, capsys.readouterr().err


def refused(tmp_path: Path, args: list[str], capsys, *expected: str) -> str:
    code, err = generate(tmp_path, [*args, "--depth-model", str(tmp_path / "no-such-model")], capsys)
    assert code == 2, err
    for text in expected:
        assert text in err, err
    assert "could not be loaded" not in err  # refused before the model was even looked at
    assert not (tmp_path / "out").exists()  # nothing written
    return err


def accepted(tmp_path: Path, args: list[str], capsys) -> tuple[Path, str]:
    code, err = generate(tmp_path, [*args, "--no-depth"], capsys)
    assert code == 0, err
    out = tmp_path / "out"
    report = verify(out)
    assert report.ok, "\n".join(report.problems)
    return out, err


def stored_backgrounds(out: Path) -> dict[str, np.ndarray]:
    table = read_config(out, "backgrounds").to_pylist()
    return {row["source"]: np.asarray(Image.open(io.BytesIO(row["image"]["bytes"]))) for row in table}


# ------------------------------------------------------------------------------------------ refused

def test_truncated_png(tmp_path, capsys):
    data = encode(background(200, 150))
    args = inputs(tmp_path, bg={"cut.png": data[: len(data) // 2]})
    refused(tmp_path, args, capsys, "cut.png (background): unreadable or truncated image", "re-export or remove it")


def test_zero_byte_file(tmp_path, capsys):
    args = inputs(tmp_path, fg={"empty.png": b""})
    refused(tmp_path, args, capsys, "empty.png (foreground): unreadable or truncated image", "re-export or remove it")


def test_non_image_with_image_extension(tmp_path, capsys):
    args = inputs(tmp_path, bg={"notes.jpg": b"shopping list: eggs, milk\n" * 20})
    refused(tmp_path, args, capsys, "notes.jpg (background): unreadable or truncated image")


def test_foreground_without_alpha(tmp_path, capsys):
    args = inputs(tmp_path, fg={"flat.png": encode(foreground().convert("RGB"))})
    refused(tmp_path, args, capsys, "flat.png (foreground): has no transparency (mode RGB)",
            "save the cut-out as an RGBA PNG with a transparent background")


def test_foreground_opaque_everywhere(tmp_path, capsys):
    image = foreground()
    image.putalpha(255)
    args = inputs(tmp_path, fg={"opaque.png": encode(image)})
    refused(tmp_path, args, capsys, "opaque.png (foreground): has an alpha channel but no transparent pixel")


def test_foreground_fully_transparent(tmp_path, capsys):
    image = foreground()
    image.putalpha(0)
    args = inputs(tmp_path, fg={"ghost.png": encode(image)})
    refused(tmp_path, args, capsys, "ghost.png (foreground): is fully transparent")


def test_foreground_below_mask_threshold(tmp_path, capsys):
    image = foreground()
    image.putalpha(Image.eval(image.getchannel("A"), lambda a: min(a, 100)))
    args = inputs(tmp_path, fg={"faint.png": encode(image)})
    refused(tmp_path, args, capsys, "faint.png (foreground): has no pixel with alpha >= --mask-threshold 128")


def test_decompression_bomb(tmp_path, capsys):
    bomb = encode(Image.new("1", (10_000, 10_000)))  # 100 Mpx, a few KB on disk
    assert len(bomb) < 100_000
    args = inputs(tmp_path, bg={"bomb.png": bomb})
    refused(tmp_path, args, capsys, "bomb.png (background): too large to decode safely", "downscale it first")


def test_unreadable_directory(tmp_path, capsys, monkeypatch):
    args = inputs(tmp_path)
    locked = tmp_path / "bg"
    locked.chmod(0)
    try:
        if os.access(locked, os.R_OK):
            # root (as in CI containers) reads a mode-000 folder anyway: simulate what a user gets instead.
            import builder.rows.files

            real_scandir = os.scandir

            def scandir(path):
                if Path(path) == locked:
                    raise PermissionError(13, "Permission denied", str(path))
                return real_scandir(path)

            monkeypatch.setattr(builder.rows.files.os, "scandir", scandir)
        refused(tmp_path, args, capsys, f"{locked}: cannot list the background folder (Permission denied)",
                "fix its permissions")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("flags,expected", [
    (["--placements", "0"], "--placements 0: need at least 1 placement per foreground"),
    (["--resolution", "8"], "--resolution 8 is too small: use 32 or more"),
    (["--scale-min", "0.6", "--scale-max", "0.3"], "need 0 < scale-min <= scale-max"),
    (["--scale-min", "1.2", "--scale-max", "1.5"], "cannot fit inside the frame; use at most 1.0"),
], ids=["placements-0", "resolution-8", "scale-min-over-max", "scale-too-large"])
def test_bad_settings(tmp_path, capsys, flags, expected):
    refused(tmp_path, [*inputs(tmp_path), *flags], capsys, expected)


def test_all_problems_at_once(tmp_path, capsys):
    args = inputs(tmp_path, bg={"empty.jpg": b""}, fg={"flat.png": encode(foreground().convert("RGB"))})
    refused(tmp_path, args, capsys, "empty.jpg (background)", "flat.png (foreground)")


# ------------------------------------------------------------------------------------------ accepted

def test_foreground_with_few_opaque_pixels(tmp_path, capsys):
    args = inputs(tmp_path, fg={"speck.png": encode(foreground(opaque_pixels=3))})
    out, err = accepted(tmp_path, args, capsys)
    assert "warning: speck.png: only 3 pixels with alpha >= 128" in err
    speck = [row for row in read_config(out, "default").to_pylist() if row["fg_id"] == 1]
    assert speck and all(row["bbox"][2] > row["bbox"][0] for row in speck)  # upscaled: its masks are not empty


def test_palette_png_with_transparent_index(tmp_path, capsys):
    rgba = np.asarray(foreground())
    palette = Image.fromarray(rgba[..., :3]).quantize(colors=16)
    indices = np.asarray(palette).copy()
    indices[rgba[..., 3] == 0] = 15
    image = Image.fromarray(indices, "P")
    image.putpalette(palette.getpalette())
    data = encode(image, transparency=15)
    assert Image.open(io.BytesIO(data)).mode == "P"
    out, err = accepted(tmp_path, inputs(tmp_path, fg={"palette.png": data}), capsys)
    assert "palette.png" not in err
    stored = read_config(out, "foregrounds").to_pylist()[1]
    alpha = np.asarray(Image.open(io.BytesIO(stored["image"]["bytes"])))[..., 3]
    assert stored["source"] == "palette.png" and set(np.unique(alpha)) == {0, 255}


def test_grayscale_background(tmp_path, capsys):
    data = encode(background().convert("L"), "JPEG")
    out, _ = accepted(tmp_path, inputs(tmp_path, bg={"gray.jpg": data}), capsys)
    gray = stored_backgrounds(out)["gray.jpg"]
    assert gray.shape == (RESOLUTION, RESOLUTION, 3)
    assert np.abs(gray[..., 0].astype(int) - gray[..., 2]).max() <= 3  # grey stays grey (JPEG chroma noise)


def test_cmyk_background(tmp_path, capsys):
    data = encode(background().convert("CMYK"), "JPEG")
    assert Image.open(io.BytesIO(data)).mode == "CMYK"
    out, _ = accepted(tmp_path, inputs(tmp_path, bg={"print.jpg": data}), capsys)
    cmyk, rgb = stored_backgrounds(out)["print.jpg"], stored_backgrounds(out)["good_bg.jpg"]
    assert cmyk.shape == (RESOLUTION, RESOLUTION, 3)
    assert np.abs(cmyk.astype(int) - rgb).mean() < 6  # same picture as its RGB original


def test_16bit_background_is_scaled_not_clipped(tmp_path, capsys):
    ramp = (np.mgrid[:90, :120][1] * (65535 // 119)).astype(np.uint16)
    data = encode(Image.fromarray(ramp))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    out, _ = accepted(tmp_path, inputs(tmp_path, bg={"deep.png": data}), capsys)
    deep = stored_backgrounds(out)["deep.png"]
    assert 100 < deep[:, RESOLUTION // 2].mean() < 156  # mid-grey in the middle, not clipped to white
    assert deep[:, 2].mean() < 40


def test_exif_rotated_background(tmp_path, capsys):
    array = np.zeros((100, 200, 3), dtype=np.uint8)
    array[:, :100] = (220, 30, 30)  # left half red
    array[:, 100:] = (30, 30, 220)  # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the left half becomes the top
    data = encode(Image.fromarray(array), "JPEG", exif=exif.tobytes())
    out, _ = accepted(tmp_path, inputs(tmp_path, bg={"phone.jpg": data}), capsys)
    phone = stored_backgrounds(out)["phone.jpg"].astype(int)
    top, bottom = phone[4, RESOLUTION // 2], phone[-4, RESOLUTION // 2]
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]


def test_background_smaller_than_resolution(tmp_path, capsys):
    args = inputs(tmp_path, bg={"tiny.png": encode(background(20, 16))})
    out, err = accepted(tmp_path, args, capsys)
    assert "warning: tiny.png: 20x16 is smaller than --resolution 64; upscaled" in err
    assert stored_backgrounds(out)["tiny.png"].shape == (RESOLUTION, RESOLUTION, 3)


def test_duplicate_inputs(tmp_path, capsys):
    same = encode(background(seed=3), "JPEG")
    out, err = accepted(tmp_path, inputs(tmp_path, bg={"a.jpg": same, "b.jpg": same}), capsys)
    assert "warning: b.jpg: same content as a.jpg (backgrounds); both are used" in err
    assert read_config(out, "backgrounds").num_rows == 3


def test_non_image_file_name_is_skipped(tmp_path, capsys):
    out, err = accepted(tmp_path, inputs(tmp_path, bg={"notes.txt": b"hello"}), capsys)
    assert "notes.txt: not an image file name, skipped" in err
    assert read_config(out, "backgrounds").num_rows == 1
