"""A handwriting style the default model misreads: the zero crossed by a backslash (a slashed zero
written from the top left), which the embedded sample lacks and the model reads as an 8.

Each call draws a new hand: random slant, proportions, placement, pen width and a wobble on every
point, so taught drawings and the ones read afterwards are never the same picture. Used by the API
test (drawn with PIL) and the browser test (drawn with the mouse).
"""

from __future__ import annotations

import math
import random

RING = [(0.5 + 0.32 * math.sin(t / 20 * 2 * math.pi), 0.5 - 0.45 * math.cos(t / 20 * 2 * math.pi)) for t in range(21)]
SLASH = [(0.1, 0.05), (0.9, 0.95)]
LABEL = 0


def slashed_zero(rng: random.Random) -> list[list[tuple[float, float]]]:
    """One hand's strokes in a unit box (x right, y down): the ring, then the slash, jittered."""
    angle = math.radians(rng.uniform(-8, 8))
    sx, sy = rng.uniform(0.85, 1.15), rng.uniform(0.9, 1.1)
    out = []
    for stroke in (RING, SLASH):
        points = []
        for x, y in stroke:
            x, y = (x - 0.5) * sx + rng.gauss(0, 0.015), (y - 0.5) * sy + rng.gauss(0, 0.015)
            points.append((0.5 + x * math.cos(angle) - y * math.sin(angle), 0.5 + x * math.sin(angle) + y * math.cos(angle)))
        out.append(points)
    return out


def place(strokes, left: float, top: float, height: float) -> list[list[tuple[float, float]]]:
    """Strokes in pixel coordinates: a box `height` tall (0.7 as wide) at (left, top)."""
    return [[(left + x * 0.7 * height, top + y * height) for x, y in stroke] for stroke in strokes]


def render(rng: random.Random, size: int = 280):
    """A PIL image of a new slashed zero, dark ink on light paper, somewhere on a 280x280 pad."""
    from PIL import Image, ImageDraw

    height = rng.uniform(150, 220)
    left, top = rng.uniform(20, size - 0.8 * height - 20), rng.uniform(15, size - height - 15)
    pen = rng.randint(14, 22)
    img = Image.new("RGB", (size, size), (250, 250, 245))
    draw = ImageDraw.Draw(img)
    for stroke in place(slashed_zero(rng), left, top, height):
        draw.line(stroke, fill=(20, 20, 30), width=pen, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse((x - pen / 2, y - pen / 2, x + pen / 2, y + pen / 2), fill=(20, 20, 30))
    return img


def png(image) -> bytes:
    import io
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
