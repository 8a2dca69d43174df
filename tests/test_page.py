"""The live page in a real browser: Debian's chromium driven by Playwright."""

from __future__ import annotations

import shutil

import pytest

from tests.test_http import Daemon

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM:
        pytest.skip("chromium not installed (make test installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


def test_page_shows_the_emotion_and_preview_and_reads_a_dropped_photo(browser, tmp_path, face_clip, face_image):
    d = Daemon(tmp_path, face_clip)
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(d.base + "/")
        page.wait_for_function("document.getElementById('dominant').textContent !== 'waiting…'", timeout=20000)
        seen = {page.text_content("#dominant")}
        page.wait_for_function(  # the drawn face turns from tense to calm: the page follows
            f"!{sorted(seen)!r}.includes(document.getElementById('dominant').textContent)", timeout=20000)
        assert page.text_content("#dominant") in ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
        assert "face" in page.text_content("#faces-count")
        page.wait_for_function("document.getElementById('preview').naturalWidth > 0", timeout=20000)
        page.wait_for_function("document.querySelectorAll('#stats .stat').length === 6", timeout=20000)
        page.wait_for_timeout(1500)  # a timeline tick
        page.set_input_files("#file", str(face_image))  # what the drop zone's file picker does
        page.wait_for_selector("#result img", timeout=20000)
        assert "Face 1:" in page.text_content("#result")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)

        kiosk = browser.new_page(viewport={"width": 1280, "height": 720})
        kiosk.goto(d.base + "/?kiosk")
        kiosk.wait_for_function("document.getElementById('k-emotion').textContent !== 'waiting'", timeout=20000)
        assert kiosk.is_visible("#k-emotion") and not kiosk.is_visible("#drop")  # no controls
        contrast = kiosk.evaluate("""() => {  // WCAG contrast of the big word on the live and on each emotion's colour
            const lum = (css) => css.match(/\\d+/g).slice(0, 3).map((v) => v / 255)
              .map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4))
              .reduce((sum, c, i) => sum + [0.2126, 0.7152, 0.0722][i] * c, 0);
            const ratio = (el) => {
              const [a, b] = [getComputedStyle(el).backgroundColor, getComputedStyle(el).color].map(lum);
              return (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
            };
            const swatches = Object.keys(EMOJI).map((e) => {
              const el = document.createElement('div');
              el.style.background = colour(e);
              el.style.color = ink(colour(e));
              return document.body.appendChild(el);
            });
            return Math.min(ratio(document.body), ...swatches.map(ratio));
        }""")
        assert contrast >= 4.5, contrast  # the kiosk's word readable on every emotion's colour
        kiosk.screenshot(path=str(tmp_path / "kiosk.png"))
        assert (tmp_path / "page.png").stat().st_size > 10_000
    finally:
        d.stop()


def test_history_view_draws_a_day_and_exports_it(browser, tmp_path, visits_clip):
    d = Daemon(tmp_path, visits_clip, cfg={"history": {"path": str(tmp_path / "h.db"), "flush_interval_s": 0.2},
                                           "tracker": {"expire_s": 0.3}})
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(d.base + "/")
        page.wait_for_function("/^[0-9]+ visits? /.test(document.getElementById('history-summary').textContent)",
                               timeout=40000)  # a visit ends: the page reloads the day
        page.wait_for_function("parseInt(document.getElementById('history-summary').textContent) >= 2", timeout=40000)
        assert page.locator("#chart-visits rect").count() >= 1  # the hours with visits
        assert page.locator("#chart-mix rect").count() >= 1 and page.locator("#chart-mood circle").count() >= 1
        assert page.locator("#visits-table tr").count() >= 3  # a header and the visits
        csv = page.evaluate("fetch(document.getElementById('csv').href).then((r) => r.text())")
        assert csv.startswith("start,end,duration_s") and len(csv.splitlines()) >= 3
        page.fill("#day", "2020-01-01")  # another day: nothing, said in words
        page.dispatch_event("#day", "change")
        page.wait_for_function("document.getElementById('history-summary').textContent === 'no visits on this day'")
        assert page.locator("#chart-visits rect").count() == 24 and page.locator("#chart-mood circle").count() == 0
    finally:
        d.stop()
