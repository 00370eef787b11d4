"""Measure what the face search of ``orsanet predict`` finds (``orsanet/priors/face_search.py``).

    python scripts/measure_face_search.py                       # sizes, on the example photos
    python scripts/measure_face_search.py --faceless DIR        # also false candidates on faceless pictures

1. Smallest face: the examples' face (plain and masked) is pasted at decreasing sizes on a grey
   1024-px canvas; for each size it prints whether the detector finds it on the whole canvas and
   whether the tiled search finds it, with the face-mesh presence of the hit.
2. False candidates (``--faceless``, e.g. the faceless sample pictures of scikit-image): every
   candidate the tiles give, with its face-mesh presence. ``CANDIDATE_SCORE`` in
   ``orsanet/inference/framing.py`` must sit above these and below the presences of part 1.

The presence is measured as ``orsanet predict`` measures it: the mesh prior backend on the face's
frame, cut and resized by the default model's input contract.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from orsanet.checkpoint import read_metadata
from orsanet.priors import FaceDetector
from orsanet.priors.face_priors import MeshPriors
from orsanet.priors.face_search import find_faces

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SIZES = (400, 240, 160, 120, 90, 70, 55, 45, 38, 32, 26)


CONTRACT = read_metadata("default").contract


def presences(mesh: MeshPriors, pixels: np.ndarray, detections) -> list[float]:
    if not detections:
        return []
    photo = Image.fromarray(pixels)
    crops = torch.stack([CONTRACT.cut(photo, CONTRACT.frame(d.box)) for d in detections])
    return [round(float(p), 2) for p in mesh.face_score(mesh.measure(crops))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faceless", type=Path, help="a folder of pictures without faces")
    parser.add_argument("--canvas", type=int, default=1024)
    args = parser.parse_args()
    torch.set_num_threads(1)
    detector, mesh = FaceDetector(), MeshPriors()
    print(f"face box side (px) on a {args.canvas}-px canvas: found on the whole canvas / found by the tiled search "
          "(mesh presence)")
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
            whole, candidates = find_faces(detector, pixels, min_face=min(40, size))
            print(f"  {name:22s} box {size:4d}: whole {'yes' if whole else 'no ':3s}  tiles "
                  f"{'yes' if candidates else 'no ':3s} {presences(mesh, pixels, whole + candidates)}")
    if args.faceless:
        print("false candidates on faceless pictures (mesh presence of each):")
        for path in sorted(args.faceless.iterdir()):
            try:
                pixels = np.asarray(Image.open(path).convert("RGB"))
            except OSError:
                continue
            whole, candidates = find_faces(detector, pixels)
            print(f"  {path.name:28s} {pixels.shape[1]}x{pixels.shape[0]}: whole {presences(mesh, pixels, whole)} "
                  f"tiles {presences(mesh, pixels, candidates)}")


if __name__ == "__main__":
    main()
