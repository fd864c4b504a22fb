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
    """A Playwright page plus the helpers the tests share. They observe the page as a user or
    standard tooling would: the DOM, User Timing entries and the WebSocket frames it receives."""

    READY = "document.body.dataset.ready === 'true'"  # data loaded, recognizer started
    CHART_POINTS = "[...document.querySelectorAll('.chart')].reduce((n, c) => n + Number(c.dataset.points || 0), 0)"

    def __init__(self, page, server):
        self.page, self.server = page, server
        self.errors = []
        self.run_frames = 0  # run events received over WebSockets, reloads included
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)
        page.on("websocket", self._watch)

    def _console(self, message):
        # the browser itself logs the 404 of an older server without the TrainConfig route (the page carries on)
        optional = message.location.get("url", "").endswith("/api/train-config") and "404" in message.text
        if message.type == "error" and not optional:
            self.errors.append(message.text)

    def _watch(self, ws):
        if "/api/runs/" in ws.url:
            ws.on("framereceived", lambda _payload: setattr(self, "run_frames", self.run_frames + 1))

    def open(self):
        self.page.goto(self.server.url)
        self.wait(self.READY, 30)
        return self

    def js(self, expr):
        return self.page.evaluate(expr)

    def wait(self, expr, timeout=30.0):
        """Poll a JS expression (polling works under the page's CSP, unlike wait_for_function)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.page.evaluate(expr):
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expr}; status: {self.text('#status')}; errors: {self.errors}")

    def wait_until(self, predicate, timeout=30.0, what="a condition"):
        """Poll a Python predicate; Playwright's events (WebSocket frames) arrive while it waits."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if predicate():
                return
            self.page.wait_for_timeout(50)
        raise AssertionError(f"timed out waiting for {what}; status: {self.text('#status')}; errors: {self.errors}")

    def text(self, selector):
        return self.page.locator(selector).inner_text()

    def chart_points(self) -> int:
        return self.js(self.CHART_POINTS)

    def draw(self, strokes) -> float:
        """Draw `strokes` with the mouse; returns the page's clock (performance.now()) just before the last one."""
        self.page.locator("#pad").scroll_into_view_if_needed()
        box = self.page.locator("#pad").bounding_box()
        inside = all(0 <= x <= box["width"] and 0 <= y <= box["height"] for stroke in strokes for x, y in stroke)
        assert inside, "test drawing leaves the pad: a stroke off the canvas is not drawn"
        last_started = 0.0
        for stroke in strokes:
            last_started = self.js("performance.now()")
            self.page.mouse.move(box["x"] + stroke[0][0], box["y"] + stroke[0][1])
            self.page.mouse.down()
            for x, y in stroke[1:]:
                self.page.mouse.move(box["x"] + x, box["y"] + y, steps=6)
            self.page.mouse.up()
        return last_started

    def wait_result(self, since: float, timeout=20.0) -> float:
        """Wait until a stroke that ended after `since` has its result shown; returns its draw-to-result ms."""
        expr = f"performance.getEntriesByName('draw-to-result').filter((e) => e.startTime > {since})"
        self.wait(f"{expr}.length > 0", timeout)
        return self.js(f"{expr}.pop().duration")


@pytest.fixture
def page(browser, app_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    p = Page(context.new_page(), app_server)
    yield p
    context.close()
