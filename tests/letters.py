"""A 26-class dataset for the tests: capital letters A-Z drawn as pen strokes (unit box, x right, y
down), written as an IDX folder with classes.txt.

The strokes are drawn with PIL for the training images (each with its own random size, slant,
wobble and pen) and with real mouse movements in the browser test, and both go through the same
MNIST-style preprocessing, so a model trained here reads what the page draws.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np


def _arc(cx, cy, rx, ry, start_deg, end_deg, steps=16):
    return [(cx + rx * math.cos(math.radians(a)), cy + ry * math.sin(math.radians(a)))
            for a in np.linspace(start_deg, end_deg, steps)]


LETTERS: dict[str, list[list[tuple[float, float]]]] = {
    "A": [[(0.1, 1.0), (0.5, 0.0), (0.9, 1.0)], [(0.28, 0.6), (0.72, 0.6)]],
    "B": [[(0.2, 0.0), (0.2, 1.0)], [(0.2, 0.0), (0.62, 0.03), (0.75, 0.14), (0.72, 0.36), (0.58, 0.47), (0.2, 0.5)],
          [(0.2, 0.5), (0.66, 0.53), (0.82, 0.7), (0.78, 0.9), (0.62, 0.98), (0.2, 1.0)]],
    "C": [_arc(0.55, 0.5, 0.4, 0.5, -50, -310)],
    "D": [[(0.2, 0.0), (0.2, 1.0)], [(0.2, 0.0), (0.55, 0.05), (0.8, 0.3), (0.8, 0.7), (0.55, 0.95), (0.2, 1.0)]],
    "E": [[(0.8, 0.0), (0.2, 0.0), (0.2, 1.0), (0.8, 1.0)], [(0.2, 0.5), (0.68, 0.5)]],
    "F": [[(0.8, 0.0), (0.2, 0.0), (0.2, 1.0)], [(0.2, 0.5), (0.68, 0.5)]],
    "G": [_arc(0.52, 0.5, 0.4, 0.5, -50, -340) + [(0.9, 0.6), (0.55, 0.6)]],
    "H": [[(0.2, 0.0), (0.2, 1.0)], [(0.8, 0.0), (0.8, 1.0)], [(0.2, 0.5), (0.8, 0.5)]],
    "I": [[(0.5, 0.0), (0.5, 1.0)], [(0.3, 0.0), (0.7, 0.0)], [(0.3, 1.0), (0.7, 1.0)]],
    "J": [[(0.35, 0.0), (0.75, 0.0)], [(0.65, 0.0), (0.65, 0.75), (0.55, 0.95), (0.4, 1.0), (0.25, 0.92), (0.2, 0.75)]],
    "K": [[(0.2, 0.0), (0.2, 1.0)], [(0.8, 0.0), (0.2, 0.58)], [(0.38, 0.42), (0.82, 1.0)]],
    "L": [[(0.2, 0.0), (0.2, 1.0), (0.8, 1.0)]],
    "M": [[(0.1, 1.0), (0.15, 0.0), (0.5, 0.6), (0.85, 0.0), (0.9, 1.0)]],
    "N": [[(0.2, 1.0), (0.2, 0.0), (0.8, 1.0), (0.8, 0.0)]],
    "O": [_arc(0.5, 0.5, 0.38, 0.5, 0, 360, 24)],
    "P": [[(0.2, 1.0), (0.2, 0.0), (0.62, 0.03), (0.8, 0.18), (0.76, 0.4), (0.6, 0.5), (0.2, 0.52)]],
    "Q": [_arc(0.5, 0.46, 0.38, 0.46, 0, 360, 24), [(0.5, 0.62), (0.95, 1.0)]],
    "R": [[(0.2, 1.0), (0.2, 0.0), (0.62, 0.03), (0.8, 0.18), (0.76, 0.4), (0.6, 0.5), (0.2, 0.52)],
          [(0.45, 0.52), (0.85, 1.0)]],
    "S": [[(0.8, 0.12), (0.6, 0.01), (0.35, 0.02), (0.2, 0.18), (0.28, 0.4), (0.5, 0.5), (0.75, 0.62),
           (0.8, 0.85), (0.62, 0.99), (0.35, 0.99), (0.18, 0.88)]],
    "T": [[(0.1, 0.0), (0.9, 0.0)], [(0.5, 0.0), (0.5, 1.0)]],
    "U": [[(0.2, 0.0), (0.2, 0.7), (0.3, 0.92), (0.5, 1.0), (0.7, 0.92), (0.8, 0.7), (0.8, 0.0)]],
    "V": [[(0.1, 0.0), (0.5, 1.0), (0.9, 0.0)]],
    "W": [[(0.05, 0.0), (0.28, 1.0), (0.5, 0.35), (0.72, 1.0), (0.95, 0.0)]],
    "X": [[(0.15, 0.0), (0.85, 1.0)], [(0.85, 0.0), (0.15, 1.0)]],
    "Y": [[(0.15, 0.0), (0.5, 0.5), (0.85, 0.0)], [(0.5, 0.5), (0.5, 1.0)]],
    "Z": [[(0.15, 0.0), (0.85, 0.0), (0.15, 1.0), (0.85, 1.0)]],
}
NAMES = tuple(LETTERS)  # "A".."Z": label k is NAMES[k]


def place(letter: str, left: float, top: float, height: float, width: float | None = None):
    """The letter's strokes in pixel coordinates: a box `height` tall (0.8 as wide by default) at (left, top)."""
    width = 0.8 * height if width is None else width
    return [[(left + x * width, top + y * height) for x, y in stroke] for stroke in LETTERS[letter]]


