"""orsanet.priors.face_detector_full_range: the full-range BlazeFace port (shapes, weights,
detections next to the short-range detector, small faces, parity with MediaPipe's runtime)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from orsanet.priors.face_detector import FaceDetector, box_iou
from orsanet.priors.face_detector_full_range import (FULL_RANGE_WEIGHTS, BlazeFaceFullRangeNet, FullRangeFaceDetector,
                                                     depth_to_space, full_range_anchor_centers)

EXAMPLES = Path(__file__).parents[1] / "examples"
FACE_BOX = (174, 68, 278, 172)  # the face in examples/astronaut.jpg (x0, y0, x1, y1, rounded)
needs_weights = pytest.mark.skipif(not FULL_RANGE_WEIGHTS.exists(), reason="converted full-range weights absent")


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB"))


def small_face_canvas(width: int = 48, at: tuple[int, int] = (450, 120)) -> tuple[np.ndarray, np.ndarray]:
    """The astronaut's face resized to ``width`` px on a grey 640x640 canvas, and where it went (xyxy)."""
    from PIL import Image

    face = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB").crop(FACE_BOX).resize((width, width), Image.BILINEAR)
    canvas = Image.new("RGB", (640, 640), (128, 128, 128))
    canvas.paste(face, at)
    return np.asarray(canvas), np.array([at[0], at[1], at[0] + width, at[1] + width], np.float32)


@pytest.fixture(scope="module")
def detector() -> FullRangeFaceDetector:
    torch.set_num_threads(1)
    return FullRangeFaceDetector()


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float(box_iou(torch.as_tensor(a, dtype=torch.float32)[None], torch.as_tensor(b, dtype=torch.float32)[None]))


# ----------------------------------------------------------------------------------- network
def test_network_shapes_random_weights():
    net = BlazeFaceFullRangeNet().eval()
    with torch.no_grad():
        scores, boxes = net(torch.rand(2, 3, 192, 192) * 2 - 1)
    assert scores.shape == (2, 2304) and boxes.shape == (2, 2304, 16)
    anchors = full_range_anchor_centers()
    assert anchors.shape == (2304, 2)
    # row-major 48x48 cells: anchor 49 is row 1, column 1
    assert torch.allclose(anchors[0], torch.tensor([0.5, 0.5]) / 48)
    assert torch.allclose(anchors[49], torch.tensor([1.5, 1.5]) / 48)


def test_depth_to_space_uses_tensorflow_channel_order():
    x = torch.arange(2 * 2 * 3 * 2 * 2, dtype=torch.float32).view(1, 12, 2, 2)  # r = 2, C = 3
    y = depth_to_space(x, 2)
    assert y.shape == (1, 3, 4, 4)
    for c in range(3):
        for i in range(2):
            for j in range(2):
                # TF: output (h*r + i, w*r + j, c) <- input (h, w, (i*r + j)*C + c)
                assert torch.equal(y[0, c, i::2, j::2], x[0, (i * 2 + j) * 3 + c])


@needs_weights
def test_weights_load_strictly_and_match_the_recorded_architecture():
    from safetensors import safe_open

    from orsanet.priors.face_detector import load_converted

    load_converted(BlazeFaceFullRangeNet(), FULL_RANGE_WEIGHTS)  # strict: every key, every shape
    with safe_open(str(FULL_RANGE_WEIGHTS), framework="pt") as f:
        meta = f.metadata()
        assert all(f.get_tensor(k).dtype == torch.float16 for k in f.keys())
    arch = json.loads(meta["architecture"])
    assert meta["mediapipe_version"] == "0.10.21" and meta["file"].endswith("face_detection_full_range_sparse.tflite")
    assert [tuple(u) for u in arch["backbone"]] == list(BlazeFaceFullRangeNet.BACKBONE)
    pyramid = [(level["top"][0], level["tap"], level["top"][1], len(level["blocks"])) for level in arch["decoder"]]
    assert pyramid == list(BlazeFaceFullRangeNet.PYRAMID)


# -------------------------------------------------------------------------------- detections
@needs_weights
def test_astronaut_face_agrees_with_the_short_range_detector(detector):
    image = load_rgb(EXAMPLES / "astronaut.jpg")
    (found,) = detector.detect(image)
    assert len(found) == 1
    (short,) = FaceDetector().detect(image)
    assert len(short) == 1
    assert iou(found[0].box, short[0].box) > 0.7
    assert found[0].keypoints.shape == (6, 2) and 0.6 <= found[0].score <= 1


@needs_weights
def test_small_face_is_found(detector):
    image, pasted = small_face_canvas()
    (found,) = detector.detect(image)
    assert len(found) == 1
    assert iou(found[0].box, pasted) > 0.5
    # the point of the full-range model: the short-range one misses a face this small
    assert FaceDetector().detect(image) == [[]]


@needs_weights
def test_batch_matches_single_images(detector):
    images = [load_rgb(EXAMPLES / "astronaut_masked.jpg"), small_face_canvas(40, (100, 100))[0]]
    batched = detector.detect(images, min_confidence=0.5)
    for image, dets in zip(images, batched):
        (single,) = detector.detect(image, min_confidence=0.5)
        assert len(single) == len(dets) >= 1
        for a, b in zip(single, dets):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)


# ------------------------------------------------------------------------ MediaPipe parity
def _tflite_interpreter():
    for module in ("tflite_runtime.interpreter", "ai_edge_litert.interpreter", "tensorflow.lite"):
        try:
            mod = __import__(module, fromlist=["Interpreter"])
            return mod.Interpreter
        except ImportError:
            continue
    pytest.skip("no TFLite interpreter (tflite_runtime, ai_edge_litert or tensorflow) installed")


@needs_weights
def test_parity_with_mediapipe(detector):
    mp = pytest.importorskip("mediapipe")
    interpreter_class = _tflite_interpreter()
    model = Path(mp.__file__).parent / "modules" / "face_detection" / "face_detection_full_range_sparse.tflite"
    if not model.exists():
        pytest.skip(f"{model} absent from this mediapipe")
    interpreter = interpreter_class(model_path=str(model))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    outs = {d["name"]: d["index"] for d in interpreter.get_output_details()}
    images = [load_rgb(EXAMPLES / "astronaut.jpg"), load_rgb(EXAMPLES / "astronaut_masked.jpg"), small_face_canvas()[0]]
    for image in images:
        x, _ = detector.preprocess(image)  # the same (1, 3, 192, 192) array goes into both
        with torch.no_grad():
            logits, raw = detector.net(x)
        interpreter.set_tensor(inp["index"], x.permute(0, 2, 3, 1).numpy().astype(np.float32))
        interpreter.invoke()
        np.testing.assert_allclose(logits[0].numpy(), interpreter.get_tensor(outs["Identity_1"])[0, :, 0], atol=2e-3)
        np.testing.assert_allclose(raw[0].numpy(), interpreter.get_tensor(outs["Identity"])[0], atol=2e-3)
    solutions = getattr(mp, "solutions", None)
    if solutions is None:
        return
    with solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=0.6) as reference:
        for image in images:
            h, w = image.shape[:2]
            theirs = reference.process(image).detections or []
            (mine,) = detector.detect(image)
            assert len(mine) == len(theirs)
            for d in theirs:
                b = d.location_data.relative_bounding_box
                box = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
                best = max(mine, key=lambda m: iou(m.box, box))
                assert iou(best.box, box) > 0.99 and abs(best.score - d.score[0]) < 1e-3
