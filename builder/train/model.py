"""The reference network: a small U-Net from (bg, fg_bg) to (mask logits, relative disparity).

It is a baseline that shows what the data teaches, not a state-of-the-art model. It saves and loads with
huggingface_hub's `PyTorchModelHubMixin` (`save_pretrained` writes model.safetensors + config.json,
`from_pretrained` reads them back, `push_to_hub` publishes them), so no checkpoint format of our own exists.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from huggingface_hub import PyTorchModelHubMixin
from torch import nn

IN_CHANNELS = 6  # bg RGB + fg_bg RGB, each normalised with the dataset's statistics


def _block(channels_in: int, channels_out: int) -> nn.Sequential:
    """Two 3x3 convolutions with GroupNorm (batch-size independent, so 1 and N processes train alike)."""
    groups = min(8, channels_out)
    return nn.Sequential(
        nn.Conv2d(channels_in, channels_out, 3, padding=1, bias=False), nn.GroupNorm(groups, channels_out),
        nn.SiLU(inplace=True),
        nn.Conv2d(channels_out, channels_out, 3, padding=1, bias=False), nn.GroupNorm(groups, channels_out),
        nn.SiLU(inplace=True))


class FgBgNet(nn.Module, PyTorchModelHubMixin, library_name="fgbg-depth",
              tags=["image-segmentation", "depth-estimation"]):
    """U-Net with `levels` downsamplings; channel width doubles per level from `width`. Any input side works:
    the input is padded to a multiple of 2**levels and the outputs are cropped back."""

    def __init__(self, width: int = 16, levels: int = 3):
        super().__init__()
        if width < 1 or levels < 1:
            raise ValueError(f"width={width}, levels={levels}: both must be at least 1")
        widths = [width * 2 ** level for level in range(levels + 1)]
        self.levels = levels
        self.down = nn.ModuleList([_block(IN_CHANNELS, widths[0])]
                                  + [_block(widths[i], widths[i + 1]) for i in range(levels)])
        self.up = nn.ModuleList([nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(levels)])
        self.merge = nn.ModuleList([_block(2 * widths[i], widths[i]) for i in range(levels)])
        self.head = nn.Conv2d(widths[0], 2, 1)  # channel 0: mask logit, channel 1: disparity

    def forward(self, bg: torch.Tensor, fg_bg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """B x 3 x H x W each -> (mask logits, disparity), each B x 1 x H x W."""
        height, width = fg_bg.shape[-2:]
        multiple = 2 ** self.levels
        x = F.pad(torch.cat([bg, fg_bg], dim=1), (0, -width % multiple, 0, -height % multiple))
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        for i in reversed(range(self.levels)):
            x = self.merge[i](torch.cat([self.up[i](x), skips[i]], dim=1))
        out = self.head(x)[..., :height, :width]
        return out[:, :1], out[:, 1:]
