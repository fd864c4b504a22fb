import shutil
import time

import pytest

from server_util import serving

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--no-first-run", "--disable-dev-shm-usage"]


@pytest.fixture(scope="module")
def browser():
    """Module-scoped: Playwright's sync API holds an event loop on this thread while it runs."""
    if not shutil.which(CHROMIUM):
        pytest.fail("Debian's chromium is required for the browser tests: apt-get install chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def app_server(tmp_path_factory, trained_home):
    with serving(tmp_path_factory.mktemp("web"), models_from=trained_home) as srv:
        yield srv


class Page:
    """A Playwright page plus the helpers the tests share (polling works under the page's CSP)."""

    def __init__(self, page, server):
        self.page, self.server = page, server
        self.errors = []
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def open(self):
        self.page.goto(self.server.url)
        self.wait("window.__digitlab && window.__digitlab.ready === true", 30)
        return self

    def js(self, expr):
        return self.page.evaluate(expr)

    def wait(self, expr, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.page.evaluate(expr):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expr}; status: {self.text('#status')}; errors: {self.errors}")

    def text(self, selector):
        return self.page.locator(selector).inner_text()

    def draw(self, strokes):
        self.page.locator("#pad").scroll_into_view_if_needed()
        box = self.page.locator("#pad").bounding_box()
        inside = all(0 <= x <= box["width"] and 0 <= y <= box["height"] for stroke in strokes for x, y in stroke)
        assert inside, "test drawing leaves the pad: a stroke off the canvas is not drawn"
        for stroke in strokes:
            self.page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
            self.page.mouse.down()
            for x, y in stroke[1:]:
                self.page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
            self.page.mouse.up()


@pytest.fixture
def page(browser, app_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    p = Page(context.new_page(), app_server)
    yield p
    context.close()
