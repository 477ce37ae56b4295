"""The console in a real browser (issue 10): `dumplab serve` in headless Chromium through
Playwright. Shrinking the page must not end the trainee's session: before the fix, laying out
"Where in memory" at width 0 killed the console and the page said "Session ended".

Playwright cannot download its browsers here: the test uses Debian's chromium
(/usr/bin/chromium, installed by .ci/run) as `executable_path`, and skips with the reason when
either is missing.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_serve import Server, alive, children, start_server, stop_server

playwright_api = pytest.importorskip("playwright.sync_api",
                                     reason="playwright is not installed (pip install '.[test]')")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                       reason="Debian's chromium is not installed (apt-get install chromium)"),
    pytest.mark.timeout(180),
]
SESSION_S = 30.0


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    running = start_server(tmp_path)
    try:
        yield running
    finally:
        stop_server(running)


def consoles(server: Server) -> list[int]:
    """The console processes the server started (one per browser session)."""
    return [pid for pid, argv in children(server.process.pid).items()
            if "console.cli" in " ".join(argv) and "serve" not in argv]


def wait(condition, what: str, timeout: float = SESSION_S) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def session_ended(page) -> bool:  # type: ignore[no-untyped-def]
    return page.evaluate("document.body.classList.contains('-closed')")


def test_shrinking_the_page_does_not_end_the_session(server: Server) -> None:
    with playwright_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(server.url + "/")
            if page.locator("#start").is_visible():
                page.locator("#start").click()
            wait(lambda: consoles(server), "the console process of the session")
            pid = consoles(server)[0]
            time.sleep(3)  # the console draws its first screen
            page.locator("#terminal").click()  # the keys go to the terminal
            # The operator's first minutes: Activate, Load, the workflow with a stage selected.
            for key in ("a", "l", "Enter", "3", "ArrowDown", "ArrowDown"):
                page.keyboard.press(key)
                time.sleep(0.4)
            time.sleep(2)
            # From wide straight to about 80×24 (the resize that killed the console), then
            # down to a strip and back.
            for width, height in ((640, 400), (1400, 900), (900, 560), (320, 200), (120, 80),
                                  (1400, 900), (640, 400)):
                page.set_viewport_size({"width": width, "height": height})
                time.sleep(1.0)
                assert not session_ended(page), (width, height)
                assert alive(pid), (width, height)
            page.keyboard.press("1")
            time.sleep(1)
            assert not session_ended(page) and alive(pid)
        finally:
            browser.close()
    logs = list(server.base.glob("session-*/console.log"))
    errors = [path for path in logs if "internal error" in path.read_text(errors="replace")]
    assert errors == [], errors[0].read_text() if errors else ""
