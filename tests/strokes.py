"""Hand-like stroke paths for digits, in a unit box (x right, y down), shared by the tests.

The same paths are drawn with PIL for CLI/API tests and with real mouse movements in the
browser tests, so every layer is checked against the same drawings.
"""

from __future__ import annotations

import math

DIGITS: dict[int, list[list[tuple[float, float]]]] = {
    0: [[(0.5 + 0.32 * math.sin(t / 20 * 2 * math.pi), 0.5 - 0.45 * math.cos(t / 20 * 2 * math.pi)) for t in range(21)]],
    1: [[(0.40, 0.15), (0.55, 0.02), (0.55, 0.98)]],
    2: [[(0.2, 0.25), (0.3, 0.08), (0.5, 0.02), (0.7, 0.08), (0.78, 0.25), (0.7, 0.45), (0.2, 0.95), (0.85, 0.95)]],
    3: [[(0.2, 0.1), (0.5, 0.02), (0.75, 0.15), (0.7, 0.38), (0.45, 0.48), (0.75, 0.6), (0.78, 0.85), (0.5, 0.98), (0.2, 0.9)]],
    4: [[(0.65, 0.98), (0.65, 0.02), (0.15, 0.65), (0.9, 0.65)]],
    5: [[(0.8, 0.05), (0.3, 0.05), (0.25, 0.45), (0.55, 0.4), (0.78, 0.6), (0.72, 0.88), (0.45, 0.98), (0.2, 0.88)]],
    6: [[(0.7, 0.05), (0.4, 0.3), (0.25, 0.65), (0.35, 0.92), (0.6, 0.95), (0.75, 0.75), (0.6, 0.55), (0.35, 0.58), (0.25, 0.7)]],
    7: [[(0.15, 0.05), (0.85, 0.05), (0.4, 0.98)]],
    8: [[(0.5, 0.48), (0.28, 0.3), (0.32, 0.08), (0.5, 0.02), (0.68, 0.08), (0.72, 0.3), (0.5, 0.48),
         (0.25, 0.7), (0.3, 0.92), (0.5, 0.98), (0.7, 0.92), (0.75, 0.7), (0.5, 0.48)]],
    9: [[(0.72, 0.3), (0.55, 0.45), (0.3, 0.4), (0.28, 0.15), (0.5, 0.02), (0.72, 0.12), (0.72, 0.3), (0.68, 0.98)]],
}


def place(digit: int, left: float, top: float, height: float) -> list[list[tuple[float, float]]]:
    """The digit's strokes in pixel coordinates: a box `height` tall (0.7 as wide) at (left, top)."""
    width = 0.7 * height
    return [[(left + x * width, top + y * height) for x, y in stroke] for stroke in DIGITS[digit]]


def render(digit: int, size=(280, 280), left=80.0, top=40.0, height=200.0, width=18,
           ink=(20, 20, 30), paper=(250, 250, 245)):
    """A PIL image of the digit drawn with a round pen, dark ink on light paper by default."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", size, paper)
    draw = ImageDraw.Draw(img)
    for stroke in place(digit, left, top, height):
        draw.line(stroke, fill=ink, width=width, joint="curve")
        for x, y in (stroke[0], stroke[-1]):
            draw.ellipse((x - width / 2, y - width / 2, x + width / 2, y + width / 2), fill=ink)
    return img
