"""Phones and tablets: a finger draws on the pad (real touch events) without moving the page, and no
width from 320 to 1920 px makes the page scroll sideways or lets anything stick out."""

import pytest

from strokes import place

# elements wider than the viewport, or left of it, not clipped by a scrolling ancestor (the confusion matrix's)
STICKING_OUT = """(width) => {
  const clipped = (e) => { for (let a = e.parentElement; a; a = a.parentElement) {
    const o = getComputedStyle(a).overflowX; if (o === 'auto' || o === 'scroll' || o === 'hidden') return true; } return false; };
  return [...document.body.querySelectorAll('*')].filter((e) => {
    const r = e.getBoundingClientRect();
    return r.width > 0 && (r.right > width + 0.5 || r.left < -0.5) && !clipped(e) && !e.closest('.skip-link, .visually-hidden');
  }).map((e) => `${e.tagName.toLowerCase()}#${e.id}.${String(e.className).replace(/ /g, '.')} [${Math.round(e.getBoundingClientRect().left)}, ${Math.round(e.getBoundingClientRect().right)}]`);
}"""


@pytest.fixture(scope="module")
def two_runs(app_server):
    runs = []
    for lr in (0.004, 0.001):
        r = app_server.client.post("/api/runs", json={"epochs": 2, "batch_size": 512, "learning_rate": lr}).json()
        app_server.wait_run(r["id"])
        runs.append(r)
    return runs


def phone(browser, server, width=390, height=844):
    from browser.conftest import Page
    context = browser.new_context(viewport={"width": width, "height": height}, device_scale_factor=3,
                                  is_mobile=True, has_touch=True)
    return context, Page(context.new_page(), server)


def touch_path(cdp, points, steps=6):
    """One finger down at the first point, moving through the rest, then up: Input.dispatchTouchEvent."""
    x0, y0 = points[0]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for (ax, ay), (bx, by) in zip(points, points[1:]):
        for k in range(1, steps + 1):
            t = k / steps
            cdp.send("Input.dispatchTouchEvent", {"type": "touchMove",
                                                  "touchPoints": [{"x": ax + t * (bx - ax), "y": ay + t * (by - ay)}]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_a_finger_draws_on_the_pad_and_the_page_stays_put(browser, app_server):
    context, page = phone(browser, app_server)
    try:
        page.open()
        cdp = context.new_cdp_session(page.page)
        page.page.locator("#pad").scroll_into_view_if_needed()
        box = page.page.locator("#pad").bounding_box()
        assert box["width"] > 300  # on a phone the pad takes the card's width
        before = page.js("({ y: scrollY, x: scrollX, scale: visualViewport.scale })")
        since = page.js("performance.now()")
        scale = box["width"] / 280
        for stroke in place(7, 60, 40, 200):
            touch_path(cdp, [(box["x"] + x * scale, box["y"] + y * scale) for x, y in stroke])
        page.wait_result(since)
        assert page.text("#digit") == "7", page.text("#confidence")
        assert page.js("({ y: scrollY, x: scrollX, scale: visualViewport.scale })") == before
        assert page.js("document.querySelector('.prediction').getAttribute('aria-live')") == "polite"
        # the same swipe next to the pad scrolls the page: the check above would see a scroll
        data = page.page.locator("#data").bounding_box()
        x = data["x"] + data["width"] / 2
        touch_path(cdp, [(x, min(780, data["y"] + 400)), (x, min(780, data["y"] + 400) - 300)], steps=12)
        page.wait(f"scrollY !== {before['y']}", 5)
        assert page.errors == []
    finally:
        context.close()


@pytest.mark.parametrize("width", [320, 390, 768, 1366, 1920])
def test_no_horizontal_overflow(browser, app_server, two_runs, width):
    from browser.conftest import Page
    mobile = width < 1000
    context = browser.new_context(viewport={"width": width, "height": 900}, is_mobile=mobile, has_touch=mobile)
    page = Page(context.new_page(), app_server)
    try:
        page.open()
        page.wait("document.querySelectorAll('#runs-table tr[data-run]').length >= 2")
        page.wait("document.querySelectorAll('#confusion td').length === 100", 30)
        for run in two_runs:  # the widest state: two runs compared, every table of numbers open
            page.page.check(f"#runs-table tr[data-run='{run['id']}'] input[type=checkbox]")
        page.wait("Number(document.querySelector('#compare-loss').dataset.points) > 0")
        page.js("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
        page.page.wait_for_timeout(300)  # ResizeObserver -> the charts' new widths
        assert page.js("innerWidth") == width  # a phone widens its layout viewport for content too wide
        assert page.js("document.documentElement.scrollWidth") <= width
        assert page.page.evaluate(STICKING_OUT, width) == []
        for chart in ("#loss-chart", "#compare-acc"):  # the charts follow their container
            inner = page.js(f"document.querySelector('{chart}').clientWidth")
            assert 0 < page.js(f"document.querySelector('{chart} canvas').getBoundingClientRect().width") <= inner
        assert page.errors == []
    finally:
        context.close()
