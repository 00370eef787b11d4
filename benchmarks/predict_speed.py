"""End-to-end speed of ``orsanet predict`` on this machine: faces per second.

    python benchmarks/predict_speed.py                 # the packaged default model, the example photos
    python benchmarks/predict_speed.py --model runs/x/best.safetensors --repeat 20 --threads 2
    python benchmarks/predict_speed.py --min-face 1000     # no tiled search for small faces

Each image is read from disk, its faces detected, the face mesh fitted, the priors drawn, the
face classified and explained (Grad-CAM), exactly as ``orsanet predict`` does (no pictures
written). The first pass is a warm-up; the median of ``--runs`` timed passes is reported,
with the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from pathlib import Path

import torch

from orsanet.predict import FacePredictor, predict_paths
from orsanet.priors.face_search import DEFAULT_MIN_FACE

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="default")
    parser.add_argument("--images", nargs="+", default=[str(p) for p in sorted(EXAMPLES.glob("*.jpg"))])
    parser.add_argument("--repeat", type=int, default=10, help="each image this many times per pass")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--min-face", type=float, default=DEFAULT_MIN_FACE,
                        help="as 'orsanet predict --min-face' (the tiled search for small faces costs time)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    predictor = FacePredictor(args.model, min_face=args.min_face)
    paths = args.images * args.repeat
    predict_paths(predictor, args.images, progress=False)  # warm-up
    times, faces = [], 0
    for _ in range(args.runs):
        start = time.perf_counter()
        rows, _ = predict_paths(predictor, paths, progress=False)
        times.append(time.perf_counter() - start)
        faces = sum(1 for row in rows if row.error is None)
    median = statistics.median(times)
    config = predictor.model.config
    print(f"model {args.model} ({config.image_backbone}, {config.input_size} px), {args.threads} threads, "
          f"min face {args.min_face:g} px: "
          f"{faces} faces in {len(paths)} images per pass, {median:.2f} s -> {faces / median:.1f} faces/s "
          f"({1000 * median / faces:.0f} ms per face, end to end), "
          f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
