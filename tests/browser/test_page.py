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
    points = page.js("window.__digitlab.chartPoints()")
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
    page.wait("window.__digitlab.chartPoints() > 40", 60)
    page.page.reload()
    page.wait("window.__digitlab && window.__digitlab.ready === true")
    # the history comes back at once and the run continues live
    page.wait("window.__digitlab.chartPoints() > 40", 10)
    before = page.js("window.__digitlab.events")
    page.wait(f"window.__digitlab.events > {before + 5}", 20)
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
    page.draw(place(digit, left, top, height))
    page.wait("window.__digitlab.latencies.length >= 1", 20)
    result = page.js("window.__digitlab.lastResult")
    assert result["digit"] == digit, (result, page.text("#confidence"))
    assert page.text("#digit") == str(digit)
    assert "% confident" in page.text("#confidence")
    assert page.js("window.__digitlab.mode") == "worker"
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
    page.wait("window.__digitlab.mode === 'server'", 20)
    assert "Recognising on the server" in page.text("#recognizer")
    page.draw(place(7, 60, 40, 200))
    page.wait("window.__digitlab.results >= 1", 20)
    assert page.js("window.__digitlab.lastResult.digit") == 7


def test_killed_worker_shows_failure_and_page_keeps_working(page, app_server):
    page.open()
    set_training(page, 40, 64)
    page.page.click("#start")
    page.wait("window.__digitlab.chartPoints() > 20", 60)
    os.kill(app_server.worker_pid(), signal.SIGKILL)
    page.wait("document.querySelector('#status').classList.contains('bad')", 10)
    assert "Failed: worker process died: SIGKILL" in page.text("#status")
    assert not page.js("document.querySelector('#start').disabled")
    page.draw(place(1, 100, 30, 200))
    page.wait("window.__digitlab.results >= 1", 20)
    assert page.js("window.__digitlab.lastResult.digit") == 1
    app_server.wait_worker()


def test_security_headers_and_no_csp_violations(page):
    response = page.page.goto(page.server.url)
    headers = response.headers
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cross-origin-embedder-policy"] == "require-corp"
    page.wait("window.__digitlab && window.__digitlab.ready === true")
    assert page.js("self.crossOriginIsolated") is True
    assert not [e for e in page.errors if "Content Security Policy" in e]
