"""The web pages in a real headless Chromium, against the real server.

A session fixture starts `python -m concert serve` on a free port (or uses an
already running server named by CONCERT_WEB_BASE_URL, started with
`--dj-token testtoken`). Pages are driven at a phone viewport through selenium
and /usr/bin/chromedriver; every wait is a WebDriverWait, never a sleep.

Screenshots of every page land in $CONCERT_WEB_SHOTS (default /tmp) as
web_*.png, to look at after a change.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from concert.bench.serve import ONE_NAT, serve

pytestmark = pytest.mark.browser

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import (  # noqa: E402
    StaleElementReferenceException,
    TimeoutException,
    WebDriverException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CONCERT_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CONCERT_CHROMEDRIVER", "/usr/bin/chromedriver")
DJ_TOKEN = "testtoken"
SHOTS = Path(os.environ.get("CONCERT_WEB_SHOTS", tempfile.gettempdir()))
PHONE = (360, 740)
WAIT = 15.0  # seconds for anything the server pushes


# ---------------------------------------------------------------- fixtures


def _get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        with e:
            return e.code, e.read()


def _post(url: str, body: dict, token: str | None = DJ_TOKEN) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        with e:
            return e.code, json.loads(e.read() or b"null")


@pytest.fixture(scope="session")
def server() -> Iterator[str]:
    """Base URL of a running concert server (started here unless CONCERT_WEB_BASE_URL is set)."""
    given = os.environ.get("CONCERT_WEB_BASE_URL")
    if given:
        yield given.rstrip("/")
        return
    args = ("--output", "none", "--round-bars", "2", "--dj-token", DJ_TOKEN, "--text-model", "on", *ONE_NAT)
    with serve(*args) as srv:
        yield srv.http


@pytest.fixture(scope="module")
def driver() -> Iterator[webdriver.Chrome]:
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip(f"needs {CHROMIUM} and {CHROMEDRIVER}")
    profile = tempfile.mkdtemp(prefix="concert-chrome-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--mute-audio",
        f"--user-data-dir={profile}",
        f"--window-size={PHONE[0]},{PHONE[1]}",
    ):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    drv = None
    try:
        drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        drv.set_page_load_timeout(30)
        phone(drv, *PHONE)
        yield drv
    finally:
        if drv is not None:
            drv.quit()
        shutil.rmtree(profile, ignore_errors=True)


def phone(drv: webdriver.Chrome, width: int, height: int) -> None:
    """Emulate a phone viewport (mobile layout, touch) of width x height CSS pixels."""
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 2, "mobile": True}
    )
    drv.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})


def media(drv: webdriver.Chrome, *features: tuple[str, str]) -> None:
    """Emulate CSS media features, e.g. ("prefers-color-scheme", "dark"); none resets."""
    drv.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [{"name": n, "value": v} for n, v in features]})


def desktop(drv: webdriver.Chrome, width: int = 1280, height: int = 800) -> None:
    drv.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False},
    )
    drv.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": False})


# ---------------------------------------------------------------- helpers


def wait(drv: webdriver.Chrome, cond, timeout: float = WAIT, what: str = ""):
    def safe(d):
        try:
            return cond(d)
        except StaleElementReferenceException:
            return False

    return WebDriverWait(drv, timeout, poll_frequency=0.05).until(safe, message=what)


def shot(drv: webdriver.Chrome, name: str) -> Path:
    """Full-page screenshot (CDP), falling back to the viewport."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"web_{name}.png"
    try:
        data = drv.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(data["data"]))
    except WebDriverException:
        drv.save_screenshot(str(path))
    return path


def open_page(drv: webdriver.Chrome, url: str) -> None:
    drv.get(url)
    # record what the polite live region says, so a later announcement cannot hide an earlier one
    drv.execute_script("""
        window.__said = [];
        const r = document.querySelector('[aria-live="polite"]');
        if (r) new MutationObserver(() => { if (r.textContent) window.__said.push(r.textContent); })
            .observe(r, {childList: true, characterData: true, subtree: true});
    """)


def said(drv: webdriver.Chrome) -> list[str]:
    return drv.execute_script("return window.__said || []")


def wait_live(drv: webdriver.Chrome) -> None:
    wait(drv, lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == "open", what="websocket live")
    wait(drv, lambda d: d.find_elements(By.CSS_SELECTOR, "#dir-ballot button.opt"), what="ballot rendered")


def api_state(base: str) -> dict:
    status, body = _get(base + "/api/state")
    assert status == 200
    return json.loads(body)


