"""Crop-resolution scores warped back onto their photos, batched, on the scores' device.

For scoring at the original resolution (FaRL, DML-CSR) and for parsing a user's photo: every photo pixel takes the
bilinear interpolation of the crop's scores at the point the photo -> crop matrix sends it to. Photos of one batch
differ in size: the output is padded to the largest, with a mask of each photo's own pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from facseg.data.labels import BACKGROUND

# A pixel outside the crop is background with certainty: these logits give it probability 1 - 1e-17 there.
CERTAIN = 20.0


def warp_to_photos(
    scores: torch.Tensor, matrices: torch.Tensor, sizes: list[tuple[int, int]], background: int = BACKGROUND
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """N x C x S x S crop scores -> N x C x H x W scores on the photos, and two N x H x W bool masks: the photos' own
    pixels, and those of them the crop covers (outside it, the scores say background with certainty).

    `matrices`: N x 2 x 3, photo -> crop pixels; `sizes`: each photo's (height, width); H, W: the largest. The
    sampling grid is computed in float64 (float32 on devices without it) and rounded once, so that a photo of
    several megapixels lands on the crop to a small fraction of a pixel.
    """
    n, _, size, _ = scores.shape
    device = scores.device
    dtype = torch.float32 if device.type == "mps" else torch.float64
    height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
    m = matrices.to(device=device, dtype=dtype)[:, :, :, None, None]  # N x 2 x 3 x 1 x 1
    ys = torch.arange(height, dtype=dtype, device=device)[:, None]
    xs = torch.arange(width, dtype=dtype, device=device)[None, :]
    # For every photo pixel centre, its position in the crop, normalised to grid_sample's [-1, 1].
    crop_x = m[:, 0, 0] * xs + m[:, 0, 1] * ys + m[:, 0, 2]
    crop_y = m[:, 1, 0] * xs + m[:, 1, 1] * ys + m[:, 1, 2]
    grid = torch.stack([(2 * crop_x + 1) / size - 1, (2 * crop_y + 1) / size - 1], -1).float()
    out = F.grid_sample(scores.float(), grid, mode="bilinear", align_corners=False)
    certain = torch.full((scores.shape[1],), -CERTAIN, device=device)
    certain[background] = CERTAIN
    outside = (grid.abs() > 1).any(-1)
    out.permute(0, 2, 3, 1)[outside] = certain
    valid = torch.zeros(n, height, width, dtype=torch.bool, device=device)
    for i, (h, w) in enumerate(sizes):
        valid[i, :h, :w] = True
    return out, valid, valid & ~outside
