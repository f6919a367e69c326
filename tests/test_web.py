"""The web page at ``/`` in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by selenium against a ``faceprint serve`` process with real models.

Log in, enrol two people from LFW photos through the page's file inputs, identify a group photo
and read the names it lists, see thumbnails, delete a person; a wrong key shows its error and no data.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from PIL import Image

from .conftest import lfw_image
from .servers import faceprint_server

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

CHROMIUM = os.environ.get("FACEPRINT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("FACEPRINT_CHROMEDRIVER", "/usr/bin/chromedriver")
if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
    pytest.skip(f"Chromium ({CHROMIUM}) or chromedriver ({CHROMEDRIVER}) not found: "
                "apt-get install chromium chromium-driver (make setup does)", allow_module_level=True)

FACEPRINT = str(Path(sys.executable).parent / "faceprint")
BUSH, POWELL, STRANGER = "George_W_Bush", "Colin_Powell", "Tony_Blair"
A, B = "George W Bush", "Colin Powell"  # names with spaces: the page must encode them in URLs
TIMEOUT = 30  # seconds for any one thing the page does (model work included)


def _key(db: Path, *scopes: str) -> str:
    args = [FACEPRINT, "keys", "create", "web", "--db", str(db), "--json"] + [a for s in scopes for a in ("-s", s)]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["key"]


@pytest.fixture(scope="module")
def site(tmp_path_factory, lfw_dir):
    db = tmp_path_factory.mktemp("web") / "gallery.db"
    keys = {"admin": _key(db, "admin"), "enroll": _key(db, "enroll")}
    with faceprint_server(str(db), "--thumbnails") as url:
        yield url, keys


@pytest.fixture(scope="module")
def browser():
    profile = tempfile.mkdtemp(prefix="faceprint-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1200,1000",
                 # a synthetic camera, allowed without asking: the webcam path runs too
                 "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver, condition, what: str, timeout: float = TIMEOUT):
    """WebDriverWait with the page's status lines in the failure message."""
    try:
        return WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        states = driver.execute_script(
            "return Array.from(document.querySelectorAll('.status')).map(e => e.id + ': ' + e.textContent)")
        raise AssertionError(f"timed out waiting for {what}; page says {states}") from None


def _status(driver, id_: str, state: str | None = None, text: str | None = None):
    """Wait until status line ``id_`` has ``state`` (and contains ``text``); return its text."""
    def ready(d):
        el = d.find_element(By.ID, id_)
        ok = (state is None or el.get_attribute("data-state") == state) and (text is None or text in el.text)
        return el.text if ok else False
    return _wait(driver, ready, f"#{id_} to be {state or ''} {text or ''}".strip())


def _log_in(driver, url: str, key: str) -> None:
    driver.get(url + "/")
    driver.execute_script("sessionStorage.clear()")
    driver.get(url + "/")
    field = _wait(driver, EC.visibility_of_element_located((By.ID, "api-key")), "the log-in form")
    field.send_keys(key)
    driver.find_element(By.ID, "login-button").click()


def _people(driver) -> dict[str, dict]:
    """The people list as the page shows it: name -> its face count text and thumbnail state."""
    return driver.execute_script("""
        const out = {};
        for (const li of document.querySelectorAll('#people-list li.person')) {
            const img = li.querySelector('img.thumb');
            out[li.dataset.name] = {faces: li.querySelector('.person-faces').textContent,
                                   thumbnail: !!img && img.complete && img.naturalWidth > 0};
        }
        return out;""")


def _enrol(driver, name: str, photos: list[Path]) -> str:
    field = driver.find_element(By.ID, "enrol-name")
    field.clear()
    field.send_keys(name)
    driver.find_element(By.ID, "enrol-files").send_keys("\n".join(str(p) for p in photos))
    driver.find_element(By.ID, "enrol-button").click()
    return _status(driver, "enrol-status", "done", f"{name}:")


