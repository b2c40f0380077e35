"""End to end in real headless Chromium (Debian ``chromium`` + ``chromedriver``, driven by Selenium).

The page gets a fake webcam playing a YUV4MPEG2 video made here from the public-domain NASA
astronaut portrait (the face drifts a few pixels per frame, looped by Chromium). The test sees a
labelled box drawn over the video, sees the assistant's speech request fired (speechSynthesis is
spied on before any page script runs), in English and in Vietnamese, checks the mute switch, the
phone layout, and the image upload; screenshots are saved under ``build/test-artifacts/``
(or ``$EMOLENS_TEST_ARTIFACTS``).

Install the browser with ``.ci/install-web-deps.sh``; without it these tests skip, saying so.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("selenium", reason="selenium not installed (pip install -e '.[test]')")

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)

pytestmark = [
    pytest.mark.skipif(CHROMIUM is None or CHROMEDRIVER is None,
                       reason="Debian chromium/chromedriver not installed (run .ci/install-web-deps.sh)"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("EMOLENS_TEST_ARTIFACTS", REPO / "build" / "test-artifacts")).resolve()

#: Installed before any page script: records every utterance the page asks for (and still speaks it).
SPEECH_SPY = r"""
window.__spoken = [];
(function () {
  function record(u) { window.__spoken.push({ text: u && u.text, lang: u && u.lang, at: Date.now() }); }
  if (window.speechSynthesis && window.speechSynthesis.speak) {
    const real = window.speechSynthesis.speak.bind(window.speechSynthesis);
    window.speechSynthesis.speak = function (u) { record(u); try { return real(u); } catch (e) {} };
  } else {
    window.SpeechSynthesisUtterance = window.SpeechSynthesisUtterance || function (t) { this.text = t; };
    window.speechSynthesis = { speak: record, cancel: function () {}, getVoices: function () { return []; },
                               addEventListener: function () {} };
  }
})();
"""


def write_y4m(path: Path, n_frames: int = 30, size=(640, 480)) -> Path:
    """A YUV4MPEG2 (4:2:0) clip of the astronaut's face drifting in a small circle."""
    import cv2

    from emolens.assets import face_frame

    w, h = size
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F15:1 Ip A1:1 C420jpeg\n".encode())
        for i in range(n_frames):
            angle = 2 * np.pi * i / n_frames
            rgb = face_frame(1, size=size, offset=(int(10 * np.cos(angle)), int(6 * np.sin(angle))))
            f.write(b"FRAME\n")
            f.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


