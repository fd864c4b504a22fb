"""Held-out drawn digits replayed with the real mouse on the page's pad: what the page answers."""

from __future__ import annotations

import shutil

import pytest

from digitlab.data import drawn
from server_util import serving
from .test_page import use_model

from .conftest import Page

PER_DIGIT = 10  # 100 digits: about a minute in the browser; `make bench` reports all 1,000 (PNG)


@pytest.fixture(scope="module")
def default_server(tmp_path_factory, default_home):
    with serving(tmp_path_factory.mktemp("web-default"), models_from=default_home) as srv:
        yield srv


def thinned(stroke, spacing: float = 8.0):
    """The stroke's points at least `spacing` pad pixels apart (ends kept): the pad joins them
    with straight segments, as it does the pointer events of a real hand."""
    out = [stroke[0]]
    for x, y in stroke[1:-1]:
        if (x - out[-1][0]) ** 2 + (y - out[-1][1]) ** 2 >= spacing ** 2:
            out.append((x, y))
    return out + [stroke[-1]] if len(stroke) > 1 else out


def replay(page: Page, digit: drawn.DrawnDigit) -> float:
    """Move the real mouse along the digit's strokes (in pad pixels; the pad shows at 280 px)."""
    box = page.page.locator("#pad").bounding_box()
    scale = box["width"] / drawn.PAD
    last = 0.0
    for stroke in map(thinned, digit.strokes):
        last = page.js("performance.now()")
        x0, y0 = stroke[0]
        page.page.mouse.move(box["x"] + x0 * scale, box["y"] + y0 * scale)
        page.page.mouse.down()
        for x, y in stroke[1:]:
            page.page.mouse.move(box["x"] + x * scale, box["y"] + y * scale)
        page.page.mouse.up()
    return last


def test_held_out_strokes_drawn_on_the_pad_are_read(browser, default_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = Page(context.new_page(), default_server)
    page.open()
    use_model(page, "default")
    page.page.locator("#pad").scroll_into_view_if_needed()
    chosen = [d for label in range(10) for d in [x for x in drawn.split("held-out") if x.label == label][:PER_DIGIT]]
    wrong = []
    for digit in chosen:
        since = replay(page, digit)
        page.wait_result(since)
        answer = page.text("#digit")
        if answer != str(digit.label):
            wrong.append((digit.label, answer, digit.style, page.text("#confidence")))
        page.page.click("#clear")
        page.wait("document.querySelector('#digit').textContent === '?'")
    accuracy = 1 - len(wrong) / len(chosen)
    print(f"page replay: {accuracy:.1%} of {len(chosen)} held-out drawn digits; wrong: {wrong}")
    assert accuracy >= 0.97, wrong
    assert page.errors == []
    context.close()


def test_page_says_not_sure_with_the_runner_up(browser, tmp_path, default_home):
    """The model's own thresholds decide: here set so high that no answer is sure."""
    from digitlab.models import ModelStore

    home = tmp_path / "home"
    shutil.copytree(default_home, home)
    store = ModelStore(home)
    model, record = store.load("default")
    onnx = store.file_path("default", "onnx").read_bytes()
    record["calibration"] = {**record["calibration"], "min_probability": 1.0, "min_margin": 1.0}
    store.save("default", model, record, onnx=onnx)
    with serving(tmp_path / "web", models_from=home) as server:
        context = browser.new_context(viewport={"width": 1280, "height": 1000})
        page = Page(context.new_page(), server)
        page.open()
        use_model(page, "default")
        seven = next(d for d in drawn.split("held-out") if d.label == 7)
        page.wait_result(replay(page, seven))
        text = page.text("#confidence")
        assert text.startswith("not sure: 7 or "), text
        assert page.js("document.querySelector('#confidence').dataset.sure") == "false"
        context.close()
