"""A drawn-digit benchmark: digits as pen strokes in many styles, rendered as PNGs and as strokes
the page can replay. Used by `make bench`, the tests and the page replay test; never trained on.

Sources (all generated here, with a fixed seed, nothing downloaded):
- hand-made stroke templates for the ways people write each digit (open and closed 4s, crossed
  and hooked 7s, curled and straight 6s and 9s, 1s with and without a flag and a base, looped 2s,
  flat-topped 3s, one- and two-stroke 5s and 8s, ...);
- the Hershey vector fonts (the `Hershey-Fonts` package, MIT licensed; the glyphs are the public
  domain Hershey data): single-line sans, roman and cursive faces and the multi-line serif,
  italic and script faces, whose doubled lines read as a broad-nib pen.

Each digit is then written the way a person would: a random slant, rotation, width, size and
position on the 280x280 pad, a wobble along every stroke, and a pen from thin to thick. Two
halves come from two independent seeds: "tune" (for choosing recipes) and "held-out" (only
ever reported). `split(name)` gives the same digits on every machine.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

PAD = 280  # the page's drawing pad, in canvas pixels
PAGE_PEN = PAD // 14  # the page's pen width (web/draw.js)
SEEDS = {"tune": 20261129, "held-out": 7_000_003}
PER_DIGIT = 100  # per digit and half: 1,000 digits in each half
FONTS = {  # Hershey face -> the style it stands for
    "futural": "font-sans", "rowmans": "font-roman", "cursive": "font-cursive",
    "timesr": "font-serif", "timesi": "font-italic", "scripts": "font-script",
}
HAND_SHARE = 0.65  # the rest are font glyphs

Stroke = list[tuple[float, float]]


def _arc(cx, cy, rx, ry, start_deg, end_deg, n=14):
    """Points on an ellipse from start to end angle (degrees, 0 = right, 90 = down)."""
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(start_deg, end_deg, n)]


# Control points in a unit box (x right, y down); each template is a list of strokes, smoothed
# with a Catmull-Rom spline before drawing. Keys: digit -> {variant: strokes}.
HAND: dict[int, dict[str, list[Stroke]]] = {
    0: {
        "oval": [_arc(0.5, 0.5, 0.38, 0.48, -100, 265, 18)],
        "round": [_arc(0.5, 0.52, 0.46, 0.44, -80, 290, 18)],
        "pointed": [[(0.55, 0.02), (0.25, 0.2), (0.12, 0.55), (0.3, 0.92), (0.6, 0.97), (0.85, 0.7),
                     (0.86, 0.3), (0.66, 0.05), (0.5, 0.04)]],
    },
    1: {
        "stick": [[(0.52, 0.0), (0.5, 0.5), (0.48, 1.0)]],
        "flag": [[(0.25, 0.25), (0.55, 0.0), (0.55, 0.5), (0.55, 1.0)]],
        "flag-base": [[(0.25, 0.25), (0.55, 0.0), (0.55, 0.5), (0.55, 1.0)], [(0.2, 1.0), (0.55, 1.0), (0.9, 1.0)]],
    },
    2: {
        "plain": [[(0.12, 0.25), (0.3, 0.04), (0.6, 0.0), (0.85, 0.18), (0.8, 0.45), (0.45, 0.75), (0.08, 1.0),
                   (0.5, 0.98), (0.95, 0.98)]],
        "looped": [[(0.12, 0.25), (0.3, 0.04), (0.6, 0.0), (0.85, 0.18), (0.8, 0.45), (0.4, 0.8), (0.15, 0.95),
                    (0.25, 0.82), (0.4, 0.9), (0.6, 0.98), (0.95, 0.95)]],
        "curly": [[(0.1, 0.3), (0.35, 0.02), (0.75, 0.05), (0.85, 0.35), (0.55, 0.7), (0.12, 1.0), (0.4, 0.88),
                   (0.7, 1.0), (0.95, 0.9)]],
    },
    3: {
        "round": [[(0.12, 0.15), (0.4, 0.0), (0.75, 0.05), (0.82, 0.25), (0.65, 0.43), (0.38, 0.48), (0.7, 0.55),
                   (0.88, 0.75), (0.75, 0.95), (0.4, 1.0), (0.1, 0.85)]],
        "flat-top": [[(0.1, 0.02), (0.5, 0.02), (0.88, 0.02), (0.45, 0.4), (0.75, 0.5), (0.9, 0.72), (0.75, 0.95),
                      (0.4, 1.0), (0.1, 0.85)]],
    },
    4: {
        "closed": [[(0.65, 1.0), (0.65, 0.5), (0.65, 0.0), (0.35, 0.35), (0.05, 0.68), (0.5, 0.68), (0.95, 0.68)]],
        "open": [[(0.25, 0.0), (0.15, 0.35), (0.08, 0.62), (0.5, 0.62), (0.95, 0.6)], [(0.72, 0.1), (0.7, 0.55), (0.68, 1.0)]],
        "open-tall": [[(0.15, 0.0), (0.1, 0.55), (0.5, 0.55), (0.9, 0.55)], [(0.7, 0.0), (0.7, 0.5), (0.7, 1.0)]],
    },
    5: {
        "two-strokes": [[(0.3, 0.02), (0.22, 0.45), (0.55, 0.38), (0.85, 0.55), (0.85, 0.82), (0.55, 1.0), (0.12, 0.9)],
                        [(0.3, 0.02), (0.6, 0.02), (0.9, 0.0)]],
        "one-stroke": [[(0.9, 0.02), (0.3, 0.02), (0.24, 0.45), (0.55, 0.38), (0.85, 0.55), (0.85, 0.82), (0.55, 1.0),
                        (0.12, 0.9)]],
    },
    6: {
        "straight": [[(0.72, 0.0), (0.45, 0.2), (0.22, 0.55), (0.2, 0.85), (0.45, 1.0), (0.75, 0.92), (0.82, 0.7),
                      (0.6, 0.52), (0.3, 0.58), (0.2, 0.72)]],
        "curled": [[(0.85, 0.2), (0.65, 0.02), (0.35, 0.08), (0.18, 0.4), (0.18, 0.78), (0.42, 1.0), (0.75, 0.93),
                    (0.82, 0.68), (0.6, 0.5), (0.3, 0.55), (0.2, 0.7)]],
        "stem": [[(0.55, 0.0), (0.3, 0.45), (0.22, 0.75), (0.35, 0.97), (0.65, 0.98), (0.8, 0.78), (0.65, 0.58),
                  (0.38, 0.6), (0.25, 0.75)]],
    },
    7: {
        "plain": [[(0.08, 0.02), (0.5, 0.02), (0.92, 0.02), (0.6, 0.45), (0.38, 1.0)]],
        "crossed": [[(0.08, 0.02), (0.5, 0.02), (0.92, 0.02), (0.62, 0.45), (0.4, 1.0)], [(0.3, 0.52), (0.55, 0.5), (0.8, 0.48)]],
        "hooked": [[(0.05, 0.2), (0.1, 0.02), (0.5, 0.04), (0.92, 0.02), (0.6, 0.5), (0.45, 1.0)]],
    },
    8: {
        "figure": [[(0.8, 0.12), (0.5, 0.0), (0.2, 0.12), (0.25, 0.35), (0.5, 0.47), (0.8, 0.62), (0.82, 0.88),
                    (0.5, 1.0), (0.18, 0.88), (0.2, 0.62), (0.5, 0.47), (0.75, 0.35), (0.8, 0.12)]],
        "two-loops": [_arc(0.5, 0.24, 0.28, 0.23, 90, 450, 14), _arc(0.5, 0.73, 0.36, 0.26, -90, 270, 14)],
    },
    9: {
        "straight": [[(0.78, 0.3), (0.6, 0.45), (0.3, 0.42), (0.2, 0.2), (0.45, 0.0), (0.75, 0.08), (0.78, 0.3),
                      (0.76, 0.65), (0.74, 1.0)]],
        "curved": [[(0.8, 0.25), (0.6, 0.45), (0.28, 0.42), (0.2, 0.18), (0.45, 0.0), (0.78, 0.1), (0.8, 0.35),
                    (0.7, 0.75), (0.4, 1.0), (0.15, 0.9)]],
        "closed": [_arc(0.5, 0.24, 0.3, 0.24, 0, 365, 14) + [(0.78, 0.5), (0.66, 1.0)]],
    },
}


@dataclass
class DrawnDigit:
    label: int
    style: str  # "hand:6-curled", "font-serif", ...
    strokes: list[Stroke]  # in pad pixels (280x280), as the pointer would move
    pen: float  # pen width in pad pixels
    slant: float
    size: float  # the digit's height in pad pixels
    tags: dict = field(default_factory=dict)  # pen/size/slant/position bins, for the per-style report

    def image(self) -> np.ndarray:
        """(280, 280) uint8 grayscale, dark ink on white like the pad, anti-aliased."""
        return render(self.strokes, self.pen)

    def png(self) -> bytes:
        import io

        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(self.image()).save(buf, "PNG")
        return buf.getvalue()


def catmull_rom(points: Stroke, per_segment: int = 8) -> Stroke:
    """A smooth curve through the control points (centripetal-free, uniform Catmull-Rom)."""
    if len(points) < 3:
        (x0, y0), (x1, y1) = points[0], points[-1]
        n = per_segment * 2
        return [(x0 + (x1 - x0) * t / n, y0 + (y1 - y0) * t / n) for t in range(n + 1)]
    p = np.asarray(points, dtype=float)
    p = np.vstack([2 * p[0] - p[1], p, 2 * p[-1] - p[-2]])
    out = []
    for i in range(1, len(p) - 2):
        p0, p1, p2, p3 = p[i - 1], p[i], p[i + 1], p[i + 2]
        for t in np.linspace(0, 1, per_segment, endpoint=False):
            t2, t3 = t * t, t * t * t
            out.append(0.5 * ((2 * p1) + (-p0 + p2) * t + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t2
                              + (-p0 + 3 * p1 - 3 * p2 + p3) * t3))
    out.append(p[-2])
    return [(float(x), float(y)) for x, y in out]


@lru_cache(maxsize=None)
def font_strokes(face: str, digit: int) -> tuple[tuple[tuple[float, float], ...], ...]:
    """The Hershey glyph's strokes, normalised to a unit-height box (y down)."""
    try:
        from HersheyFonts import HersheyFonts
    except ImportError:  # a test/bench dependency (requirements.lock), not the app's
        raise RuntimeError("the drawn-digit benchmark needs the Hershey-Fonts package: pip install Hershey-Fonts") from None
    font = HersheyFonts()
    font.load_default_font(face)
    font.normalize_rendering(1.0)
    strokes = [[(float(x), -float(y)) for x, y in s] for s in font.strokes_for_text(str(digit))]
    strokes = [s for s in strokes if len(s) >= 2]
    pts = np.array([p for s in strokes for p in s])
    lo, hi = pts.min(0), pts.max(0)
    h = hi[1] - lo[1]
    return tuple(tuple(((x - lo[0]) / h, (y - lo[1]) / h) for x, y in s) for s in strokes)


