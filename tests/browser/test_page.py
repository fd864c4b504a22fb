"""The page in a real browser (Debian's Chromium via Playwright): data, training, drawing, faults."""

import os
import signal

import numpy as np
import pytest

from digitlab.inference import center_of_mass_crop, to_gray
from strokes import place


def set_training(page, epochs, batch_size=128):
    page.page.fill("#epochs", str(epochs))
    page.page.fill("#batch-size", str(batch_size))
    page.page.select_option("#mode", "new")


def test_examples_and_dataset_shown(page):
    page.open()
    page.wait("document.querySelectorAll('#examples canvas').length === 24")
    assert "8,000 training and 2,000 test images" in page.text("#data-info")
    assert page.page.locator("#balance .col").count() == 10
    assert page.errors == []


def test_train_two_epochs_charts_fill_and_model_appears(page):
    page.open()
    set_training(page, 2)
    page.page.click("#start")
    page.wait("document.querySelector('#start').disabled && !document.querySelector('#cancel').disabled", 10)
    page.wait("document.querySelector('#status').classList.contains('good')", 90)
    status = page.text("#status")
    assert status.startswith("Finished in") and "test accuracy" in status
    points = page.chart_points()
    assert points >= 2 * 2 * 10  # two charts, batches of two epochs (thinned) and the epoch points
    assert not page.js("document.querySelector('#start').disabled")
    assert page.js("document.querySelector('#cancel').disabled")
    page.wait("document.querySelectorAll('#model-table tr').length >= 3")
    page.wait("document.querySelectorAll('#confusion td').length === 100", 30)
    assert page.errors == []


def test_reload_mid_run_replays_then_cancel(page):
    page.open()
    set_training(page, 40, 64)
    page.page.click("#start")
    page.wait(f"{page.CHART_POINTS} > 40", 60)
    page.page.reload()
    page.wait(page.READY)
    # the history comes back at once and the run continues live
    page.wait(f"{page.CHART_POINTS} > 40", 10)
    before = page.run_frames
    page.wait_until(lambda: page.run_frames > before + 5, 20, "live run events")
    assert page.text("#status").startswith("Training")
    page.page.click("#cancel")
    page.wait("document.querySelector('#status').classList.contains('warn') && /Cancelled/.test(document.querySelector('#status').textContent)", 30)
    assert not page.js("document.querySelector('#start').disabled")
    assert page.errors == []


def use_model(page, name):
    page.page.check(f"input[aria-label='use {name}']")
    page.wait(f"document.querySelector('#recognizer').textContent.includes('with model {name}.')", 20)


@pytest.mark.parametrize("digit, left, top, height", [
    (1, 30, 20, 120), (4, 150, 140, 110), (7, 40, 60, 200), (1, 180, 50, 220), (4, 20, 20, 240), (7, 160, 10, 90),
])
def test_drawn_digits_recognised_in_the_worker(page, digit, left, top, height):
    page.open()
    use_model(page, "base")
    since = page.draw(place(digit, left, top, height))
    page.wait_result(since)
    assert page.text("#digit") == str(digit), page.text("#confidence")
    assert "% confident" in page.text("#confidence")
    assert page.js("document.querySelector('#recognizer').dataset.mode") == "worker"
    page.page.click("#clear")
    page.wait("document.querySelector('#digit').textContent === '?'")


def test_js_and_python_preprocessing_agree(page):
    page.open()
    page.draw(place(4, 150, 30, 150))
    page.draw([[(20, 200), (60, 260)]])  # a stray mark too
    rgba = page.js("Array.from(document.querySelector('#pad').getContext('2d').getImageData(0, 0, 280, 280).data)")
    js_input = page.js("""async () => {
        const m = await import('/static/preprocess.js');
        const px = document.querySelector('#pad').getContext('2d').getImageData(0, 0, 280, 280);
        return Array.from(m.rgbaToInput(px.data, 280, 280));
    }""")
    py_input = center_of_mass_crop(to_gray(np.array(rgba, dtype=np.uint8).reshape(280, 280, 4)))
    assert np.abs(np.array(js_input).reshape(28, 28) - py_input).max() < 1e-5


def test_worker_failure_falls_back_to_server(page):
    page.page.route("**/infer-worker.js", lambda route: route.abort())
    page.open()
    page.wait("document.querySelector('#recognizer').dataset.mode === 'server'", 20)
    assert "Recognising on the server" in page.text("#recognizer")
    since = page.draw(place(7, 60, 40, 200))
    page.wait_result(since)
    assert page.text("#digit") == "7"


