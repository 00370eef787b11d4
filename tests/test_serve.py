"""``orsanet serve``'s API through the ASGI app (httpx, no socket) with the packaged default model:
answers, limits and their JSON errors, the bounded queue, batching of concurrent requests, videos,
and a page that asks nothing of the internet."""

from __future__ import annotations

import asyncio
import base64
import inspect
import io
import re
import struct
import threading
import time
import zlib
from contextlib import asynccontextmanager
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from orsanet.api import Recognizer  # noqa: E402
from orsanet.serve import create_app, run  # noqa: E402
from orsanet.serve.app import STATIC  # noqa: E402
from test_predict import ASTRONAUT, write_video  # noqa: E402

ROW_KEYS = {"file", "frame", "face", "box", "expression", "confidence", "probabilities", "prior_valid",
            "detection_score", "error", "square"}


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    return Recognizer()


@pytest.fixture(scope="module")
def app(recognizer):
    app = create_app(recognizer=recognizer)
    yield app
    app.state.batcher.close()


@pytest.fixture()
def gated(recognizer, monkeypatch):
    """The recognizer's ``predict_many``, counting its calls (pictures per call) and holding the first
    call until ``gate`` is set."""
    original, calls, gate = recognizer.predict_many, [], threading.Event()

    def predict_many(images, explain=False):
        calls.append(len(images))
        if len(calls) == 1:
            assert gate.wait(30), "the test never opened the gate"
        return original(images, explain=explain)

    monkeypatch.setattr(recognizer, "predict_many", predict_many)
    yield calls, gate
    gate.set()


@asynccontextmanager
async def client_of(app):
    """An httpx client talking to ``app`` in this event loop; the app's batcher closed afterwards."""
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client
    finally:
        app.state.batcher.close()


def call(app, method: str, url: str, **kwargs) -> httpx.Response:
    async def one():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            return await client.request(method, url, **kwargs)

    return asyncio.run(one())


def upload(data: bytes, name: str = "photo.jpg", kind: str = "image/jpeg") -> dict:
    return {"files": {"file": (name, data, kind)}}


