"""The HTTP API and the web page of ``orsanet serve`` (FastAPI, run by uvicorn).

    POST /v1/predict   an image or a short video (multipart field ``file``) -> its faces
    GET  /v1/health    liveness and the queue
    GET  /v1/model     the model's labels, input contract, config and provenance
    GET  /             the web page (static files of this package; nothing from the internet)
    GET  /docs, /openapi.json

A request goes: body size limit (ASGI middleware, before the body is parsed) ─ decode in a thread
(the header's size is checked before any pixel is decoded; a video goes through a temporary file)
─ the batcher (a bounded queue; the model runs in its one worker thread) ─ rows, as ``orsanet
predict --json`` writes them ─ JSON. Every error is ``{"error": {"code": ..., "message": ...}}``.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import io
import logging
import math
import tempfile
import time
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from PIL import Image, UnidentifiedImageError
from pydantic import TypeAdapter, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from orsanet.inference.inputs import as_image
from orsanet.inference.pictures import parsing_colours
from orsanet.inference.results import Face, ImageResult
from orsanet.serve.batcher import Batcher, BatcherClosed, QueueFull

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
MULTIPART_SLACK = 64 * 1024  # bytes of multipart framing and form fields allowed on top of the file
# Image formats PIL may open (no EPS: it would run Ghostscript on an upload); JPEG covers MPO.
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "PPM")
# Video containers, told by their first bytes -> the FFmpeg demuxer to open them with. FFmpeg is never
# left to guess: a playlist (HLS, concat) would make it open other files or URLs.
VIDEO_SIGNATURES = ((4, b"ftyp", "mov"), (4, b"moov", "mov"), (4, b"mdat", "mov"), (4, b"wide", "mov"),
                    (0, b"\x1a\x45\xdf\xa3", "matroska"), (8, b"AVI ", "avi"), (0, b"\x00\x00\x01\xba", "mpeg"),
                    (0, b"OggS", "ogg"), (0, b"FLV", "flv"), (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11", "asf"))
# The page may load only what the server itself serves (and the pictures it draws).
PAGE_POLICY = ("default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob: mediastream:; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server (``create_app`` takes each as a keyword)."""

    max_upload_mb: float = 20.0        # size of the uploaded file
    max_pixels: int = 25_000_000       # width x height of an image or a video frame
    max_video_frames: int = 64         # sampled frames (every ``every``-th) of a video
    max_video_pixels: int = 160_000_000  # all sampled frames of a video together (memory)
    request_timeout_s: float = 30.0    # from the end of the upload to the answer
    max_queue: int = 16                # requests waiting for the model
    max_batch: int = 8                 # pictures per model call

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)


