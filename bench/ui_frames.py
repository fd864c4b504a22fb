"""The page's smoothness in headless Chromium while a training run streams events.

Measures, over at least 10 s of training: frame intervals from requestAnimationFrame (p50, p99,
max), main-thread long tasks (PerformanceObserver 'longtask'), and draw-to-prediction latency
(stroke end to result shown: the page's 'draw-to-result' User Timing measures) for strokes drawn
with real mouse movements meanwhile. Run events are counted as the WebSocket frames the page
receives. The page is observed only through the DOM and standard APIs; the recorder below is
this benchmark's own.
"""

from __future__ import annotations

import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from common import percentile, save, server_with_model  # noqa: E402

SECONDS = 12
READY = "document.body.dataset.ready === 'true' && document.querySelector('#recognizer').dataset.mode === 'worker'"
CHART_POINTS = "[...document.querySelectorAll('.chart')].reduce((n, c) => n + Number(c.dataset.points || 0), 0)"
RECORDER = """() => {
  window.__frames = []; window.__longtasks = [];
  let last = performance.now();
  const tick = (t) => { window.__frames.push(t - last); last = t; if (!window.__stopFrames) requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
  new PerformanceObserver((list) => { for (const e of list.getEntries()) window.__longtasks.push(e.duration); })
    .observe({ type: 'longtask' });
}"""


def main() -> dict:
    from playwright.sync_api import sync_playwright

    from strokes import place

    with server_with_model("digitlab-ui-", epochs=3) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--no-first-run"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        received = {"events": 0}  # run events: the WebSocket frames the page receives

        def count(_payload):
            received["events"] += 1
        page.on("websocket", lambda ws: "/api/runs/" in ws.url and ws.on("framereceived", count))
        page.goto(server.url)
        deadline = time.time() + 30
        while not page.evaluate(READY):
            if time.time() > deadline:
                raise RuntimeError("page not ready")
            time.sleep(0.1)
        page.fill("#epochs", "200")
        page.fill("#batch-size", "64")
        page.click("#start")
        while page.evaluate(CHART_POINTS) < 5:
            time.sleep(0.05)
        page.evaluate(RECORDER)
        page.locator("#pad").scroll_into_view_if_needed()
        box = page.locator("#pad").bounding_box()
        start = time.time()
        strokes = 0
        digits = [1, 4, 7]
        while time.time() - start < SECONDS:
            for stroke in place(digits[strokes % 3], 60, 40, 200):
                page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(box["x"] + x, box["y"] + y, steps=10)
                page.mouse.up()
            time.sleep(0.3)
            page.click("#clear")
            strokes += 1
        page.evaluate("window.__stopFrames = true")
        frames = page.evaluate("window.__frames.slice(1)")
        longtasks = page.evaluate("window.__longtasks")
        latencies = page.evaluate("performance.getEntriesByName('draw-to-result').map((e) => e.duration)")
        events = received["events"]
        page.click("#cancel")
        browser.close()
    result = {
        "seconds": SECONDS, "training_events_applied": events, "frames": len(frames),
        "frame_interval_ms": {"p50": round(percentile(frames, 0.5), 2), "p99": round(percentile(frames, 0.99), 2),
                              "max": round(max(frames), 2)},
        "long_tasks": {"count": len(longtasks), "max_ms": round(max(longtasks), 1) if longtasks else 0},
        "draw_to_prediction_ms": {"strokes": len(latencies), "p50": round(percentile(latencies, 0.5), 2),
                                  "p95": round(percentile(latencies, 0.95), 2)},
    }
    save("ui_frames", result)
    return result


if __name__ == "__main__":
    print(json.dumps(main(), indent=1))