def test_wrong_key_shows_the_error_and_no_data(site, browser):
    url, keys = site
    _log_in(browser, url, "fp_000000000000_wrong")
    message = _status(browser, "login-status", "error")
    assert "unknown or revoked API key" in message
    assert not browser.find_element(By.ID, "app").is_displayed()
    assert browser.find_elements(By.CSS_SELECTOR, "#people-list li") == []
    assert browser.execute_script("return sessionStorage.length") == 0

    # a key without the read scope gets in (it may enrol) but the people panel says what it lacks
    _log_in(browser, url, keys["enroll"])
    assert "lacks the 'read' scope" in _status(browser, "people-status", "error")
    assert _people(browser) == {}
    browser.find_element(By.ID, "logout").click()
    assert browser.find_element(By.ID, "api-key").is_displayed()
    assert browser.execute_script("return sessionStorage.length") == 0


def test_log_in_enrol_identify_group_photo_delete(site, browser, lfw_dir, tmp_path):
    url, keys = site
    _log_in(browser, url, keys["admin"])
    _wait(browser, EC.visibility_of_element_located((By.ID, "app")), "the app after logging in")
    assert browser.execute_script("return sessionStorage.length") == 1

    assert _enrol(browser, A, [lfw_image(lfw_dir, BUSH, i) for i in (1, 2, 3)]) == f"{A}: 3 faces enrolled."
    assert _enrol(browser, B, [lfw_image(lfw_dir, POWELL, i) for i in (1, 2)]) == f"{B}: 2 faces enrolled."
    # a photo with no face is listed as a failure; the person exists already (409 is fine)
    blank = tmp_path / "blank.jpg"
    Image.new("RGB", (200, 200), (128, 128, 128)).save(blank)
    assert _enrol(browser, B, [blank, lfw_image(lfw_dir, POWELL, 1)]) == \
        f"{B}: 0 faces enrolled, 1 already enrolled, 1 failed."
    failures = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "#enrol-failures li")]
    assert len(failures) == 1 and failures[0].startswith("blank.jpg:")

    # every person listed, each with a thumbnail loaded through an authorised fetch
    people = _wait(browser, lambda d: (p := _people(d)) and len(p) == 2 and all(v["thumbnail"] for v in p.values())
                   and p, "two people with thumbnails")
    assert people == {A: {"faces": "3 faces", "thumbnail": True}, B: {"faces": "2 faces", "thumbnail": True}}

    # a group photo: unseen photos of A and B and a stranger, side by side
    group = Image.new("RGB", (3 * 250 + 2 * 20, 250), (255, 255, 255))
    for i, (who, n) in enumerate(((BUSH, 4), (POWELL, 4), (STRANGER, 2))):
        group.paste(Image.open(lfw_image(lfw_dir, who, n)).convert("RGB"), (i * 270, 0))
    group.save(tmp_path / "group.jpg", quality=92)
    browser.find_element(By.ID, "identify-file").send_keys(str(tmp_path / "group.jpg"))
    assert _status(browser, "identify-status", "done") == "3 faces found, 2 recognised."
    faces = browser.find_elements(By.CSS_SELECTOR, "#identify-results li.face")
    names = [li.find_element(By.CSS_SELECTOR, ".face-name").text for li in faces]
    assert names == [A, B, "unknown"]  # listed left to right
    lefts = [float(li.get_attribute("data-box").split(",")[0]) for li in faces]
    assert lefts == sorted(lefts) and lefts[0] < 250 and 270 < lefts[1] < 520 and lefts[2] > 540
    canvas = browser.find_element(By.ID, "identify-canvas")
    assert canvas.is_displayed() and browser.execute_script(
        "const c = arguments[0]; return [c.width, c.height]", canvas) == [790, 250]
    assert canvas.get_attribute("aria-label") == f"Photo with faces: {A}, {B}, unknown"

    # delete A: confirm() first, then it is gone from the page and from the service
    person = browser.find_element(By.CSS_SELECTOR, f'#people-list li.person[data-name="{A}"]')
    person.find_element(By.CSS_SELECTOR, "button.delete").click()
    alert = _wait(browser, EC.alert_is_present(), "the confirm dialog")
    assert A in alert.text
    alert.accept()
    assert _status(browser, "people-status", "done", "Deleted") == f"Deleted {A} (3 faces)."
    assert list(_people(browser)) == [B]
    r = httpx.get(url + "/v1/people", headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=30)
    assert r.json() == [{"name": B, "faces": 2}]

    # dismissing the dialog deletes nothing
    browser.find_element(By.CSS_SELECTOR, f'#people-list li.person[data-name="{B}"] button.delete').click()
    _wait(browser, EC.alert_is_present(), "the confirm dialog").dismiss()
    assert list(_people(browser)) == [B]

    # the key stays for this tab: a reload goes straight to the app
    browser.refresh()
    _wait(browser, lambda d: list(_people(d)) == [B], "the people list after a reload")