def wait_round_time(base: str, need: float = 1.6, timeout: float = 30.0) -> dict:
    """Wait until the direction round has at least `need` seconds left (rounds are short in tests)."""
    end = time.monotonic() + timeout
    while True:
        st = api_state(base)
        if st.get("voting") == "open" and st.get("closes_in", 0) >= need:
            return st
        if time.monotonic() > end:
            raise AssertionError(f"no round with {need} s left within {timeout} s: {st}")
        time.sleep(0.05)


def fresh_direction_round(base: str, need: float = 6.0, timeout: float = 60.0) -> dict:
    """Return once the direction round has `need` seconds left, or a new one has just opened."""
    st = api_state(base)
    if st["closes_in"] >= need:
        return st
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        now = api_state(base)
        if now["round"] != st["round"] and now.get("voting") == "open":
            return now
        time.sleep(0.05)
    raise AssertionError(f"no new direction round within {timeout} s")


@contextlib.contextmanager
def ws_client(base: str):
    """A second phone: a raw websocket client without cookies (a different device)."""
    from websockets.sync.client import connect

    with connect(base.replace("http", "ws", 1) + "/ws", open_timeout=10) as ws:
        hello = json.loads(ws.recv(timeout=10))
        assert hello["type"] == "hello", hello
        yield ws


def ws_request(ws, frame: dict) -> dict:
    """Send a frame and return the first ack/error reply (skipping state pushes)."""
    ws.send(json.dumps(frame))
    while True:
        msg = json.loads(ws.recv(timeout=10))
        if msg["type"] in ("ack", "error"):
            return msg


def a11y_smoke(drv: webdriver.Chrome) -> None:
    """Every button/input named, one h1, a main landmark, images with alt, lang and title set."""
    assert drv.title.strip(), "page has no <title>"
    assert drv.execute_script("return document.documentElement.lang"), "<html> has no lang"
    assert len(drv.find_elements(By.TAG_NAME, "h1")) == 1, "expected exactly one h1"
    assert len(drv.find_elements(By.CSS_SELECTOR, "main, [role=main]")) == 1, "expected one main landmark"
    for b in drv.find_elements(By.CSS_SELECTOR, "button, [role=button]"):
        name = (
            b.accessible_name
            if b.is_displayed()
            else drv.execute_script("return arguments[0].getAttribute('aria-label') || arguments[0].textContent", b)
        )
        assert (name or "").strip(), f"button without an accessible name: {b.get_attribute('outerHTML')[:200]}"
    for i in drv.find_elements(By.CSS_SELECTOR, "input:not([type=hidden]), select, textarea"):
        labelled = drv.execute_script(
            "const e = arguments[0]; return (e.labels && e.labels.length > 0) || "
            "!!e.getAttribute('aria-label') || !!e.getAttribute('aria-labelledby')",
            i,
        )
        assert labelled, f"input without a label: {i.get_attribute('outerHTML')[:200]}"
        if i.is_displayed():
            html = i.get_attribute("outerHTML")
            assert (i.accessible_name or "").strip(), f"input without an accessible name: {html}"
    for img in drv.find_elements(By.TAG_NAME, "img"):
        alt = img.get_attribute("alt")
        assert alt is not None and (alt.strip() or img.get_attribute("role") == "presentation"), (
            f"image without alt: {img.get_attribute('outerHTML')[:200]}"
        )
    dup = drv.execute_script("""
        const seen = new Set(), dup = [];
        for (const e of document.querySelectorAll('[id]')) { if (seen.has(e.id)) dup.push(e.id); seen.add(e.id); }
        return dup;""")
    assert not dup, f"duplicate ids: {dup}"


def small_targets(drv: webdriver.Chrome, minimum: int = 44) -> list[str]:
    """Visible buttons, links and form controls smaller than minimum x minimum CSS pixels."""
    return drv.execute_script(
        """
        const min = arguments[0], bad = [];
        for (const e of document.querySelectorAll('button, a[href], input, select, summary')) {
            const r = e.getBoundingClientRect();
            if (!r.width || !r.height || getComputedStyle(e).visibility === 'hidden') continue;
            if (e.type === 'checkbox' || e.type === 'radio') continue;  // their <label> is the target
            if (r.width < min || r.height < min) bad.push(`${e.outerHTML.slice(0, 80)} ${r.width}x${r.height}`);
        }
        return bad;""",
        minimum,
    )


def overflowing(drv: webdriver.Chrome) -> list[str]:
    return drv.execute_script("""
        const root = document.documentElement, w = root.clientWidth, bad = [];
        if (root.scrollWidth > w) bad.push(`document ${root.scrollWidth} > ${w}`);
        for (const e of document.body.querySelectorAll('*')) {
            const r = e.getBoundingClientRect();
            if (r.width > 1 && r.right > w + 0.5) bad.push(`${e.tagName}#${e.id}.${e.className} right=${r.right}`);
        }
        return bad;""")


