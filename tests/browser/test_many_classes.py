"""A model of 26 classes (the letters of tests/letters.py) in the real page: drawing a letter shows
26 bars named A-Z, and the letter read.

DIGITLAB_SCREENSHOT_DIR=docs/screenshots saves the Draw card as many-classes.png there."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from letters import NAMES, place, write_letters
from server_util import serving

from .conftest import Page


@pytest.fixture(scope="module")
def letters_server(tmp_path_factory):
    from digitlab.job import train_model
    from digitlab.training import TrainConfig

    data = write_letters(tmp_path_factory.mktemp("data") / "letters")
    home = tmp_path_factory.mktemp("home")
    result = train_model(home, str(data), TrainConfig(epochs=6, seed=1), name="letters")
    assert result.record["test_accuracy"] > 0.9
    with serving(home, "--dataset", str(data)) as srv:
        yield srv


def test_drawing_a_letter_shows_26_named_bars(browser, letters_server, tmp_path):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = Page(context.new_page(), letters_server).open()
        page.wait("document.querySelectorAll('#bars .bar').length === 26")  # from the model in use, before drawing
        since = page.draw(place("K", left=75, top=40, height=200))
        page.wait_result(since)
        bars = page.js("[...document.querySelectorAll('#bars .bar')].map((b) => [b.firstChild.textContent, "
                       "b.lastChild.textContent, b.classList.contains('top')])")
        assert [label for label, _, _ in bars] == list(NAMES)
        assert all(value.endswith("%") for _, value, _ in bars)
        top = [label for label, _, is_top in bars if is_top]
        assert top == ["K"] and page.text("#digit") == "K", (bars, page.text("#digit"), page.text("#confidence"))
        assert not page.errors
        folder = Path(os.environ.get("DIGITLAB_SCREENSHOT_DIR") or tmp_path)
        page.page.locator("#draw").screenshot(path=str(folder / "many-classes.png"))
    finally:
        context.close()
