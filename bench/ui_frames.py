"""The page's smoothness in headless Chromium: idle, next to a busy CPU, and while a run streams.

One run measures, on one page, drawing digits on the pad with real mouse movements the whole time:

- `idle`: nothing else runs (the activation view open, as by default);
- `idle_activation_view_off`: the same with the activation view folded (nothing computed for it);
- `cli_busy`: a separate `digitlab train` process keeps the CPU busy; no events reach the page;
- `server_unsubscribed`: the server's worker trains the streaming case's run, the page not
  subscribed (the training-speed baseline);
- `streaming`: the page started that same run from its form (sample, batch 64): events stream,
  charts live (the Runs card folded);
- `history_streaming`: the same run streaming with the Runs card open, the run itself and the two
  before it ticked (their curves overlaid, the training one refreshed every 2 s), in a viewport
  tall enough (1280x2200) to show the Train, Draw, Data and Runs cards at once;
- `reload`: the page reloaded mid-run, so it replays the history and continues live.

The three situations the page must take in its stride are idle, the CPU busy without events
(`cli_busy`, `server_unsubscribed`) and streaming; `targets` compares them: streaming's frame p99
and draw-to-prediction p95 as ratios of idle's, its long tasks, and the reload's longest task.

For each: frame intervals from requestAnimationFrame (p50, p99, max), main-thread long tasks
(PerformanceObserver 'longtask'), the long animation frames' attribution ('long-animation-frame':
which scripts, how much rendering), draw-to-prediction latency (the page's own 'draw-to-result'
User Timing measures) and, on Linux, the CPU time of Chromium's threads per second (/proc: the
renderer's main thread, its workers, the rest). Training speed is each run's median epoch time
from its record. The page has no test hooks; the recorder below is this benchmark's own,
injected before the page's scripts run.

    python bench/ui_frames.py                       # the page in the working tree
    python bench/ui_frames.py --runs 3              # three runs, each on a fresh server and browser
    python bench/ui_frames.py --page-rev HEAD       # the page as committed (served via page.route)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from common import ROOT, percentile, save, server_with_model  # noqa: E402

SECONDS = 15  # per situation: about ten strokes' draw-to-prediction times
REPLAY_WINDOW_MS = 3000  # after the reloaded page's first run event: the replay and the first live events
EPOCHS = 200
BATCH = 64
WEB = "src/digitlab/web"
READY = "document.body.dataset.ready === 'true' && document.querySelector('#recognizer').dataset.mode === 'worker'"
CHART_POINTS = "[...document.querySelectorAll('.chart')].reduce((n, c) => n + Number(c.dataset.points || 0), 0)"
HISTORY_VIEWPORT = {"width": 1280, "height": 2200}
DRAW_MS = "Object.fromEntries([...document.querySelectorAll('.chart')].map((c) => [c.id, Number(c.dataset.drawMs || 0)]))"

# The benchmark's recorder, installed before any page script (add_init_script): long tasks, long
# animation frames with their scripts, rAF intervals between start() and stop(), and the time of
# each message on a run's WebSocket (to find the replay after a reload).
RECORDER = """(() => {
  const rec = { frames: [], longtasks: [], loafs: [], ws: [], recording: false, t0: 0 };
  Object.defineProperty(window, '__bench', { value: rec });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) rec.longtasks.push({ start: e.startTime, duration: e.duration });
  }).observe({ type: 'longtask', buffered: true });
  try {
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (e.duration < 50) continue;
        rec.loafs.push({
          start: e.startTime, duration: e.duration, blocking: e.blockingDuration,
          render: e.renderStart ? e.startTime + e.duration - e.renderStart : 0,
          styleLayout: e.styleAndLayoutStart ? e.startTime + e.duration - e.styleAndLayoutStart : 0,
          scripts: e.scripts.map((s) => ({
            what: `${s.invokerType} ${s.invoker} ${(s.sourceURL || '').split('/').pop()}:${s.sourceFunctionName || ''}`,
            duration: s.duration, layout: s.forcedStyleAndLayoutDuration })),
        });
      }
    }).observe({ type: 'long-animation-frame', buffered: true });
  } catch (err) { rec.noLoaf = String(err); }
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      if (String(args[0]).includes('/api/runs/')) this.addEventListener('message', () => rec.ws.push(performance.now()));
    }
  };
  rec.start = () => {
    rec.frames = []; rec.t0 = performance.now(); rec.recording = true;
    let last = rec.t0;
    const tick = (t) => { if (!rec.recording) return; rec.frames.push(t - last); last = t; requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    return rec.t0;
  };
  rec.stop = () => { rec.recording = false; return performance.now(); };
})()"""


def launch(p):
    return p.chromium.launch(executable_path="/usr/bin/chromium", args=[
        "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-dev-shm-usage"])


def route_page_from(page, rev: str) -> list[str]:
    """Serve the page's own files (not vendor/) as they were at git revision `rev`. Not index.html:
    a document that Playwright fulfils counts as a public one, and Chromium's Local Network Access
    checks then block its WebSocket to 127.0.0.1 (its old text must equal the current one)."""
    names = subprocess.run(["git", "ls-tree", "--name-only", rev, f"{WEB}/"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split()
    served = []
    for path in names:
        name = path.rsplit("/", 1)[1]
        if "." not in name:
            continue  # vendor/
        if name == "index.html":
            if subprocess.run(["git", "diff", "--quiet", rev, "--", path], cwd=ROOT).returncode:
                raise RuntimeError(f"index.html differs from {rev}'s: the old page cannot be served by routing")
            continue
        handler = _fulfil_with(subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True,
                                              capture_output=True).stdout)
        page.route(f"**/static/{name}", handler)
        served.append(name)
    return served


def _fulfil_with(body: bytes):
    def handler(route):  # the server's own response (its headers: CSP, COEP), with the old body
        route.fulfill(response=route.fetch(), body=body)
    return handler


def wait(page, expr: str, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while not page.evaluate(expr):
        if time.time() > deadline:
            raise RuntimeError(f"timed out waiting for {expr}; the page says: {page.inner_text('#status')!r}")
        time.sleep(0.05)


def draw_for(page, seconds: float) -> None:
    """Draw 1, 4, 7, ... with real mouse movements, clearing in between, for `seconds`."""
    from strokes import place
    page.locator("#pad").scroll_into_view_if_needed()
    start, n = time.time(), 0
    while time.time() - start < seconds:
        box = page.locator("#pad").bounding_box()  # again for each digit: a status line that wraps moves it
        for stroke in place((1, 4, 7)[n % 3], 60, 40, 200):
            page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
            page.mouse.down()
            for x, y in stroke[1:]:
                page.mouse.move(box["x"] + x, box["y"] + y, steps=10)
            page.mouse.up()
        time.sleep(0.3)
        page.click("#clear")
        n += 1


def long_frames(loafs: list[dict]) -> dict:
    """What the long animation frames (>= 50 ms) were spent on: scripts by name, and rendering."""
    scripts: dict[str, float] = {}
    for f in loafs:
        for s in f["scripts"]:
            scripts[s["what"]] = scripts.get(s["what"], 0) + s["duration"]
    top = sorted(scripts.items(), key=lambda kv: -kv[1])[:5]
    return {"count": len(loafs), "max_ms": round(max((f["duration"] for f in loafs), default=0), 1),
            "script_ms": round(sum(scripts.values()), 1),
            "render_ms": round(sum(f["render"] for f in loafs), 1),
            "style_layout_ms": round(sum(f["styleLayout"] for f in loafs), 1),
            "top_scripts": [{"what": k, "ms": round(v, 1)} for k, v in top]}


def descendants(root: int) -> set[int]:
    """The processes below `root` (Linux /proc), e.g. the browser this benchmark launched."""
    parents: dict[int, int] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            text = open(stat).read()
        except OSError:
            continue
        parents[int(stat.split("/")[2])] = int(text[text.rindex(")") + 2:].split()[1])
    found, frontier = set(), {root}
    while frontier:
        frontier = {pid for pid, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def chromium_cpu() -> dict[str, float]:
    """CPU seconds so far of the threads of the Chromium this benchmark launched (Linux /proc, its
    processes below this one): the renderer's main thread, its dedicated workers (recognizer,
    charts), and everything else (compositor, raster, GPU and browser processes). Zeros elsewhere."""
    hz = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out = {"renderer_main": 0.0, "workers": 0.0, "other": 0.0}
    for pid in descendants(os.getpid()):
        proc = f"/proc/{pid}"
        try:
            cmd = open(f"{proc}/cmdline", "rb").read().replace(b"\0", b" ").split()
        except OSError:
            continue
        if not cmd or b"chromium" not in cmd[0]:
            continue
        renderer = b"--type=renderer" in cmd and b"--extension-process" not in cmd
        for task in glob.glob(f"{proc}/task/*"):
            try:
                stat = open(f"{task}/stat").read()
            except OSError:
                continue
            name = stat[stat.index("(") + 1:stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2:].split()
            seconds = (int(fields[11]) + int(fields[12])) / hz
            key = ("renderer_main" if renderer and task.rsplit("/", 1)[1] == proc.rsplit("/", 1)[1]
                   else "workers" if renderer and name.startswith("DedicatedWorker") else "other")
            out[key] += seconds
    return out


def measure(page, seconds: float) -> dict:
    """Draw for `seconds` while the recorder runs; the frame, long-task, latency and CPU numbers."""
    cpu0 = chromium_cpu()
    wall0 = time.time()
    t0 = page.evaluate("window.__bench.start()")
    draw_for(page, seconds)
    t1 = page.evaluate("window.__bench.stop()")
    cpu1, wall = chromium_cpu(), time.time() - wall0
    frames = page.evaluate("window.__bench.frames.slice(1)")
    rec = page.evaluate(f"({{ lt: window.__bench.longtasks.filter((e) => e.start >= {t0} && e.start < {t1}),"
                        f" loaf: window.__bench.loafs.filter((e) => e.start >= {t0} && e.start < {t1}) }})")
    latencies = page.evaluate(f"performance.getEntriesByName('draw-to-result').filter((e) => e.startTime >= {t0})"
                              ".map((e) => e.duration)")
    lt = [e["duration"] for e in rec["lt"]]
    return {
        "frames": len(frames),
        "frame_interval_ms": {"p50": round(percentile(frames, 0.5), 2), "p99": round(percentile(frames, 0.99), 2),
                              "max": round(max(frames), 2)},
        "long_tasks": {"count": len(lt), "max_ms": round(max(lt), 1) if lt else 0},
        "long_animation_frames": long_frames(rec["loaf"]),
        "draw_to_prediction_ms": {"strokes": len(latencies), "p50": round(percentile(latencies, 0.5), 2),
                                  "p95": round(percentile(latencies, 0.95), 2)},
        "chromium_cpu_s_per_s": {k: round((cpu1[k] - cpu0[k]) / wall, 3) for k in cpu1},
    }


def targets(r: dict) -> dict:
    """Streaming against idle, as the page promises: frame p99 and draw-to-prediction p95 ratios,
    long tasks; and the reload's longest task."""
    idle, streaming = r["idle"], r["streaming"]
    return {
        "streaming_p99_over_idle": round(streaming["frame_interval_ms"]["p99"] / idle["frame_interval_ms"]["p99"], 3),
        "streaming_long_tasks": streaming["long_tasks"]["count"],
        "draw_p95_streaming_over_idle": round(streaming["draw_to_prediction_ms"]["p95"]
                                              / idle["draw_to_prediction_ms"]["p95"], 3),
        "reload_longest_task_ms": r["reload"]["long_tasks"]["max_ms"],
    }


