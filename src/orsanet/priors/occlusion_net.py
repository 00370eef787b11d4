"""Priors that know what is hidden: a compact network from the face crop to ORSANet's two priors.

``OcclusionPriorNet`` reads the crop the input contract makes (grey, resized to 56 px) and gives,
on a 28 x 28 grid,

- ``parsing``: 12-class probabilities, the 11 LaPa-layout classes of the mesh's parsing map plus
  ``occluded`` (something in front of the face);
- ``heatmaps``: the 8 part heatmaps of ``orsanet.models.mesh_priors.part_heatmaps`` (brows, eyes,
  nose, lips, jaw line) where the parts *are*, hidden or not;
- ``visibility``: per part, the probability that it is visible;
- ``face``: the probability that the crop shows a face at all.

It is taught by ``orsanet.priors.occlusion_net_training`` on FERPlus training faces occluded by the
realistic generators: the targets are the mesh priors fitted on the clean face and the occluder's
mask. ``OcclusionNetPriors`` is its backend on the one prior path; unlike the mesh it sees the
occluder itself, so it is measured on the (augmented, occluded) pixels and never told the mask.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from orsanet.models.mesh_priors import LANDMARK_GROUPS
from orsanet.onnx_runtime import CpuFastPath
from orsanet.priors.face_priors import PRIOR_SIZE, Geometry, PriorBackend
from orsanet.priors.parsing_map import NUM_CLASSES as MESH_CLASSES

NET_SIZE = 56  # input side of the network
NUM_PARTS = len(LANDMARK_GROUPS)
NUM_CLASSES = MESH_CLASSES + 1  # + occluded
OCCLUDED = MESH_CLASSES  # index of the occluded class
# Mirror image: which part becomes which (subject's right brow <-> left brow, right eye <-> left eye).
PART_MIRROR = (1, 0, 3, 2, 4, 5, 6, 7)
DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent / "weights" / "occlusion-priors.safetensors"


def conv_bn(in_c: int, out_c: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_c, out_c, 3, stride, 1, bias=False), nn.BatchNorm2d(out_c), nn.ReLU(inplace=True))


class OcclusionPriorNet(nn.Module):
    """``(B, 3, S, S)`` pixels in [0, 1] -> dict of ``parsing (B, 12, 28, 28)`` logits, ``heatmaps
    (B, 8, 28, 28)`` logits, ``visibility (B, 8)`` logits, ``face (B,)`` logit.

    A small U-Net: 56 -> 28 -> 14 -> 7 and back to 28 with skips.
    """

    def __init__(self, width: int = 24) -> None:
        super().__init__()
        w1, w2, w3 = width, 2 * width, 4 * width
        self.down1 = nn.Sequential(conv_bn(1, w1, 2), conv_bn(w1, w1))      # 28
        self.down2 = nn.Sequential(conv_bn(w1, w2, 2), conv_bn(w2, w2))     # 14
        self.down3 = nn.Sequential(conv_bn(w2, w3, 2), conv_bn(w3, w3))     # 7
        self.up2 = conv_bn(w3 + w2, w2)                                      # 14
        self.up1 = conv_bn(w2 + w1, w1)                                      # 28
        self.dense_head = nn.Conv2d(w1, NUM_CLASSES + NUM_PARTS, 1)
        self.global_head = nn.Linear(w3, NUM_PARTS + 1)

    def encode(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The encoder's features at 28, 14 and 7 px: ``(B, w, 28, 28)``, ``(B, 2w, 14, 14)``, ``(B, 4w, 7, 7)``."""
        grey = pixels.float().mean(1, keepdim=True)
        x = grey
        if tuple(grey.shape[-2:]) != (NET_SIZE, NET_SIZE):  # skipped where it is the identity: then the
            # network also exports to ONNX opset 17, which has no antialiased resize
            x = F.interpolate(grey, size=(NET_SIZE, NET_SIZE), mode="bilinear", align_corners=False, antialias=True)
        f1 = self.down1((x - 0.5) / 0.25)
        f2 = self.down2(f1)
        return f1, f2, self.down3(f2)

    def forward(self, pixels: torch.Tensor) -> dict[str, torch.Tensor]:
        f1, f2, f3 = self.encode(pixels)
        u2 = self.up2(torch.cat([F.interpolate(f3, size=f2.shape[-2:], mode="bilinear", align_corners=False), f2], 1))
        u1 = self.up1(torch.cat([F.interpolate(u2, size=f1.shape[-2:], mode="bilinear", align_corners=False), f1], 1))
        dense = self.dense_head(u1)
        pooled = self.global_head(f3.mean((2, 3)))
        return {"parsing": dense[:, :NUM_CLASSES], "heatmaps": dense[:, NUM_CLASSES:],
                "visibility": pooled[:, :NUM_PARTS], "face": pooled[:, NUM_PARTS]}


