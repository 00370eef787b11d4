"""Measure what the face search of ``orsanet predict`` finds (``orsanet/priors/face_search.py``).

    python scripts/measure_face_search.py                       # sizes, on the example photos
    python scripts/measure_face_search.py --faceless DIR        # also false candidates on faceless pictures

1. Smallest face: the examples' face (plain and masked) is pasted at decreasing sizes on a grey
   canvas (``--canvas``, 1024 px); for each size and each search (``cascade``: the full-range
   detector proposes tiles; ``tiles``: grids of tiles) it prints whether the whole-photo pass
   finds it, whether the search finds it, the face-mesh presence of the hits, and the search's time.
2. False candidates (``--faceless``, e.g. the faceless sample pictures of scikit-image): every
   candidate each search gives, with its face-mesh presence. ``CANDIDATE_SCORE`` in
   ``orsanet/inference/framing.py`` must sit above these and below the presences of part 1.
3. Time per example photo (512 px) of each search, median of 20 (``--threads``).

The presence is measured as ``orsanet predict`` measures it: the face mesh on the face's frame, cut
and resized by the default model's input contract. ``--model M`` measures M's prior backend's
face score instead (the occlusion-aware prior network's, refitted on faceless photos, still scores
some tiles of faceless photos and face fragments above ``CANDIDATE_SCORE``, which is why predict
confirms with the mesh).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orsanet.checkpoint import read_metadata
from orsanet.priors import FaceDetector
from orsanet.priors.face_priors import MeshPriors, prior_backend
from orsanet.priors.face_detector_full_range import FullRangeFaceDetector
from orsanet.priors.face_search import find_faces

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZES = (400, 240, 160, 120, 90, 70, 55, 45, 38, 32, 26)


def presences(scorer, contract, pixels: np.ndarray, detections) -> list[float]:
    """``scorer``'s face score (a prior backend's) of each detection, on its frame cut by ``contract``."""
    if not detections:
        return []
    photo = Image.fromarray(pixels)
    crops = torch.stack([contract.cut(photo, contract.frame(d.box)) for d in detections])
    return [round(float(p), 2) for p in scorer.face_score(scorer.measure(crops))]


def timed(search, pixels: np.ndarray, runs: int = 1) -> tuple[float, tuple]:
    """Median seconds of ``search(pixels)`` over ``runs`` calls, and its result."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        found = search(pixels)
        times.append(time.perf_counter() - start)
    return statistics.median(times), found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faceless", type=Path, help="a folder of pictures without faces")
    parser.add_argument("--canvas", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--model", help="measure this model's prior backend's face score (and use its contract)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scorer, contract = MeshPriors(), read_metadata("default").contract
    if args.model:
        metadata = read_metadata(args.model)
        contract = metadata.contract
        if metadata.config.prior_backend:
            scorer = prior_backend(metadata.config.prior_backend)
    print(f"presence: {type(scorer).__name__}")
    detector, proposer = FaceDetector(), FullRangeFaceDetector()
    searches = {"cascade": lambda px, m=40: find_faces(detector, px, min_face=m, proposer=proposer),
                "tiles": lambda px, m=40: find_faces(detector, px, min_face=m)}
    print(f"face box side (px) on a {args.canvas}-px canvas: per search, found on the whole canvas / found by "
          "the search (presence of the hits), ms")
    found_count = {name: 0 for name in searches}
    for name in ("astronaut.jpg", "astronaut_masked.jpg"):
        photo = np.asarray(Image.open(EXAMPLES / name).convert("RGB"))
        box = detector.detect([photo])[0][0].box
        x0, y0, x1, y1 = (int(v) for v in box)
        pad = (x1 - x0) // 2
        face = Image.fromarray(photo[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad])
        share = (x1 - x0) / face.width  # box side per crop side
        for size in SIZES:
            canvas = Image.new("RGB", (args.canvas, args.canvas), (128, 128, 128))
            side = round(size / share)
            canvas.paste(face.resize((side, side), Image.BILINEAR), (args.canvas // 3, args.canvas // 2))
            pixels = np.asarray(canvas)
            cells = []
            for search_name, search in searches.items():
                seconds, (whole, candidates) = timed(lambda px: search(px, min(40, size)), pixels)
                kept = presences(scorer, contract, pixels, whole + candidates)
                found_count[search_name] += bool(whole) or any(p >= 0.4 for p in kept[len(whole):])
                cells.append(f"{search_name}: whole {'yes' if whole else 'no ':3s} search "
                             f"{'yes' if candidates else 'no ':3s} {kept} {1000 * seconds:4.0f} ms")
            print(f"  {name:22s} box {size:4d}: " + " | ".join(cells))
    print("faces found and confirmed (presence >= 0.4), of", 2 * len(SIZES), ":", found_count)
    print("time per example photo, median of 20:")
    for name in ("astronaut.jpg", "astronaut_masked.jpg"):
        pixels = np.asarray(Image.open(EXAMPLES / name).convert("RGB"))
        for search_name, search in searches.items():
            search(pixels)
            seconds, (whole, candidates) = timed(search, pixels, 20)
            print(f"  {name:22s} {search_name:8s} {1000 * seconds:6.1f} ms, {len(whole)} faces on the whole photo, "
                  f"{len(candidates)} candidates {presences(scorer, contract, pixels, candidates)}")
    if args.faceless:
        print("false candidates on faceless pictures (presence of each), per search:")
        for path in sorted(args.faceless.iterdir()):
            try:
                pixels = np.asarray(Image.open(path).convert("RGB"))
            except OSError:
                continue
            cells = []
            for search_name, search in searches.items():
                whole, candidates = search(pixels)
                cells.append(f"{search_name}: whole {presences(scorer, contract, pixels, whole)} "
                             f"search {presences(scorer, contract, pixels, candidates)}")
            print(f"  {path.name:28s} {pixels.shape[1]}x{pixels.shape[0]}: " + " | ".join(cells))


if __name__ == "__main__":
    main()