def test_killed_worker_shows_failure_and_page_keeps_working(page, app_server):
    page.open()
    set_training(page, 40, 64)
    page.page.click("#start")
    page.wait(f"{page.CHART_POINTS} > 20", 60)
    os.kill(app_server.worker_pid(), signal.SIGKILL)
    page.wait("document.querySelector('#status').classList.contains('bad')", 10)
    assert "Failed: worker process died: SIGKILL" in page.text("#status")
    assert not page.js("document.querySelector('#start').disabled")
    since = page.draw(place(1, 100, 30, 200))
    page.wait_result(since)
    assert page.text("#digit") == "1"
    app_server.wait_worker()


def test_security_headers_and_no_csp_violations(page):
    response = page.page.goto(page.server.url)
    headers = response.headers
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-embedder-policy"] == "require-corp"
    page.wait(page.READY)
    assert page.js("self.crossOriginIsolated") is True
    assert page.js("'__digitlab' in window") is False  # the page exposes no test hooks
    assert not [e for e in page.errors if "Content Security Policy" in e]


def test_random_seed_is_drawn_recorded_and_shown(page):
    """The form offers "random"; the run records the seed it drew; the model's details show it."""
    page.open()
    set_training(page, 1, 512)
    page.page.check("#seed-random")
    assert page.js("document.querySelector('#seed').disabled")
    page.page.click("#start")
    page.wait("document.querySelector('#status').classList.contains('good')", 90)
    runs = page.server.client.get("/api/runs").json()["runs"]
    seed = runs[0]["config"]["seed"]
    assert runs[0]["provenance"]["config"]["seed"] == seed
    page.wait(f"document.querySelector('#details-name').textContent === {runs[0]['model']!r}", 30)
    page.page.click("#model-details summary")
    text = page.text("#provenance")
    assert f"seed\n{seed}" in text.replace("\t", "\n") or f"seed {seed}" in text.replace("\n", " ")
    assert "sha256" in text and "torch" in text
    assert page.errors == []


def test_damaged_model_is_listed_with_its_reason_and_can_be_deleted(page):
    import json
    folder = page.server.home / "models" / "planted"
    folder.mkdir()
    (folder / "model.json").write_text(json.dumps({"name": "planted", "architecture": "blog-cnn",
                                                   "weights": "/etc/passwd", "updated": 9e9}))
    page.open()
    page.wait("document.querySelector('#model-table tr.damaged') !== null", 20)
    assert "damaged" in page.text("#model-table tr.damaged")
    assert page.js("![...document.querySelectorAll('#mode option')].some((o) => o.value === 'planted')")
    assert page.server.client.get("/api/models/planted/model.safetensors").status_code == 409
    page.page.on("dialog", lambda d: d.accept())
    page.page.click("#model-table tr.damaged button")
    page.wait("document.querySelector('#model-table tr.damaged') === null", 20)
    assert not folder.exists()
    assert page.errors == []


def test_form_limits_defaults_and_help_come_from_the_server_config(page):
    fields = [
        {"name": "epochs", "type": "integer", "default": 7, "minimum": 1, "maximum": 50, "help": "passes over the data"},
        {"name": "learning_rate", "type": "number", "default": 0.01, "exclusiveMinimum": 0, "maximum": 0.5,
         "help": "Adam's step size"},
        {"name": "augment", "type": "integer", "default": 2, "minimum": 0, "maximum": 4},  # no input: ignored
    ]
    page.page.route("**/api/train-config", lambda route: route.fulfill(json={"fields": fields}))
    page.open()
    epochs = page.js("(({min, max, value, title}) => ({min, max, value, title}))(document.querySelector('#epochs'))")
    assert epochs == {"min": "1", "max": "50", "value": "7", "title": "passes over the data"}
    assert page.js("document.querySelector('#lr').value") == "0.01"
    assert page.js("document.querySelector('#lr').max") == "0.5"
    page.page.fill("#lr", "0")  # exclusiveMinimum: 0 itself is out
    assert page.js("document.querySelector('#lr').checkValidity()") is False
    page.page.fill("#lr", "0.2")
    assert page.js("document.querySelector('#lr').checkValidity()") is True
    page.page.fill("#epochs", "51")
    assert page.js("document.querySelector('#train-form').checkValidity()") is False
    assert page.js("document.querySelector('#batch-size').value") == "128"  # not in the answer: the HTML's
    assert page.errors == []