def prior_net_info(path: str | Path) -> dict:
    """The training record in a prior-network weights file's metadata (recipe, minutes, ``face_score``)."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        return json.loads((handle.metadata() or {}).get("info", "{}"))


def load_prior_net(path: str | Path = DEFAULT_WEIGHTS, device: torch.device | str = "cpu") -> OcclusionPriorNet:
    """The network with its trained weights (a safetensors file written by the training stage)."""
    from safetensors import safe_open

    from orsanet.weight_loading import CheckpointError, load_weights

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no occlusion-prior weights (train them: orsanet train-priors)")
    with safe_open(str(path), "pt") as handle:
        width = int((handle.metadata() or {}).get("width", 24))
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    network = OcclusionPriorNet(width)
    load_weights(network, state, str(path))
    return network.to(device).eval().requires_grad_(False)


def part_centres(heatmaps: torch.Tensor) -> torch.Tensor:
    """Part heatmaps ``(B, 8, h, w)`` in [0, 1] -> their centres ``(B, 8, 2)`` in [0, 1] of the crop (x, y):
    each heatmap's centre of mass, of its squared values so that the peak counts most."""
    heatmaps = heatmaps.float() ** 2
    h, w = heatmaps.shape[-2:]
    weights = heatmaps / heatmaps.sum((2, 3), keepdim=True).clamp_min(1e-12)
    ys = (torch.arange(h, device=heatmaps.device, dtype=torch.float32) + 0.5) / h
    xs = (torch.arange(w, device=heatmaps.device, dtype=torch.float32) + 0.5) / w
    return torch.stack([(weights.sum(2) * xs).sum(-1), (weights.sum(3) * ys).sum(-1)], -1)


