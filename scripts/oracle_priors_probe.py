#!/usr/bin/env python3
"""Would priors that see through the occluder pay? Models given the priors of the face before it was hidden.

    python scripts/oracle_priors_probe.py default runs/ferplus-imagedrop-40/best.safetensors \
        --data ../shared/data/ferplus --json /tmp/oracle.json

Each model classifies the FERPlus test faces under a 30 % mean-colour square and under a medical
mask (the faces and occluders of ``scripts/priors_only_probe.py``: seeded, placed on the average
face), three ways: with the priors its backend measures on the occluded face (as ``predict`` does),
with the priors measured on the same face before it was occluded (an oracle: priors that see
through the occluder perfectly), and with none. The gap between the first two is the most that
better priors could give this model; the gap to the third, what its priors give it now.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

from orsanet.face_model import FaceModel

sys.path.insert(0, str(Path(__file__).resolve().parent))
from priors_only_probe import faces, hidden  # noqa: E402  (one home for the probe's faces and occluders)

log = logging.getLogger("oracle_priors_probe")
PRIORS = ("measured", "oracle", "none")


@torch.no_grad()
def accuracy(face: FaceModel, pixels: torch.Tensor, clean: torch.Tensor, targets: torch.Tensor, priors: str,
             batch: int = 256) -> float:
    """Accuracy on ``pixels (N, 3, S, S)`` with the priors of ``PRIORS``: measured on ``pixels``, on the
    un-occluded ``clean`` faces, or the backend's empty geometry."""
    correct = 0
    for i in range(0, len(pixels), batch):
        chunk = pixels[i:i + batch]
        if priors == "none":
            geometry = face.priors.empty(len(chunk), chunk.device)
        else:
            geometry = face.measure(chunk if priors == "measured" else clean[i:i + batch])
        correct += int((face.logits(chunk, geometry).argmax(1) == targets[i:i + batch]).sum())
    return correct / len(pixels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", help="model files with a prior backend, or 'default'")
    parser.add_argument("--data", required=True, help="FERPlus folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    report: dict = {}
    test_sets: dict = {}  # (contract, labels) -> clean faces, targets, occluded faces: read and drawn once
    for spec in args.models:
        face = FaceModel.load(spec, runtime="pytorch")
        if face.priors is None:
            raise SystemExit(f"{spec}: this model reads no priors")
        contract = face.contract
        key = (json.dumps(contract.to_dict(), sort_keys=True), tuple(face.label_names))
        if key not in test_sets:
            clean, targets = faces(args.data, "test", contract, face.label_names)
            test_sets[key] = clean, targets, {
                "square 30 %": hidden(clean, {"square": 1.0}, 1.0, seed=2, area=(0.3, 0.3)),
                "medical mask": hidden(clean, {"medical_mask": 1.0}, 1.0, seed=3)}
        clean, targets, settings = test_sets[key]
        report[spec] = {name: {priors: round(100 * accuracy(face, pixels, clean, targets, priors), 2)
                               for priors in PRIORS} for name, pixels in settings.items()}
        log.info("%s: %s", spec, report[spec])
    report["minutes"] = round((time.perf_counter() - started) / 60, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
