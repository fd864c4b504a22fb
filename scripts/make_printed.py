"""Render the printed-digit supplement (src/digitlab/data/printed/) from Debian's font packages.

    apt-get install fonts-dejavu-core fonts-liberation2 fonts-freefont-ttf fonts-urw-base35 fonts-noto-core
    .venv/bin/python scripts/make_printed.py

Every digit of every face below (regular, bold, italic, condensed...) is drawn large, dark on
white, and turned into a 28x28 MNIST-style image by the app's own preprocessing; exact duplicates
are dropped. The output is committed, so training never depends on the fonts of the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from digitlab.data.idx import idx_bytes
from digitlab.inference.preprocess import image_to_input

OUT = Path(__file__).resolve().parent.parent / "src" / "digitlab" / "data" / "printed"
PACKAGES = {  # family prefix -> (Debian package, licence)
    "DejaVu": ("fonts-dejavu-core", "Bitstream Vera / DejaVu licence (free)"),
    "Liberation": ("fonts-liberation2", "SIL Open Font License 1.1"),
    "Free": ("fonts-freefont-ttf", "GPL-3+ with the font exception"),
    "Nimbus": ("fonts-urw-base35", "AGPL-3 with the font exception"),
    "URW": ("fonts-urw-base35", "AGPL-3 with the font exception"),
    "C059": ("fonts-urw-base35", "AGPL-3 with the font exception"),
    "P052": ("fonts-urw-base35", "AGPL-3 with the font exception"),
    "Z003": ("fonts-urw-base35", "AGPL-3 with the font exception"),
    "Noto": ("fonts-noto-core", "SIL Open Font License 1.1"),
}
NOTO = ("Noto Sans", "Noto Serif", "Noto Sans Mono", "Noto Serif Display")


def faces() -> list[tuple[str, str, str]]:
    listing = subprocess.run(["fc-list", "--format", "%{file}|%{family[0]}|%{style[0]}\n"],
                             capture_output=True, text=True, check=True).stdout
    out = set()
    for line in listing.splitlines():
        file, family, style = line.split("|")
        if not file.endswith((".ttf", ".otf")) or not family.startswith(tuple(PACKAGES)):
            continue
        if family.startswith("Noto") and family not in NOTO or "Math" in family:
            continue
        out.add((family, style, file))
    return sorted(out)


def main() -> int:
    images, labels, seen, rows = [], [], set(), []
    for family, style, file in faces():
        font = ImageFont.truetype(file, 180)
        kept = 0
        for digit in range(10):
            page = Image.new("L", (280, 280), 255)
            ImageDraw.Draw(page).text((140, 140), str(digit), font=font, fill=0, anchor="mm")
            x = (image_to_input(page) * 255 + 0.5).astype(np.uint8)
            key = hashlib.sha256(x.tobytes()).digest()
            if key not in seen:
                seen.add(key)
                images.append(x)
                labels.append(digit)
                kept += 1
        if kept:
            package = next(v for k, v in PACKAGES.items() if family.startswith(k))
            rows.append(f"| {family} | {style} | {package[0]} | {package[1]} | {kept} |")
    if not images:
        print("no fonts found: install the packages named at the top of this script", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    for name, array in (("images-idx3-ubyte", np.stack(images)), ("labels-idx1-ubyte", np.array(labels, np.uint8))):
        with gzip.GzipFile(OUT / f"{name}.gz", "wb", mtime=0) as fh:  # mtime 0: the same bytes every time
            fh.write(idx_bytes(array))
    (OUT / "PROVENANCE.md").write_text(
        "# Printed digits\n\n"
        f"{len(images):,} images of the digits 0-9 printed in {len(rows)} font faces, made by "
        "`scripts/make_printed.py` with the app's own preprocessing (28x28, MNIST-style). Training mixes them into "
        "digit datasets (`--printed`, see README) so printed-style shapes - flagged 1s, hooked 6s and 9s, open 4s - "
        "are not foreign to the model. Rendered glyph images; the fonts themselves are not included.\n\n"
        "| family | style | Debian package | licence | digits kept |\n|---|---|---|---|---|\n" + "\n".join(rows) + "\n")
    print(f"{len(images)} digits from {len(rows)} faces -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
