"""The worklist and study page in Chromium, in Chinese and in English (R-6.2.4d, R-6.2.3a)."""

from __future__ import annotations

import re

import pytest

from tests.browser.images import CALIBRATION_STUDY, PRIOR_STUDY
from tests.browser.test_ohif import _pixel_spread
from vetpacs.web.management.commands.demo import study_uid

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WORDS = {
    "zh-hans": {
        "worklist": "检查列表",
        "animal": "动物名",
        "compare": "与此对比",
        "priors": "该动物的其他检查",
    },
    "en": {
        "worklist": "Worklist",
        "animal": "Animal",
        "compare": "Compare",
        "priors": "Other studies of this animal",
    },
}


def rows(page) -> list[str]:
    return page.locator("#worklist tr[data-study]").evaluate_all("rs => rs.map(r => r.dataset.study)")


def animals(page) -> set[str]:
    return set(page.locator("#worklist tr[data-study] a.animal").all_inner_texts())


class swapped:  # noqa: N801 - reads as a sentence: `with swapped(page): ...`
    """Wait until htmx has swapped new results in (htmx:afterSettle), not just until a response arrived."""

    def __init__(self, page) -> None:
        self.page = page

    def __enter__(self) -> None:
        self.page.evaluate(
            """() => { window.__settled = false;
                document.body.addEventListener('htmx:afterSettle', () => { window.__settled = true; },
                                               { once: true }); }"""
        )

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.page.wait_for_function("() => window.__settled === true")


def submit_filter(page, selector: str, value: str) -> None:
    """Type a filter and press Enter: htmx swaps the results and puts the filter in the URL."""
    page.fill(selector, value)
    with swapped(page):
        page.press(selector, "Enter")


@pytest.mark.requirement("R-6.2.4d")
def test_every_filter_narrows_the_worklist_without_a_reload(signed_in_page, web_server):
    page = signed_in_page
    words = WORDS[page.language]
    page.goto(f"{web_server.url}/")
    assert words["worklist"] in page.locator("h2").inner_text()
    assert words["animal"] in page.locator("#worklist thead").inner_text()
    assert len(rows(page)) == 5
    page.evaluate("window.__notReloaded = true")

    submit_filter(page, "#f-animal", "wangcai")  # pinyin of 旺财
    assert animals(page) == {"旺财"} and len(rows(page)) == 2
    assert "animal=wangcai" in page.url
    submit_filter(page, "#f-animal", "")

    submit_filter(page, "#f-accession", "DEMO-CT-2")
    assert animals(page) == {"咪咪"}
    submit_filter(page, "#f-accession", "")

    submit_filter(page, "#f-patient_id", "BROWSER-RULER")
    assert animals(page) == {"标尺"} and len(rows(page)) == 2
    submit_filter(page, "#f-patient_id", "")

    submit_filter(page, "#f-phone", "13900139000")
    assert animals(page) == {"咪咪"}
    submit_filter(page, "#f-phone", "")

    with swapped(page):
        page.select_option("#f-modality", "US")
    assert len(rows(page)) == 1 and "modality=US" in page.url
    with swapped(page):
        page.select_option("#f-modality", "")

    with swapped(page):
        page.select_option("#f-species", "猫 Feline")
    assert animals(page) == {"咪咪"}
    with swapped(page):
        page.select_option("#f-species", "")

    with swapped(page):
        page.click("#quick-range button[data-range=today]")
    # The ruler (12:00) and the demo's ultrasound, dated the day the demo was loaded (11:00 or earlier).
    assert rows(page) == [CALIBRATION_STUDY, study_uid("us")] and "range=today" in page.url

    with swapped(page):  # a date takes effect as soon as it is picked
        page.fill("#f-date_from", "2025-01-01")
    with swapped(page):
        page.fill("#f-date_to", "2025-12-31")
    assert rows(page) == [PRIOR_STUDY] and "range=" not in page.url

    with swapped(page):
        page.select_option("#f-report", "document")  # no study here has a PDF/SR report stored
    assert rows(page) == []
    assert page.evaluate("window.__notReloaded") is True  # htmx swapped the results in place

    # The URL is the view: opening it afresh shows the same filtered list.
    page.goto(page.url)
    assert rows(page) == [] and page.locator("#f-report").input_value() == "document"


@pytest.mark.requirement("R-6.2.3a")
@pytest.mark.requirement("R-6.2.2c")
@pytest.mark.requirement("R-6.2.4b")
def test_study_page_lists_the_prior_and_compares_them_side_by_side_in_ohif(signed_in_page, web_server):
    page = signed_in_page
    words = WORDS[page.language]
    page.goto(f"{web_server.url}/?patient_id=BROWSER-RULER")
    page.locator(f'tr[data-study="{CALIBRATION_STUDY}"] a.animal').click()
    page.wait_for_url(re.compile(rf"/studies/{re.escape(CALIBRATION_STUDY)}/"))
    assert words["priors"] in page.locator("#priors").inner_text()
    thumb = page.locator("#series img").first
    thumb.wait_for()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle())
    page.locator(f'#priors .prior[data-study="{PRIOR_STUDY}"] a.compare').click()
    page.wait_for_url(re.compile(r"/viewer/viewer\?StudyInstanceUIDs="))
    assert CALIBRATION_STUDY in page.url and PRIOR_STUDY in page.url
    # Both studies drawn: two viewports, each showing an image (OHIF's comparison protocol).
    drawn = 0
    for _ in range(90):
        drawn = _drawn_canvases(page)
        if drawn >= 2:
            break
        page.wait_for_timeout(500)
    assert drawn >= 2, "OHIF did not draw the two studies side by side"


def _drawn_canvases(page) -> int:
    """Viewports showing an image; OHIF lays its viewports out again while loading, so a canvas
    counted a moment ago may be gone: it simply does not count this time."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

    canvases = page.locator("canvas.cornerstone-canvas")
    drawn = 0
    for i in range(canvases.count()):
        try:
            drawn += _pixel_spread(canvases.nth(i).screenshot(timeout=3000)) > 5
        except PlaywrightTimeoutError:
            continue
    return drawn