def console_errors(drv: webdriver.Chrome) -> list[str]:
    try:
        logs = drv.get_log("browser")
    except WebDriverException:
        return []
    return [e["message"] for e in logs if e.get("level") == "SEVERE" and "favicon.ico" not in e["message"]]


def foreign_requests(drv: webdriver.Chrome) -> list[str]:
    return drv.execute_script("""
        return performance.getEntriesByType('resource').map(e => e.name)
            .filter(n => !n.startsWith(location.origin) && !n.startsWith('ws'));""")


def option(drv: webdriver.Chrome, ballot: str, index: int = 0) -> WebElement:
    return drv.find_elements(By.CSS_SELECTOR, f"#{ballot} button.opt")[index]


# ---------------------------------------------------------------- audience


def test_audience_page_at_320px(server: str, driver: webdriver.Chrome) -> None:
    phone(driver, 320, 640)
    try:
        open_page(driver, server + "/")
        wait_live(driver)
        wait(driver, lambda d: d.find_element(By.ID, "np-genre").text not in ("", "—"), what="now playing")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#moves-ballot button.opt"), what="moves ballot")
        assert not overflowing(driver), overflowing(driver)
        assert not small_targets(driver), small_targets(driver)
        a11y_smoke(driver)
        assert not foreign_requests(driver), foreign_requests(driver)
        # the polite live region exists; the countdown is not live
        region = driver.find_element(By.ID, "announcer")
        assert region.get_attribute("aria-live") == "polite"
        for clock in driver.find_elements(By.CSS_SELECTOR, ".countdown"):
            assert clock.get_attribute("aria-live") == "off"
        # the suggestion box is labelled and capped at 80 characters
        box = driver.find_element(By.ID, "suggest-input")
        assert box.get_attribute("maxlength") == "80"
        assert "sound or mood" in box.accessible_name.lower()
        # tallies read as text: "<label>, N votes, P percent"
        name = option(driver, "dir-ballot").accessible_name
        assert "vote" in name and "percent" in name, name
        shot(driver, "audience_320")
        # reduced motion turns the tally animations off; dark mode is honoured
        media(driver, ("prefers-reduced-motion", "reduce"), ("prefers-color-scheme", "dark"))
        fill = driver.find_element(By.CSS_SELECTOR, "#dir-ballot .fill")
        assert driver.execute_script("return getComputedStyle(arguments[0]).transitionDuration", fill) in ("0s", "0ms")
        bg = driver.execute_script("return getComputedStyle(document.body).backgroundColor")
        assert bg == "rgb(13, 15, 20)", bg
        shot(driver, "audience_320_dark")
        assert not console_errors(driver), console_errors(driver)
    finally:
        media(driver)
        phone(driver, *PHONE)


def test_listener_page_at_320px_with_its_setlist(server: str, driver: webdriver.Chrome) -> None:
    phone(driver, 320, 640)
    try:
        open_page(driver, server + "/listen")
        wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#played li"), what="the recent setlist")
        assert not overflowing(driver), overflowing(driver)
        assert not small_targets(driver), small_targets(driver)
        shot(driver, "listen_320")
    finally:
        phone(driver, *PHONE)


def test_vote_is_pressed_counted_and_announced(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + "/")
    wait_live(driver)
    for _attempt in range(4):
        wait_round_time(server)
        ballot = driver.find_element(By.ID, "dir-ballot")
        round_id = ballot.get_attribute("data-round")
        buttons = driver.find_elements(By.CSS_SELECTOR, "#dir-ballot button.opt")
        target = buttons[-1]  # any option; the last one is a style or suggestion, not "stay"
        label = target.find_element(By.CSS_SELECTOR, ".opt-label").text
        before = int(target.get_attribute("data-count"))
        target.click()

        def counted(d, target=target, round_id=round_id, before=before):
            if d.find_element(By.ID, "dir-ballot").get_attribute("data-round") != round_id:
                return "rolled"
            ok = target.get_attribute("aria-pressed") == "true" and int(target.get_attribute("data-count")) > before
            return "ok" if ok else False

        if wait(driver, counted, what="vote pressed and counted") == "ok":
            break
    else:
        pytest.fail("the round closed before the vote could be seen four times running")
    # only one option is pressed, and the tally text says so
    pressed = driver.find_elements(By.CSS_SELECTOR, '#dir-ballot button[aria-pressed="true"]')
    assert len(pressed) == 1
    assert f"{before + 1} " in target.find_element(By.CSS_SELECTOR, ".opt-count").text
    wait(driver, lambda d: any("Vote counted" in s and label in s for s in said(d)), what="vote announced")
    # the round closes: its result shows ("X won — lands on bar N") and is announced
    wait(
        driver,
        lambda d: d.find_element(By.ID, "result-box").is_displayed() and "won" in d.find_element(By.ID, "result").text,
        timeout=30,
        what="round result shown",
    )
    assert "bar" in driver.find_element(By.ID, "result").text
    wait(driver, lambda d: any(" won" in s for s in said(d)), timeout=30, what="round result announced")
    shot(driver, "audience_voted")


