"""A picture of the occlusion-aware prior network at work (docs/occlusion-priors.png).

    python scripts/prior_net_sheet.py ../shared/data/ferplus docs/occlusion-priors.png \\
        [--weights runs/occlusion-priors/occlusion-priors.safetensors]

One row per FERPlus Valid face, each hidden by another occluder kind: the occluded crop, the
network's parsing map (occluded cells in red), the mesh fitted on the occluded face and its map,
and the network's part heatmaps (where the parts are, hidden or not).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from orsanet.contract import InputContract
from orsanet.occlusion import OcclusionAugment
from orsanet.priors.face_priors import MeshPriors
from orsanet.priors.occlusion_net import DEFAULT_WEIGHTS, OCCLUDED, OcclusionNetPriors
from orsanet.priors.occlusion_net_training import load_batch, open_split

KINDS = ("medical_mask", "sunglasses", "hand", "scarf", "square_mean", "cup")
# background, skin, brows, eyes, nose, upper lip, inner mouth, lower lip, hair, occluded
COLOURS = np.array([[0, 0, 0], [230, 190, 160], [120, 70, 30], [120, 70, 30], [40, 120, 230], [40, 120, 230],
                    [250, 220, 60], [200, 40, 90], [90, 10, 40], [200, 40, 90], [60, 40, 20], [255, 0, 0]]) / 255


def coloured(parsing: torch.Tensor) -> np.ndarray:
    return COLOURS[parsing.argmax(0).numpy()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root")
    parser.add_argument("out", type=Path)
    parser.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    args = parser.parse_args()
    contract = InputContract(input_size=64, color="gray")
    valid = open_split(args.root, "valid")
    net, mesh = OcclusionNetPriors(weights=args.weights), MeshPriors()
    pixels = load_batch(valid, contract, range(0, 6 * 7, 7))
    rows = []
    for i, kind in enumerate(KINDS):
        face = pixels[i:i + 1]
        clean = mesh.measure(face)
        occluded, _ = OcclusionAugment({kind: 1.0}, p=1.0, generator=torch.Generator().manual_seed(i))(
            face, mesh.points(clean), mesh.valid(clean))
        rows.append((kind, occluded[0], net.measure(occluded), mesh.draw(mesh.measure(occluded))["parsing_prior"][0]))
    figure, axes = plt.subplots(len(rows), 4, figsize=(8, 2 * len(rows)))
    for r, (kind, image, geometry, mesh_map) in enumerate(rows):
        panels = [(image.permute(1, 2, 0).numpy(), kind), (coloured(geometry["parsing"][0]), "prior net (red: occluded)"),
                  (COLOURS[mesh_map.argmax(0).numpy()], "mesh on the occluded face"),
                  (geometry["heatmaps"][0].amax(0).numpy(), "prior net: parts")]
        for c, (picture, title) in enumerate(panels):
            axes[r, c].imshow(picture, cmap="magma" if picture.ndim == 2 else None, vmin=0, vmax=1)
            axes[r, c].set_title(title, fontsize=8)
            axes[r, c].axis("off")
    figure.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=110)
    print(f"wrote {args.out} (occluded class index {OCCLUDED})")


if __name__ == "__main__":
    main()
