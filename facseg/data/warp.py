"""Crop-resolution scores warped back onto their photos, batched, on the scores' device.

For scoring at the original resolution (FaRL, DML-CSR) and for parsing a user's photo: every photo pixel takes the
bilinear interpolation of the crop's scores at the point the photo -> crop matrix sends it to. Photos of one batch
differ in size: the output is padded to the largest, with a mask of each photo's own pixels. The sampling grid
depends on the matrices and sizes only: a PhotoGrid is made once per batch and warps every member's scores (and
the ceiling's) onto the photos.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from facseg.data.labels import BACKGROUND

# A pixel outside the crop is background with certainty: these logits give it probability 1 - 1e-17 there.
CERTAIN = 20.0


@dataclass
class PhotoGrid:
    """Where each photo pixel lands on the crop (N x H x W x 2, grid_sample's [-1, 1]), the photos' own pixels
    (`valid`, N x H x W bool) and those of them the crop covers (`covered`); H, W: the largest photo's."""

    grid: torch.Tensor
    valid: torch.Tensor
    covered: torch.Tensor
    outside: torch.Tensor | None  # None: every pixel lands on the crop (a letterboxed square photo)

    @classmethod
    def of(cls, matrices: torch.Tensor, sizes: list[tuple[int, int]], size: int, device: torch.device) -> PhotoGrid:
        """`matrices`: N x 2 x 3, photo -> crop pixels; `sizes`: each photo's (height, width); `size`: the crop's
        side. The grid is computed in float64 (float32 on devices without it) and rounded once, so that a photo of
        several megapixels lands on the crop to a small fraction of a pixel."""
        dtype = torch.float32 if torch.device(device).type == "mps" else torch.float64
        height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
        m = matrices.to(device=device, dtype=dtype)[:, :, :, None, None]  # N x 2 x 3 x 1 x 1
        ys = torch.arange(height, dtype=dtype, device=device)[:, None]
        xs = torch.arange(width, dtype=dtype, device=device)[None, :]
        # For every photo pixel centre, its position in the crop, normalised to grid_sample's [-1, 1] (in place:
        # one N x H x W temporary per axis).
        grid = torch.empty(len(sizes), height, width, 2, device=device)
        for axis in (0, 1):
            position = m[:, axis, 0] * xs + m[:, axis, 1] * ys
            grid[..., axis] = position.add_(m[:, axis, 2]).mul_(2).add_(1).div_(size).sub_(1)
        outside = (grid.abs() > 1).any(-1)
        valid = torch.zeros(len(sizes), height, width, dtype=torch.bool, device=device)
        for i, (h, w) in enumerate(sizes):
            valid[i, :h, :w] = True
        return cls(grid, valid, valid & ~outside, outside if outside.any() else None)

    def band(self, top: int, bottom: int) -> PhotoGrid:
        """These rows of the photos."""
        rows = slice(top, bottom)
        outside = self.outside[:, rows] if self.outside is not None else None
        return PhotoGrid(self.grid[:, rows], self.valid[:, rows], self.covered[:, rows], outside)

    def warp(self, scores: torch.Tensor, background: int = BACKGROUND) -> torch.Tensor:
        """N x C x S x S crop scores -> N x C x H x W scores on the photos (outside the crop: background with
        certainty)."""
        out = F.grid_sample(scores.float(), self.grid, mode="bilinear", align_corners=False)
        if self.outside is not None:
            for c in range(out.shape[1]):  # one masked fill per class: no N x H x W x C index
                out[:, c].masked_fill_(self.outside, CERTAIN if c == background else -CERTAIN)
        return out


def warp_to_photos(
    scores: torch.Tensor, matrices: torch.Tensor, sizes: list[tuple[int, int]], background: int = BACKGROUND
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N x C x S x S crop scores -> N x C x H x W scores on the photos, and two N x H x W bool masks: the photos' own
    pixels, and those of them the crop covers (outside it, the scores say background with certainty).
    `matrices`: N x 2 x 3, photo -> crop pixels; `sizes`: each photo's (height, width)."""
    grid = PhotoGrid.of(matrices, sizes, scores.shape[-1], scores.device)
    return grid.warp(scores, background), grid.valid, grid.covered