def test_tallies_move_when_another_phone_votes(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + "/")
    wait_live(driver)
    with ws_client(server) as ws:
        for _attempt in range(4):
            st = wait_round_time(server)
            oid = st["options"][0]["id"]
            btn = driver.find_element(By.CSS_SELECTOR, f'#dir-ballot button[data-id="{oid}"]')
            driver.execute_script("arguments[0].focus()", btn)
            before = int(btn.get_attribute("data-count"))
            reply = ws_request(ws, {"type": "vote", "round": st["round"], "option": oid})
            if reply["type"] == "error" and reply["code"] == "wrong_round":
                continue
            assert reply["type"] == "ack", reply

            def moved(d, st=st, btn=btn, before=before):
                if d.find_element(By.ID, "dir-ballot").get_attribute("data-round") != str(st["round"]):
                    return "rolled"
                return "ok" if int(btn.get_attribute("data-count")) > before else False

            if wait(driver, moved, what="tally moved") == "ok":
                break
        else:
            pytest.fail("the round closed before the other phone's vote was seen four times running")
    # live updates re-use the buttons: keyboard / screen-reader focus stays put
    assert driver.execute_script("return document.activeElement === arguments[0]", btn)
    # tally ticks are not announced
    assert not any("vote" in s.lower() and "counted" not in s.lower() and "won" not in s for s in said(driver)), said(
        driver
    )


def test_moves_ballot_votes(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + "/")
    wait_live(driver)
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#moves-ballot button.opt"), what="moves ballot")
    for _attempt in range(4):
        st = api_state(server)
        if st["moves"]["closes_in"] < 1.6:
            wait(driver, lambda d, r=st["moves"]["round"]: api_state(server)["moves"]["round"] != r, what="next moves")
            continue
        round_id = str(st["moves"]["round"])
        btn = driver.find_element(By.CSS_SELECTOR, '#moves-ballot button[data-id="energy_up"]')
        btn.click()

        def pressed(d, btn=btn, round_id=round_id):
            if d.find_element(By.ID, "moves-ballot").get_attribute("data-round") != round_id:
                return "rolled"
            return (
                "ok"
                if btn.get_attribute("aria-pressed") == "true" and int(btn.get_attribute("data-count")) > 0
                else False
            )

        if wait(driver, pressed, what="move vote pressed") == "ok":
            break
    else:
        pytest.fail("the moves round closed before the vote could be seen four times running")
    wait(driver, lambda d: any("Move vote counted" in s for s in said(d)), what="move vote announced")


def test_suggestions_refused_added_and_upvoted(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + "/")
    wait_live(driver)
    # a suggestion with upvotes is promoted onto the next direction ballot (and leaves the list):
    # start early in a direction round so the list is stable while we look at it
    fresh_direction_round(server)
    box = driver.find_element(By.ID, "suggest-input")
    # naming an artist is refused; the server's reason is shown and announced
    box.send_keys("in the style of Daft Punk")
    driver.find_element(By.ID, "suggest-send").click()
    err = driver.find_element(By.ID, "suggest-error")
    wait(driver, lambda d: err.is_displayed() and err.text.strip(), what="refusal shown")
    assert box.get_attribute("aria-invalid") == "true"
    assert "suggest-error" in box.get_attribute("aria-describedby")
    wait(driver, lambda d: any("not accepted" in s for s in said(d)), what="refusal announced")
    shot(driver, "audience_refused")
    # a normal suggestion lands in the list
    text = f"warm rolling dub techno {int(time.time()) % 10000}"
    box.clear()
    box.send_keys(text)
    wait(driver, lambda d: not err.is_displayed(), what="error cleared on typing")
    box.submit()
    wait(
        driver,
        lambda d: any(e.text == text for e in d.find_elements(By.CSS_SELECTOR, "#suggestions .sug-text")),
        what="suggestion listed",
    )
    wait(driver, lambda d: box.get_attribute("value") == "", what="input cleared")
    wait(driver, lambda d: any("Thanks" in s for s in said(d)), what="suggestion announced")

    def row_button(d):
        for li in d.find_elements(By.CSS_SELECTOR, "#suggestions li"):
            if li.find_element(By.CSS_SELECTOR, ".sug-text").text == text:
                return li.find_element(By.CSS_SELECTOR, "button.upvote")
        return None

    up = wait(driver, row_button, what="upvote button")
    assert text in up.accessible_name and "upvote" in up.accessible_name.lower(), up.accessible_name
    assert up.get_attribute("aria-pressed") == "false"
    before = int(up.get_attribute("data-count"))
    up.click()
    wait(driver, lambda d: row_button(d).get_attribute("aria-pressed") == "true", what="upvote pressed")
    wait(driver, lambda d: any("Upvoted" in s for s in said(d)), what="upvote announced")
    # another phone upvotes: the count moves on this page
    sid = row_button(driver).get_attribute("data-id")
    with ws_client(server) as ws:
        reply = ws_request(ws, {"type": "upvote", "suggestion": sid})
        assert reply["type"] == "ack", reply
    wait(driver, lambda d: int(row_button(d).get_attribute("data-count")) >= before + 1, what="upvote count moved")
    shot(driver, "audience_suggested")
    assert not console_errors(driver), console_errors(driver)