@pytest.fixture(scope="module")
def server(tiny_model):
    from emolens.serve import ServeSettings, create_app
    from emolens.serve.background import serve_in_thread

    # EMOLENS_TEST_SERVE_MODEL=ferplus runs the page against a trained model (default: the tiny random one)
    app = create_app(ServeSettings(model=os.environ.get("EMOLENS_TEST_SERVE_MODEL") or str(tiny_model)))
    with serve_in_thread(app) as running:
        running.model_name = app.state.engine.info["name"]
        yield running


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    work = tmp_path_factory.mktemp("chromium")
    video = write_y4m(work / "face.y4m")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-quic",
                "--no-first-run", "--disable-sync", "--disable-extensions", "--mute-audio",
                "--autoplay-policy=no-user-gesture-required",
                f"--user-data-dir={tempfile.mkdtemp(dir=work, prefix='profile-')}",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-video-capture={video}", "--window-size=1280,900"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER, log_output=str(work / "chromedriver.log")),
                              options=opts)
    driver.set_page_load_timeout(30)
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": SPEECH_SPY})
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = 30.0, what: str = ""):
    """Poll a JS expression until it is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = driver.execute_script("return (" + script + ");")
        if value:
            return value
        time.sleep(0.2)
    state = driver.execute_script("return JSON.stringify(window.emolens && window.emolens.state || null).slice(0, 1500);")
    logs = ""
    try:
        logs = "\n".join(str(e) for e in driver.get_log("browser"))[-2000:]
    except Exception:
        pass
    raise AssertionError(f"timed out waiting for {what or script}\npage state: {state}\nbrowser log: {logs}")


#: Counts pixels of the overlay canvas close to the colour of the drawn label's box.
BOX_PIXELS = r"""
const cv = document.getElementById(arguments[0]);
const hex = arguments[1];
const want = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
const d = cv.getContext('2d').getImageData(0, 0, cv.width, cv.height).data;
let n = 0;
for (let i = 0; i < d.length; i += 4) {
  if (d[i + 3] > 200 && Math.abs(d[i] - want[0]) < 8 && Math.abs(d[i + 1] - want[1]) < 8 && Math.abs(d[i + 2] - want[2]) < 8) n++;
}
return n;
"""
COLORS = {"angry": "#e5484d", "disgust": "#6e8f0b", "fear": "#8e4ec6", "happy": "#f5b700", "sad": "#3e63dd",
          "surprise": "#f76b15", "neutral": "#8b8d98", "contempt": "#12a594"}


def full_screenshot(driver, path: Path) -> None:
    """The whole page, below the fold too (timeline included), as PNG."""
    import base64

    size = driver.execute_script("return [document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
    shot = driver.execute_cdp_cmd("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1}})
    path.write_bytes(base64.b64decode(shot["data"]))


def open_page(driver, server, query: str):
    driver.get(f"{server.url}/?{query}")
    wait_for(driver, "window.emolens && document.readyState === 'complete'", 20, "the page script")


def test_every_expression_has_texts_in_both_languages(browser, server):
    open_page(browser, server, "lang=en")
    texts = browser.execute_script("return window.emolens.texts")
    assert set(texts) == {"en", "vi"}
    for lang, t in texts.items():
        for label in COLORS:
            assert t["names"][label], (lang, label)
            assert len(t["replies"][label]) >= 1 and all(t["replies"][label]), (lang, label)
    assert set(texts["en"]) == set(texts["vi"])  # every UI string is translated


def test_live_webcam_box_label_and_spoken_reply(browser, server):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.set_window_size(1280, 900)
    open_page(browser, server, "lang=en&hold=500&cooldown=2000&minconf=0&fps=6")
    # before the camera starts the pill says so; "offline" is kept for a lost connection
    assert browser.find_element("id", "conn").text == "camera off"
    browser.find_element("id", "start").click()   # a click: speech needs a user gesture in Chrome

    wait_for(browser, "window.emolens.state.connected", 20, "the WebSocket")
    assert browser.find_element("id", "conn").text == "live"
    faces = wait_for(browser, "window.emolens.state.facesDrawn > 0 && window.emolens.state.lastResult.faces",
                     60, "a face box from the fake webcam")
    face = faces[0]
    assert face["label"] in COLORS and face["track_id"] is not None
    x1, _y1, x2, _y2 = face["box"]
    assert 150 < (x1 + x2) / 2 < 330  # the face is in the middle of the 480-px-wide frame sent

    # the box and its label are really painted on the overlay, in the label's colour
    wait_for(browser, "window.emolens.state.lastResult.faces.length > 0", 20)
    label = browser.execute_script("return window.emolens.state.lastResult.faces[0].label")
    painted = browser.execute_script(BOX_PIXELS, "overlay", COLORS[label])
    assert painted > 200, f"only {painted} pixels of the {label} box colour on the overlay"
    shown = browser.find_element("id", "top-label").text.lower()
    assert shown == label

    # the expression held: the assistant asked the browser to speak, in English
    spoken = wait_for(browser, "window.__spoken.length > 0 && window.__spoken", 30, "a speechSynthesis.speak call")
    assert spoken[0]["lang"] == "en-US" and spoken[0]["text"]
    assert browser.find_element("id", "say").text == spoken[0]["text"]
    # bars and the timeline follow the session
    assert browser.execute_script("return window.emolens.state.timeline.length") > 0
    widths = browser.execute_script(
        "return [...document.querySelectorAll('#bars .fill')].map(e => parseFloat(e.style.width))")
    n_classes = browser.execute_script("return window.emolens.state.classes.length")
    assert len(widths) == n_classes and abs(sum(widths) - 100) < 2
    assert browser.execute_script("return document.getElementById('live-empty').offsetParent === null")
    full_screenshot(browser, ARTIFACTS / "web-live.png")
    assert (ARTIFACTS / "web-live.png").stat().st_size > 10_000

    # cool-down: no chatter; replies are at least `cooldown` ms apart
    time.sleep(2.5)
    times = [s["at"] for s in browser.execute_script("return window.__spoken")]
    assert all(b - a >= 1900 for a, b in itertools.pairwise(times)), times

    # Vietnamese, chosen on the page
    from selenium.webdriver.support.ui import Select

    before = browser.execute_script("return window.__spoken.length")
    Select(browser.find_element("id", "lang")).select_by_value("vi")
    vi = wait_for(browser, f"window.__spoken.length > {before} && window.__spoken[window.__spoken.length - 1]",
                  30, "a Vietnamese reply")
    assert vi["lang"] == "vi-VN"
    assert any(ch in vi["text"] for ch in "ạảãàáâầấậẩẫăằắặẳẵđêềếệểễôồốộổỗơờớợởỡưừứựửữ")
    assert browser.find_element("id", "tab-live").text == "Camera trực tiếp"

    # mute: replies still appear as text, but nothing more is spoken
    browser.find_element("css selector", "label.switch").click()
    assert browser.execute_script("return document.getElementById('mute').checked")
    n_spoken = browser.execute_script("return window.__spoken.length")
    n_replies = browser.execute_script("return window.emolens.state.spoken.length")
    wait_for(browser, f"window.emolens.state.spoken.length > {n_replies}", 30, "a muted reply")
    assert browser.execute_script("return window.__spoken.length") == n_spoken
    full_screenshot(browser, ARTIFACTS / "web-live-vi-muted.png")
    browser.find_element("id", "stop").click()
    assert browser.find_element("id", "conn").text == "camera tắt"
    Select(browser.find_element("id", "lang")).select_by_value("en")
    assert browser.find_element("id", "conn").text == "camera off"


def test_phone_layout_and_image_upload(browser, server):
    from emolens.assets import ASTRONAUT

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # a phone: 390x844 CSS pixels, touch, overlay scrollbars
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    browser.execute_cdp_cmd("Emulation.setTouchEmulationEnabled", {"enabled": True, "maxTouchPoints": 5})
    open_page(browser, server, "lang=en")
    width = browser.execute_script("return window.innerWidth")
    assert width <= 420
    # one column, nothing wider than the screen
    dims = browser.execute_script("const d = document.documentElement; return [d.scrollWidth, d.clientWidth, "
                                  "Math.max(...[...document.querySelectorAll('.card, .bar')].map(e => e.getBoundingClientRect().right))]")
    assert dims[0] <= dims[1] and dims[2] <= dims[1] + 0.5, dims
    stage = browser.execute_script("return document.querySelector('.stage').getBoundingClientRect().toJSON()")
    side = browser.execute_script("return document.querySelector('.side').getBoundingClientRect().toJSON()")
    assert side["top"] >= stage["bottom"] - 1 and stage["width"] > 0.85 * width

    browser.find_element("id", "tab-image").click()
    browser.find_element("id", "file").send_keys(str(ASTRONAUT))
    data = wait_for(browser, "window.emolens.state.lastUpload", 30, "the upload's answer")
    assert len(data["faces"]) == 1 and data["model"]["name"] == server.model_name
    label = data["faces"][0]["label"]
    assert browser.execute_script(BOX_PIXELS, "still-overlay", COLORS[label]) > 100
    assert "1 face" in browser.find_element("id", "image-msg").text
    full_screenshot(browser, ARTIFACTS / "web-phone-upload.png")

    # a file that is not an image: the page shows the JSON error's message
    bad = ARTIFACTS / "not-an-image.png"
    bad.write_bytes(b"this is text")
    browser.find_element("id", "file").send_keys(str(bad))
    msg = wait_for(browser, "document.getElementById('image-msg').classList.contains('error') && "
                            "document.getElementById('image-msg').textContent", 20, "the error message")
    assert "415" in msg
    # and nothing of the previous picture is left: no boxes or labels, no broken image, no face list or bars
    assert browser.execute_script(BOX_PIXELS, "still-overlay", COLORS[label]) == 0
    assert browser.execute_script("return window.emolens.state.lastUpload") is None
    assert browser.execute_script("return window.emolens.state.layout['still-overlay']") is None
    assert not browser.find_element("id", "image-view").is_displayed()
    assert not browser.find_element("id", "image-result").is_displayed()
    assert browser.find_elements("css selector", "#face-list li") == []
    assert browser.find_element("id", "top-label").text == "–"
    bad.unlink()
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})


#: Checks the label rectangles drawn on an overlay: inside the picture, none over another. Returns a report.
LABEL_LAYOUT = r"""
const L = window.emolens.state.layout[arguments[0]];
if (!L) return null;
const b = L.bounds, eps = 0.5, out = { n: L.labels.length, outside: [], overlapping: [], stacked: 0 };
L.labels.forEach((r, i) => {
  if (r.x < b.x - eps || r.y < b.y - eps || r.x + r.w > b.x + b.w + eps || r.y + r.h > b.y + b.h + eps) out.outside.push(i);
  L.labels.forEach((q, j) => {
    if (j <= i) return;
    const xs = r.x < q.x + q.w && q.x < r.x + r.w, ys = r.y < q.y + q.h && q.y < r.y + r.h;
    if (xs && ys) out.overlapping.push([i, j]);
    if (xs && !ys) out.stacked++;          // side by side they would have collided: one was moved
  });
});
return out;
"""

#: Clicks the middle of face i's box on an overlay (as a user's click, at its screen position).
CLICK_FACE = r"""
const cv = document.getElementById(arguments[0]), L = window.emolens.state.layout[arguments[0]], b = L.boxes[arguments[1]];
const r = cv.getBoundingClientRect(), k = r.width / L.width;
cv.dispatchEvent(new MouseEvent('click', { bubbles: true, clientX: r.left + (b.x + b.w / 2) * k, clientY: r.top + (b.y + b.h / 2) * k }));
"""

#: Distinct colours among a canvas's opaque pixels (a blank thumbnail has one).
CANVAS_COLOURS = r"""
const d = arguments[0].getContext('2d').getImageData(0, 0, arguments[0].width, arguments[0].height).data;
const seen = new Set();
for (let i = 0; i < d.length; i += 4) if (d[i + 3] > 0) seen.add((d[i] >> 4) + ',' + (d[i + 1] >> 4) + ',' + (d[i + 2] >> 4));
return seen.size;
"""


def four_faces_png(path: Path) -> Path:
    """Four heads in a row at the top of a tall picture: shown small, their labels would collide, and
    the last one's would leave the picture at the right."""
    from PIL import Image

    from emolens.assets import face_frame

    canvas = np.full((900, 480, 3), 96, np.uint8)
    canvas[:200] = face_frame(4, size=(480, 200))
    Image.fromarray(canvas).save(path)
    return path


