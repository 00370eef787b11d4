"""The Python entry point: ``Recognizer``, the expression of every face in a picture.

    >>> import orsanet
    >>> recognizer = orsanet.Recognizer()                        # the packaged default model
    >>> faces = recognizer.predict("examples/astronaut.jpg")     # a path, a PIL image or an RGB array
    >>> faces[0].expression, faces[0].probabilities["happiness"], faces[0].box
    >>> faces[0].to_dict()

``orsanet predict`` is a thin layer over ``Recognizer.predict_paths``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch
from PIL import Image

from orsanet.face_model import load_face_model, model_metadata
from orsanet.inference.framing import FaceFinder
from orsanet.inference.inputs import as_image, expand_inputs, read_ahead, read_frames
from orsanet.inference.pipeline import FacePipeline
from orsanet.inference.results import Face, ImageResult
from orsanet.priors.face_search import DEFAULT_MIN_FACE

log = logging.getLogger(__name__)

# Threads that detect faces in the pictures ahead of the batch being classified (predict_paths) or
# in the pictures of one batch (predict_many): detection costs more than the classification per
# photo here, so two of them keep two cores busy.
DETECTION_THREADS = 2


class Recognizer:
    """Face detection, framing, priors and an orsanet model, ready to classify pictures.

    ``model``: a model file or ``"default"``; ``flip``: average each face's prediction with its mirror
    image's (test-time augmentation); ``min_face``: the smallest face to search for, in pixels of the
    photo (detector box side; smaller is slower); ``search``: how faces too small for the detector's
    whole-photo pass are searched, ``cascade`` (the full-range detector proposes where to look) or
    ``tiles`` (grids of tiles everywhere; slower); ``min_confidence``: the face detector's threshold;
    ``batch_size``: images or frames whose faces are classified together; ``backend``: ``pytorch``,
    or ``onnxruntime`` for a graph written by ``orsanet export`` (``auto``: by the file's suffix);
    ``speed``: ``amp``, ``channels_last``, ``compile`` (see ``FaceModel``).
    """

    def __init__(self, model: str | os.PathLike = "default", device: str | torch.device = "cpu", *,
                 flip: bool = False, min_face: float = DEFAULT_MIN_FACE, min_confidence: float = 0.5,
                 search: str = "cascade", batch_size: int = 8, backend: str = "auto", **speed) -> None:
        self.device = torch.device(device)
        # The weights are frozen here: on the CPU the network runs on ONNX Runtime where it is installed
        # (orsanet.onnx_runtime; $ORSANET_RUNTIME=pytorch keeps it in PyTorch).
        self.face_model = load_face_model(model, self.device, backend, runtime=None, **speed)
        self.finder = FaceFinder(self.face_model.contract, self.device, min_confidence, min_face, search)
        self.pipeline = FacePipeline(self.face_model, self.finder, flip)
        self.batch_size = max(1, int(batch_size))
        # The threads that detect the faces of several pictures at once (started at the first use):
        # decoders, PyTorch and ONNX Runtime release the GIL.
        self.detecting = ThreadPoolExecutor(DETECTION_THREADS, thread_name_prefix="orsanet-detect")

    @property
    def labels(self) -> list[str]:
        return self.face_model.label_names

    def info(self) -> dict:
        """The model's labels, input contract, config and provenance (for ``/v1/model`` and logs)."""
        from orsanet import __version__

        return {"labels": self.labels, "input_contract": self.face_model.contract.to_dict(),
                **model_metadata(self.face_model), "orsanet_version": __version__}

    def predict(self, image, *, explain: bool = False, boxes: list | None = None) -> list[Face]:
        """Every face of one picture (path, PIL image or RGB array), best detection first.

        ``explain``: also a Grad-CAM heatmap and the parsing prior per face (a backward pass);
        ``boxes``: face boxes ``(x0, y0, x1, y1)`` you already know (no detection)."""
        return self.predict_many([image], explain=explain, boxes=[boxes] if boxes is not None else None)[0]

    def predict_many(self, images: Iterable, *, explain: bool = False, boxes: list | None = None) -> list[list[Face]]:
        """The faces of several pictures, detected in ``DETECTION_THREADS`` threads and classified together."""
        photos = [as_image(image) for image in images]
        found = list(self.detecting.map(self.finder, photos)) if boxes is None and len(photos) > 1 else None
        return self.pipeline(photos, explain=explain, boxes=boxes, found=found)

    def annotate(self, image, faces: list[Face]) -> Image.Image:
        """The picture with boxes, labels and landmarks, and a panel per face (see ``inference.pictures``)."""
        from orsanet.inference.pictures import annotate

        return annotate(as_image(image), faces, self.labels)

    def predict_paths(self, paths: list[str], every: int = 10, explain: bool = False, progress: bool = True,
                      exclude: Path | None = None,
                      shard: tuple[int, int] = (0, 1)) -> Iterator[tuple[ImageResult, Image.Image | None]]:
        """``(result, image)`` for every image file and every ``every``-th frame of every video under
        ``paths``, in order, as they are done. A file that cannot be read gets a result with ``error``
        (and image None) and the run goes on; an error of the model itself stops it.
        ``exclude``: a folder not to read from; ``shard = (k, n)``: only every n-th file, from the k-th
        (one process's share of a ``torchrun`` run)."""
        import av
        from tqdm import tqdm

        from orsanet.data.base import UNREADABLE

        reading_errors = (*UNREADABLE, av.error.FFmpegError)
        pending: list[tuple[str, int | None, Image.Image, list]] = []

        def flush():
            faces = self.pipeline([image for _, _, image, _ in pending], explain=explain,
                                  found=[found for _, _, _, found in pending])
            for (file, frame, image, _), found in zip(pending, faces):
                yield ImageResult(file, frame, found, None if found else "no face found"), image
            pending.clear()

        def frames_of(files: list[Path]):
            """``(file, frame index, image, faces found, None)`` per picture, or ``(file, None, None,
            None, message)`` when a file cannot be read (the frames read before a broken one are kept)."""
            for path in tqdm(files, desc="predict", disable=not progress, dynamic_ncols=True):
                try:
                    for frame, image in read_frames(path, every):
                        yield str(path), frame, image, self.detecting.submit(self.finder, image), None
                except reading_errors as error:
                    message = str(error).splitlines()[0] if str(error) else type(error).__name__
                    yield str(path), None, None, None, message

        rank, world = shard
        files = list(expand_inputs(paths, exclude))[rank::world]
        # Decoding runs a batch ahead in a thread, and face detection in the DETECTION_THREADS more,
        # overlapping the batch being classified.
        for file, frame, image, found, error in read_ahead(frames_of(files), 2 * self.batch_size):
            if error is not None:
                log.warning("%s: cannot read (%s)", file, error)
                yield from flush()
                yield ImageResult(file, error=f"unreadable: {error}"), None
                continue
            pending.append((file, frame, image, found.result()))
            if len(pending) >= self.batch_size:
                yield from flush()
        if pending:
            yield from flush()