def _wobble(stroke: np.ndarray, rng: np.random.Generator, amount: float) -> np.ndarray:
    """A slow, smooth sideways drift along the stroke, as a hand makes."""
    n = len(stroke)
    if n < 3 or amount <= 0:
        return stroke
    t = np.linspace(0, 1, n)[:, None]
    phase = rng.uniform(0, 2 * math.pi, (1, 2))
    freq = rng.uniform(0.5, 1.6, (1, 2))
    return stroke + amount * np.sin(2 * math.pi * freq * t + phase)


def _bins(pen: float, size: float, slant: float, centre_offset: float) -> dict:
    ratio = pen / size
    return {
        "pen": "thin" if ratio < 0.07 else "thick" if ratio > 0.12 else "medium",
        "size": "small" if size < 120 else "large" if size > 190 else "medium",
        "slant": "left" if slant < -0.12 else "right" if slant > 0.12 else "upright",
        "position": "off-centre" if centre_offset > 45 else "centred",
    }


def make_digit(label: int, rng: np.random.Generator) -> DrawnDigit:
    """One digit in a random style, written with a random hand and pen."""
    if rng.random() < HAND_SHARE:
        variant = rng.choice(sorted(HAND[label]))
        style = f"hand:{label}-{variant}"
        jitter = 0.035
        unit = [np.asarray(catmull_rom([(x + rng.normal(0, jitter), y + rng.normal(0, jitter)) for x, y in s]))
                for s in HAND[label][variant]]
        aspect = rng.uniform(0.55, 0.85)  # width / height of the written box
    else:
        face = rng.choice(sorted(FONTS))
        style = FONTS[face]
        unit = [np.asarray(s, dtype=float) for s in font_strokes(face, label)]
        aspect = rng.uniform(0.85, 1.2)  # the glyphs carry their own proportions
    slant = float(rng.uniform(-0.3, 0.45))
    angle = math.radians(rng.uniform(-10, 10))
    size = float(rng.uniform(75, 235))
    pen = float(np.clip(size * rng.uniform(0.035, 0.15), 4, 34))
    every = np.vstack(unit)
    middle = (every.min(0) + every.max(0)) / 2
    strokes = []
    for s in unit:
        s = _wobble((s - middle) * [aspect, 1.0], rng, 0.012)
        x, y = s[:, 0] - slant * s[:, 1], s[:, 1]  # y down: a positive slant leans the top right
        c, si = math.cos(angle), math.sin(angle)
        strokes.append(np.stack([c * x - si * y, si * x + c * y], 1) * size)
    pts = np.vstack(strokes)
    lo, hi = pts.min(0) - pen, pts.max(0) + pen
    span = hi - lo
    if (span > PAD - 4).any():  # too big for the pad: shrink to fit
        k = float((PAD - 4) / span.max())
        strokes, pen, size = [s * k for s in strokes], pen * k, size * k
        pts = np.vstack(strokes)
        lo, hi = pts.min(0) - pen, pts.max(0) + pen
    free = PAD - (hi - lo)
    origin = rng.uniform(2, np.maximum(free - 2, 2.001)) - lo
    strokes = [[(float(x), float(y)) for x, y in s + origin] for s in strokes]
    centre = (lo + hi) / 2 + origin
    offset = float(np.hypot(*(centre - PAD / 2)))
    return DrawnDigit(int(label), style, strokes, pen, slant, size, _bins(pen, size, slant, offset))