def assert_labels_placed(browser, canvas_id: str, n_faces: int) -> dict:
    report = browser.execute_script(LABEL_LAYOUT, canvas_id)
    assert report and report["n"] == n_faces, report
    assert report["outside"] == [] and report["overlapping"] == [], report
    return report


def test_upload_pauses_live_lists_faces_and_places_labels(browser, server, tmp_path):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    browser.set_window_size(1280, 900)
    browser.get_log("browser")                   # start from an empty browser log
    open_page(browser, server, "lang=en&fps=8&mute=1")
    browser.find_element("id", "start").click()
    wait_for(browser, "window.emolens.state.answered > 1", 60, "live answers")
    follow = browser.find_element("id", "follow").text
    assert follow.startswith("Face #") and "largest" in follow

    # the Image tab pauses the live stream: nothing sent, nothing drawn over the panel
    browser.find_element("id", "tab-image").click()
    assert browser.execute_script("return window.emolens.state.paused") is True
    time.sleep(0.6)                              # an answer to a frame already in flight may still come
    sent, answered = browser.execute_script("return [window.emolens.state.sent, window.emolens.state.answered]")
    picture = four_faces_png(tmp_path / "four.png")
    browser.find_element("id", "file").send_keys(str(picture))
    data = wait_for(browser, "window.emolens.state.lastUpload", 30, "the upload's answer")
    faces = data["faces"]
    assert len(faces) == 4
    time.sleep(1.5)
    assert browser.execute_script("return [window.emolens.state.sent, window.emolens.state.answered]") == [sent, answered]
    areas = [(f["box"][2] - f["box"][0]) * (f["box"][3] - f["box"][1]) for f in faces]
    big = areas.index(max(areas))
    top = browser.find_element("id", "top-label").text.lower()
    assert top == faces[big]["label"]                 # the upload's largest face, not the camera's
    assert browser.find_element("id", "follow").text == f"Face {big + 1}/4 · the largest (click a face to follow it)"

    # one entry per face: a thumbnail of its crop, its label, its top probabilities; and the JSON
    items = browser.find_elements("css selector", "#face-list li")
    assert len(items) == 4
    for i, (item, face) in enumerate(zip(items, faces)):
        assert browser.execute_script(CANVAS_COLOURS, item.find_element("css selector", "canvas.thumb")) > 20
        assert item.find_element("css selector", ".label").text.startswith(f"#{i + 1} {face['label']}")
        assert item.find_element("css selector", ".tops").text.count("%") == 3
    link = browser.find_element("id", "json-link")
    assert link.get_attribute("download").endswith(".json")
    fetched = browser.execute_async_script(
        "fetch(arguments[0]).then(r => r.json()).then(arguments[1], () => arguments[1](null))", link.get_attribute("href"))
    assert fetched and len(fetched["faces"]) == 4 and fetched["faces"][0]["box"] == faces[0]["box"]

    # labels: inside the picture, none over another (stacked where they would collide)
    report = assert_labels_placed(browser, "still-overlay", 4)
    assert report["stacked"] >= 1, report
    full_screenshot(browser, ARTIFACTS / "web-upload-desktop.png")

    # the panel follows the face clicked
    chosen = 2 if big != 2 else 1
    browser.execute_script(CLICK_FACE, "still-overlay", chosen)
    assert browser.find_element("id", "follow").text == f"Face {chosen + 1}/4 · chosen"
    assert "selected" in browser.find_elements("css selector", "#face-list li")[chosen].get_attribute("class")
    assert browser.find_element("id", "top-label").text.lower() == faces[chosen]["label"]

    # a phone: the same picture, labels still inside and apart
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
    wait_for(browser, "window.innerWidth <= 420 && window.emolens.state.layout['still-overlay'] && "
                      "window.emolens.state.layout['still-overlay'].width <= 840", 10, "the phone-sized redraw")
    assert_labels_placed(browser, "still-overlay", 4)
    full_screenshot(browser, ARTIFACTS / "web-upload-phone.png")
    browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})

    # a face under the server's --min-confidence: grey, "uncertain", and no crash on a label outside the classes
    browser.execute_script("const d = JSON.parse(JSON.stringify(window.emolens.state.lastUpload));"
                           "d.faces[0].label = 'uncertain'; window.emolens.showUpload(d);")
    assert browser.execute_script(BOX_PIXELS, "still-overlay", "#a1a1aa") > 100
    first = browser.find_elements("css selector", "#face-list li")[0]
    assert first.find_element("css selector", ".label").text == "#1 uncertain"
    browser.execute_script(CLICK_FACE, "still-overlay", 0)
    assert browser.find_element("id", "top-label").text.lower() == "uncertain"
    assert_labels_placed(browser, "still-overlay", 4)
    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE" and e.get("source") == "javascript"]
    assert errors == [], errors

    # back on the live tab the stream resumes
    browser.find_element("id", "tab-live").click()
    wait_for(browser, f"window.emolens.state.sent > {sent} && window.emolens.state.answered > {answered}", 30,
             "the stream to resume")
    assert browser.execute_script("return window.emolens.state.paused") is False
    browser.find_element("id", "stop").click()