def test_words_without_a_genre_are_understood_and_the_phone_is_told(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + "/")
    wait_live(driver)
    fresh_direction_round(server)  # a new song: this phone's suggestion budget is fresh
    box = driver.find_element(By.ID, "suggest-input")
    box.clear()
    box.send_keys("rainy day piano")
    box.submit()

    def row(d):
        for li in d.find_elements(By.CSS_SELECTOR, "#suggestions li"):
            if li.find_element(By.CSS_SELECTOR, ".sug-text").text == "rainy day piano":
                return li
        return None

    li = wait(driver, row, what="the suggestion listed")
    read = li.find_element(By.CSS_SELECTOR, ".sug-read")
    assert read.is_displayed() and read.text == "understood as Lo-fi", read.text
    assert "understood as Lo-fi" in li.find_element(By.CSS_SELECTOR, "button.upvote").accessible_name
    wait(driver, lambda d: any("Understood as Lo-fi" in s for s in said(d)), what="the reading announced")
    assert not console_errors(driver), console_errors(driver)


# ---------------------------------------------------------------- listener


def test_listen_page_plays_the_stream(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + "/listen")
    audio = driver.find_element(By.CSS_SELECTOR, "audio")
    assert audio.get_attribute("src").startswith(server + "/stream")
    assert driver.execute_script("return arguments[0].canPlayType('audio/mpeg')", audio) in ("maybe", "probably")
    assert audio.get_attribute("controls") is not None  # native volume
    wait(driver, lambda d: d.find_element(By.ID, "np-genre").text not in ("", "—"), what="now playing")
    played = wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#played li"), what="the recent setlist")
    assert "the opening" in played[-1].text or "choice" in played[-1].text, played[-1].text
    assert not driver.find_element(By.ID, "played-empty").is_displayed()
    links = {a.get_attribute("href").removeprefix(server) for a in driver.find_elements(By.CSS_SELECTOR, ".players a")}
    assert links == {"/stream", "/stream.opus"}
    a11y_smoke(driver)
    assert not small_targets(driver), small_targets(driver)
    assert not overflowing(driver), overflowing(driver)
    shot(driver, "listen")
    play = driver.find_element(By.ID, "play")
    assert play.accessible_name.strip() == "Play"
    play.click()
    wait(driver, lambda d: play.get_attribute("data-state") != "idle", what="player started")
    wait(
        driver,
        lambda d: d.execute_script("return arguments[0].currentTime", audio) > 0.3,
        timeout=30,
        what="stream audio advancing",
    )
    assert "/stream" in audio.get_attribute("src")
    assert play.accessible_name.strip() == "Stop"
    assert driver.find_element(By.ID, "player-status").text == "Playing live"
    shot(driver, "listen_playing")
    play.click()
    wait(driver, lambda d: play.get_attribute("data-state") == "idle", what="player stopped")
    assert driver.execute_script("return arguments[0].paused", audio)
    assert not console_errors(driver), console_errors(driver)


# ---------------------------------------------------------------- DJ