@lru_cache(maxsize=4)
def split(name: str, per_digit: int = PER_DIGIT) -> tuple[DrawnDigit, ...]:
    """The benchmark half `name` ("tune" or "held-out"): `per_digit` digits of each class."""
    if name not in SEEDS:
        raise ValueError(f"unknown split {name!r}; known: {', '.join(SEEDS)}")
    rng = np.random.default_rng(SEEDS[name])
    return tuple(make_digit(label, rng) for _ in range(per_digit) for label in range(10))


def render(strokes: list[Stroke], pen: float, supersample: int = 3) -> np.ndarray:
    """The strokes drawn with a round pen, dark ink on white, anti-aliased by supersampling."""
    from PIL import Image, ImageDraw

    k = supersample
    img = Image.new("L", (PAD * k, PAD * k), 255)
    draw = ImageDraw.Draw(img)
    r = pen * k / 2
    for stroke in strokes:
        pts = [(x * k, y * k) for x, y in stroke]
        if len(pts) > 1:
            draw.line(pts, fill=17, width=max(1, round(pen * k)), joint="curve")
        for x, y in (pts[0], pts[-1]):
            draw.ellipse((x - r, y - r, x + r, y + r), fill=17)
    return np.asarray(img.reduce(k))


def inputs(digits) -> np.ndarray:
    """(N, 28, 28) float32 model inputs, made by the app's own preprocessing from each PNG image."""
    from PIL import Image

    from ..inference.preprocess import image_to_input
    return np.stack([image_to_input(Image.fromarray(d.image())) for d in digits])


def write(folder, name: str = "held-out") -> None:
    """Write a half as PNGs plus strokes.json (for people and other tools)."""
    import json
    from pathlib import Path

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, d in enumerate(split(name)):
        file = f"{i:04d}-{d.label}.png"
        (out / file).write_bytes(d.png())
        rows.append({"file": file, "label": d.label, "style": d.style, "pen": round(d.pen, 2), "tags": d.tags,
                     "strokes": [[[round(x, 1), round(y, 1)] for x, y in s] for s in d.strokes]})
    (out / "strokes.json").write_text(json.dumps(rows))


if __name__ == "__main__":
    import sys
    write(sys.argv[1] if len(sys.argv) > 1 else "drawn", sys.argv[2] if len(sys.argv) > 2 else "held-out")
