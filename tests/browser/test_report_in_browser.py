"""report.html in a real browser (headless Chromium through Selenium): sorting, images, no network, no errors.

Run with `tox -e browser`; skipped when Chromium, ChromeDriver or Selenium are missing.
"""

import json
import math
import os
import re
import shutil
from pathlib import Path

import pytest

from bench.cli import main

pytestmark = pytest.mark.browser

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
DRIVER = shutil.which("chromedriver")
SCREENSHOT = Path(os.environ.get("BENCH_ARTEFACTS", "runs/browser")) / "report-first-screen.png"


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser") / "run"
    assert main(["run", "--codecs", "jpeg,webp,bpg,cvae", "--limit", "30", "--out", str(out), "--jobs", "2",
                 "--no-progress"]) == 0  # fmt: skip
    return out / "report.html"


@pytest.fixture(scope="module")
def browser():
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (tox -e browser)")
    if not (CHROMIUM and DRIVER):
        pytest.skip("needs chromium and chromedriver (Debian: apt-get install chromium chromium-driver)")
    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(argument)
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(DRIVER))
    yield driver
    driver.quit()


def _number(text: str) -> float:
    match = re.match(r"\s*([-+−]?\d+(\.\d+)?)", text.replace("−", "-"))
    return float(match.group(1)) if match else math.nan


def _column(table, index: int) -> list[str]:
    return [row.find_elements("tag name", "td")[index].text for row in table.find_elements("css selector", "tbody tr")]


def _sorted_as_the_page_promises(cells: list[str], ascending: bool) -> bool:
    numbers = [_number(c) for c in cells]
    numeric = [n for n in numbers if not math.isnan(n)]
    first_text = next((i for i, n in enumerate(numbers) if math.isnan(n)), len(numbers))
    if numeric and any(not math.isnan(n) for n in numbers[first_text:]):
        return False  # cells without a number come after every number
    if numeric:
        return numeric == sorted(numeric, reverse=not ascending)
    texts = cells
    return texts == sorted(texts, key=str.casefold, reverse=not ascending) or len(set(texts)) <= 1


def test_report_loads_offline_without_errors_and_every_image_shows(browser, report):
    browser.get(report.as_uri())
    images = browser.find_elements("tag name", "img")
    assert images and all(browser.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors
    requested = [json.loads(entry["message"])["message"] for entry in browser.get_log("performance")]
    urls = [m["params"]["request"]["url"] for m in requested if m["method"] == "Network.requestWillBeSent"]
    assert all(url.startswith(("file:", "data:")) for url in urls), [u for u in urls if not u.startswith(("file:", "data:"))]
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(SCREENSHOT))


def test_every_sortable_header_sorts_its_own_column(browser, report):
    browser.get(report.as_uri())
    tables = browser.find_elements("css selector", "table.sortable")
    assert tables
    checked = 0
    for table in tables:
        headers = table.find_elements("css selector", "thead th")
        for index, header in enumerate(headers):
            for ascending in (True, False):
                browser.execute_script("arguments[0].click()", header)
                cells = _column(table, index)
                assert _sorted_as_the_page_promises(cells, ascending), (header.text, ascending, cells)
                checked += 1
    assert not [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert checked >= 2 * 20
