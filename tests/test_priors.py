"""orsanet.priors: network shapes, detector/mesh behaviour, parsing maps and flip consistency."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from orsanet.priors import (CONTOUR_POINTS, LAPA_CLASSES, BlazeFaceNet, FaceDetector, FaceMesh, FaceMeshNet,
                            flip_heatmaps, flip_parsing_map, landmark_heatmaps, pad_face_crop, parsing_map,
                            subset_flip_permutation)
from orsanet.priors.face_detector import DETECTOR_WEIGHTS, crop_rois
from orsanet.priors.face_mesh import LANDMARK_WEIGHTS, project
from orsanet.priors.parsing_map import FLIP_CHANNELS, POLYGONS, parsing_labels

SHARED = Path(__file__).parents[1] / ".." / "shared"
FERPLUS_TEST = SHARED / "data" / "ferplus" / "FER2013Test"
needs_weights = pytest.mark.skipif(not (DETECTOR_WEIGHTS.exists() and LANDMARK_WEIGHTS.exists()),
                                   reason="converted MediaPipe weights absent")
needs_ferplus = pytest.mark.skipif(not FERPLUS_TEST.is_dir(), reason="../shared/data/ferplus absent")

# Facts about MediaPipe's canonical face model: 28 mid-line vertices; the other indices below
# 248 pair, in order, with 248..467.
MIDLINE = (0, 1, 2, 4, 5, 6, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19,
           94, 151, 152, 164, 168, 175, 195, 197, 199, 200)


def canonical_flip() -> torch.Tensor:
    side = [i for i in range(248) if i not in MIDLINE]
    perm = torch.arange(468)
    perm[side] = torch.arange(248, 468)
    perm[248:] = torch.tensor(side)
    return perm


def mirror(points: torch.Tensor, perm: torch.Tensor, width: float) -> torch.Tensor:
    out = points[:, perm].clone()
    out[..., 0] = width - out[..., 0]
    return out


@pytest.fixture(scope="module")
def detector() -> FaceDetector:
    return FaceDetector()


@pytest.fixture(scope="module")
def mesh() -> FaceMesh:
    return FaceMesh()


@pytest.fixture(scope="module")
def ferplus_faces() -> list[np.ndarray]:
    from PIL import Image

    files = sorted(FERPLUS_TEST.glob("*.png"))[:6]
    return [np.asarray(Image.open(f).convert("L")) for f in files]


# ----------------------------------------------------------------------------------- networks
def test_network_shapes_random_weights():
    with torch.no_grad():
        scores, boxes = BlazeFaceNet()(torch.rand(2, 3, 128, 128) * 2 - 1)
        points, flag = FaceMeshNet()(torch.rand(2, 3, 192, 192))
    assert scores.shape == (2, 896) and boxes.shape == (2, 896, 16)
    assert points.shape == (2, 468, 3) and flag.shape == (2,)


def test_crop_of_whole_image_is_identity():
    img = torch.rand(3, 40, 40) * 255
    roi = torch.tensor([[20.0, 20.0, 40.0, 40.0, 0.0]])
    assert torch.allclose(crop_rois(img, roi, 40, like_opencv=False)[0], img, atol=1e-3)
    assert torch.equal(crop_rois(img.round(), roi, 40)[0], img.round())


def test_projection_inverts_the_crop_geometry():
    roi = torch.tensor([[100.0, 80.0, 60.0, 60.0, 0.3]])
    center = project(torch.tensor([[[96.0, 96.0, 0.0]]]), roi)  # crop centre -> ROI centre
    assert torch.allclose(center[0, 0, :2], roi[0, :2], atol=1e-4)


@needs_weights
def test_stored_flip_permutation_matches_canonical_model(mesh):
    perm = mesh.flip_permutation
    assert torch.equal(perm, canonical_flip())
    assert torch.equal(perm[perm], torch.arange(468))


@needs_weights
def test_landmark_model_deterministic_and_batch_independent(mesh):
    x = torch.rand(3, 3, 192, 192, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        p1, f1 = mesh(x)
        p2, f2 = mesh(x)
        single = [mesh(x[i:i + 1]) for i in range(3)]
    assert torch.equal(p1, p2) and torch.equal(f1, f2)
    assert torch.allclose(p1, torch.cat([s[0] for s in single]), atol=1e-4)
    assert torch.allclose(f1, torch.cat([s[1] for s in single]), atol=1e-6)
    assert ((f1 >= 0) & (f1 <= 1)).all()


@needs_weights
def test_detector_finds_nothing_without_a_face(detector):
    flat = np.full((200, 320, 3), 128, np.uint8)
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)
    gradient = np.broadcast_to(np.linspace(0, 255, 256, dtype=np.uint8)[None, :, None], (256, 256, 3))
    assert detector.detect([flat, noise, gradient], min_confidence=0.5) == [[], [], []]


# -------------------------------------------------------------------------- FERPlus (optional)
@needs_weights
@needs_ferplus
def test_detector_and_mesh_on_ferplus_faces(detector, mesh, ferplus_faces):
    canvases = [pad_face_crop(f) for f in ferplus_faces]
    fit, dets = mesh.fit_detected(canvases, detector, min_confidence=0.3)
    assert fit.landmarks.shape == (len(canvases), 468, 3)
    assert fit.found().sum() >= len(canvases) - 1
    ok = fit.found()
    xy = fit.landmarks[ok, :, :2]
    assert (xy > -20).all() and (xy < 212).all()  # on (or just off) the 192 px canvas
    # the face was put in the middle 128 px: its box should be there too
    box = dets[int(ok.nonzero()[0])].box
    assert 10 < box[0] < 96 < box[2] < 182


@needs_weights
@needs_ferplus
def test_letterbox_is_undone_for_non_square_images(detector, ferplus_faces):
    face = pad_face_crop(ferplus_faces[0])
    for shape, shift in (((192, 260, 3), [44, 0, 44, 0]), ((260, 192, 3), [0, 44, 0, 44])):
        big = np.zeros(shape, np.uint8)
        big[shift[1]:shift[1] + 192, shift[0]:shift[0] + 192] = face
        square_det = detector.detect(face, min_confidence=0.3)[0]
        big_det = detector.detect(big, min_confidence=0.3)[0]
        assert square_det and big_det
        # same face, shifted; the 128 px input sees it smaller, so the box moves a little
        assert np.abs(big_det[0].box - square_det[0].box - shift).max() < 10


@needs_weights
@needs_ferplus
def test_detection_of_mirrored_image_is_mirrored(detector, ferplus_faces):
    face = pad_face_crop(ferplus_faces[1])
    det = detector.detect(face)[0][0]
    det_m = detector.detect(np.ascontiguousarray(face[:, ::-1]))[0][0]
    flipped = det.flipped(face.shape[1])
    # the network is not exactly mirror-symmetric: a few pixels on a 192 px canvas
    assert np.abs(det_m.box - flipped.box).max() < 8
    assert np.abs(det_m.keypoints - flipped.keypoints).max() < 10


@needs_weights
@needs_ferplus
def test_crop_refinement_runs_batched(mesh, ferplus_faces):
    single = mesh.fit_crops(ferplus_faces[:1], refine=1)
    batch = mesh.fit_crops(ferplus_faces[:3], refine=1)
    assert torch.allclose(single.landmarks[0], batch.landmarks[0], atol=1e-2)
    assert batch.rois.shape == (3, 5)


# ------------------------------------------------------------------------ parsing and heatmaps
def _random_points(n: int = 2, size: float = 192.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(3)
    return torch.rand(n, 468, 3, generator=g) * size * 0.8 + size * 0.1


def _synthetic_face(size: float = 192.0) -> torch.Tensor:
    """Mesh points (1, 468, 2) placing each contour on an ellipse of a cartoon face."""
    pts = torch.full((468, 2), size / 2)
    c = size / 2

    def ring(indices, cx, cy, rx, ry):
        t = torch.linspace(0, 2 * np.pi, len(indices) + 1)[:-1]
        pts[list(indices)] = torch.stack([cx + rx * t.cos(), cy + ry * t.sin()], -1)

    import importlib

    pm = importlib.import_module("orsanet.priors.parsing_map")  # the package re-exports a function of that name
    ring(pm.FACE_OVAL, c, c, 0.4 * size, 0.45 * size)
    ring(pm.NOSE, c, c + 0.02 * size, 0.06 * size, 0.12 * size)
    ring(pm.SUBJECT_RIGHT_EYE, c - 0.15 * size, c - 0.1 * size, 0.07 * size, 0.03 * size)
    ring(pm.SUBJECT_LEFT_EYE, c + 0.15 * size, c - 0.1 * size, 0.07 * size, 0.03 * size)
    ring(pm.SUBJECT_RIGHT_BROW, c - 0.15 * size, c - 0.19 * size, 0.09 * size, 0.02 * size)
    ring(pm.SUBJECT_LEFT_BROW, c + 0.15 * size, c - 0.19 * size, 0.09 * size, 0.02 * size)
    x = torch.linspace(-1, 1, 11)
    mouth_y, half = c + 0.25 * size, 0.12 * size
    pts[list(pm.UPPER_OUTER)] = torch.stack([c + half * x, mouth_y - 0.05 * size * (1 - x ** 2)], -1)
    pts[list(pm.UPPER_INNER)] = torch.stack([c + 0.9 * half * x, mouth_y - 0.01 * size * (1 - x ** 2)], -1)
    pts[list(pm.LOWER_INNER)] = torch.stack([c + 0.9 * half * x, mouth_y + 0.02 * size * (1 - x ** 2)], -1)
    pts[list(pm.LOWER_OUTER)] = torch.stack([c + half * x, mouth_y + 0.06 * size * (1 - x ** 2)], -1)
    return pts[None]


def test_parsing_map_is_a_distribution_with_every_drawn_class():
    prior = parsing_map(_synthetic_face(), image_size=(192, 192), size=56)
    assert prior.shape == (1, len(LAPA_CLASSES), 56, 56) == (1, 11, 56, 56)
    assert torch.allclose(prior.sum(1), torch.ones(1, 56, 56), atol=1e-5)
    assert ((prior >= 0) & (prior <= 1)).all()
    present = prior.sum((0, 2, 3)) > 0
    assert present[:10].all() and not present[10]  # every class but hair
    # image-left brow / eye really are on the left half
    assert prior[0, 2, :, :28].sum() > 0 and prior[0, 2, :, 28:].sum() == 0
    assert prior[0, 5, :, 28:].sum() > 0 and prior[0, 5, :, :28].sum() == 0


def test_parsing_map_of_missing_face_is_background():
    pts = torch.full((1, 468, 3), float("nan"))
    prior = parsing_map(pts, (48, 48), size=14)
    assert torch.equal(prior[:, 0], torch.ones(1, 14, 14)) and prior[:, 1:].sum() == 0


def test_polygons_are_mirror_closed():
    perm = canonical_flip()
    by_class = {cls: poly for cls, poly in POLYGONS}
    for cls, poly in POLYGONS:
        image = [int(perm[i]) for i in poly]
        target = list(by_class[FLIP_CHANNELS[cls]])
        # same closed loop, possibly reversed and rotated
        k = target.index(image[0])
        rolled = target[k:] + target[:k]
        assert image == rolled or image == [rolled[0]] + rolled[1:][::-1], LAPA_CLASSES[cls]


@pytest.mark.parametrize("points", ["synthetic", "random"])
def test_parsing_map_flip_consistency(points):
    pts = _synthetic_face() if points == "synthetic" else _random_points()
    perm = canonical_flip()
    prior = parsing_map(pts, (192, 192), size=56)
    mirrored = parsing_map(mirror(pts, perm, 192.0), (192, 192), size=56)
    assert torch.allclose(flip_parsing_map(prior), mirrored, atol=1e-6)
    assert torch.equal(flip_parsing_map(flip_parsing_map(prior)), prior)


def test_heatmaps_shape_peak_and_flip_consistency():
    pts = _random_points()
    idx = list(CONTOUR_POINTS)
    perm = canonical_flip()
    maps = landmark_heatmaps(pts[:, idx], (192, 192), size=56, sigma=1.5)
    assert maps.shape == (2, len(idx), 56, 56)
    assert maps.amax((2, 3)).min() > 0.6 and maps.max() <= 1
    channel_perm = subset_flip_permutation(idx, perm)
    mirrored = landmark_heatmaps(mirror(pts, perm, 192.0)[:, idx], (192, 192), size=56, sigma=1.5)
    assert torch.allclose(flip_heatmaps(maps, channel_perm), mirrored, atol=1e-5)


def test_parsing_labels_at_raster_resolution_are_hard():
    labels = parsing_labels(_synthetic_face(), (192, 192), raster=224)
    assert labels.shape == (1, 224, 224) and labels.dtype == torch.long
    assert int(labels.max()) <= 9 and int(labels[0, 0, 0]) == 0


@needs_weights
def test_mesh_point_flip_matches_parsing_flip(mesh):
    pts = _random_points(1)
    assert torch.equal(mesh.flip_points(pts, 192.0), mirror(pts, canonical_flip(), 192.0))


def test_upright_crops_read_only_what_they_sample_and_equal_the_general_resampling():
    from orsanet.priors.face_detector import _crop_rotated

    generator = torch.Generator().manual_seed(0)
    for height, width in ((37, 90), (128, 64)):
        image = torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
        rois = torch.rand(4, 5, generator=generator) * torch.tensor([1.4 * width, 1.4 * height, 150, 150, 0.0])
        rois[:, :2] -= torch.tensor([0.2 * width, 0.2 * height])  # some reach outside the image
        rois[:, 2:4] += 5
        rois[0] = torch.tensor([width / 2, height / 2, max(height, width), max(height, width), 0.0])  # a letterbox
        for padding in ("zeros", "border"):
            for size in (128, 37):
                expected = _crop_rotated(image.float(), rois, size, padding, like_opencv=True)
                assert torch.equal(crop_rois(image, rois, size, padding), expected)  # the upright path, from uint8
                assert torch.equal(crop_rois(image.float(), rois, size, padding), expected)
