"""What recognition reads: image files, folders (recursive), videos (every N-th frame), PIL images
and RGB arrays, each turned into an upright 8-bit RGB ``PIL.Image``."""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from orsanet.contract import to_rgb
from orsanet.data.base import IMAGE_SUFFIXES

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})


def expand_inputs(paths: list[str], exclude: Path | None = None) -> Iterator[Path]:
    """Files as given; folders searched recursively for images and videos (sorted), leaving out
    whatever lies under ``exclude`` (the folder annotated pictures are written to)."""
    skip = exclude.resolve() if exclude is not None else None
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*")
                              if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES | VIDEO_SUFFIXES
                              and (skip is None or not p.resolve().is_relative_to(skip)))
        else:
            yield path


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def read_frames(path: Path, every: int = 1) -> Iterator[tuple[int | None, Image.Image]]:
    """``(None, image)`` for an image file (turned upright as its EXIF orientation says);
    ``(index, frame)`` for every ``every``-th frame of a video."""
    if not path.exists():
        raise FileNotFoundError("no such file")
    if not path.is_file():
        raise OSError("not a regular file")
    if not is_video(path):
        yield None, open_image(path)
        return
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise OSError("no video stream")
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0:
                yield index, frame.to_image().convert("RGB")


def read_ahead(items: Iterable, depth: int) -> Iterator:
    """``items`` in order, produced by a background thread up to ``depth`` items ahead, so decoding the
    next photos or video frames overlaps the work done on the current ones (decoders and PyTorch both
    release the GIL). An exception of ``items`` is raised here, in order; memory stays bounded by
    ``depth``; the thread stops when this generator is closed early."""
    buffer: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()
    done = object()

    def put(entry) -> bool:
        while not stop.is_set():
            try:
                buffer.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
        except BaseException as error:  # handed to the consumer, raised there
            put((done, error))
            return
        put((done, None))

    worker = threading.Thread(target=produce, name="orsanet-read-ahead", daemon=True)
    worker.start()
    try:
        while True:
            item, error = buffer.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)


def open_image(path: str | os.PathLike) -> Image.Image:
    """An image file -> upright RGB (16-bit and float images scaled by their range)."""
    with Image.open(path) as image:
        image.load()
        return to_rgb(ImageOps.exif_transpose(image))


def as_image(x) -> Image.Image:
    """A path, a PIL image or an RGB(A)/grey ``uint8`` array ``(H, W[, C])`` -> RGB ``PIL.Image``."""
    if isinstance(x, (str, os.PathLike)):
        return open_image(x)
    if isinstance(x, Image.Image):
        return to_rgb(ImageOps.exif_transpose(x))
    if isinstance(x, np.ndarray):
        if x.ndim == 3 and x.shape[2] == 4:
            x = x[..., :3]
        if x.ndim not in (2, 3) or (x.ndim == 3 and x.shape[2] != 3):
            raise ValueError(f"expected an RGB array (H, W, 3) or a grey one (H, W), got shape {x.shape}")
        if x.dtype != np.uint8:
            if x.dtype.kind == "f" and x.size and np.nanmax(x) <= 1.0:
                x = x * 255.0
            x = np.clip(np.nan_to_num(x), 0, 255).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(x)).convert("RGB")
    raise TypeError(f"expected a path, a PIL image or a numpy array, got {type(x).__name__}")
