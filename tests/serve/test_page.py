"""The web page at / of `facelivt serve`, driven in a real headless Chromium (Debian's /usr/bin/chromium via
Playwright) against the real server on the committed test weights, with real shared photos."""
from __future__ import annotations

import re
from contextlib import contextmanager
from pathlib import Path

import pytest
from PIL import Image

from facelivt.serve.keys import KeyStore
from serve_helpers import start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless=new", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
# The first two identities the test weights never saw (heldout_identities in their metadata): with them a
# same-person pair scores ~0.6 and a different-person pair ~-0.2 against the uncalibrated threshold 0.3, and a
# fourth photo of either identity has its own identity as the top match (checked when this test was written).
SAME, OTHER = "7201", "7202"
# What Chromium logs for every 4xx/5xx response; allowed only where a test provokes one.
FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of 4\d\d")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(single_face_photos) -> dict[str, list[Path]]:
    return {identity: single_face_photos[identity] for identity in (SAME, OTHER)}


@pytest.fixture(scope="module")
def server_url(server) -> str:
    return server.url


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip("chromium not installed: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Problems(list):
    """Console errors, uncaught page errors and failed requests seen by ``page``."""

    def __init__(self, page) -> None:
        super().__init__()
        self.page = page

    def allow(self, pattern: re.Pattern) -> None:
        """Remove the one problem matching ``pattern`` (a test provoked it); fails if none comes within 10 s
        (the console event may reach us after what the page shows)."""
        for _ in range(100):
            hits = [p for p in self if pattern.search(p)]
            if hits:
                break
            self.page.wait_for_timeout(100)
        assert len(hits) == 1, (pattern.pattern, list(self))
        self.remove(hits[0])


@contextmanager
def open_page(browser, url: str):
    """The page at ``url``/ once its start-up requests are answered; on leaving, fails on any console error,
    uncaught page error or failed request that the test did not allow (``page.problems.allow``)."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)  # a model call on a busy 2-core machine
    problems = Problems(page)
    page.on("console", lambda m: m.type == "error" and problems.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.on("requestfailed", lambda r: problems.append(f"request failed: {r.url} {r.failure}"))
    page.problems = problems
    page.goto(url + "/")
    loaded(page)
    yield page
    seen = list(problems)  # before closing: closing aborts what is still in flight
    context.close()
    assert seen == []


@pytest.fixture
def page(browser, server_url):
    with open_page(browser, server_url) as page:
        yield page


def loaded(page) -> None:
    """Wait until the page has shown the server's health and the gallery's identities (its start-up requests)."""
    page.get_by_test_id("health").filter(has_not_text="checking").wait_for()
    page.locator("#identities-note:not(:empty), #error:not([hidden])").first.wait_for()


def verify(page, a: Path, b: Path) -> None:
    page.get_by_label("First photo").set_input_files(a)
    page.get_by_label("Second photo").set_input_files(b)
    page.get_by_test_id("verify-submit").click()
    page.locator("#verify-result:not([hidden])").wait_for()
    page.locator("[data-testid=verify-form]:not([aria-busy])").wait_for()


def boxes_drawn(page, container: str, count: int) -> None:
    """``count`` face boxes in ``container``, each of non-zero size and inside the photo it is drawn on."""
    boxes = page.locator(f"{container} [data-testid=face-box]")
    assert boxes.count() == count
    for i in range(count):
        box = boxes.nth(i).bounding_box()
        photo = boxes.nth(i).locator("xpath=..").locator("img").bounding_box()
        assert box["width"] > 5 and box["height"] > 5, box
        assert photo["x"] - 2 <= box["x"] and box["x"] + box["width"] <= photo["x"] + photo["width"] + 2, (box, photo)
        assert photo["y"] - 2 <= box["y"] and box["y"] + box["height"] <= photo["y"] + photo["height"] + 2, (box, photo)


def test_page_loads_with_labelled_controls_and_nothing_from_elsewhere(page, server_url):
    for label in ("API key", "First photo", "Second photo", "Gallery name", "Name", "Photos (one face each)", "Photo"):
        assert page.get_by_label(label, exact=True).count() == 1, label
    assert page.get_by_test_id("gallery").input_value() == "default"
    assert page.get_by_test_id("error").is_hidden()
    resources = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    assert resources and all(u.startswith(server_url) for u in resources), resources


def test_verify_shows_boxes_score_and_verdict(page, photos):
    same, other = photos[SAME], photos[OTHER]
    verify(page, same[0], same[1])
    boxes_drawn(page, "#verify-photos", 2)
    assert page.get_by_test_id("verify-verdict").inner_text() == "Same person"
    score = float(page.get_by_test_id("verify-score").get_attribute("data-score"))
    assert -1.0 <= score <= 1.0
    assert page.get_by_test_id("verify-score").inner_text() == f"{score:.3f}"
    threshold = page.get_by_test_id("verify-threshold")
    assert re.match(r"threshold -?\d\.\d{3} \(.+\)", threshold.inner_text())
    # the test weights have no calibrated threshold: the server says unreliable, the page must show it
    assert threshold.get_by_test_id("unreliable").inner_text().startswith("Unreliable verdict")
    assert float(threshold.inner_text().split()[1]) <= score

    verify(page, same[0], other[0])
    assert page.get_by_test_id("verify-verdict").inner_text() == "Different people"
    score = float(page.get_by_test_id("verify-score").get_attribute("data-score"))
    assert -1.0 <= score < float(threshold.inner_text().split()[1])
    boxes_drawn(page, "#verify-photos", 2)


def test_a_photo_the_browser_cannot_show_still_gets_its_verdict(page, photos, tmp_path):
    tiff = tmp_path / "same.tif"  # Pillow (the server) reads TIFF, Chromium does not show it
    with Image.open(photos[SAME][1]) as im:
        im.save(tiff)
    verify(page, photos[SAME][0], tiff)
    assert page.get_by_test_id("verify-verdict").inner_text() == "Same person"
    boxes_drawn(page, "#verify-photos", 1)
    assert "same.tif: this browser cannot show the format" in page.get_by_test_id("photo-not-shown").inner_text()


def enroll(page, name: str, files: list[Path]) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("Photos (one face each)").set_input_files(files)
    page.get_by_test_id("enroll-submit").click()
    page.get_by_test_id("enroll-result").filter(has_text=f"of {name} into").wait_for()
    page.locator("[data-testid=enroll-form]:not([aria-busy])").wait_for()  # the list is refreshed too


def identities(page) -> list[str]:
    return page.get_by_test_id("identity").evaluate_all("items => items.map(i => i.dataset.name)")


def test_enroll_identify_and_delete(page, photos):
    page.get_by_label("Gallery name").fill("page-test")
    page.get_by_test_id("identities-refresh").click()
    page.get_by_test_id("identities-note").filter(has_text="page-test holds no identities").wait_for()
    enroll(page, "Ann " + SAME, photos[SAME][:3])
    assert "Enrolled 3 photo(s)" in page.get_by_test_id("enroll-result").inner_text()
    enroll(page, "Bob " + OTHER, photos[OTHER][:3])
    assert identities(page) == ["Ann " + SAME, "Bob " + OTHER]

    page.get_by_label("Photo", exact=True).set_input_files(photos[SAME][3])
    page.get_by_test_id("identify-submit").click()
    page.locator("#identify-result:not([hidden])").wait_for()
    boxes_drawn(page, "#identify-photos", 1)
    rows = page.get_by_test_id("match")
    matches = rows.evaluate_all("rs => rs.map(r => [r.dataset.name, Number(r.dataset.score), r.dataset.accepted])")
    assert [m[0] for m in matches] == ["Ann " + SAME, "Bob " + OTHER]  # see SAME, OTHER
    scores = [m[1] for m in matches]
    assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)
    threshold = float(page.get_by_test_id("identify-threshold").inner_text().split()[1])
    assert [m[2] for m in matches] == [str(s >= threshold).lower() for s in scores]
    assert rows.nth(0).locator("td").nth(2).inner_text() == ("accepted" if matches[0][2] == "true" else "below threshold")

    ann = page.get_by_test_id("identity").filter(has_text="Ann " + SAME)
    page.once("dialog", lambda d: d.dismiss())
    ann.get_by_role("button", name="Delete Ann " + SAME).click()
    with page.expect_response(lambda r: r.url.endswith("/identities") and r.request.method == "GET"):
        page.get_by_test_id("identities-refresh").click()
    page.locator("#identities:not([aria-busy])").wait_for()
    assert identities(page) == ["Ann " + SAME, "Bob " + OTHER]  # dismissed: nothing deleted
    messages = []
    page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
    ann.get_by_role("button", name="Delete Ann " + SAME).click()
    page.get_by_test_id("identity").filter(has_text="Ann " + SAME).wait_for(state="detached")
    assert identities(page) == ["Bob " + OTHER]
    assert "Ann " + SAME in messages[0] and "page-test" in messages[0]


def test_api_error_is_shown_and_cleared(page, photos, tmp_path):
    notes = tmp_path / "notes.jpg"
    notes.write_text("not a photo at all\n")
    page.get_by_label("First photo").set_input_files(notes)
    page.get_by_label("Second photo").set_input_files(photos[SAME][0])
    page.get_by_test_id("verify-submit").click()
    error = page.get_by_test_id("error")
    error.wait_for(state="visible")
    assert "(invalid_image)" in error.inner_text() and len(error.inner_text()) > len("(invalid_image)") + 5
    page.problems.allow(FAILED_LOAD)

    verify(page, photos[SAME][0], photos[SAME][1])
    assert error.is_hidden()
    page.get_by_label("Second photo").set_input_files(notes)  # an earlier answer is not left beside an error
    page.get_by_test_id("verify-submit").click()
    error.wait_for(state="visible")
    assert page.locator("#verify-result").is_hidden()
    page.problems.allow(FAILED_LOAD)


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A server with API keys: one that reads, one that writes."""
    folder = tmp_path_factory.mktemp("keys")
    store = KeyStore(folder / "keys.sqlite")
    tokens = {"read": store.create("page-reader")[1], "write": store.create("page-writer", scope="write")[1]}
    s = start_server(folder)
    s.tokens = tokens
    yield s
    assert s.stop() == 0, s.log()[-3000:]


def use_key(page, token: str) -> None:
    page.get_by_label("API key").fill(token)
    with page.expect_response(lambda r: r.url.endswith("/v1/galleries")):  # the list is fetched again with the key
        page.get_by_label("API key").press("Tab")  # leaving the field fires its one change event


def test_api_keys_are_sent_kept_for_the_tab_and_refusals_shown(browser, guarded, photos):
    with open_page(browser, guarded.url) as page:
        error = page.get_by_test_id("error")
        assert "(unauthorized)" in error.inner_text()  # the start-up list of identities, without a key
        page.problems.allow(FAILED_LOAD)
        use_key(page, guarded.tokens["read"])
        page.get_by_test_id("identities-note").filter(has_text="default holds no identities").wait_for()
        assert error.is_hidden()

        page.get_by_label("Name", exact=True).fill("Ann")
        page.get_by_label("Photos (one face each)").set_input_files(photos[SAME][:1])
        page.get_by_test_id("enroll-submit").click()
        error.filter(has_text="(forbidden)").wait_for()  # a read key cannot enrol
        page.problems.allow(FAILED_LOAD)

        use_key(page, guarded.tokens["write"])
        with page.expect_request(lambda r: r.url.endswith("/identities") and r.method == "POST") as request:
            enroll(page, "Ann", photos[SAME][:1])
        assert request.value.headers.get("x-api-key") == guarded.tokens["write"]
        page.reload()
        loaded(page)
        assert page.get_by_label("API key").input_value() == guarded.tokens["write"]
        assert identities(page) == ["Ann"] and error.is_hidden()