async def until(condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.01)


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code and body["error"]["message"]


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels (a decompression bomb's header, with no real data)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + chunk(b"IEND", b""))


def png_of(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_health_and_model(app, recognizer):
    health = call(app, "GET", "/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok" and health.json()["queue"] == 0
    info = call(app, "GET", "/v1/model").json()
    assert info["labels"] == recognizer.labels and "input_contract" in info and "orsanet_version" in info
    schema = call(app, "GET", "/openapi.json").json()
    assert {"/v1/predict", "/v1/health", "/v1/model"} <= set(schema["paths"])
    assert call(app, "GET", "/docs").status_code == 200
    assert_error(call(app, "GET", "/v1/nothing"), 404, "not_found")


def test_predict_the_example_photo(app, recognizer):
    response = call(app, "POST", "/v1/predict?annotated=true&explain=true&landmarks=true",
                    **upload(ASTRONAUT.read_bytes(), "astronaut.jpg"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["labels"] == recognizer.labels and body["image"] == {"width": 512, "height": 512}
    (face,) = body["faces"]
    assert ROW_KEYS | {"landmarks", "heatmap", "parsing"} == set(face)
    assert face["file"] == "astronaut.jpg" and face["frame"] is None and face["error"] is None
    assert face["expression"] == "happiness" and face["confidence"] > 0.5
    assert sum(face["probabilities"].values()) == pytest.approx(1.0, abs=1e-3)
    x0, y0, x1, y1 = face["box"]
    sx0, sy0, sx1, sy1 = face["square"]
    assert sx0 <= x0 < x1 <= sx1 and sx1 - sx0 == pytest.approx(sy1 - sy0, abs=0.2)
    # the default's prior network gives its 8 part centres (a mesh-prior model: 468 points), inside the square
    assert len(face["landmarks"]) == 8 and np.array(face["heatmap"]).shape == (7, 7)
    assert all(sx0 <= x <= sx1 and sy0 <= y <= sy1 for x, y in face["landmarks"])
    parsing = Image.open(io.BytesIO(base64.b64decode(face["parsing"].split(",", 1)[1])))
    assert parsing.format == "PNG" and parsing.mode == "RGBA"
    assert body["annotated"].startswith("data:image/png;base64,")
    annotated = Image.open(io.BytesIO(base64.b64decode(body["annotated"].split(",", 1)[1])))
    assert annotated.format == "PNG" and annotated.width == 512 and annotated.height > 512  # photo + a face panel


def test_a_plain_answer_options_as_form_fields_and_a_picture_without_a_face(app):
    body = call(app, "POST", "/v1/predict", **upload(ASTRONAUT.read_bytes())).json()
    assert set(body) == {"labels", "image", "faces"} and set(body["faces"][0]) == ROW_KEYS
    body = call(app, "POST", "/v1/predict", **upload(ASTRONAUT.read_bytes()), data={"landmarks": "true"}).json()
    assert set(body["faces"][0]) == ROW_KEYS | {"landmarks"}
    flat = png_of(Image.new("RGB", (160, 120), (120, 130, 140)))
    body = call(app, "POST", "/v1/predict", **upload(flat, "flat.png", "image/png")).json()
    assert body["faces"] == [] and body["image"] == {"width": 160, "height": 120}


def test_uploads_that_are_not_pictures(app):
    assert_error(call(app, "POST", "/v1/predict", **upload(b"", "empty.jpg")), 400, "empty_upload")
    assert_error(call(app, "POST", "/v1/predict", **upload(b"just some text\n", "notes.txt", "text/plain")),
                 415, "unsupported_media_type")
    playlist = b"#EXTM3U\n#EXTINF:1,\nhttp://127.0.0.1:9/segment.ts\n"  # FFmpeg must never follow it
    assert_error(call(app, "POST", "/v1/predict", **upload(playlist, "list.m3u8")), 415, "unsupported_media_type")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"  # PIL would hand it to Ghostscript
    assert_error(call(app, "POST", "/v1/predict", **upload(eps, "drawing.eps")), 415, "unsupported_media_type")
    mp4 = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 200
    assert_error(call(app, "POST", "/v1/predict", **upload(mp4, "clip.mp4", "video/mp4")), 400, "corrupt_video")
    noise = np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes()
    assert_error(call(app, "POST", "/v1/predict", **upload(noise, "noise.bin")), 415, "unsupported_media_type")
    truncated = ASTRONAUT.read_bytes()[:5000]
    assert_error(call(app, "POST", "/v1/predict", **upload(truncated)), 400, "corrupt_image")
    assert_error(call(app, "POST", "/v1/predict", **upload(b"\x89PNG\r\n\x1a\nnot really a png")), 400,
                 "corrupt_image")
    assert_error(call(app, "POST", "/v1/predict"), 422, "invalid_request")
    assert_error(call(app, "POST", "/v1/predict?every=0", **upload(ASTRONAUT.read_bytes())), 422, "invalid_request")
    assert_error(call(app, "POST", "/v1/predict", **upload(ASTRONAUT.read_bytes()), data={"explain": "maybe"}), 422,
                 "invalid_request")


def test_size_limits(recognizer):
    small = create_app(recognizer=recognizer, max_upload_mb=0.02, max_pixels=1_000_000)
    photo = ASTRONAUT.read_bytes()  # 60 KB: over 0.02 MiB, under the multipart slack -> the route says so
    assert_error(call(small, "POST", "/v1/predict", **upload(photo)), 413, "upload_too_large")
    big = b"\xff" * 2_000_000  # refused from its Content-Length, before the body is read
    assert_error(call(small, "POST", "/v1/predict", **upload(big)), 413, "upload_too_large")
    # a streamed (chunked) body without a Content-Length is cut off once it passes the limit
    request = httpx.Request("POST", "http://test/v1/predict", files={"file": ("big.jpg", big, "image/jpeg")})
    body, kind = request.read(), request.headers["content-type"]

    async def chunks():
        for start in range(0, len(body), 65536):
            yield body[start:start + 65536]

    assert_error(call(small, "POST", "/v1/predict", content=chunks(), headers={"content-type": kind}), 413,
                 "upload_too_large")
    wide = png_of(Image.new("RGB", (1200, 1000), (90, 90, 90)))  # 1.2 MP, a small file
    assert len(wide) < 20_000
    assert_error(call(small, "POST", "/v1/predict", **upload(wide, "wide.png", "image/png")), 413, "image_too_large")
    bomb = png_header(30_000, 30_000)  # 900 MP claimed in 100 bytes: never decoded
    started = time.perf_counter()
    assert_error(call(small, "POST", "/v1/predict", **upload(bomb, "bomb.png", "image/png")), 413, "image_too_large")
    assert time.perf_counter() - started < 5
    small.state.batcher.close()


def test_a_short_video_gives_one_entry_per_sampled_frame(app, recognizer, tmp_path):
    astronaut = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    write_video(tmp_path / "clip.mp4", [astronaut] * 6)
    data = (tmp_path / "clip.mp4").read_bytes()
    response = call(app, "POST", "/v1/predict?every=2", **upload(data, "clip.mp4", "video/mp4"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["image"] == {"width": 512, "height": 512} and body["video"] == {"frames_read": 6, "every": 2}
    assert [frame["frame"] for frame in body["frames"]] == [0, 2, 4]
    for frame in body["frames"]:
        (face,) = frame["faces"]
        assert face["frame"] == frame["frame"] and face["expression"] in recognizer.labels
    short = create_app(recognizer=recognizer, max_video_frames=3, max_video_pixels=600_000)
    assert_error(call(short, "POST", "/v1/predict?every=1", **upload(data, "clip.mp4", "video/mp4")), 413,
                 "video_too_long")
    assert_error(call(short, "POST", "/v1/predict?every=2", **upload(data, "clip.mp4", "video/mp4")), 413,
                 "video_too_large")  # 3 frames of 512 x 512 > 0.6 megapixels
    short.state.batcher.close()


def test_concurrent_requests_are_batched(recognizer, gated):
    calls, gate = gated
    app = create_app(recognizer=recognizer, max_batch=8)
    batcher, photo = app.state.batcher, ASTRONAUT.read_bytes()

    async def scenario():
        async with client_of(app) as client:
            post = lambda: client.post("/v1/predict", **upload(photo))  # noqa: E731
            first = asyncio.create_task(post())
            await until(lambda: batcher.running == 1)  # the first request holds the model ...
            others = [asyncio.create_task(post()) for _ in range(3)]
            await until(lambda: batcher.pending == 3)  # ... while three more wait together
            gate.set()
            return await asyncio.gather(first, *others)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * 4
    assert all(r.json()["faces"][0]["expression"] == "happiness" for r in responses)
    assert calls == [1, 3]  # 4 requests, 2 model calls


def test_a_full_queue_answers_503_and_a_slow_model_504(recognizer, gated):
    calls, gate = gated
    app = create_app(recognizer=recognizer, max_queue=1)
    batcher, photo = app.state.batcher, ASTRONAUT.read_bytes()

    async def scenario():
        async with client_of(app) as client:
            post = lambda: client.post("/v1/predict", **upload(photo))  # noqa: E731
            running = asyncio.create_task(post())
            await until(lambda: batcher.running == 1)
            waiting = asyncio.create_task(post())
            await until(lambda: batcher.pending == 1)
            refused = await post()
            health = await client.get("/v1/health")
            gate.set()
            return refused, health, await running, await waiting

    refused, health, running, waiting = asyncio.run(scenario())
    assert_error(refused, 503, "queue_full")
    assert int(refused.headers["Retry-After"]) >= 1
    assert health.json()["queue"] == 1 and health.json()["running"] == 1
    assert running.status_code == waiting.status_code == 200
    assert calls == [1, 1]

    calls.clear()
    gate.clear()
    slow = create_app(recognizer=recognizer, request_timeout_s=0.5)

    async def too_slow():
        async with client_of(slow) as client:
            try:
                return await client.post("/v1/predict", **upload(photo))
            finally:
                gate.set()

    assert_error(asyncio.run(too_slow()), 504, "timeout")


def test_run_binds_localhost_by_default(recognizer, monkeypatch):
    import uvicorn

    assert inspect.signature(run).parameters["host"].default == "127.0.0.1"
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: seen.update(kwargs, app=app))
    run(recognizer=recognizer, max_queue=3)
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8000 and seen["app"].state.limits.max_queue == 3


def test_the_page_asks_nothing_of_the_internet(app):
    page = call(app, "GET", "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    references = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert "/static/app.js" in references and "/static/style.css" in references
    assert all(ref.startswith("/") and not ref.startswith("//") or ref.startswith("data:") for ref in references)
    for name in ("index.html", "app.js", "style.css"):
        text = (STATIC / name).read_text()
        assert not re.search(r"\b(?:https?|wss?|ftp):", text), name
        assert "@import" not in text and "url(" not in text, name
        assert call(app, "GET", f"/static/{name}").status_code == 200
    assert re.findall(r'fetch\(`?"?([^`"?]+)', (STATIC / "app.js").read_text()) == ["/v1/predict", "/v1/model"]


def test_uploads_leave_no_files_behind(app, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    astronaut = np.asarray(Image.open(ASTRONAUT).convert("RGB"))
    write_video(tmp_path / "clip.mp4", [astronaut[:256, 128:384]] * 2)
    data = (tmp_path / "clip.mp4").read_bytes()
    (tmp_path / "clip.mp4").unlink()
    assert call(app, "POST", "/v1/predict?every=1", **upload(data, "clip.mp4", "video/mp4")).status_code == 200
    assert list(Path(tmp_path).iterdir()) == []