def test_form_keeps_its_own_limits_without_the_config_route(page):
    page.page.route("**/api/train-config", lambda route: route.fulfill(status=404, json={"error": "not found"}))
    page.open()
    assert page.js("[...['epochs', 'batch-size', 'lr', 'seed']].map((id) => document.getElementById(id).value)") == \
        ["14", "128", "0.004", "0"]
    assert page.js("document.querySelector('#epochs').max") == "1000"
    assert not page.js("document.querySelector('#status').classList.contains('bad')")  # silently
    assert page.errors == []


def test_run_start_says_how_it_trains(page):
    """run.started names the device, the training path, the threads and the seed in the status line."""
    import json
    started = {"type": "run.started", "run": "r-mock", "model": "mock-model", "epochs": 3, "batches": 10,
               "train_size": 8000, "test_size": 2000, "device": "cpu", "path": "fused-kernels", "threads": 2,
               "provenance": {"config": {"seed": 12345}, "path": "fused-kernels", "device": "cpu"}}
    page.page.route("**/api/runs", lambda route: route.fulfill(json={"runs": [], "active": "r-mock"}))
    page.page.route_web_socket("**/api/runs/r-mock/events", lambda ws: ws.send(json.dumps(started)))
    page.open()
    page.wait("document.querySelector('#status').textContent.startsWith('Training mock-model')", 10)
    assert page.text("#status") == "Training mock-model on cpu (fused kernels, 2 threads), seed 12345: 8,000 images…"
    assert page.js("document.querySelector('#start').disabled")


def test_live_charts_redraw_at_most_ten_times_a_second_and_decimate_long_series(page):
    """A long run streaming fast: each chart holds every point, but redraws at most ~10 times a
    second and draws at most two points (min and max) per pixel column of its plot."""
    import json
    import time
    batches, epochs = 125, 40
    started = {"type": "run.started", "run": "r-long", "model": "long", "epochs": 200, "batches": batches,
               "train_size": 8000, "test_size": 2000, "device": "cpu", "path": "fused-kernels", "threads": 2}
    sockets = []

    def accept(ws):
        sockets.append(ws)
        ws.send(json.dumps(started))
    page.page.route("**/api/runs", lambda route: route.fulfill(json={"runs": [], "active": "r-long"}))
    page.page.route_web_socket("**/api/runs/r-long/events", accept)
    t0 = time.time()
    page.open()
    page.wait_until(lambda: sockets, 10, "the run's WebSocket")
    n = 0
    for epoch in range(1, epochs + 1):  # 5,000 batch points per chart, sent in 40 bursts
        for batch in range(1, batches + 1):
            n += 1
            ws_event = {"type": "batch.end", "epoch": epoch, "batch": batch, "batches": batches, "loss": 2 / n ** 0.5,
                        "accuracy": 1 - 1 / n ** 0.5, "images_per_s": 10000.0, "elapsed": n / 100}
            sockets[0].send(json.dumps(ws_event))
        sockets[0].send(json.dumps({"type": "epoch.end", "epoch": epoch, "epochs": 200, "loss": 0.5, "accuracy": 0.9,
                                    "val_loss": 0.4, "val_accuracy": 0.9, "images_per_s": 10000.0,
                                    "elapsed": n / 100, "epoch_seconds": 1.25}))
        page.page.wait_for_timeout(20)
    held = epochs * batches + epochs
    page.wait(f"document.querySelector('#loss-chart').dataset.length === '{held}'"
              f" && document.querySelector('#acc-chart').dataset.length === '{held}'", 20)
    page.page.wait_for_timeout(300)  # the last throttled redraw
    elapsed = time.time() - t0
    for chart in ("#loss-chart", "#acc-chart"):
        info = page.js(f"""(() => {{ const c = document.querySelector('{chart}');
            return {{ points: Number(c.dataset.points), redraws: Number(c.dataset.redraws),
                      width: c.querySelector('canvas').clientWidth }}; }})()""")
        assert 0 < info["points"] <= 2 * info["width"] + epochs < held, info
        assert info["redraws"] <= 10 * elapsed + 3, (info, elapsed)
    assert page.text("#progress-text").startswith(f"epoch {epochs}/200")
    assert page.errors == []