def test_annotated_video_plays_in_chromium(browser, tiny_model, tmp_path):
    """`emolens video --out x.mp4` writes H.264 that a browser's <video> element decodes and plays."""
    import emolens
    from emolens.assets import face_frame
    from emolens.vision.video import VideoWriter
    from emolens.vision.video_job import process_video

    clip = tmp_path / "clip.mp4"
    with VideoWriter(clip, 15, 640, 480) as writer:
        for i in range(30):
            writer.write(face_frame(1, offset=(2 * i - 30, 0))[..., ::-1])
    out = tmp_path / "annotated.mp4"
    summary = process_video(emolens.Recognizer(model=str(tiny_model)), clip, out=out, progress=False)
    assert summary.frames_read == 30 and summary.faces == 30
    page = tmp_path / "player.html"
    page.write_text(f'<!doctype html><video id="v" src="{out.name}" muted playsinline></video>')
    browser.get(page.as_uri())
    wait_for(browser, "document.getElementById('v').readyState >= 2 || document.getElementById('v').error", 30,
             "the video to load")
    state = browser.execute_script("const v = document.getElementById('v');"
                                   "return {error: v.error && v.error.code, duration: v.duration,"
                                   " width: v.videoWidth, height: v.videoHeight};")
    assert state["error"] is None
    assert state["duration"] == pytest.approx(2.0, abs=0.1)        # 30 frames at 15 fps: finite and positive
    assert (state["width"], state["height"]) == (640, 480)
    browser.execute_script("document.getElementById('v').play();")
    wait_for(browser, "document.getElementById('v').currentTime > 0.2", 30, "the video to play")