def speed(record: dict, since: float = 0.0) -> dict:
    """Median epoch time and images/s of the run's epochs that ended after `since` s, the first skipped."""
    epochs = [e for e in record["epochs"] if e["epoch"] > 1 and e["elapsed"] >= since]
    if not epochs:
        return {"epochs": 0}
    return {"epochs": len(epochs), "epoch_s": round(statistics.median(e["epoch_seconds"] for e in epochs), 3),
            "images_per_s": round(statistics.median(e["images_per_s"] for e in epochs))}


def cancel(server, run: str) -> None:
    server.client.post(f"/api/runs/{run}/cancel")
    server.wait_run(run)


def busy_cli(home: Path):
    """A `digitlab train` process of its own (no server, no page), once its first epoch is done."""
    proc = subprocess.Popen([sys.executable, "-m", "digitlab.cli", "train", "--home", str(home), "--dataset", "sample",
                             "--epochs", str(EPOCHS), "--batch-size", str(BATCH), "--name", "busy"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    started = threading.Event()

    def read():
        for line in proc.stderr:
            if line.startswith("epoch"):
                started.set()
    threading.Thread(target=read, daemon=True).start()
    if not started.wait(60):
        proc.kill()
        raise RuntimeError("digitlab train did not start")
    return proc


def main(page_rev: str | None = None, seconds: float = SECONDS, out: str | None = None, runs: int = 1) -> dict:
    """`runs` runs, each on a fresh server and browser; one run's numbers at the top level, or
    every run's under "runs"."""
    each = [one_run(page_rev, seconds) for _ in range(runs)]
    result = each[0] if runs == 1 else {k: each[0][k] for k in ("seconds", "page", "epochs", "batch_size")} | {"runs": each}
    if out:
        Path(out).write_text(json.dumps(result, indent=1))
    else:
        save("ui_frames", result)
    return result


def one_run(page_rev: str | None, seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    result: dict = {"seconds": seconds, "page": f"git {page_rev}" if page_rev else "working tree",
                    "epochs": EPOCHS, "batch_size": BATCH}
    with server_with_model("digitlab-ui-", epochs=3) as server, sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        if page_rev:
            result["served_from_rev"] = route_page_from(page, page_rev)
        page.add_init_script(script=RECORDER)
        page.goto(server.url)
        wait(page, READY)

        result["idle"] = measure(page, seconds)
        page.click("#sees summary")  # the activation view (open by default) folded: nothing computed for it
        result["idle_activation_view_off"] = measure(page, seconds)
        page.click("#sees summary")

        proc = busy_cli(Path(tempfile.mkdtemp(prefix="digitlab-ui-busy-")))
        try:
            result["cli_busy"] = measure(page, seconds)
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()

        run = server.client.post("/api/runs", json={"epochs": EPOCHS, "batch_size": BATCH}).json()["id"]
        server_started = time.time()
        time.sleep(1.0)  # past the first epoch
        result["server_unsubscribed"] = measure(page, seconds)
        offset = time.time() - server_started - seconds
        cancel(server, run)
        base = speed(server.client.get(f"/api/runs/{run}").json(), offset)

        page.fill("#epochs", str(EPOCHS))
        page.fill("#batch-size", str(BATCH))
        page.select_option("#mode", "new")
        page.click("#start")
        # the last run's curves are on the charts already: wait for this run's own
        wait(page, f"document.querySelector('#status').textContent.startsWith('Training') && {CHART_POINTS} > 5")
        run = server.client.get("/api/runs").json()["active"]
        page.evaluate("document.querySelector('#history').open = false")  # as before the Runs card existed
        started = time.time()
        result["streaming"] = measure(page, seconds)
        offset = time.time() - started - seconds
        streaming = speed(server.client.get(f"/api/runs/{run}").json(), offset)
        result["training_speed"] = {"unsubscribed": base, "streaming": streaming,
                                    "ratio": round(streaming["epoch_s"] / base["epoch_s"], 3)
                                    if base.get("epoch_s") and streaming.get("epoch_s") else None}

        # the Runs card open, three runs overlaid (the training one among them), the run still streaming
        page.set_viewport_size(HISTORY_VIEWPORT)
        page.evaluate("document.querySelector('#history').open = true")
        wait(page, "document.querySelectorAll('#runs-table tr[data-run]').length >= 3")
        for box in page.locator("#runs-table input[type=checkbox]").all()[:3]:
            box.check()
        wait(page, "document.querySelectorAll('#compare-legend li').length === 3"
                   " && Number(document.querySelector('#compare-loss').dataset.points) > 0")
        redraws = page.evaluate("Number(document.querySelector('#compare-loss').dataset.redraws)")
        result["history_streaming"] = measure(page, seconds)
        result["history_streaming"].update({
            "viewport": HISTORY_VIEWPORT, "runs_compared": 3,
            "compare_redraws": page.evaluate("Number(document.querySelector('#compare-loss').dataset.redraws)") - redraws,
            "last_draw_ms": page.evaluate(DRAW_MS)})
        page.set_viewport_size({"width": 1280, "height": 1000})

        # reloaded mid-run: the history replays, then live events; no long task may exceed 50 ms
        page.reload()
        wait(page, READY)
        wait(page, "window.__bench.ws.length > 0")
        time.sleep(REPLAY_WINDOW_MS / 1000 + 0.5)
        rec = page.evaluate(f"""(() => {{ const b = window.__bench, t = b.ws[0];
            const inside = (e) => e.start >= t && e.start < t + {REPLAY_WINDOW_MS};
            return {{ events: b.ws.filter((w) => w < t + {REPLAY_WINDOW_MS}).length, burst: b.ws.filter((w) => w < t + 500).length,
                      lt: b.longtasks.filter(inside).map((e) => e.duration), all: b.longtasks.map((e) => e.duration),
                      loaf: b.loafs.filter(inside) }}; }})()""")
        result["reload"] = {
            "events_in_window": rec["events"], "events_first_500ms": rec["burst"],
            "long_tasks": {"count": len(rec["lt"]), "max_ms": round(max(rec["lt"]), 1) if rec["lt"] else 0},
            "long_tasks_whole_load": {"count": len(rec["all"]), "max_ms": round(max(rec["all"]), 1) if rec["all"] else 0},
            "long_animation_frames": long_frames(rec["loaf"]),
            "chart_points": page.evaluate(CHART_POINTS),
        }
        cancel(server, run)
        browser.close()
    result["targets"] = targets(result)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--page-rev", help="serve the page's files from this git revision (e.g. HEAD: 'before')")
    parser.add_argument("--seconds", type=float, default=SECONDS)
    parser.add_argument("--out", help="write the JSON here instead of bench/results/ui_frames.json")
    parser.add_argument("--runs", type=int, default=1, help="runs, each on a fresh server and browser (default 1)")
    args = parser.parse_args()
    print(json.dumps(main(args.page_rev, args.seconds, args.out, args.runs), indent=1))
