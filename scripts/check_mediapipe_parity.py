#!/usr/bin/env python3
"""Parity of ``orsanet.priors`` with MediaPipe 0.10.21, in two steps (two environments).

1. ``dump`` runs in a venv with mediapipe (numpy<2), scikit-image and ai-edge-litert::

       /tmp/mpvenv/bin/python scripts/check_mediapipe_parity.py dump --out /tmp/mp_parity.npz

   It stores the test images and MediaPipe's answers: the raw TFLite outputs for fixed input
   tensors (random ones and real faces), the FaceDetection solution's boxes, and the FaceMesh
   solution's points in static mode and after one tracking step (a re-crop from the first fit).
   Test images: scikit-image's astronaut (square, and cut to a non-square shape) and FERPlus
   test faces (48x48) upscaled to 128 px on a black 192x192 canvas, plus the bare 48x48 faces
   upscaled to 192 px for the tracking step (whose re-crop leaves the image).

2. ``compare`` runs in the project venv and prints the differences of the PyTorch port::

       .venv/bin/python scripts/check_mediapipe_parity.py compare --npz /tmp/mp_parity.npz

   It also reports detection rates and speed on the FERPlus faces: detector + mesh on the
   canvas, the mesh run directly on the bare crop twice (the crop enlarged 1.5x with border
   padding, then a re-crop from the first fit), and either.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

log = logging.getLogger("check_mediapipe_parity")
REPO = Path(__file__).resolve().parents[1]
FERPLUS_TEST = REPO.parent / "shared" / "data" / "ferplus" / "FER2013Test"


def ferplus_faces(n: int) -> tuple[list[str], list[np.ndarray]]:
    from PIL import Image

    files = sorted(FERPLUS_TEST.glob("*.png"))[:n]
    return [f.name for f in files], [np.asarray(Image.open(f).convert("L")) for f in files]


def canvas(face: np.ndarray, size: int = 192, face_size: int = 128) -> np.ndarray:
    """Same recipe as ``orsanet.priors.face_mesh.pad_face_crop`` (PIL bilinear, centred)."""
    from PIL import Image

    img = np.asarray(Image.fromarray(face).convert("RGB").resize((face_size, face_size), Image.BILINEAR))
    out = np.zeros((size, size, 3), np.uint8)
    off = (size - face_size) // 2
    out[off:off + face_size, off:off + face_size] = img
    return out


def upscale(face: np.ndarray, size: int = 192) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(face).convert("RGB").resize((size, size), Image.BILINEAR))


# ------------------------------------------------------------------------------- MediaPipe side
def dump(args: argparse.Namespace) -> None:
    import mediapipe as mp
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    from skimage import data

    root = Path(mp.__file__).parent / "modules"
    names, faces = ferplus_faces(args.ferplus)
    astronaut = data.astronaut()
    wide = astronaut[60:360]  # 300 x 512: non-square, exercises the letterbox
    images = [astronaut, wide] + [canvas(f) for f in faces]
    empty = np.zeros((0, 192, 192, 3), np.uint8)
    out: dict[str, np.ndarray] = {
        "n_faces": np.array(len(faces)), "names": np.array(names), "astronaut": astronaut, "wide": wide,
        "faces48": np.stack(faces) if faces else np.zeros((0, 48, 48), np.uint8),
        "canvases": np.stack(images[2:]) if faces else empty,
        "crops": np.stack([upscale(f) for f in faces]) if faces else empty,
    }

    # Raw networks on identical input tensors (reference kernels, no delegate).
    rng = np.random.default_rng(0)
    for key, file, size, low in (("det", "face_detection/face_detection_short_range.tflite", 128, -1.0),
                                 ("mesh", "face_landmark/face_landmark.tflite", 192, 0.0)):
        net = Interpreter(model_path=str(root / file),
                          experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
        net.allocate_tensors()
        real = [upscale(f, size) for f in faces[:8]] + [upscale(astronaut, size)]
        inputs = [rng.uniform(low, 1.0, (size, size, 3)).astype(np.float32) for _ in range(2)]
        inputs += [(r.astype(np.float32) / 255.0) * (1.0 - low) + low for r in real]
        outs = []
        for x in inputs:
            net.set_tensor(net.get_input_details()[0]["index"], x[None])
            net.invoke()
            outs.append([net.get_tensor(d["index"]).reshape(-1) for d in net.get_output_details()])
        out[f"{key}_raw_in"] = np.stack(inputs)
        for j, d in enumerate(net.get_output_details()):
            out[f"{key}_raw_{d['name']}"] = np.stack([o[j] for o in outs])

    # FaceDetection solution on every image.
    boxes, scores, kps, owner = [], [], [], []
    with mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=args.confidence) as fd:
        for i, img in enumerate(images):
            h, w = img.shape[:2]
            for d in fd.process(img).detections or []:
                b = d.location_data.relative_bounding_box
                boxes.append([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
                scores.append(d.score[0])
                kps.append([[k.x * w, k.y * h] for k in d.location_data.relative_keypoints])
                owner.append(i)
    out.update(det_boxes=np.array(boxes, np.float32).reshape(-1, 4), det_scores=np.array(scores, np.float32),
               det_keypoints=np.array(kps, np.float32).reshape(-1, 6, 2), det_image=np.array(owner))

    # FaceMesh solution, static mode (detector + mesh), on every image.
    def points(result, h, w):
        if not result.multi_face_landmarks:
            return np.full((468, 3), np.nan, np.float32)
        return np.array([[p.x * w, p.y * h, p.z * w] for p in result.multi_face_landmarks[0].landmark], np.float32)

    static, seconds = [], []
    with mp.solutions.face_mesh.FaceMesh(static_image_mode=True, max_num_faces=1, refine_landmarks=False,
                                         min_detection_confidence=args.confidence) as fm:
        for img in images:
            t = time.perf_counter()
            static.append(points(fm.process(img), *img.shape[:2]))
            seconds.append(time.perf_counter() - t)
    out["mesh_static"] = np.stack(static)
    out["mesh_static_seconds"] = np.array(seconds)

    # One tracking step: the second frame's ROI comes from the first frame's points.
    tracked = {"first": [], "second": []}
    track_images = images[:2] + list(out["canvases"][: args.tracking]) + list(out["crops"][: args.tracking])
    for img in track_images:
        with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1, refine_landmarks=False,
                                             min_detection_confidence=args.confidence) as fm:
            tracked["first"].append(points(fm.process(img), *img.shape[:2]))
            tracked["second"].append(points(fm.process(img), *img.shape[:2]))
    out["track_first"], out["track_second"] = np.stack(tracked["first"]), np.stack(tracked["second"])
    out["track_n"] = np.array(args.tracking)
    np.savez_compressed(args.out, **out)
    found = ~np.isnan(out["mesh_static"][2:, 0, 0])
    log.info("MediaPipe FaceMesh found %d / %d FERPlus canvases (%.1f %%), %.1f ms per image; wrote %s",
             found.sum(), len(found), 100 * found.mean() if len(found) else 0,
             1000 * np.median(seconds), args.out)


# ------------------------------------------------------------------------------- PyTorch side
def compare(args: argparse.Namespace) -> None:
    import torch

    sys.path.insert(0, str(REPO / "src"))
    from orsanet.priors.face_detector import FaceDetector, box_iou
    from orsanet.priors.face_mesh import FaceMesh

    torch.set_num_threads(args.threads)
    z = np.load(args.npz)
    detector, mesh = FaceDetector(), FaceMesh()

    # 1. raw networks
    with torch.no_grad():
        x = torch.from_numpy(z["det_raw_in"]).permute(0, 3, 1, 2)
        logits, raw = detector.net(x)
        d_score = np.abs(logits.numpy() - z["det_raw_classificators"]).max()
        d_box = np.abs(raw.numpy().reshape(len(x), -1) - z["det_raw_regressors"]).max()
        x = torch.from_numpy(z["mesh_raw_in"]).permute(0, 3, 1, 2)
        pts, flag = mesh.net(x)
        d_pts = np.abs(pts.numpy().reshape(len(x), -1) - z["mesh_raw_conv2d_21"]).max()
        d_flag = np.abs(flag.numpy() - z["mesh_raw_conv2d_31"].reshape(-1)).max()
        d_prob = np.abs(torch.sigmoid(flag).numpy() - 1 / (1 + np.exp(-z["mesh_raw_conv2d_31"].reshape(-1)))).max()
    log.info(f"raw detector  ({len(z['det_raw_in'])} inputs): max |score logit diff| {d_score:.2e}, "
          f"max |regressor diff| {d_box:.2e} (128-px units)")
    log.info(f"raw face mesh ({len(z['mesh_raw_in'])} inputs): max |point diff| {d_pts:.2e} px (192-px crop), "
          f"max |flag logit diff| {d_flag:.2e}, max |presence diff| {d_prob:.2e}")

    # 2. detector pipeline. Observed: MediaPipe's FaceDetection *solution* keeps only candidates
    # scoring >= 0.5 whatever min_detection_confidence says (its FaceMesh does honour 0.3), and
    # the threshold decides which boxes the weighted NMS averages, so compare at max(conf, 0.5).
    images = [z["astronaut"], z["wide"]] + list(z["canvases"])
    ours = detector.detect(images, min_confidence=max(args.confidence, 0.5))
    ious, dscore, dkp, missing, extra = [], [], [], 0, 0
    for i, dets in enumerate(ours):
        ref = z["det_image"] == i
        rb, rs, rk = z["det_boxes"][ref], z["det_scores"][ref], z["det_keypoints"][ref]
        extra += max(len(dets) - len(rb), 0)
        missing += max(len(rb) - len(dets), 0)
        if not len(dets) or not len(rb):
            continue
        iou = box_iou(torch.tensor(np.stack([d.box for d in dets])), torch.tensor(rb)).numpy()
        for j in range(len(rb)):
            k = iou[:, j].argmax()
            ious.append(iou[k, j])
            dscore.append(abs(dets[k].score - rs[j]))
            dkp.append(np.abs(dets[k].keypoints - rk[j]).max())
    ious = np.array(ious)
    log.info(f"detector on {len(images)} images: {len(ious)} matched faces, {missing} missed, {extra} extra; "
          f"box IoU min {ious.min():.5f} mean {ious.mean():.5f}; max |score diff| {max(dscore):.2e}; "
          f"max keypoint diff {max(dkp):.3f} px")

    # 3. mesh pipeline, static mode
    res, _ = mesh.fit_detected(images, detector, min_confidence=args.confidence)
    ours_pts = res.landmarks.numpy()
    ours_pts[~res.found().numpy()] = np.nan
    ref = z["mesh_static"]
    both = ~np.isnan(ref[:, 0, 0]) & ~np.isnan(ours_pts[:, 0, 0])
    only_ref = (~np.isnan(ref[:, 0, 0]) & np.isnan(ours_pts[:, 0, 0])).sum()
    only_ours = (np.isnan(ref[:, 0, 0]) & ~np.isnan(ours_pts[:, 0, 0])).sum()
    diff = np.abs(ours_pts[both] - ref[both])
    log.info(f"mesh (detector + mesh) on {len(images)} images: both found {both.sum()}, only MediaPipe {only_ref}, "
          f"only port {only_ours}; max |xy diff| {diff[..., :2].max():.4f} px, mean {diff[..., :2].mean():.5f} px, "
          f"max |z diff| {diff[..., 2].max():.4f} px")

    # 4. one tracking step (re-crop from the first fit), both border modes
    n = int(z["track_n"])
    track_images = images[:2] + list(z["canvases"][:n]) + list(z["crops"][:n])
    first = torch.from_numpy(z["track_first"])
    ok = ~first[:, 0, 0].isnan()
    from orsanet.priors.face_mesh import rois_from_landmarks
    rois = torch.full((len(track_images), 5), float("nan"))
    rois[ok] = rois_from_landmarks(first[ok])
    for mode in ("border", "zeros"):
        mesh.padding_mode = mode
        second = mesh.fit(track_images, rois).landmarks.numpy()
        ref2 = z["track_second"]
        m = ~np.isnan(ref2[:, 0, 0]) & ~np.isnan(second[:, 0, 0])
        d = np.abs(second[m] - ref2[m])[..., :2]
        worst = d.reshape(len(d), -1).max(1)
        log.info(f"tracking step, padding '{mode}': {m.sum()} faces, max |xy diff| {d.max():.4f} px, "
              f"median of per-face max {np.median(worst):.4f} px")
    mesh.padding_mode = "border"

    # 5. FERPlus detection rates and speed
    n_faces = int(z["n_faces"])
    if n_faces:
        ferplus_rates(z, detector, mesh, args.confidence)


def ferplus_rates(z, detector, mesh, confidence: float) -> None:
    """Share of FERPlus faces where each recipe finds a face (presence >= 0.5), and wall time."""
    canvases, faces = list(z["canvases"]), list(z["faces48"])
    n = len(canvases)
    mp_found = ~np.isnan(z["mesh_static"][2:, 0, 0])
    mesh.fit_detected(canvases[:4], detector, confidence)  # warm-up
    mesh.fit_crops(faces[:4])

    def timed(fn):
        start = time.perf_counter()
        found = fn()
        return found, 1000 * (time.perf_counter() - start) / n

    via_detector, ms_det = timed(lambda: mesh.fit_detected(canvases, detector, confidence)[0].found().numpy())
    direct, ms_direct = timed(lambda: mesh.fit_crops(faces, refine=1).found().numpy())
    pct = lambda m: 100.0 * float(np.mean(m))  # noqa: E731
    log.info(f"FERPlus test faces: {n} (batched, wall clock, {torch_threads()} threads)")
    log.info(f"  MediaPipe FaceMesh, canvas, conf {confidence}: {pct(mp_found):.1f} %, "
             f"{1000 * np.median(z['mesh_static_seconds'][2:]):.1f} ms/face")
    log.info(f"  port, detector + mesh on the canvas:  {pct(via_detector):.1f} %, {ms_det:.1f} ms/face "
             f"(same verdict as MediaPipe on {pct(via_detector == mp_found):.1f} %)")
    log.info(f"  port, mesh on the 48 px crop x 1.5, then one re-crop: {pct(direct):.1f} %, {ms_direct:.1f} ms/face")
    log.info(f"  port, either: {pct(via_detector | direct):.1f} %")


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump", help="run MediaPipe (its own venv) and store inputs and answers")
    d.add_argument("--out", type=Path, default=Path("/tmp/mp_parity.npz"))
    d.add_argument("--ferplus", type=int, default=300, help="number of FERPlus test faces")
    d.add_argument("--tracking", type=int, default=50, help="faces used for the tracking-step check")
    d.add_argument("--confidence", type=float, default=0.3)
    c = sub.add_parser("compare", help="compare the PyTorch port with a dump")
    c.add_argument("--npz", type=Path, default=Path("/tmp/mp_parity.npz"))
    c.add_argument("--confidence", type=float, default=0.3)
    c.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    {"dump": dump, "compare": compare}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
