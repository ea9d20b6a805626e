import numpy as np

from builder.contract.plan import Placement
from builder.rows.composite import composite, mask_bbox, placed_foreground, placed_mask


def test_hand_checked_blend():
    """bg 100 everywhere; fg colour 200 with alpha 255, 0, 128, 64 placed at (1, 2) at its own size."""
    bg = np.full((6, 6, 3), 100, np.uint8)
    fg = np.zeros((2, 2, 4), np.uint8)
    fg[..., :3] = 200
    fg[..., 3] = [[255, 0], [128, 64]]
    placement = Placement(x=1, y=2, scale=1.0, width=2, height=2)
    placed = placed_foreground(fg, False, placement)
    out = composite(bg, placed, placement)
    # 200*a/255 + 100*(255-a)/255: 200, 100, 150.2 -> 150, 125.1 -> 125
    assert out[2:4, 1:3, 0].tolist() == [[200, 100], [150, 125]]
    assert (out[:2] == 100).all() and (out[:, 3:] == 100).all() and (out[:, :1] == 100).all()
    mask = placed_mask(placed, placement, 6, threshold=128)
    assert mask[2:4, 1:3].tolist() == [[255, 0], [255, 0]]
    assert mask.sum() == 2 * 255
    assert mask_bbox(mask) == [1, 2, 2, 4]


def test_flip_mirrors_the_foreground():
    fg = np.zeros((3, 4, 4), np.uint8)
    fg[:, 0] = [10, 20, 30, 255]
    placement = Placement(0, 0, 1.0, 4, 3)
    plain, flipped = placed_foreground(fg, False, placement), placed_foreground(fg, True, placement)
    assert (plain[:, 0, 3] == 255).all() and (flipped[:, 3, 3] == 255).all() and (flipped[:, 0, 3] == 0).all()


def test_no_dark_fringe_at_soft_edges():
    """A white cut-out with a soft edge over white must stay white: premultiplied resize, no black halo."""
    fg = np.full((40, 40, 4), 255, np.uint8)
    fg[..., 3] = np.tile(np.linspace(0, 255, 40).astype(np.uint8), (40, 1))
    fg[..., :3][fg[..., 3] == 0] = 0  # fully transparent pixels are black, as editors often save them
    bg = np.full((64, 64, 3), 255, np.uint8)
    placement = Placement(5, 5, 0.4, 17, 17)
    out = composite(bg, placed_foreground(fg, False, placement), placement)
    assert out.min() >= 254


def test_bbox_of_empty_and_full_masks():
    assert mask_bbox(np.zeros((5, 5), np.uint8)) == [0, 0, 0, 0]
    assert mask_bbox(np.full((5, 7), 255, np.uint8)) == [0, 0, 7, 5]
