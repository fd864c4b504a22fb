"""Drawing or photo -> an MNIST-style 28x28 input, the way MNIST itself was made.

grayscale (alpha composited onto white) -> invert if the digit is dark on light -> stretch so the
background is 0 and the darkest ink 1 -> crop to the ink's bounding box -> scale (area average) to
fit 20x20 keeping the aspect ratio -> paste into 28x28 so the centre of mass sits at the centre.

web/preprocess.js implements the same steps in the same order with the same arithmetic
(float64, floor(x + 0.5) rounding); a test feeds both the same drawing and compares.
"""

from __future__ import annotations

import numpy as np

INK = 0.1  # a pixel is ink when it is this far above the background (0..1)
BOX, SIZE = 20, 28


class PreprocessError(ValueError):
    """The image cannot be turned into a digit (empty, wrong shape, bad values)."""


def to_gray(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W) float64 in [0, 1], transparent pixels counting as white."""
    px = rgba.astype(np.float64) / 255.0
    lum = 0.299 * px[..., 0] + 0.587 * px[..., 1] + 0.114 * px[..., 2]
    a = px[..., 3]
    return a * lum + (1.0 - a)


def _area_weights(src: int, dst: int) -> np.ndarray:
    """(dst, src) matrix: output cell i averages the source interval [i*s, (i+1)*s), s = src/dst."""
    scale = src / dst
    w = np.zeros((dst, src))
    for i in range(dst):
        lo, hi = i * scale, (i + 1) * scale
        j = int(np.floor(lo))
        while j < src and j < hi:
            w[i, j] = min(hi, j + 1) - max(lo, j)
            j += 1
        w[i] /= scale
    return w


def resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Box-filter resample (anti-aliased when shrinking, blocky when enlarging)."""
    return _area_weights(img.shape[0], height) @ img @ _area_weights(img.shape[1], width).T


def _round(v: float) -> int:
    return int(np.floor(v + 0.5))


def center_of_mass_crop(gray: np.ndarray) -> np.ndarray:
    """(H, W) grayscale in [0, 1], either polarity -> (28, 28) float32, white digit on black."""
    if gray.ndim != 2 or gray.shape[0] < 8 or gray.shape[1] < 8:
        raise PreprocessError(f"image must be at least 8x8 pixels, got {'x'.join(map(str, gray.shape))}")
    if not np.isfinite(gray).all():
        raise PreprocessError("image holds NaN or infinite values")
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    if np.median(border) > 0.5:  # light paper, dark ink
        gray = 1.0 - gray
        border = 1.0 - border
    background = float(np.median(border))
    peak = float(gray.max())
    if peak - background < INK:
        raise PreprocessError("nothing drawn: the image has no visible digit")
    ink = np.clip((gray - background) / (peak - background), 0.0, 1.0)
    rows = np.flatnonzero((ink > INK).any(axis=1))
    cols = np.flatnonzero((ink > INK).any(axis=0))
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
    h, w = crop.shape
    if h >= w:
        nh, nw = BOX, max(1, _round(BOX * w / h))
    else:
        nh, nw = max(1, _round(BOX * h / w)), BOX
    small = resize_area(crop, nh, nw)
    total = small.sum()
    cy = (small.sum(axis=1) * np.arange(nh)).sum() / total
    cx = (small.sum(axis=0) * np.arange(nw)).sum() / total
    top = min(max(_round(SIZE / 2 - 0.5 - cy), 0), SIZE - nh)
    left = min(max(_round(SIZE / 2 - 0.5 - cx), 0), SIZE - nw)
    out = np.zeros((SIZE, SIZE))
    out[top:top + nh, left:left + nw] = small
    return out.astype(np.float32)


def image_to_input(image) -> np.ndarray:
    """A PIL image (any mode, any size) -> (28, 28) float32 model input."""
    return center_of_mass_crop(to_gray(np.asarray(image.convert("RGBA"))))


def pixels_to_input(pixels) -> np.ndarray:
    """A 2-D list/array of grayscale values 0..255 (at least 28x28, either polarity) -> model input."""
    try:
        arr = np.asarray(pixels, dtype=np.float64)
    except (TypeError, ValueError):
        raise PreprocessError("pixels must be a rectangular 2-D array of numbers") from None
    if arr.ndim != 2 or arr.shape[0] < 28 or arr.shape[1] < 28:
        raise PreprocessError(f"pixels must be a 2-D array of at least 28x28, got shape {list(arr.shape)}")
    if not np.isfinite(arr).all():
        raise PreprocessError("pixels hold NaN or infinite values")
    if arr.min() < 0 or arr.max() > 255:
        raise PreprocessError("pixel values must lie in 0..255")
    return center_of_mass_crop(arr / 255.0)