def test_dj_without_token_shows_auth_error(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + "/")  # same origin, to clear any stored token
    driver.execute_script("sessionStorage.clear()")
    open_page(driver, server + "/dj")
    err = driver.find_element(By.ID, "auth-error")
    wait(driver, lambda d: err.is_displayed(), what="auth error")
    assert "token" in err.text.lower() and "not authorized" in err.text.lower()
    # a wrong token is refused by the server (401) and said so
    open_page(driver, server + "/dj?token=wrong")
    wait(driver, lambda d: "token" not in d.current_url, what="token moved out of the address bar")
    err = driver.find_element(By.ID, "auth-error")
    wait(driver, lambda d: err.is_displayed() and "401" in err.text, what="401 shown as the console loads")
    assert api_state(server)["voting"] == "open"
    assert _post(server + "/api/dj/voting", {"voting": "paused"}, token=None)[0] == 401
    driver.execute_script("sessionStorage.clear()")


def test_dj_console_shows_the_sound_and_who_listens(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + f"/dj?token={DJ_TOKEN}")
    wait(driver, lambda d: d.find_element(By.ID, "h-status").text == "ok", what="health on the console")
    assert driver.find_element(By.ID, "h-audible").text == "the synth backend"
    assert float(driver.find_element(By.ID, "h-buffered").text.removesuffix(" s")) > 0
    assert driver.find_element(By.ID, "h-dropped").text == "0.0 s"
    before = driver.find_element(By.ID, "h-listeners").text
    with httpx.stream("GET", f"{server}/stream.opus", timeout=30) as r:  # a listener in a media player
        chunks = r.iter_bytes()  # kept: a dropped iterator closes the response
        next(chunks)
        wait(
            driver,
            lambda d: (
                d.find_element(By.ID, "h-listeners").text != before
                and "1 Opus" in d.find_element(By.ID, "h-listeners").text
            ),
            timeout=15,
            what=f"the Opus listener counted (it said {before!r})",
        )


def test_dj_console_pauses_the_audience(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + f"/dj?token={DJ_TOKEN}")
    wait(driver, lambda d: "token" not in d.current_url, what="token moved out of the address bar")
    qr = driver.find_element(By.ID, "qr")
    wait(
        driver,
        lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", qr),
        what="QR image loaded",
    )
    assert qr.get_attribute("alt").startswith("QR code to join: http")
    wait(driver, lambda d: d.find_element(By.ID, "s-bar").text.isdigit(), what="live state")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#dj-options li"), what="ballot on the console")
    assert driver.find_element(By.ID, "join-url").text
    assert not driver.find_element(By.ID, "auth-error").is_displayed()
    a11y_smoke(driver)
    assert not overflowing(driver), overflowing(driver)
    assert not small_targets(driver), small_targets(driver)
    shot(driver, "dj_phone")
    desktop(driver)
    shot(driver, "dj_desktop")
    driver.find_element(By.ID, "project-btn").click()
    wait(driver, lambda d: d.find_element(By.ID, "projector").is_displayed(), what="join screen")
    shot(driver, "dj_projector")
    driver.find_element(By.ID, "proj-close").click()
    wait(driver, lambda d: not d.find_element(By.ID, "projector").is_displayed(), what="join screen closed")
    phone(driver, *PHONE)

    dj = driver.current_window_handle
    driver.switch_to.new_window("tab")
    audience = driver.current_window_handle
    try:
        phone(driver, *PHONE)  # emulation is per tab
        open_page(driver, server + "/")
        wait_live(driver)
        assert not driver.find_element(By.ID, "paused").is_displayed()
        driver.switch_to.window(dj)
        btn = driver.find_element(By.ID, "voting-btn")
        assert btn.text == "Pause voting"
        btn.click()
        wait(driver, lambda d: btn.text == "Resume voting", what="console shows paused")
        wait(driver, lambda d: "paused" in d.find_element(By.ID, "ctl-msg").text.lower(), what="console message")
        assert api_state(server)["voting"] == "paused"
        driver.switch_to.window(audience)
        wait(driver, lambda d: d.find_element(By.ID, "paused").is_displayed(), what="audience shows paused")
        assert "paused" in driver.find_element(By.ID, "paused").text.lower()
        wait(driver, lambda d: any("paused" in s.lower() for s in said(d)), what="pause announced")
        shot(driver, "audience_paused")
        # a tap while paused is not sent, and says why
        option(driver, "dir-ballot").click()
        wait(driver, lambda d: any("not sent" in s for s in said(d)), what="paused tap explained")
        assert option(driver, "dir-ballot").get_attribute("aria-disabled") == "true"
        driver.switch_to.window(dj)
        btn.click()
        wait(driver, lambda d: btn.text == "Pause voting", what="console shows open")
        driver.switch_to.window(audience)
        wait(driver, lambda d: not d.find_element(By.ID, "paused").is_displayed(), what="audience shows open")
    finally:
        _post(server + "/api/dj/voting", {"voting": "open"})
        driver.switch_to.window(audience)
        driver.close()
        driver.switch_to.window(dj)