def test_webcam_frame_is_sent_and_a_liveness_session_is_asked(site, browser):
    url, keys = site
    _log_in(browser, url, keys["admin"])
    _wait(browser, EC.element_to_be_clickable((By.ID, "webcam-start")), "the webcam button").click()
    _wait(browser, lambda d: d.execute_script("return document.getElementById('webcam').videoWidth > 0"),
          "a picture from the (fake) webcam")
    browser.find_element(By.ID, "webcam-capture").click()
    # Chromium's fake camera shows no face: what matters is that a JPEG frame made the round trip
    assert _status(browser, "identify-status", "done") == "No faces found."
    size = browser.execute_script("const c = document.getElementById('identify-canvas'); return [c.width, c.height]")
    assert size[0] > 0 and size[1] > 0
    # enrolling from the webcam records ~3 s of frames for the liveness session route first: still no face
    browser.find_element(By.ID, "enrol-name").send_keys("Webcam Person")
    browser.find_element(By.ID, "enrol-webcam").click()
    assert "no face in any of the" in _status(browser, "enrol-status", "error")
    browser.find_element(By.ID, "webcam-stop").click()
    assert not browser.find_element(By.ID, "webcam").is_displayed()


def test_names_are_shown_as_text_not_html(site, browser):
    url, keys = site
    name = '<img src=x onerror="window.pwned=1">&amp;'
    auth = {"Authorization": f"Bearer {keys['admin']}"}
    assert httpx.post(url + "/v1/people", json={"name": name}, headers=auth, timeout=30).status_code == 201
    try:
        _log_in(browser, url, keys["admin"])
        _wait(browser, lambda d: name in _people(d), "the person with markup in its name")
        shown = browser.find_elements(By.CSS_SELECTOR, "#people-list li.person .person-name")
        assert name in [el.text for el in shown]
        assert browser.execute_script("return window.pwned === undefined && !document.querySelector('img[src=x]')")
        # no face enrolled: the service has no thumbnail (404 no_thumbnail), so a placeholder stands in
        assert _people(browser)[name] == {"faces": "0 faces", "thumbnail": False}
        assert browser.execute_script(
            "return Array.from(document.querySelectorAll('#people-list li.person'))"
            ".find(li => li.dataset.name === arguments[0]).querySelector('.thumb.placeholder') !== null", name)
    finally:
        httpx.delete(url + "/v1/people/" + quote(name, safe=""), headers=auth, timeout=30)


def test_the_page_follows_the_name_rule(site, browser, lfw_dir):
    url, keys = site
    _log_in(browser, url, keys["admin"])
    _wait(browser, EC.visibility_of_element_located((By.ID, "app")), "the app after logging in")
    field = browser.find_element(By.ID, "enrol-name")
    field.clear()
    field.send_keys("../../etc/passwd")
    browser.find_element(By.ID, "enrol-files").send_keys(str(lfw_image(lfw_dir, STRANGER, 1)))
    browser.find_element(By.ID, "enrol-button").click()
    assert "cannot contain '/'" in _status(browser, "enrol-status", "error")
    browser.execute_script("document.getElementById('enrol-form').reset()")

    # a name with what URLs treat specially: enrolled, listed and deleted through its encoded route
    name = "Zoë O'Brien? #1 50% & co"
    assert _enrol(browser, name, [lfw_image(lfw_dir, STRANGER, 1)]) == f"{name}: 1 face enrolled."
    _wait(browser, lambda d: name in _people(d), "the person with URL-special characters in its name")
    browser.execute_script(
        "Array.from(document.querySelectorAll('#people-list li.person'))"
        ".find(li => li.dataset.name === arguments[0]).querySelector('button.delete').click()", name)
    _wait(browser, EC.alert_is_present(), "the confirm dialog").accept()
    assert _status(browser, "people-status", "done", "Deleted") == f"Deleted {name} (1 face)."
    r = httpx.get(url + "/v1/people", headers={"Authorization": f"Bearer {keys['admin']}"}, timeout=30)
    assert name not in [p["name"] for p in r.json()] and "../../etc/passwd" not in [p["name"] for p in r.json()]
