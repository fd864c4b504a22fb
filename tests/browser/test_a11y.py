"""Accessibility: axe-core (from the npm lockfile) finds no serious or critical violation with the page
idle, after a run, with the history open and compared, on a phone, and with a failed download; every
control is reachable by keyboard with a visible focus; the prediction is announced."""

from pathlib import Path

import pytest

from mirror_util import Mirror
from server_util import Server

AXE = Path(__file__).resolve().parents[2] / "node_modules" / "axe-core" / "axe.min.js"
FOCUSABLE = ("a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), summary, "
             "[tabindex]:not([tabindex='-1'])")


@pytest.fixture
def axe_page(browser, app_server):
    """A page whose context lets the test inject axe-core (the page's own CSP allows no inline script)."""
    from browser.conftest import Page
    if not AXE.is_file():
        pytest.fail(f"{AXE} is missing: run `npm ci` (axe-core is a devDependency)")
    contexts = []

    def make(**options):
        context = browser.new_context(bypass_csp=True, **{"viewport": {"width": 1280, "height": 1000}, **options})
        contexts.append(context)
        return Page(context.new_page(), app_server)
    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def two_runs(app_server):
    """At least two finished runs in the history (trained through the API if the module has none yet)."""
    while app_server.client.get("/api/runs").json()["total"] < 2:
        run = app_server.client.post("/api/runs", json={"epochs": 2, "batch_size": 512}).json()["id"]
        app_server.wait_run(run)


def serious(page, state: str) -> list:
    """axe-core's serious and critical violations on the page as it is now (the whole document)."""
    if not page.js("typeof window.axe === 'object'"):
        page.page.add_script_tag(path=str(AXE))
    results = page.page.evaluate("async () => (await axe.run(document, { resultTypes: ['violations'] })).violations"
                                 ".map((v) => ({ id: v.id, impact: v.impact, help: v.help,"
                                 " nodes: v.nodes.slice(0, 3).map((n) => n.target.join(' ')) }))")
    bad = [v for v in results if v["impact"] in ("serious", "critical")]
    return [f"{state}: {v['id']} ({v['impact']}): {v['help']} at {v['nodes']}" for v in bad]


def tick_two_runs(page):
    page.wait("document.querySelectorAll('#runs-table tr[data-run]').length >= 2", 20)
    for box in page.page.locator("#runs-table input[type=checkbox]").all()[:2]:
        box.check()
    page.wait("Number(document.querySelector('#compare-acc').dataset.points) > 0")