def test_dj_mode_veto_skip_and_override(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + f"/dj?token={DJ_TOKEN}")
    wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#dj-options li"), what="ballot on the console")
    try:
        # mode switch
        driver.find_element(By.CSS_SELECTOR, 'input[name="mode"][value="blend"]').find_element(By.XPATH, "..").click()
        wait(driver, lambda d: api_state(server)["mode"] == "blend", what="mode blend")
        wait(driver, lambda d: d.find_element(By.ID, "s-mode").text == "blend", what="console shows blend")
    finally:
        _post(server + "/api/dj/mode", {"mode": "democracy"})
    # skip closes the direction round now
    before = api_state(server)["round"]
    driver.find_element(By.ID, "skip-btn").click()
    wait(driver, lambda d: api_state(server)["round"] != before, what="round skipped")
    # veto an option: it leaves the ballot
    for _attempt in range(4):
        st = wait_round_time(server)
        vetoable = [o for o in st["options"] if o["kind"] != "stay"]
        assert vetoable, st["options"]
        victim = vetoable[-1]
        name = f"Veto {victim['label']}"
        try:
            button = wait(
                driver,
                lambda d, name=name: next(
                    (b for b in d.find_elements(By.CSS_SELECTOR, "#dj-options li button") if b.accessible_name == name),
                    None,
                ),
                timeout=5,
                what=f"button {name!r}",
            )
            button.click()
        except (StaleElementReferenceException, TimeoutException):
            continue  # the ballot moved on under us
        break
    else:
        pytest.fail("could not reach a veto button four times running")
    ctl = driver.find_element(By.ID, "ctl-msg")
    wait(driver, lambda d: ctl.text.startswith(("Vetoed", "Failed")), what="veto answered")
    assert ctl.text.startswith("Vetoed"), ctl.text
    after = api_state(server)
    assert victim["id"] not in [o["id"] for o in after["options"]] or after["round"] != st["round"]
    # override the prompt
    style = driver.find_element(By.CSS_SELECTOR, "#prompt-rows input[type=text]")
    style.clear()
    style.send_keys("techno")
    driver.find_element(By.ID, "p-bpm").send_keys("130")
    driver.find_element(By.CSS_SELECTOR, "#prompt-form button[type=submit]").click()
    msg = driver.find_element(By.ID, "prompt-msg")
    wait(driver, lambda d: msg.text.startswith(("Now playing", "Failed")), what="override answered")
    assert msg.text.startswith("Now playing"), msg.text
    wait(driver, lambda d: any(p["style"] == "techno" for p in api_state(server)["prompt"]), what="prompt applied")
    shot(driver, "dj_after")


def test_dj_booth_locks_drops_blocks_and_draws_the_last_hour(server: str, driver: webdriver.Chrome) -> None:
    open_page(driver, server + f"/dj?token={DJ_TOKEN}")
    desktop(driver)
    wait(driver, lambda d: d.find_element(By.ID, "s-bar").text.isdigit(), what="live state")
    try:
        name = driver.find_element(By.ID, "operator")
        name.clear()
        name.send_keys("Zoë", Keys.TAB)  # any script: it travels percent-encoded
        style = driver.find_element(By.ID, "lock-style")
        style.send_keys("techno")
        bars = driver.find_element(By.ID, "lock-bars")
        bars.clear()
        bars.send_keys("8")
        driver.find_element(By.CSS_SELECTOR, "#lock-form button[type=submit]").click()
        status = driver.find_element(By.ID, "lock-status")
        wait(driver, lambda d: status.text.startswith("Locked: "), what="lock shown")
        assert api_state(server)["locked"]["style"] == "techno"
        driver.find_element(By.ID, "drop-btn").click()
        ctl = driver.find_element(By.ID, "ctl-msg")
        wait(driver, lambda d: "drop on bar" in ctl.text, what="drop answered")
        panic = driver.find_element(By.ID, "panic-btn")
        wait(driver, lambda d: not panic.is_enabled(), what="panic unavailable on a synth set")
        assert "synth itself" in driver.find_element(By.ID, "panic-note").text
        word = driver.find_element(By.ID, "block-word")
        word.send_keys("wobbly")
        driver.find_element(By.CSS_SELECTOR, "#block-form button[type=submit]").click()
        wait(driver, lambda d: "wobbly" in d.find_element(By.ID, "blocked").text, what="word listed")
        log = driver.find_element(By.ID, "booth-log")
        wait(driver, lambda d: "Zoë@127.0.0.1 · blocklist" in log.text, timeout=15, what=f"booth log {log.text!r}")
        assert "Zoë@127.0.0.1 · lock techno for 8 bars" in log.text and "drop" in log.text
        summary = driver.find_element(By.ID, "plot-summary")
        wait(driver, lambda d: "Techno" in summary.text, timeout=20, what=f"the lock in the plot {summary.text!r}")
        assert summary.text.startswith("Last ") and "BPM" in summary.text
        assert driver.find_elements(By.CSS_SELECTOR, "#plot svg polygon"), "no genre bands drawn"
        assert driver.find_elements(By.CSS_SELECTOR, "#plot svg polyline"), "no tempo line drawn"
        a11y_smoke(driver)
        shot(driver, "dj_booth")
        driver.find_element(By.ID, "unlock-btn").click()
        wait(driver, lambda d: status.text == "Not locked.", what="unlocked")
        unblock = driver.find_element(By.CSS_SELECTOR, "#blocked button")
        assert unblock.accessible_name == "Unblock wobbly"
        unblock.click()
        wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, "#blocked li"), what="word unblocked")
    finally:
        _post(server + "/api/dj/lock", {"bars": 0})
        _post(server + "/api/dj/blocklist", {"remove": ["wobbly"]})
        phone(driver, *PHONE)