def render(letter: str, rng: np.random.Generator | None = None, size: int = 112):
    """A PIL image of the letter, dark ink on light paper; with `rng`, a random size, place, slant,
    wobble and pen (so that no two are alike)."""
    from PIL import Image, ImageDraw

    img = Image.new("L", (size, size), 250)
    draw = ImageDraw.Draw(img)
    if rng is None:
        height, aspect, slant, pen, wobble = 0.7 * size, 0.8, 0.0, size // 14, 0.0
    else:
        height = size * rng.uniform(0.5, 0.8)
        aspect, slant = rng.uniform(0.6, 1.0), rng.uniform(-0.25, 0.25)
        pen, wobble = int(rng.integers(size // 22, size // 10)), 0.03
    left, top = (size - aspect * height) / 2, (size - height) / 2
    for stroke in LETTERS[letter]:
        points = []
        for x, y in stroke:
            if rng is not None:
                x, y = x + rng.normal(0, wobble), y + rng.normal(0, wobble)
            points.append((left + (x + slant * (0.5 - y)) * aspect * height, top + y * height))
        draw.line(points, fill=20, width=pen, joint="curve")
    return img


def write_letters(folder: Path, train_per_class: int = 60, test_per_class: int = 15, seed: int = 0) -> Path:
    """The IDX folder (four files + classes.txt) of randomly drawn letters, preprocessed like MNIST."""
    from digitlab.data import write_idx
    from digitlab.data.datasets import STEMS
    from digitlab.inference.preprocess import image_to_input

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for (images_stem, labels_stem), per_class in zip((STEMS[:2], STEMS[2:]), (train_per_class, test_per_class)):
        labels = np.repeat(np.arange(len(NAMES), dtype=np.uint8), per_class)
        rng.shuffle(labels)
        images = np.stack([np.round(image_to_input(render(NAMES[k], rng)) * 255).astype(np.uint8) for k in labels])
        write_idx(folder / f"{images_stem}.gz", images)
        write_idx(folder / f"{labels_stem}.gz", labels)
    (folder / "classes.txt").write_text("\n".join(NAMES) + "\n")
    return folder