class ApiError(Exception):
    """An error answered as ``{"error": {"code", "message"}}`` with ``status`` (and ``headers``)."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status, headers=headers)


class BodyLimit:
    """ASGI middleware: answers 413 to a request body over ``max_upload_mb`` (plus the multipart
    framing), from its Content-Length before reading anything, or as soon as a streamed (chunked)
    body passes the limit."""

    def __init__(self, app, max_upload_mb: float) -> None:
        self.app, self.max_upload_mb = app, max_upload_mb
        self.max_bytes = int(max_upload_mb * 2**20) + MULTIPART_SLACK

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        message = f"the upload is larger than {self.max_upload_mb:g} MiB"
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await error_response(413, "upload_too_large", message)(scope, receive, send)
        received, rejected = 0, False

        async def limited_receive():
            nonlocal received, rejected
            if rejected:
                return {"type": "http.disconnect"}
            event = await receive()
            if event["type"] == "http.request":
                received += len(event.get("body", b""))
                if received > self.max_bytes:
                    rejected = True
                    await error_response(413, "upload_too_large", message)(scope, receive, send)
                    return {"type": "http.disconnect"}
            return event

        async def guarded_send(event) -> None:
            if not rejected:  # the app's own answer to the cut-off body is dropped
                await send(event)

        await self.app(scope, limited_receive, guarded_send)


@dataclass
class Upload:
    """A decoded upload: ``frames`` are ``(None, image)`` for an image, ``(index, frame)`` for a video."""

    kind: str
    frames: list[tuple[int | None, Image.Image]]
    width: int
    height: int
    frames_read: int = 1


def _check_pixels(width: int, height: int, limits: Limits, what: str) -> None:
    if width * height > limits.max_pixels:
        raise ApiError(413, "image_too_large", f"the {what} is {width}x{height} = {width * height / 1e6:.1f} "
                                               f"megapixels, over the limit of {limits.max_pixels / 1e6:.1f}")


@functools.cache
def _image_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(name for name in IMAGE_FORMATS if name in Image.OPEN)  # those this Pillow was built with


def decode_upload(data: bytes, limits: Limits, every: int) -> Upload:
    """The upload's pictures: an image (anything PIL reads) or the sampled frames of a video."""
    if not data:
        raise ApiError(400, "empty_upload", "the uploaded file is empty")
    try:
        image = Image.open(io.BytesIO(data), formats=_image_formats())
    except Image.DecompressionBombError as error:
        raise ApiError(413, "image_too_large", f"the image is too large to decode ({error})") from None
    except UnidentifiedImageError:
        return decode_video(data, limits, every)
    except (OSError, ValueError, SyntaxError, EOFError) as error:  # an image header, but broken
        raise ApiError(400, "corrupt_image", f"the image cannot be read ({error})") from None
    with image:
        _check_pixels(*image.size, limits, "image")  # from the header, before any pixel is decoded
        try:
            image.load()
            picture = as_image(image)
        except (OSError, ValueError, SyntaxError, EOFError) as error:
            raise ApiError(400, "corrupt_image", f"the image cannot be decoded ({error})") from None
    return Upload("image", [(None, picture)], picture.width, picture.height)


def video_format(data: bytes) -> str | None:
    """The FFmpeg demuxer for a video container recognised by its first bytes, else None."""
    for offset, signature, demuxer in VIDEO_SIGNATURES:
        if data[offset:offset + len(signature)] == signature:
            return demuxer
    if len(data) > 376 and data[0] == data[188] == data[376] == 0x47:  # MPEG-TS: a sync byte every 188
        return "mpegts"
    return None


def _reason(error: Exception) -> str:
    """An FFmpeg error without the temporary file's name."""
    return getattr(error, "strerror", None) or type(error).__name__


def decode_video(data: bytes, limits: Limits, every: int) -> Upload:
    """Every ``every``-th frame of a video, read through a temporary file that is deleted at once."""
    import av

    demuxer = video_format(data)
    if demuxer is None:
        raise ApiError(415, "unsupported_media_type", "the file is neither an image nor a video")
    too_long = ApiError(413, "video_too_long", f"the video has more than {limits.max_video_frames} frames to "
                                               f"classify at every={every}; send a shorter clip or a larger every")
    frames, index = [], -1
    with tempfile.TemporaryDirectory(prefix="orsanet-serve-") as folder:
        path = Path(folder) / "upload"
        path.write_bytes(data)
        try:
            container = av.open(str(path), format=demuxer, options={"protocol_whitelist": "file"})
        except (av.error.FFmpegError, OSError, ValueError) as error:
            raise ApiError(400, "corrupt_video", f"the video cannot be read ({_reason(error)})") from None
        with container:
            if not container.streams.video:
                raise ApiError(415, "unsupported_media_type", "the file has no video stream")
            stream = container.streams.video[0]
            width, height = stream.codec_context.width, stream.codec_context.height
            _check_pixels(width, height, limits, "video")
            if stream.frames and math.ceil(stream.frames / every) > limits.max_video_frames:
                raise too_long  # the container says so: nothing decoded
            pixels = 0
            try:
                for index, frame in enumerate(container.decode(stream)):
                    if index % every:
                        continue
                    if len(frames) == limits.max_video_frames:
                        raise too_long
                    _check_pixels(frame.width, frame.height, limits, "video frame")
                    pixels += frame.width * frame.height
                    if pixels > limits.max_video_pixels:
                        raise ApiError(413, "video_too_large", f"the sampled frames of the video hold more than "
                                                               f"{limits.max_video_pixels / 1e6:.0f} megapixels")
                    frames.append((index, frame.to_image().convert("RGB")))
            except av.error.FFmpegError as error:
                if not frames:
                    raise ApiError(400, "corrupt_video", f"the video cannot be decoded ({_reason(error)})") from None
                log.warning("video cut short after frame %d: %s", index, _reason(error))  # keep the frames read
    if not frames:
        raise ApiError(400, "corrupt_video", "the video has no frames")
    width, height = frames[0][1].size
    return Upload("video", frames, width, height, frames_read=index + 1)


