"""Shared fixtures: real encoded input images, a tiny random Depth Anything, and a generate() runner."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
GENERATE = REPO / "scripts" / "generate.py"


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def soft_disc_rgba(size: tuple[int, int], seed: int) -> Image.Image:
    """A coloured disc with a soft edge on a transparent canvas, off-centre so cropping matters."""
    width, height = size
    yy, xx = np.mgrid[:height, :width]
    radius = min(width, height) * 0.35
    distance = np.hypot(xx - width * 0.55, yy - height * 0.45)
    alpha = np.clip((radius - distance) * 40, 0, 255).astype(np.uint8)
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(np.dstack([colour, alpha]), "RGBA")


def write_inputs(root: Path, n_bg: int = 2, n_fg: int = 2) -> tuple[Path, Path]:
    """Backgrounds in several encodings and sizes; RGBA and palette-with-transparency cut-outs."""
    bg_dir, fg_dir = root / "bg", root / "fg"
    bg_dir.mkdir(parents=True)
    fg_dir.mkdir(parents=True)
    rng = np.random.default_rng(1)
    for i in range(n_bg):
        array = rng.integers(0, 256, (180 + 20 * i, 260, 3), dtype=np.uint8)
        image = Image.fromarray(array, "RGB")
        if i % 2 == 0:
            (bg_dir / f"bg_{i:02d}.jpg").write_bytes(encoded(image, "JPEG", quality=90))
        else:
            (bg_dir / f"bg_{i:02d}.png").write_bytes(encoded(image.convert("L"), "PNG"))
    for i in range(n_fg):
        image = soft_disc_rgba((90 + 10 * i, 70 + 15 * i), seed=i)
        if i % 2 == 1:  # palette PNG whose index 0 is transparent
            quantized = image.convert("RGB").quantize(63)
            pixels = np.asarray(quantized).astype(np.uint8) + 1
            pixels[np.asarray(image)[..., 3] < 128] = 0
            palette = Image.fromarray(pixels, "P")
            palette.putpalette([0, 0, 0] + quantized.getpalette()[: 63 * 3])
            (fg_dir / f"fg_{i:02d}.png").write_bytes(encoded(palette, "PNG", transparency=0))
        else:
            (fg_dir / f"fg_{i:02d}.png").write_bytes(encoded(image, "PNG"))
    return bg_dir, fg_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    from builder.random_model import save_random_depth_model

    return save_random_depth_model(tmp_path_factory.mktemp("model") / "tiny-depth-anything")


@pytest.fixture
def inputs(tmp_path) -> tuple[Path, Path]:
    return write_inputs(tmp_path / "inputs")


def run_generate(args: list, processes: int = 1, check: bool = True, **popen) -> subprocess.CompletedProcess:
    """Run the generator as a user does: plain python for one process, accelerate launch for several."""
    if processes == 1:
        command = [sys.executable, str(GENERATE)]
    else:
        command = [sys.executable, "-m", "accelerate.commands.launch", "--cpu", "--num_processes", str(processes),
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", str(GENERATE)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    result = subprocess.run(command + [str(a) for a in args], capture_output=True, text=True, env=env,
                            timeout=600, **popen)
    if check and result.returncode != 0:
        raise AssertionError(f"generate failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result
