"""Downloading full MNIST from the Data card, against a local mirror (DIGITLAB_MIRROR, DIGITLAB_MIRROR_ONLY):
a progress bar that moves, cancel, and a bad checksum or an unreachable mirror told in one line.

The real files' published checksums cannot be met offline, so a whole successful download is proved
through the same routes in tests/test_downloads.py; here every download ends in cancel or an error.
"""

import os
import shutil
import time

import pytest

from mirror_util import Mirror
from server_util import Server

ITEM = "#download-list li[data-dataset=mnist]"


@pytest.fixture(scope="module")
def mirror():
    with Mirror({}) as m:
        yield m


@pytest.fixture(scope="module")
def mirrored_server(tmp_path_factory, trained_home, mirror):
    home = tmp_path_factory.mktemp("dl")
    shutil.copytree(trained_home / "models", home / "models")
    srv = Server(home, env={"DIGITLAB_MIRROR": mirror.url, "DIGITLAB_MIRROR_ONLY": "1"})
    yield srv
    srv.stop()


@pytest.fixture
def page(browser, mirrored_server):
    from browser.conftest import Page
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    p = Page(context.new_page(), mirrored_server)
    yield p
    context.close()


def cache(server):
    folder = server.home / "datasets" / "mnist"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_progress_then_cancel(page, mirror):
    mirror.mode, mirror.rate = "ok", 1 << 20  # 1 MiB/s: the first file takes 4 s
    mirror.files = {"train-images-idx3-ubyte.gz": os.urandom(4 << 20)}
    page.open()
    assert page.text(f"{ITEM} .download-state") == "not downloaded"
    page.page.click(f"{ITEM} button:has-text('Download')")
    page.wait(f"document.querySelector('{ITEM} progress').value > 0.05", 10)
    progress = page.js(f"(() => {{ const b = document.querySelector('{ITEM} progress'); return {{ value: b.value, hidden: b.hidden }}; }})()")
    assert 0 < progress["value"] < 1 and not progress["hidden"]
    text = page.text(f"{ITEM} .download-text")
    assert " of 11.6 MB · train-images-idx3-ubyte.gz (1 of 4)" in text, text
    assert page.text(f"{ITEM} .download-state") == "downloading…"
    t0 = time.time()  # the server keeps answering while it downloads
    assert page.server.client.get("/api/health").status_code == 200 and time.time() - t0 < 1
    page.page.click(f"{ITEM} button:has-text('Cancel')")
    page.wait(f"document.querySelector('{ITEM} .download-state').textContent === 'download cancelled'", 5)
    assert page.js(f"document.querySelector('{ITEM} progress').hidden")
    assert page.text(f"{ITEM} button:visible") == "Try again"
    assert cache(page.server) == []  # no partial file
    assert page.errors == []


def test_a_bad_checksum_is_one_line(page, mirror):
    mirror.mode, mirror.rate = "ok", None
    mirror.files = {"train-images-idx3-ubyte.gz": os.urandom(300_000)}  # not what MNIST's checksum says
    page.open()
    page.page.click(f"{ITEM} button:has-text('Download')")
    page.wait(f"!document.querySelector('{ITEM} .download-error').hidden", 15)
    error = page.text(f"{ITEM} .download-error")
    assert "checksum mismatch" in error and "train-images-idx3-ubyte.gz" in error and "\n" not in error
    assert page.js(f"document.querySelector('{ITEM} .download-error').getAttribute('role')") == "alert"
    assert page.text(f"{ITEM} .download-state") == "download failed"
    assert cache(page.server) == []
    # the Train form still offers mnist as not downloaded
    assert page.js("document.querySelector('#dataset option[value=mnist]').disabled")
    assert page.errors == []


def test_an_unreachable_mirror_is_one_line(browser, tmp_path, trained_home):
    from browser.conftest import Page
    gone = Mirror({})
    gone.close()  # nothing listens at its address any more
    shutil.copytree(trained_home / "models", tmp_path / "home" / "models")
    srv = Server(tmp_path / "home", env={"DIGITLAB_MIRROR": gone.url, "DIGITLAB_MIRROR_ONLY": "1"})
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    try:
        page = Page(context.new_page(), srv)
        page.open()
        page.page.click(f"{ITEM} button:has-text('Download')")
        page.wait(f"!document.querySelector('{ITEM} .download-error').hidden", 15)
        error = page.text(f"{ITEM} .download-error")
        assert "could not download train-images-idx3-ubyte.gz (offline?)" in error and "\n" not in error
        assert page.errors == []
    finally:
        context.close()
        srv.stop()


def test_a_download_under_way_shows_after_a_reload(page, mirror):
    mirror.mode, mirror.rate = "ok", 1 << 20
    mirror.files = {"train-images-idx3-ubyte.gz": os.urandom(4 << 20)}
    page.open()
    page.page.click(f"{ITEM} button:has-text('Download')")
    page.wait(f"document.querySelector('{ITEM} progress').value > 0", 10)
    page.page.reload()
    page.wait(page.READY)
    page.wait(f"document.querySelector('{ITEM} .download-state').textContent === 'downloading…'", 5)
    page.wait(f"document.querySelector('{ITEM} progress').value > 0.05", 10)
    page.page.click(f"{ITEM} button:has-text('Cancel')")
    page.wait(f"document.querySelector('{ITEM} .download-state').textContent === 'download cancelled'", 5)
