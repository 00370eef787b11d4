"""The web page in a real browser: Debian's chromium driven by Playwright, against ``orsanet serve``
on a free localhost port. A photo through the file input, and the live camera mode with a fake camera
that films the example photo. Skips when chromium or Playwright is absent."""

from __future__ import annotations

import base64
import json
import re
import socket
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.is_file():
    pytest.skip(f"no browser: {CHROMIUM} is absent (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright for Python is not installed")
uvicorn = pytest.importorskip("uvicorn", reason="uvicorn is not installed")
pytest.importorskip("fastapi", reason="FastAPI is not installed")

from orsanet.api import Recognizer  # noqa: E402
from orsanet.serve import create_app  # noqa: E402
from test_predict import ASTRONAUT  # noqa: E402

SCREENSHOT = Path("/tmp/serve_page.png")
CAMERA_SCREENSHOT = Path("/tmp/serve_camera.png")
BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]
# Pixels of the boxes the page draws (#35d05a), counted on a canvas.
GREEN_PIXELS = """(id) => {
  const canvas = document.getElementById(id);
  const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
  let count = 0;
  const near = (value, target) => Math.abs(value - target) < 20;
  for (let i = 0; i < pixels.length; i += 4) {
    if (near(pixels[i], 0x35) && near(pixels[i + 1], 0xd0) && near(pixels[i + 2], 0x5a)) count++;
  }
  return count;
}"""


def write_y4m(path: Path, image: Image.Image, frames: int = 10) -> Path:
    """A YUV4MPEG2 clip of ``image`` (4:2:0), the format chromium's fake camera plays from a file."""
    width, height = (side - side % 2 for side in image.size)
    y, cb, cr = (np.asarray(plane) for plane in image.crop((0, 0, width, height)).convert("YCbCr").split())
    half = (width // 2, height // 2)
    chroma = [np.asarray(Image.fromarray(plane).resize(half, Image.BILINEAR)).tobytes() for plane in (cb, cr)]
    frame = b"FRAME\n" + y.tobytes() + chroma[0] + chroma[1]
    path.write_bytes(f"YUV4MPEG2 W{width} H{height} F10:1 Ip A1:1 C420jpeg\n".encode() + frame * frames)
    return path


@pytest.fixture(scope="module")
def server():
    """``orsanet serve``'s app under uvicorn in a thread, on a free port of 127.0.0.1."""
    app = create_app(recognizer=Recognizer())
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)
    sock.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    camera = write_y4m(tmp_path_factory.mktemp("camera") / "astronaut.y4m", Image.open(ASTRONAUT).convert("RGB"))
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            *BROWSER_ARGS, f"--use-file-for-fake-video-capture={camera}"])
        yield browser
        browser.close()


@pytest.fixture()
def page(browser, server):
    """A fresh page on the server; ``page.requests`` lists every URL it asked for."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["camera"], origin=server)
    page = context.new_page()
    page.requests = []
    page.on("request", lambda request: page.requests.append(request.url))
    page.set_default_timeout(30_000)
    page.goto(server)
    yield page
    context.close()


def assert_only_local(page, server: str) -> None:
    outside = [url for url in page.requests if not url.startswith((server + "/", "data:", "blob:"))]
    assert not outside, f"the page asked for {outside}"


def test_a_photo_through_the_file_input_and_by_drag_and_drop(page, server):
    page.wait_for_function("() => document.getElementById('model').textContent.includes('expressions')")
    page.set_input_files("#file", str(ASTRONAUT))
    title = page.locator("#photo-faces .face h3")
    title.wait_for()
    assert title.count() == 1
    text = page.locator("#photo-faces").inner_text()
    assert "face 0: happiness" in title.inner_text() and "%" in text
    assert page.locator("#photo-faces .bar").count() == 8 and "contempt" in text
    assert page.locator("#photo-canvas").get_attribute("data-faces") == "1"
    assert page.evaluate(GREEN_PIXELS, "photo-canvas") > 200  # the box and the label were drawn
    assert "1 face(s)" in page.locator("#status").inner_text()
    page.screenshot(path=str(SCREENSHOT), full_page=True)
    drawn = "() => document.getElementById('photo-canvas').toDataURL()"
    before = page.evaluate(drawn)
    page.check("#show-heatmap")  # redrawn from the same answer, with the Grad-CAM cells
    assert page.evaluate(drawn) != before

    # a second photo dropped on the drop zone replaces the first
    masked = base64.b64encode((ASTRONAUT.parent / "astronaut_masked.jpg").read_bytes()).decode()
    files = page.evaluate_handle("""(data) => {
      const bytes = Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
      const transfer = new DataTransfer();
      transfer.items.add(new File([bytes], "astronaut_masked.jpg", { type: "image/jpeg" }));
      return transfer;
    }""", masked)
    page.dispatch_event("#drop", "drop", {"dataTransfer": files})
    page.locator("#status", has_text="astronaut_masked.jpg: 1 face(s)").wait_for()
    assert page.locator("#photo-faces .face h3").count() == 1
    assert_only_local(page, server)


def test_the_live_camera_sends_frames_and_labels_them(page, server):
    page.click("#tab-camera")
    page.click("#camera-start")
    page.wait_for_function("() => Number(document.getElementById('camera-stats').dataset.answered) >= 3")
    labels = json.loads(urllib.request.urlopen(f"{server}/v1/model").read())["labels"]
    shown = re.fullmatch(r"face 0: (\w+) \d+\.\d%", page.locator("#camera-faces .face h3").first.inner_text())
    assert shown and shown.group(1) in labels
    assert page.evaluate(GREEN_PIXELS, "camera-overlay") > 100  # labels drawn over the video
    page.screenshot(path=str(CAMERA_SCREENSHOT), full_page=True)
    page.click("#camera-stop")
    assert page.evaluate("document.getElementById('camera-video').srcObject") is None
    answered = int(page.locator("#camera-stats").get_attribute("data-answered"))
    sent = sum("/v1/predict" in url for url in page.requests)
    page.wait_for_timeout(1000)  # an answer still in flight is dropped, and no frame is sent any more
    assert int(page.locator("#camera-stats").get_attribute("data-answered")) == answered
    assert sum("/v1/predict" in url for url in page.requests) == sent
    assert page.locator("#camera-stats").inner_text() == "stopped"
    assert page.is_enabled("#camera-start") and not page.is_enabled("#camera-stop")
    assert_only_local(page, server)