def _png_data_url(image: Image.Image) -> str:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def parsing_overlay(parsing: np.ndarray, size: int = 112) -> str:
    """The parsing prior ``(11 or 12, h, w)`` as a PNG to lay over the face square: a colour per face part
    (and for occluders), transparent where the prior sees background."""
    colours = parsing_colours(parsing).clip(0, 255)
    alpha = (1 - parsing[0]).clip(0, 1) * 255
    rgba = np.dstack([colours, alpha]).round().astype(np.uint8)
    return _png_data_url(Image.fromarray(rgba, "RGBA").resize((size, size), Image.BILINEAR))


def _rounded(values: np.ndarray, decimals: int) -> list:
    return np.round(values.astype(np.float64), decimals).tolist()  # float64: 223.1, not 223.10000610351562


def face_rows(file: str, frame: int | None, faces: list[Face], landmarks: bool, explain: bool) -> list[dict]:
    """The ``predict --json`` rows of one picture (none when it has no face), with the face square
    (``square``: the cut the model saw), and landmarks, heatmap and parsing overlay when asked."""
    if not faces:
        return []
    rows = []
    for row, face in zip(ImageResult(file, frame, faces).rows(), faces):
        row["square"] = [round(float(v), 1) for v in face.frame]
        if landmarks:
            row["landmarks"] = None if face.landmarks is None else _rounded(face.landmarks, 1)
        if explain:
            row["heatmap"] = None if face.heatmap is None else _rounded(face.heatmap, 3)
            row["parsing"] = None if face.parsing is None else parsing_overlay(face.parsing)
        rows.append(row)
    return rows


async def form_options(request: Request, explain: bool, annotated: bool, landmarks: bool,
                       every: int) -> tuple[bool, bool, bool, int]:
    """The options of ``/v1/predict`` given in the query, each replaced by the form field of its name
    when the form has one."""
    form = await request.form()  # parsed already for ``file``: Starlette keeps it

    def pick(name: str, value):
        if name not in form:
            return value
        try:
            return TypeAdapter(type(value)).validate_python(form[name])
        except ValidationError:
            raise ApiError(422, "invalid_request", f"form field {name}: not a valid {type(value).__name__}") from None

    explain, annotated, landmarks, every = (pick(name, value) for name, value in (
        ("explain", explain), ("annotated", annotated), ("landmarks", landmarks), ("every", every)))
    if not 1 <= every <= 1000:
        raise ApiError(422, "invalid_request", "every: must be between 1 and 1000")
    return explain, annotated, landmarks, every


