"""Regenerate docs/screenshots/*.png: a fresh home, a short training run, a drawn digit, each section.

    .venv/bin/python scripts/screenshots.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
OUT = ROOT / "docs" / "screenshots"


def wait(page, expr, timeout=60):
    deadline = time.time() + timeout
    while not page.evaluate(expr):
        if time.time() > deadline:
            raise TimeoutError(expr)
        time.sleep(0.1)


def main() -> None:
    from playwright.sync_api import sync_playwright

    from server_util import Server
    from strokes import place

    OUT.mkdir(parents=True, exist_ok=True)
    server = Server(Path(tempfile.mkdtemp(prefix="digitlab-shots-")))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
                "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                "--no-first-run"])
            page = browser.new_page(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
            page.goto(server.url)
            wait(page, "document.body.dataset.ready === 'true'")
            page.fill("#epochs", "8")
            page.click("#start")
            wait(page, "document.querySelector('#status').classList.contains('good')", 120)
            wait(page, "document.querySelectorAll('#confusion td').length === 100")
            page.click("#summary-box summary")
            page.locator("#pad").scroll_into_view_if_needed()
            box = page.locator("#pad").bounding_box()
            before = page.evaluate("performance.now()")
            for stroke in place(4, 70, 40, 190):
                page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(box["x"] + x, box["y"] + y, steps=8)
                page.mouse.up()
            try:  # the drawing's result is shown: a 'draw-to-result' measure after the strokes began
                wait(page, f"performance.getEntriesByName('draw-to-result').some((e) => e.startTime > {before})", 10)
            except TimeoutError:
                print(page.inner_text("#confidence"), page.inner_text("#recognizer"))
                raise
            time.sleep(0.5)
            page.screenshot(path=str(OUT / "page.png"), full_page=True)
            for section in ("train", "draw", "data", "models", "evaluation"):
                page.locator(f"#{section}").screenshot(path=str(OUT / f"{section}.png"))
            browser.close()
    finally:
        server.stop()
    print(f"wrote {', '.join(sorted(p.name for p in OUT.glob('*.png')))} in {OUT}")


if __name__ == "__main__":
    main()
