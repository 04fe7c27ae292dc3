"""A real browser for the page tests: Debian's headless Chromium, driven by selenium.

The Rust tests (tests/api/browser.rs) start this script and send it one JSON command per line on
standard input; it answers one JSON line per command on standard output. The first line it prints
is {"ready": true} once the browser runs. Exits when standard input closes.

    python driver.py [--no-js] [--width N --height N]

Commands: {"op": "open", "url"} · {"op": "type", "css", "text"} · {"op": "click", "css"} ·
{"op": "text", "css"} ·
{"op": "click", "css", "navigates": false} (for a button that does not load a page) · {"op": "attr", "css", "name"} · {"op": "count", "css"} · {"op": "source"} ·
{"op": "screenshot", "path"} · {"op": "axe"} (the violations of axe-core, run in the page) ·
{"op": "url"}. Every answer is {"ok": true, "value": …} or {"ok": false, "error": "…"}.
"""
import argparse
import base64
import json
import pathlib
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

NO_JS = False
AXE = pathlib.Path(__file__).resolve().parent / "node_modules/axe-core/axe.min.js"


def browser(no_js: bool, width: int, height: int) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--hide-scrollbars", "--force-device-scale-factor=1", "--lang=en-US"):
        options.add_argument(arg)
    if width < 500:
        # Headless windows are at least 500 px wide: a phone is emulated instead.
        options.add_experimental_option("mobileEmulation", {
            "deviceMetrics": {"width": width, "height": height, "pixelRatio": 1}})
    else:
        options.add_argument(f"--window-size={width},{height}")
    if no_js:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def run_axe(driver: webdriver.Chrome):
    # Injected by the WebDriver protocol, not by the page: the page's CSP (no inline script) does
    # not apply to it, and the page itself never loads anything but its own files.
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']})"
        ".then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' '))}))))"
        ".catch(e => done({error: String(e)}));")
    return result


def page_gone(driver: webdriver.Chrome, page) -> bool:
    """Whether `page` (an `html` element) was replaced by the next document. Chrome answers the
    question about a node of a document it has just left either as a stale element or with the same
    "does not belong to the document" error as the click (a CI run met the latter): both mean gone."""
    try:
        return EC.staleness_of(page)(driver)
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return True
        raise


def click_when_attached(driver: webdriver.Chrome, css: str, page) -> None:
    """Clicks `css` on `page` (its `html` element). Chrome sometimes refuses a click on a node it
    has just replaced ("does not belong to the document", or a stale element) while the page's
    script is still enhancing it; such a click never reached the page, so it is found again and
    retried. The same error also comes after a click that did submit, when the next document
    replaced the page before Chrome finished the click (a CI run met it with JavaScript off): then
    `page` is gone, and the click is done, not retried."""
    attempts = 20  # up to ~5 s: on a loaded machine Chrome took longer than 0.4 s to settle
    for attempt in range(attempts):
        try:
            driver.find_element(By.CSS_SELECTOR, css).click()
            return
        except (StaleElementReferenceException, WebDriverException) as e:
            stale = isinstance(e, StaleElementReferenceException) or "does not belong to the document" in str(e)
            if stale and page_gone(driver, page):
                return
            if not stale or attempt == attempts - 1:
                raise
            print(f"driver: click on {css} refused ({type(e).__name__}), attempt {attempt + 1}, "
                  f"at {driver.current_url}; retrying", file=sys.stderr)
            if not NO_JS:
                # Chrome's node ids for this page went wrong (CI runs met it for seconds on end):
                # click the element the page's own DOM finds now, by selector, with no node id.
                if driver.execute_script(
                        "const el = document.querySelector(arguments[0]);"
                        "if (!el) return false; el.click(); return true;", css):
                    return
            driver.switch_to.default_content()  # makes chromedriver look up the document anew
            time.sleep(0.25)


def handle(driver: webdriver.Chrome, cmd: dict):
    op = cmd["op"]
    if op == "open":
        driver.get(cmd["url"])
        return driver.title
    if op == "url":
        return driver.current_url
    if op == "type":
        element = driver.find_element(By.CSS_SELECTOR, cmd["css"])
        element.clear()
        element.send_keys(cmd["text"])
        return None
    if op == "click":
        page = driver.find_element(By.TAG_NAME, "html")
        click_when_attached(driver, cmd["css"], page)
        if cmd.get("navigates", True):
            # A submit loads the next page: wait until the old one is gone and the new one loaded.
            wait = WebDriverWait(driver, 30)
            wait.until(lambda d: page_gone(d, page))
            if not NO_JS:  # with JavaScript off, WebDriver's scripts do not run either
                wait.until(lambda d: d.execute_script("return document.readyState") == "complete")
        return driver.title
    if op == "text":
        return driver.find_element(By.CSS_SELECTOR, cmd["css"]).text
    if op == "attr":
        return driver.find_element(By.CSS_SELECTOR, cmd["css"]).get_attribute(cmd["name"])
    if op == "count":
        return len(driver.find_elements(By.CSS_SELECTOR, cmd["css"]))
    if op == "source":
        return driver.page_source
    if op == "screenshot":
        path = pathlib.Path(cmd["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        # The whole page, however long (beyond the viewport), as the DevTools protocol captures it.
        metrics = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics["cssContentSize"]
        shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}})
        path.write_bytes(base64.b64decode(shot["data"]))
        return True
    if op == "axe":
        return run_axe(driver)
    raise ValueError(f"unknown op {op}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-js", action="store_true")
    parser.add_argument("--width", type=int, default=1100)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args()
    global NO_JS
    NO_JS = args.no_js
    driver = browser(args.no_js, args.width, args.height)
    try:
        # chromedriver's pid: the test checks that it is gone once this driver has quit.
        print(json.dumps({"ready": True, "chromedriver": driver.service.process.pid}), flush=True)
        for line in sys.stdin:
            if not line.strip():
                continue
            try:
                value = handle(driver, json.loads(line))
                print(json.dumps({"ok": True, "value": value}), flush=True)
            except Exception as e:  # reported to the test, which fails with it
                print(json.dumps({"ok": False, "error": f"{type(e).__name__}: {e}"}), flush=True)
    finally:
        driver.quit()


if __name__ == "__main__":
    main()
