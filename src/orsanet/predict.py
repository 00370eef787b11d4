"""``orsanet predict``: the expression of every face in photos, folders and videos.

For each image (or every N-th video frame): detect faces, cut each face out the way the training
faces were framed, compute the priors, classify, and explain (Grad-CAM on the image backbone).
One row per face; a file that cannot be read, or an image without a face, gets a row of its own
and the run goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from orsanet.data.base import IMAGE_SUFFIXES, UNREADABLE
from orsanet.priors.face_search import DEFAULT_MIN_FACE, find_faces

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
# A FER2013 face (48x48 frame) relative to the detector's box, measured by running the detector on
# 298 FERPlus test faces: the frame is 1.17 box widths wide, and its centre sits 0.09 box widths
# above the box centre (medians).
CROP_SCALE = 1.17
CROP_SHIFT_UP = 0.09
# A face found only in a tile of the photo (see orsanet.priors.face_search) is kept when the face
# mesh fitted on it reports at least this face presence. Measured with scripts/measure_face_search.py:
# on 24 faceless sample pictures of scikit-image the tiles gave 22 false candidates, all but one
# under 0.06 presence and the highest 0.35; the example face pasted at box sides 26-240 px scored
# 1.0, and masked 0.64-1.0 at most sizes (0.12-0.19 at three sizes, which are lost).
CANDIDATE_PRESENCE = 0.4


@dataclass
class FaceRow:
    """One output row: a face, or a file/frame where no face could be read or found."""

    file: str
    frame: int | None = None
    face: int | None = None
    box: list[float] | None = None  # x0, y0, x1, y1 in pixels of the image / frame
    expression: str | None = None
    confidence: float | None = None
    probabilities: dict[str, float] = field(default_factory=dict)
    prior_valid: bool | None = None
    error: str | None = None


@dataclass
class FaceAnalysis:
    """Everything needed to draw one face (see ``orsanet.visualize``)."""

    row: FaceRow
    crop_box: tuple[float, float, float, float]  # the square cut out, image pixels
    landmarks: np.ndarray | None  # (468, 2) image pixels, or None
    parsing: np.ndarray | None  # (11, h, w) soft map over the crop, or None
    heatmap: np.ndarray  # (7, 7) Grad-CAM over the crop, in [0, 1]


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


def read_frames(path: Path, every: int) -> Iterator[tuple[int | None, Image.Image]]:
    """``(None, image)`` for an image file (turned upright as its EXIF orientation says);
    ``(index, frame)`` for every ``every``-th frame of a video."""
    if not path.exists():
        raise FileNotFoundError("no such file")
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        with Image.open(path) as image:
            image.load()
            yield None, ImageOps.exif_transpose(image).convert("RGB")
        return
    import av

    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % every == 0:
                yield index, frame.to_image().convert("RGB")


def crop_box(box: np.ndarray) -> tuple[float, float, float, float]:
    """A detector box -> the square framed like a FER2013 face (see ``CROP_SCALE``)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    width = x1 - x0
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2 - CROP_SHIFT_UP * width
    half = CROP_SCALE * width / 2
    return cx - half, cy - half, cx + half, cy + half