def test_axe_finds_nothing_serious_idle_after_training_and_with_the_history_open(axe_page):
    page = axe_page()
    page.open()
    problems = serious(page, "idle")
    page.page.fill("#epochs", "2")
    page.page.fill("#batch-size", "512")
    page.page.click("#start")
    page.wait("document.querySelector('#status').classList.contains('good')", 90)
    page.wait("document.querySelectorAll('#confusion td').length === 100", 30)
    problems += serious(page, "after training")
    page.page.select_option("#mode", "new")
    page.page.fill("#lr", "0.001")
    page.page.click("#start")
    page.wait("document.querySelector('#status').classList.contains('good')", 90)
    tick_two_runs(page)
    page.js("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    page.page.wait_for_timeout(300)
    problems += serious(page, "history open")
    assert problems == [], "\n".join(problems)
    assert page.errors == []


def test_axe_on_a_phone_with_the_history_open(axe_page, two_runs):
    page = axe_page(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    page.open()
    tick_two_runs(page)
    page.js("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    problems = serious(page, "phone")
    assert problems == [], "\n".join(problems)


def test_keyboard_reaches_every_control_with_a_visible_focus(axe_page, two_runs):
    page = axe_page()
    page.open()
    page.wait("document.querySelectorAll('#runs-table tr[data-run]').length >= 1", 20)
    page.js("document.querySelectorAll('details').forEach((d) => { d.open = true; })")
    # every visible control; a group of radio buttons is one stop (arrow keys move within it)
    expected = page.js(f"""(() => {{ const groups = new Set();
        return [...document.querySelectorAll("{FOCUSABLE}")].filter((e) => {{
          if (!e.getClientRects().length || e.closest('[hidden], [inert]')) return false;
          if (e.type !== 'radio') return true;
          if (groups.has(e.name)) return false;
          groups.add(e.name); return true; }}).length; }})()""")
    reached, invisible = set(), []
    page.page.focus("body")
    for _ in range(expected + 40):
        page.page.keyboard.press("Tab")
        info = page.js("""(() => { const e = document.activeElement; if (!e || e === document.body) return null;
            const s = getComputedStyle(e);
            const seen = (s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) > 0) || s.boxShadow !== 'none';
            return { key: e.id || e.getAttribute('aria-label') || e.textContent.trim().slice(0, 30) || e.tagName,
                     seen, index: [...document.querySelectorAll('*')].indexOf(e) }; })()""")
        if info is None:
            continue
        if not info["seen"]:
            invisible.append(info["key"])
        if info["index"] in reached:
            break  # wrapped around
        reached.add(info["index"])
    assert len(reached) >= expected, (len(reached), expected)
    assert invisible == [], invisible
    # a run is compared from the keyboard alone: Tab to its box, Space
    page.page.focus("#runs-table tr[data-run] input[type=checkbox]")
    page.page.keyboard.press("Space")
    page.wait("!document.querySelector('#compare').hidden")
    assert page.js("document.activeElement.matches('#runs-table input[type=checkbox]:checked')")
    # the first Tab from the top offers the skip link
    page.page.goto(page.server.url)
    page.wait(page.READY)
    page.page.keyboard.press("Tab")
    assert page.js("document.activeElement.className") == "skip-link"


def test_the_prediction_is_in_a_live_region(axe_page):
    page = axe_page()
    page.open()
    region = page.js("(() => { const r = document.querySelector('#digit').closest('[aria-live]');"
                     " return r && { live: r.getAttribute('aria-live'), atomic: r.getAttribute('aria-atomic'),"
                     " role: r.getAttribute('role'), holds: r.contains(document.querySelector('#confidence')) }; })()")
    assert region == {"live": "polite", "atomic": "true", "role": "status", "holds": True}


def test_axe_with_a_failed_download_shown(browser, tmp_path, trained_home):
    """The Data card's error line (a bad checksum) and its controls, checked by axe too."""
    import shutil

    from browser.conftest import Page
    shutil.copytree(trained_home / "models", tmp_path / "home" / "models")
    with Mirror({}) as mirror:  # answers 404 to every file
        srv = Server(tmp_path / "home", env={"DIGITLAB_MIRROR": mirror.url, "DIGITLAB_MIRROR_ONLY": "1"})
        context = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 1000})
        try:
            page = Page(context.new_page(), srv)
            page.open()
            page.page.click("#download-list li[data-dataset='mnist'] button:has-text('Download')")
            page.wait("!document.querySelector(\"#download-list li[data-dataset='mnist'] .download-error\").hidden", 20)
            problems = serious(page, "download failed")
            assert problems == [], "\n".join(problems)
        finally:
            context.close()
            srv.stop()


def test_the_axe_check_itself_catches_a_broken_control(axe_page):
    """The harness is live: an unlabelled input and white-on-white text added to the page are reported."""
    page = axe_page()
    page.open()
    page.js("document.querySelector('#data').append(Object.assign(document.createElement('input'), { type: 'text' }))")
    page.js("(() => { const p = document.createElement('p'); p.textContent = 'faint'; p.style.color = '#f4f4f4';"
            " document.querySelector('#data').append(p); })()")
    problems = serious(page, "canary")
    assert any(": label (critical)" in p for p in problems), problems
    assert any("color-contrast (serious)" in p for p in problems), problems