def create_app(recognizer=None, model: str = "default", device: str = "cpu", **limits) -> FastAPI:
    """The ASGI app around ``recognizer`` (or a ``Recognizer(model, device)`` loaded now).

    ``limits``: any field of ``Limits`` (``max_upload_mb``, ``max_pixels``, ``max_video_frames``,
    ``max_video_pixels``, ``request_timeout_s``, ``max_queue``, ``max_batch``)."""
    if recognizer is None:
        from orsanet.api import Recognizer

        recognizer = Recognizer(model, device)
    limits = Limits(**limits)
    batcher = Batcher(recognizer.predict_many, limits.max_queue, limits.max_batch)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        log.info("serving %d labels, limits %s", len(recognizer.labels), asdict(limits))
        yield
        batcher.close()

    app = FastAPI(title="orsanet", lifespan=lifespan,
                  description="Facial expression recognition robust to occlusion: every face of a picture, "
                              "its expression and probabilities.")
    app.state.recognizer, app.state.batcher, app.state.limits = recognizer, batcher, limits
    app.add_middleware(BodyLimit, max_upload_mb=limits.max_upload_mb)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        log.info("%s %s: %d %s (%s)", request.method, request.url.path, error.status, error.code, error.message)
        return error_response(error.status, error.code, error.message, error.headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        code = {404: "not_found", 405: "method_not_allowed"}.get(error.status_code, "http_error")
        return error_response(error.status_code, code, str(error.detail), getattr(error, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        problem = error.errors()[0] if error.errors() else {}
        where = ".".join(str(part) for part in problem.get("loc", ()))
        return error_response(422, "invalid_request", f"{where}: {problem.get('msg', 'invalid request')}")

    @app.exception_handler(Exception)
    async def internal_error(request: Request, error: Exception):
        log.exception("%s %s failed", request.method, request.url.path)
        return error_response(500, "internal_error", f"{type(error).__name__}: {error}")

    @app.get("/v1/health", summary="Liveness and the queue")
    async def health() -> dict:
        return {"status": "ok", "queue": batcher.pending, "max_queue": limits.max_queue,
                "running": batcher.running, "batches": batcher.batches, "images": batcher.images}

    @app.get("/v1/model", summary="The model: labels, input contract, config, metrics, provenance")
    async def model_info() -> dict:
        return recognizer.info()

    @app.post("/v1/predict", summary="The faces of an image or of the frames of a short video", responses={
        400: {"description": "empty or corrupt file"}, 413: {"description": "upload, image or video over a limit"},
        415: {"description": "neither an image nor a video"}, 503: {"description": "queue full (see Retry-After)"},
        504: {"description": "not done within the request time limit"}})
    async def predict(file: UploadFile = File(..., description="an image (JPEG, PNG, ...) or a short video"),
                      explain: bool = Query(False, description="add Grad-CAM heatmaps and the parsing prior"),
                      annotated: bool = Query(False, description="add the annotated picture as a PNG data URL"),
                      landmarks: bool = Query(False, description="add the landmarks of every face (468 mesh points, or the prior network's 8 part centres)"),
                      every: int = Query(10, ge=1, le=1000, description="videos: classify every N-th frame"),
                      *, request: Request) -> dict:
        """Options come as query parameters or as form fields beside ``file`` (``curl -F explain=true``)."""
        started = time.perf_counter()
        explain, annotated, landmarks, every = await form_options(
            request, explain=explain, annotated=annotated, landmarks=landmarks, every=every)
        data = await file.read()
        if len(data) > limits.max_upload_bytes:
            raise ApiError(413, "upload_too_large", f"the upload is larger than {limits.max_upload_mb:g} MiB")
        name = file.filename or "upload"
        try:
            body = await asyncio.wait_for(answer(data, name, explain, annotated, landmarks, every),
                                          limits.request_timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(504, "timeout", f"not done within {limits.request_timeout_s:g} s") from None
        faces = sum(len(frame["faces"]) for frame in body.get("frames", [body]))
        log.info("%s: %d face(s) in %.3f s", name, faces, time.perf_counter() - started)
        return body

    async def answer(data: bytes, name: str, explain: bool, annotated: bool, landmarks: bool, every: int) -> dict:
        upload = await asyncio.to_thread(decode_upload, data, limits, every)
        try:
            future = batcher.submit([picture for _, picture in upload.frames], explain)
        except QueueFull as full:
            raise ApiError(503, "queue_full", f"{limits.max_queue} requests are waiting already; retry later",
                           {"Retry-After": str(full.retry_after)}) from None
        except BatcherClosed as closed:
            raise ApiError(503, "shutting_down", str(closed)) from None
        found = await asyncio.wrap_future(future)
        body = {"labels": recognizer.labels, "image": {"width": upload.width, "height": upload.height}}
        if upload.kind == "video":
            body["video"] = {"frames_read": upload.frames_read, "every": every}
            body["frames"] = [{"frame": index, "faces": face_rows(name, index, faces, landmarks, explain)}
                              for (index, _), faces in zip(upload.frames, found)]
            return body
        picture, faces = upload.frames[0][1], found[0]
        body["faces"] = face_rows(name, None, faces, landmarks, explain)
        if annotated:
            body["annotated"] = await asyncio.to_thread(lambda: _png_data_url(recognizer.annotate(picture, faces)))
        return body

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": PAGE_POLICY,
                                                            "Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
