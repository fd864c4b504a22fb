"""Per-image augmentation: each training image gets its own random affine warp (rotation, scale,
aspect, shear, translation) and, sometimes, a thicker or thinner stroke.

Drawn digits differ from MNIST's in exactly these ways (slant, proportions, position, pen), so
the model learns to read them. The random draws for a whole epoch are made up front from the
run's generator in one call (same seed, same draws, however a batch is split into shards); the
warping itself runs on each shard's own thread, overlapping the other shards' forward/backward
(on the fused CPU path in one C pass with the gather: kernels.augment_gather).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SIZE = 28
# the ranges at full strength (distort = 1), chosen on the drawn-digit benchmark's tune half
ROTATION_DEG = 12.0
SCALE = 1.2  # times or divided by, at most
ASPECT = 1.15  # width / height changes by at most this factor
SHEAR = 0.35
STROKE_SHARE = 1 / 3  # of the images get a thicker stroke, as many a thinner one


@dataclass
class Draws:
    """Random transforms of n images: `theta` (n, 2, 3) sampling matrices, `stroke` (n,) in {-1, 0, 1}."""

    theta: torch.Tensor
    stroke: torch.Tensor

    def part(self, start: int, stop: int, device) -> "Draws":
        return Draws(self.theta[start:stop].to(device), self.stroke[start:stop].to(device))


def draw(n: int, shift: int, distort: float, gen: torch.Generator) -> Draws:
    """Random transforms for `n` images: shifts up to `shift` pixels; `distort` (0..1) scales the
    rest: rotation up to 12 degrees, scale 0.8-1.2 (times an aspect change up to 15%), shear up to
    0.35, and a 1-pixel thicker or thinner stroke for a third of the images each."""
    u = torch.rand(n, 7, generator=gen, dtype=torch.float64) * 2 - 1  # uniform in [-1, 1)
    angle = u[:, 0] * math.radians(ROTATION_DEG) * distort
    scale = torch.exp(u[:, 1] * math.log(SCALE) * distort)
    aspect = torch.exp(u[:, 2] * math.log(ASPECT) * distort)
    shear = u[:, 3] * SHEAR * distort
    # the matrix maps output to input coordinates (affine_grid's convention); the distribution is
    # symmetric, so drawing it directly is the same as drawing the forward transform
    cos, sin = torch.cos(angle), torch.sin(angle)
    zero, one = torch.zeros_like(angle), torch.ones_like(angle)
    rotate = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shear_m = torch.stack([torch.stack([one, shear], 1), torch.stack([zero, one], 1)], 1)
    stretch = torch.diag_embed(torch.stack([scale * aspect, scale / aspect], 1))
    a = rotate @ shear_m @ stretch
    t = torch.stack([u[:, 4], u[:, 5]], 1) * (shift * 2 / SIZE)
    theta = torch.cat([a, t.unsqueeze(2)], 2).float()
    stroke = torch.zeros(n, dtype=torch.int8)
    if distort > 0:
        r = (u[:, 6] + 1) / 2
        stroke[r < distort * STROKE_SHARE] = 1
        stroke[r > 1 - distort * STROKE_SHARE] = -1
    return Draws(theta, stroke)


def apply(x: torch.Tensor, draws: Draws) -> torch.Tensor:
    """Float images (n, 1, 28, 28) in [0, 1] -> the same images warped by `draws`."""
    grid = F.affine_grid(draws.theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    for sign, pick in ((1, torch.maximum), (-1, torch.minimum)):
        which = (draws.stroke == sign).nonzero().flatten()
        if len(which):
            # a half step (the mean with the 3x3 max or min): about one pixel wider or narrower
            some = out.index_select(0, which)
            out.index_copy_(0, which, (some + _filter3(some, pick)) * 0.5)
    return out


def _filter3(x: torch.Tensor, pick) -> torch.Tensor:
    """The 3x3 max (or min) around each pixel, zeros outside, as two 1-D passes of slices."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = pick(pick(p[..., :-2, :], p[..., 1:-1, :]), p[..., 2:, :])
    return pick(pick(rows[..., :-2], rows[..., 1:-1]), rows[..., 2:])