class FacePredictor:
    """Detector, face mesh and an orsanet model: ``predictor(image) -> [FaceAnalysis, ...]``."""

    def __init__(self, model: str = "default", device: str = "cpu", min_confidence: float = 0.5,
                 flip: bool = False, min_face: float = DEFAULT_MIN_FACE) -> None:
        """``flip``: average each face's prediction with its mirror image's (test-time augmentation);
        ``min_face``: the smallest face to search for, in pixels of the photo (detector box side)."""
        from orsanet.checkpoint import load_model
        from orsanet.priors import FaceDetector, FaceMesh

        self.device = torch.device(device)
        self.model = load_model(model, self.device)
        self.labels = list(self.model.label_names)
        preprocessing = self.model.preprocessing
        self.size = int(preprocessing.get("input_size", self.model.config.input_size))
        self.color = preprocessing.get("color", "rgb")
        self.mean = torch.tensor(preprocessing["mean"]).view(3, 1, 1)
        self.std = torch.tensor(preprocessing["std"]).view(3, 1, 1)
        self.detector = FaceDetector().to(self.device)
        self.mesh = FaceMesh().to(self.device)
        self.min_confidence, self.flip, self.min_face = min_confidence, flip, min_face

    def _crop_tensor(self, image: Image.Image, box) -> torch.Tensor:
        """The square ``box`` of ``image`` -> normalised ``(3, S, S)`` (outside the image: black)."""
        face = image.crop(tuple(round(v) for v in box)).resize((self.size, self.size), Image.BILINEAR)
        face = face.convert("L").convert("RGB") if self.color == "gray" else face
        pixels = torch.from_numpy(np.asarray(face, dtype=np.float32) / 255.0).permute(2, 0, 1)
        return (pixels - self.mean) / self.std

    def __call__(self, image: Image.Image, file: str, frame: int | None = None) -> list[FaceAnalysis]:
        from orsanet.models.mesh_priors import mesh_raw_priors
        from orsanet.priors import roi_from_detection

        pixels = np.asarray(image)
        whole, candidates = find_faces(self.detector, pixels, self.min_confidence, self.min_face)
        detections = whole + candidates
        if not detections:
            return []
        rois = torch.stack([roi_from_detection(d) for d in detections])
        fit = self.mesh.fit([pixels] * len(detections), rois)
        keep = [k for k in range(len(detections)) if k < len(whole) or fit.presence[k] >= CANDIDATE_PRESENCE]
        if not keep:
            return []
        detections = [detections[k] for k in keep]
        found = fit.found().cpu()[keep]
        points = fit.landmarks[keep, :, :2].cpu()  # (F, 468, 2) image pixels
        boxes = [crop_box(d.box) for d in detections]
        crops = torch.stack([self._crop_tensor(image, b) for b in boxes]).to(self.device)
        origin = torch.tensor([[b[0], b[1]] for b in boxes]).view(-1, 1, 2)
        side = torch.tensor([b[2] - b[0] for b in boxes]).view(-1, 1, 1)
        points01 = (points - origin) / side
        priors = {}
        parsing = None
        if self.model.uses_mesh_priors:
            landmark_prior, parsing_prior = mesh_raw_priors(points01, found)
            priors = {"landmark_prior": landmark_prior.to(self.device), "parsing_prior": parsing_prior.to(self.device)}
            parsing = parsing_prior.numpy()
        logits, heatmaps = self._classify(crops, priors)
        probabilities = logits.softmax(1).cpu()
        analyses = []
        for k, detection in enumerate(detections):
            best = int(probabilities[k].argmax())
            row = FaceRow(file, frame, k, [round(float(v), 1) for v in detection.box], self.labels[best],
                          round(float(probabilities[k, best]), 4),
                          {name: round(float(p), 4) for name, p in zip(self.labels, probabilities[k])},
                          bool(found[k]))
            analyses.append(FaceAnalysis(row, boxes[k], points[k].numpy() if found[k] else None,
                                         parsing[k] if parsing is not None and found[k] else None, heatmaps[k]))
        return analyses

    def _classify(self, crops: torch.Tensor, priors: dict) -> tuple[torch.Tensor, np.ndarray]:
        """Logits ``(F, C)`` and Grad-CAM maps ``(F, 7, 7)`` of the predicted classes on the backbone grid
        (with ``flip``, the logits are averaged with the mirrored crops'; the map is the unmirrored crop's)."""
        mirrored = self.model.mirrored_logits(crops, **priors) if self.flip else None  # before the hook below
        captured = {}

        def keep(_module, _inputs, output):
            output.retain_grad()
            captured["grid"] = output

        handle = self.model.image_backbone.register_forward_hook(keep)
        try:
            with torch.enable_grad():
                logits = self.model(crops, **priors).logits
                averaged = logits.detach() if mirrored is None else (logits.detach() + mirrored) / 2
                logits.gather(1, averaged.argmax(1, keepdim=True)).sum().backward()
        finally:
            handle.remove()
            self.model.zero_grad(set_to_none=True)
        grid, grads = captured["grid"].detach(), captured["grid"].grad
        cam = torch.relu((grads.mean((2, 3), keepdim=True) * grid).sum(1))  # (F, 7, 7)
        cam = cam / cam.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)
        return averaged, cam.cpu().numpy()


def predict_paths(predictor: FacePredictor, paths: list[str], every: int = 1, on_image=None,
                  progress: bool = True, exclude: Path | None = None) -> tuple[list[FaceRow], int]:
    """Rows for every face of every input, and how many images/frames could be read.

    ``on_image(image, analyses, file, frame)`` is called per image or frame (e.g. to draw it).
    A file that cannot be read gets an error row and the run goes on; an error of the model
    itself is not a reading error and stops the run. ``exclude``: a folder not to read from.
    """
    import av
    from tqdm import tqdm

    reading_errors = (*UNREADABLE, av.error.FFmpegError)  # OSError covers a missing file
    rows: list[FaceRow] = []
    readable = 0
    for path in tqdm(list(expand_inputs(paths, exclude)), desc="predict", disable=not progress, dynamic_ncols=True):
        frames = read_frames(path, every)
        while True:
            try:
                frame, image = next(frames)
            except StopIteration:
                break
            except reading_errors as error:  # frames read before a broken one keep their rows
                message = str(error).splitlines()[0] if str(error) else type(error).__name__
                log.warning("%s: cannot read (%s)", path, message)
                rows.append(FaceRow(str(path), error=f"unreadable: {message}"))
                break
            readable += 1
            analyses = predictor(image, str(path), frame)
            rows.extend(a.row for a in analyses)
            if not analyses:
                rows.append(FaceRow(str(path), frame, error="no face found"))
            if on_image is not None:
                on_image(image, analyses, path, frame)
    return rows, readable
