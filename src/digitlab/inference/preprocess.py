"""Drawing or photo -> an MNIST-style 28x28 input, the way MNIST itself was made.

grayscale (alpha composited onto white) -> invert if the digit is dark on light -> stretch so the
background is 0 and the darkest ink 1 -> crop to the ink's bounding box -> scale (area average) to
fit 20x20 keeping the aspect ratio -> paste into 28x28 so the centre of mass sits at the centre.

web/preprocess.js implements the same steps in the same order with the same arithmetic
(float64, floor(x + 0.5) rounding); a test feeds both the same drawing and compares.
Images longer than MAX_SIDE are first shrunk by an integer factor in Pillow (8-bit, in bands),
so no float array ever holds more than MAX_SIDE x MAX_SIDE pixels; browser canvases are smaller.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

INK = 0.1  # a pixel is ink when it is this far above the background (0..1)
BOX, SIZE = 20, 28
MIN_SIDE = 8  # smaller images hold no recognisable digit
MAX_SIDE = 2000  # longer sides are shrunk (by an integer factor) before any float arithmetic
_BAND_PIXELS = 1 << 20  # pixels shrunk per step: memory stays near the decoded image's own size
_8BIT_MODES = ("L", "LA", "RGB", "RGBA")
_16BIT_GRAY_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # "I": what older Pillow makes of 16-bit PNGs


class PreprocessError(ValueError):
    """The image cannot be turned into a digit (empty, wrong shape, bad values)."""


def to_gray(rgba: np.ndarray) -> np.ndarray:
    """(H, W, 4) uint8 RGBA -> (H, W) float64 in [0, 1], transparent pixels counting as white.
    One channel at a time, in place (two float arrays, not an (H, W, 4) one), same float64 steps as before."""
    gray = rgba[..., 0] / 255.0
    gray *= 0.299
    channel = np.empty_like(gray)
    for c, weight in ((1, 0.587), (2, 0.114)):
        np.divide(rgba[..., c], 255.0, out=channel)
        channel *= weight
        gray += channel
    alpha = np.divide(rgba[..., 3], 255.0, out=channel)
    gray *= alpha
    gray += np.subtract(1.0, alpha, out=alpha)
    return gray


def _resize_rows(img: np.ndarray, dst: int) -> np.ndarray:
    """(src, W) -> (dst, W): row i averages the source rows over [i*s, (i+1)*s), s = src/dst,
    read off a running sum (the integral of the rows) at those two edges: O(src + dst) work."""
    src = img.shape[0]
    scale = src / dst
    edges = np.minimum(np.arange(dst + 1) * scale, src)
    row = np.minimum(np.floor(edges).astype(np.intp), src - 1)
    integral = np.zeros((src + 1, img.shape[1]))
    np.cumsum(img, axis=0, out=integral[1:])
    at = integral[row] + (edges - row)[:, None] * img[row]
    return (at[1:] - at[:-1]) / scale


def resize_area(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Box-filter resample (anti-aliased when shrinking, blocky when enlarging)."""
    img = np.asarray(img, dtype=np.float64)
    return _resize_rows(_resize_rows(img, height).T, width).T


def _round(v: float) -> int:
    return int(np.floor(v + 0.5))


def center_of_mass_crop(gray: np.ndarray) -> np.ndarray:
    """(H, W) grayscale in [0, 1], either polarity -> (28, 28) float32, white digit on black."""
    if gray.ndim != 2 or gray.shape[0] < MIN_SIDE or gray.shape[1] < MIN_SIDE:
        raise PreprocessError(
            f"image must be at least {MIN_SIDE}x{MIN_SIDE} pixels, got {'x'.join(map(str, gray.shape))}"
        )
    if not np.isfinite(gray).all():
        raise PreprocessError("image holds NaN or infinite values")
    border = np.concatenate([gray[0], gray[-1], gray[1:-1, 0], gray[1:-1, -1]])
    inverted = np.median(border) > 0.5  # light paper, dark ink
    if inverted:
        border = 1.0 - border
    background = float(np.median(border))
    peak = 1.0 - float(gray.min()) if inverted else float(gray.max())
    if peak - background < INK:
        raise PreprocessError("nothing drawn: the image has no visible digit")
    ink = (1.0 - gray if inverted else gray) - background  # one full-size array; the rest is in place
    ink /= peak - background
    np.clip(ink, 0.0, 1.0, out=ink)
    marked = ink > INK
    rows = np.flatnonzero(marked.any(axis=1))
    cols = np.flatnonzero(marked.any(axis=0))
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


def reduce_factors(width: int, height: int) -> tuple[int, int]:
    """Integer (x, y) shrink factors that bring the long side to at most MAX_SIDE. Both are equal
    (the digit keeps its shape) unless that would take the short side below MIN_SIDE."""
    factor = -(-max(width, height) // MAX_SIDE)
    return min(factor, max(1, width // MIN_SIDE)), min(factor, max(1, height // MIN_SIDE))


def to_8bit(image: Image.Image) -> Image.Image:
    """Any mode -> L, LA, RGB or RGBA. 16-bit grayscale is scaled (v / 257, rounded) where
    Pillow's convert would clip everything above 255 to white."""
    if image.mode in _8BIT_MODES:
        return image
    if image.mode in _16BIT_GRAY_MODES:
        wide = np.clip(np.asarray(image), 0, 65535).astype(np.uint32)
        return Image.fromarray(((wide + 128) // 257).astype(np.uint8))
    return image.convert("RGBA")


def bounded_image(image: Image.Image) -> Image.Image:
    """An 8-bit image (to_8bit) with its long side at most MAX_SIDE, averaging integer blocks of
    pixels; shrunk band by band so the extra memory is small. Keeps .info (EXIF orientation)."""
    fx, fy = reduce_factors(*image.size)
    if (fx, fy) == (1, 1):
        out = to_8bit(image)
    else:
        width, height = image.size
        step = fy * max(1, _BAND_PIXELS // (width * fy))
        bands = [to_8bit(image.crop((0, top, width, min(height, top + step)))).reduce((fx, fy))
                 for top in range(0, height, step)]
        out = Image.new(bands[0].mode, (-(-width // fx), -(-height // fy)))
        for i, band in enumerate(bands):
            out.paste(band, (0, i * step // fy))
    out.info = dict(image.info)
    return out


def image_to_input(image: Image.Image) -> np.ndarray:
    """A PIL image (any mode, any size) -> (28, 28) float32 model input."""
    return center_of_mass_crop(to_gray(np.asarray(bounded_image(image).convert("RGBA"))))


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