class OcclusionNetPriors(PriorBackend):
    """The occlusion-aware prior network as a backend of the one prior path.

    - geometry: ``parsing (B, 12, 28, 28)`` probabilities, ``heatmaps (B, 8, 28, 28)`` in [0, 1],
      ``visibility (B, 8)`` and ``face (B,)`` probabilities;
    - raw priors: ``parsing_prior`` = the 12-class map; ``landmark_prior (B, 16, 28, 28)`` = the part
      heatmaps, then the same weighted by each part's visibility.

    It is measured on the pixels the model sees, occluders included (``live``): an occluder mask
    passed to ``draw`` is not used, because the network has to find occluders itself.
    """

    name = "occlusion_net"
    version = 1
    live = True

    def __init__(self, device: torch.device | str = "cpu", weights: str | Path | None = None,
                 runtime: str | None = None) -> None:
        """``weights``: the network's file; by default ``$ORSANET_OCCLUSION_PRIORS`` or the shipped one.
        ``runtime``: where it runs on the CPU (``orsanet.onnx_runtime``): ``auto``, ``pytorch``, ``onnxruntime``."""
        self.device = torch.device(device)
        self.fast = CpuFastPath("OcclusionPriorNet", runtime)
        self.weights = Path(weights or os.environ.get("ORSANET_OCCLUSION_PRIORS") or DEFAULT_WEIGHTS)
        self._net: OcclusionPriorNet | None = None
        self._fingerprint: str | None = None

    @property
    def net(self) -> OcclusionPriorNet:
        if self._net is None:
            self._net = load_prior_net(self.weights, self.device)
        return self._net

    def fingerprint(self) -> str | None:
        """SHA-256 (first 16 hex digits) of the weights file (None when it is missing): model files
        record the prior net they trained with."""
        import hashlib

        if self._fingerprint is None and self.weights.is_file():  # hashed once: the file does not change under us
            self._fingerprint = hashlib.sha256(self.weights.read_bytes()).hexdigest()[:16]
        return self._fingerprint

    def to(self, device: torch.device | str) -> OcclusionNetPriors:
        self.device = torch.device(device)
        if self._net is not None:
            self._net.to(self.device)
        return self

    @torch.no_grad()
    def measure(self, pixels: torch.Tensor) -> Geometry:
        out = self.fast(self.net, pixels.to(self.device))
        geometry = {"parsing": out["parsing"].softmax(1), "heatmaps": out["heatmaps"].sigmoid(),
                    "visibility": out["visibility"].sigmoid(), "face": out["face"].sigmoid()}
        return {key: value.to(pixels.device) for key, value in geometry.items()}

    def draw(self, geometry: Geometry, hidden: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        heatmaps = geometry["heatmaps"].float()
        seen = heatmaps * geometry["visibility"].float()[..., None, None]
        return {"landmark_prior": torch.cat([heatmaps, seen], 1), "parsing_prior": geometry["parsing"].float()}

    def valid(self, geometry: Geometry) -> torch.Tensor:
        return geometry["face"] >= 0.5

    def face_score(self, geometry: Geometry) -> torch.Tensor:
        return geometry["face"]

    def points(self, geometry: Geometry) -> torch.Tensor:
        """The 8 part centres ``(B, 8, 2)`` (``part_centres``); hidden parts too, where the network puts them."""
        return part_centres(geometry["heatmaps"])

    def empty(self, batch: int, device: torch.device | str = "cpu") -> Geometry:
        parsing = torch.zeros(batch, NUM_CLASSES, PRIOR_SIZE, PRIOR_SIZE, device=device)
        parsing[:, 0] = 1  # all background
        return {"parsing": parsing, "heatmaps": torch.zeros(batch, NUM_PARTS, PRIOR_SIZE, PRIOR_SIZE, device=device),
                "visibility": torch.zeros(batch, NUM_PARTS, device=device), "face": torch.zeros(batch, device=device)}

    def mirror(self, geometry: Geometry) -> Geometry:
        from orsanet.priors.parsing_map import FLIP_CHANNELS

        order = torch.tensor(list(FLIP_CHANNELS) + [OCCLUDED], device=geometry["parsing"].device)
        parts = torch.tensor(PART_MIRROR, device=geometry["heatmaps"].device)
        return {**geometry, "parsing": geometry["parsing"][:, order].flip(-1),
                "heatmaps": geometry["heatmaps"][:, parts].flip(-1), "visibility": geometry["visibility"][:, parts]}

    def warp(self, geometry: Geometry, matrix: torch.Tensor, shift: torch.Tensor) -> Geometry:
        theta = torch.cat([matrix, shift.unsqueeze(-1)], -1).float()  # (B, 2, 3)
        grid = F.affine_grid(theta, list(geometry["parsing"].shape), align_corners=False)
        moved = {key: F.grid_sample(geometry[key].float(), grid, align_corners=False)
                 for key in ("parsing", "heatmaps")}
        moved["parsing"][:, 0] += 1 - moved["parsing"].sum(1)  # what came from outside the crop: background
        return {**geometry, **moved}
