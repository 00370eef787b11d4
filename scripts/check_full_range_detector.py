#!/usr/bin/env python3
"""Check the PyTorch full-range face detector against MediaPipe 0.10.21's own runtime.

Three steps, two Python environments (mediapipe pins numpy<2, so it lives in a throw-away venv
next to ``tflite-runtime``; see ``scripts/convert_mediapipe_weights.py``)::

    .venv/bin/python scripts/check_full_range_detector.py prepare /tmp/frcheck
    /tmp/mpvenv/bin/python scripts/check_full_range_detector.py reference /tmp/frcheck
    .venv/bin/python scripts/check_full_range_detector.py compare /tmp/frcheck

``prepare`` writes the test images (the two examples and grey canvases with small pasted faces)
and the port's 192x192 network inputs for them; ``reference`` runs the .tflite with the TFLite
interpreter on exactly those inputs (reference kernels and the default XNNPACK path) and
MediaPipe's end-to-end ``FaceDetection(model_selection=1)`` on the images; ``compare`` prints
the raw-output differences, the detection matches (IoU, score difference) and the speed of one
forward pass next to the short-range network's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
TFLITE = "modules/face_detection/face_detection_full_range_sparse.tflite"
# (canvas height, width, [(face width in px, x0, y0), ...]) for the pasted-face images
CANVASES = ((640, 640, [(48, 450, 120)]),
            (640, 640, [(32, 300, 260), (40, 100, 100), (56, 200, 480)]),
            (480, 800, [(40, 200, 200), (64, 600, 100)]))
FACE_CROP = (174, 68, 278, 172)  # x0, y0, x1, y1: the face box in astronaut.jpg (rounded)
THRESHOLDS = (0.3, 0.5, 0.6)


def make_images() -> dict[str, np.ndarray]:
    """The test images, uint8 RGB ``(H, W, 3)``."""
    from PIL import Image

    astronaut = Image.open(EXAMPLES / "astronaut.jpg").convert("RGB")
    images = {"astronaut": np.asarray(astronaut),
              "astronaut_masked": np.asarray(Image.open(EXAMPLES / "astronaut_masked.jpg").convert("RGB"))}
    face = astronaut.crop(FACE_CROP)
    for k, (h, w, faces) in enumerate(CANVASES):
        canvas = Image.new("RGB", (w, h), (128, 128, 128))
        for size, x0, y0 in faces:
            canvas.paste(face.resize((size, size), Image.BILINEAR), (x0, y0))
        images[f"canvas{k}"] = np.asarray(canvas)
    return images


def prepare(folder: Path) -> None:
    import torch

    from orsanet.priors.face_detector_full_range import FullRangeFaceDetector

    folder.mkdir(parents=True, exist_ok=True)
    images = make_images()
    det = FullRangeFaceDetector(weights=None)
    inputs = {name: det.preprocess(img)[0][0].permute(1, 2, 0).numpy().astype(np.float32)
              for name, img in images.items()}  # (192, 192, 3) in [-1, 1]
    np.savez(folder / "images.npz", **images)
    np.savez(folder / "inputs.npz", **inputs)
    print(f"wrote {len(images)} images and inputs to {folder}; torch {torch.__version__}")


def reference(folder: Path) -> None:
    import mediapipe as mp
    from tflite_runtime.interpreter import Interpreter, OpResolverType

    root = Path(mp.__file__).parent
    images, inputs = np.load(folder / "images.npz"), np.load(folder / "inputs.npz")
    out = {}
    for mode, resolver in (("ref", OpResolverType.BUILTIN_REF), ("xnn", OpResolverType.AUTO)):
        interp = Interpreter(str(root / TFLITE), experimental_op_resolver_type=resolver, num_threads=1)
        interp.allocate_tensors()
        (inp,) = interp.get_input_details()
        outs = {d["name"]: d["index"] for d in interp.get_output_details()}
        for name in inputs.files:
            interp.set_tensor(inp["index"], inputs[name][None])
            interp.invoke()
            out[f"{mode}/{name}/regressors"] = interp.get_tensor(outs["Identity"])[0]       # (2304, 16)
            out[f"{mode}/{name}/scores"] = interp.get_tensor(outs["Identity_1"])[0, :, 0]   # (2304,)
    for threshold in THRESHOLDS:
        with mp.solutions.face_detection.FaceDetection(model_selection=1, min_detection_confidence=threshold) as fd:
            for name in images.files:
                img = images[name]
                h, w = img.shape[:2]
                rows = []
                for d in fd.process(img).detections or []:
                    b = d.location_data.relative_bounding_box
                    kps = [(k.x * w, k.y * h) for k in d.location_data.relative_keypoints]
                    rows.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h,
                                 d.score[0], *np.ravel(kps)])
                out[f"mp{threshold}/{name}"] = np.array(rows, np.float64).reshape(-1, 17)
    np.savez(folder / "reference.npz", **out)
    print(f"mediapipe {mp.__version__}: wrote {folder / 'reference.npz'}")


def iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:4], b[2:4])
    inter = np.clip(rb - lt, 0, None).prod()
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def median_ms(fn, x, n: int = 20) -> float:
    for _ in range(3):
        fn(x)
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def compare(folder: Path) -> None:
    import torch

    from orsanet.priors.face_detector import BlazeFaceNet, FaceDetector
    from orsanet.priors.face_detector_full_range import FullRangeFaceDetector

    torch.set_num_threads(1)
    images, inputs = np.load(folder / "images.npz"), np.load(folder / "inputs.npz")
    ref = np.load(folder / "reference.npz")
    det, short = FullRangeFaceDetector(), FaceDetector()
    print("raw outputs on identical inputs (max |port - tflite|):")
    print(f"  {'image':18s} " + " ".join(f"{h:>10s}" for h in ("logit ref", "box ref", "logit xnn", "box xnn"))
          + f" {'xnn-ref box':>11s}")
    worst = np.zeros(4)
    with torch.no_grad():
        for name in inputs.files:
            x = torch.from_numpy(inputs[name]).permute(2, 0, 1)[None]
            logits, boxes = det.net(x.contiguous(memory_format=torch.channels_last))
            logits, boxes = logits[0].double().numpy(), boxes[0].double().numpy()
            d = [np.abs(logits - ref[f"ref/{name}/scores"]).max(), np.abs(boxes - ref[f"ref/{name}/regressors"]).max(),
                 np.abs(logits - ref[f"xnn/{name}/scores"]).max(), np.abs(boxes - ref[f"xnn/{name}/regressors"]).max()]
            worst = np.maximum(worst, d)
            xr = np.abs(ref[f"ref/{name}/regressors"] - ref[f"xnn/{name}/regressors"]).max()
            print(f"  {name:18s} " + " ".join(f"{v:10.2e}" for v in d) + f" {xr:11.2e}")
    print("  worst              " + " ".join(f"{v:10.2e}" for v in worst))
    print("end to end: port detect() (min score 0.6, MediaPipe's default for this model) vs mediapipe.solutions"
          " FaceDetection(model_selection=1):")
    ious, dscores, dkps, same = [], [], [], True
    for name in images.files:
        mine = det.detect(images[name])[0]
        theirs = ref[f"mp0.6/{name}"]
        same &= all(np.array_equal(ref[f"mp{t}/{name}"], theirs) for t in THRESHOLDS)
        pairs = []
        for row in theirs:
            best = max(mine, key=lambda m: iou(m.box, row[:4]), default=None)
            if best is not None:
                ious.append(iou(best.box, row[:4]))
                dscores.append(abs(best.score - row[4]))
                dkps.append(np.abs(best.keypoints - row[5:].reshape(6, 2)).max())
                pairs.append(f"score {row[4]:.3f} IoU {ious[-1]:.5f} |dscore| {dscores[-1]:.1e} |dkp| {dkps[-1]:.3f}px")
        lower = [len(det.detect(images[name], min_confidence=t)[0]) for t in THRESHOLDS]
        shorts = len(short.detect(images[name])[0])
        print(f"  {name:18s} port {len(mine)} faces, mediapipe {len(theirs)}; short range finds {shorts}; "
              f"port at {THRESHOLDS}: {lower}. " + "; ".join(pairs))
    print(f"  matched {len(ious)} faces: min IoU {min(ious):.5f}, max |dscore| {max(dscores):.1e}, "
          f"max |dkeypoint| {max(dkps):.3f} px")
    print(f"  mediapipe's output is the same for min_detection_confidence in {THRESHOLDS}: {same}")
    full, small = det.net, BlazeFaceNet().eval().to(memory_format=torch.channels_last)
    with torch.no_grad():
        for fmt in (torch.channels_last, torch.contiguous_format):
            full.to(memory_format=fmt)
            small.to(memory_format=fmt)
            a = median_ms(full, (torch.rand(1, 3, 192, 192) * 2 - 1).contiguous(memory_format=fmt))
            b = median_ms(small, (torch.rand(1, 3, 128, 128) * 2 - 1).contiguous(memory_format=fmt))
            layout = "channels_last" if fmt is torch.channels_last else "NCHW"
            print(f"forward, batch 1, 1 thread, median of 20 ({layout}): "
                  f"full range 192 px {a:.2f} ms, short range 128 px {b:.2f} ms, ratio {a / b:.2f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("step", choices=("prepare", "reference", "compare"))
    parser.add_argument("folder", type=Path)
    args = parser.parse_args(argv)
    {"prepare": prepare, "reference": reference, "compare": compare}[args.step](args.folder)
    return 0


if __name__ == "__main__":
    sys.exit(main())
