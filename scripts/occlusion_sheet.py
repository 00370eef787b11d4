"""A picture of one face under every occlusion kind, with each occluder's mask in red underneath.

    python scripts/occlusion_sheet.py docs/occlusion-kinds.png [--size 112] [--seed 0]

The face is the example photo's, framed as ``predict`` frames faces (at ``--size`` px, RGB); the
occluders are placed from the face mesh measured on that crop, as ``orsanet occlude`` places them.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from orsanet.checkpoint import read_metadata
from orsanet.inference.framing import FaceFinder
from orsanet.occlusion import GROUPS, KINDS, occlude
from orsanet.priors.face_priors import MeshPriors

PHOTO = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"
LABEL = 14  # px of text above each tile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--columns", type=int, default=6)
    args = parser.parse_args()
    contract = dataclasses.replace(read_metadata("default").contract, input_size=args.size, color="rgb")
    photo = Image.open(PHOTO).convert("RGB")
    finder = FaceFinder(contract)
    pixels = finder.pixels(photo, [finder.best_face(photo)])  # (1, 3, S, S)
    geometry = MeshPriors().measure(pixels)
    image, points = pixels[0], geometry["points"][0]
    kinds = [kind for kind in KINDS if kind not in GROUPS]
    entries = [("clean", image, torch.zeros(args.size, args.size, dtype=torch.bool))]
    for k, kind in enumerate(kinds):
        occluded, mask, _ = occlude(image, points, kind, args.seed * 1000 + k)
        entries.append((kind, occluded, mask))
    tile, columns = args.size, args.columns
    rows = -(-len(entries) // columns)
    sheet = Image.new("RGB", (columns * tile, rows * 2 * (tile + LABEL)), "white")
    draw = ImageDraw.Draw(sheet)
    dimmed = (image.permute(1, 2, 0).numpy() * 0.5 * 255).astype(np.uint8)
    for n, (name, occluded, mask) in enumerate(entries):
        row, column = divmod(n, columns)
        x, y = column * tile, row * 2 * (tile + LABEL)
        sheet.paste(Image.fromarray((occluded.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)), (x, y + LABEL))
        shown = dimmed.copy()
        shown[mask.numpy()] = (255, 40, 40)
        sheet.paste(Image.fromarray(shown), (x, y + 2 * LABEL + tile))
        draw.text((x + 2, y + 1), name, fill="black")
        draw.text((x + 2, y + tile + LABEL + 1), f"mask {mask.float().mean():.0%}", fill="black")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(args.out)
    print(f"{args.out}: {len(entries) - 1} kinds, {sheet.size[0]}x{sheet.size[1]} px")


if __name__ == "__main__":
    main()