AXE = Path(os.environ.get("CONCERT_AXE", Path(__file__).resolve().parents[2] / ".cache" / "axe-core" / "axe.min.js"))


def axe_violations(drv: webdriver.Chrome) -> list[str]:
    """axe-core's WCAG 2 A/AA violations on the page as it is now: "rule: target" lines."""
    if not AXE.is_file():
        pytest.fail(f"axe-core is not at {AXE}: `bash .ci/setup` fetches it (npm pack axe-core)")
    drv.execute_script(AXE.read_text())
    result = drv.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        ".then(r => done(r.violations.map(v => v.id + ': ' + v.nodes.map(n => n.target.join(' ')).join(', '))))"
        ".catch(e => done(['axe failed: ' + e]));"
    )
    return list(result)


@pytest.mark.parametrize("page", ["/", "/listen", f"/dj?token={DJ_TOKEN}"])
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_has_no_axe_violations(server: str, driver: webdriver.Chrome, page: str, scheme: str) -> None:
    driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": scheme}]}
    )
    try:
        open_page(driver, server + page)
        wait(driver, lambda d: d.find_element(By.ID, "conn").get_attribute("data-state") == "open", what="live")
        time.sleep(1.0)  # the first state frames and the console's first history poll have landed
        assert axe_violations(driver) == []
    finally:
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def test_a_vote_by_keyboard_alone(server: str, driver: webdriver.Chrome) -> None:
    """Tab to an option and press Space: the vote is sent, pressed and announced, no pointer involved."""
    open_page(driver, server + "/")
    wait_live(driver)
    for _attempt in range(4):
        wait_round_time(server)
        round_id = driver.find_element(By.ID, "dir-ballot").get_attribute("data-round")
        target = driver.find_elements(By.CSS_SELECTOR, "#dir-ballot button.opt")[-1]
        driver.execute_script("document.activeElement && document.activeElement.blur(); window.scrollTo(0, 0)")
        for _ in range(60):  # Tab through the page until the option has the focus
            ActionChains(driver).send_keys(Keys.TAB).perform()
            if driver.switch_to.active_element == target:
                break
        assert driver.switch_to.active_element == target, "the option cannot be reached with Tab"
        ActionChains(driver).send_keys(Keys.SPACE).perform()

        def pressed(d, target=target, round_id=round_id):
            if d.find_element(By.ID, "dir-ballot").get_attribute("data-round") != round_id:
                return "rolled"
            return "ok" if target.get_attribute("aria-pressed") == "true" else False

        if wait(driver, pressed, what="keyboard vote pressed") == "ok":
            break
    else:
        pytest.fail("the round closed before the keyboard vote could be seen four times running")
    wait(driver, lambda d: any("Vote counted" in s for s in said(d)), what="keyboard vote announced")


def test_the_set_report_page_has_no_axe_violations(driver: webdriver.Chrome, tmp_path: Path) -> None:
    from concert.playback.soak import SoakConfig, run_soak
    from concert.report.page import report

    run_soak(SoakConfig(hours=0.03, record=tmp_path))
    done = report(tmp_path)
    driver.get(done.page.as_uri())
    images = driver.find_elements(By.CSS_SELECTOR, "img")
    assert len(images) == 2 and all(img.get_attribute("naturalWidth") != "0" for img in images)  # they decode
    assert axe_violations(driver) == []
    shot(driver, "report")
