"""ORSANet assembled: image backbone, two frozen priors, SSGM, MCM, SE gate and head.

Data flow of the paper configuration (``B`` images, 224 px, ImageNet-normalised)::

    images ─ IR-50 grid ───────────── I (B, 512, 7, 7)
           ─ parsing source ───────── S (B, 512, 7, 7) ─┐
                                       SSGM(I, S) ──────┴─ image tokens (B, 49, 512)
           ─ landmark source ──────── L (B, 49, 512)
                                       MCM(image tokens, L) ── f (B, 512)
                                       SE gate, Linear ─────── logits (B, classes)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from orsanet.models.image_backbone import IMAGE_BACKBONES
from orsanet.models.mcm import MCM, weighted_mean
from orsanet.models.priors import LANDMARK_SOURCES, OCCLUDED_CLASS_SOURCES, PARSING_SOURCES, SOURCE_BACKENDS
from orsanet.models.ssgm import SSGM

MCM_DEPTHS = {"tiny": 2, "small": 4, "base": 6, "large": 8}


@dataclass
class ORSANetConfig:
    """Everything needed to rebuild a model (stored in every checkpoint).

    ``use_ssgm``, ``use_mcm``, ``multi_scale`` and ``landmark_reintegration`` switch off the
    parts the paper ablates in Table 6; ``query_projection`` is the paper-text variant of MCM.
    ``mask_occluded`` (not in the paper) leaves what the parsing prior marks as occluded out of
    the pooled image token and of MCM's attention; it needs a parsing source with that class.
    """

    num_classes: int = 7
    size: str = "large"
    image_backbone: str = "ir50"
    landmark_source: str = "mobilefacenet"
    parsing_source: str = "swin_b"
    dim: int = 512
    num_heads: int = 8
    mlp_ratio: float = 2.0
    drop_path: float = 0.1
    use_ssgm: bool = True
    use_mcm: bool = True
    multi_scale: bool = True
    landmark_reintegration: bool = True
    query_projection: bool = False
    input_size: int = 224
    mask_occluded: bool = False

    def __post_init__(self) -> None:
        if self.size not in MCM_DEPTHS:
            raise ValueError(f"size must be one of {sorted(MCM_DEPTHS)}, got {self.size!r}")
        for field, table in (("image_backbone", IMAGE_BACKBONES), ("landmark_source", LANDMARK_SOURCES),
                             ("parsing_source", PARSING_SOURCES)):
            if getattr(self, field) not in table:
                raise ValueError(f"{field} must be one of {sorted(table)}, got {getattr(self, field)!r}")
        backends = {SOURCE_BACKENDS[s] for s in (self.landmark_source, self.parsing_source) if s in SOURCE_BACKENDS}
        if len(backends) > 1:
            raise ValueError(f"landmark and parsing sources read different prior backends ({', '.join(sorted(backends))})")
        if self.mask_occluded and self.parsing_source not in OCCLUDED_CLASS_SOURCES:
            raise ValueError(f"mask_occluded needs a parsing source with an occluded class "
                             f"({', '.join(OCCLUDED_CLASS_SOURCES)}), got {self.parsing_source!r}")

    @property
    def depth(self) -> int:
        return MCM_DEPTHS[self.size]

    @property
    def prior_backend(self) -> str | None:
        """The ``orsanet.priors`` backend whose raw priors the model reads (None: it extracts its own)."""
        used = {SOURCE_BACKENDS[source] for source, on in ((self.landmark_source, self.use_mcm),
                                                            (self.parsing_source, self.use_ssgm or self.mask_occluded))
                if on and source in SOURCE_BACKENDS}
        return used.pop() if used else None

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "ORSANetConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown ORSANet config keys: {', '.join(unknown)}")
        return cls(**values)


TOKEN_GRID = 7  # every image backbone gives a 7 x 7 grid: MCM's 49 image tokens


def visible_weights(parsing_prior: torch.Tensor, floor: float = 0.01) -> torch.Tensor:
    """How visible each image token is: ``1 - P(occluded)`` of the parsing prior ``(B, C, h, w)``
    (its last class, ``orsanet.priors.occlusion_net.OCCLUDED``) averaged over the token's cell
    -> ``(B, 49)`` in ``[floor, 1]`` (the floor keeps a wholly hidden face defined)."""
    occluded = F.adaptive_avg_pool2d(parsing_prior[:, -1:].float(), TOKEN_GRID)  # (B, 1, 7, 7)
    return (1 - occluded).flatten(1).clamp(floor, 1)


class ORSANetOutput(NamedTuple):
    logits: torch.Tensor  # (B, num_classes)
    features: torch.Tensor  # (B, dim)


class SEGate(nn.Module):
    """Squeeze-excitation style gate on a vector: ``f * sigmoid(W2 relu(W1 f))``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear1 = nn.Linear(dim, dim)
        self.linear2 = nn.Linear(dim, dim)

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f * torch.sigmoid(self.linear2(torch.relu(self.linear1(f))))


class ORSANet(nn.Module):
    """The ORSANet classifier. ``model(images)`` -> ``ORSANetOutput(logits, features)``."""

    def __init__(self, config: ORSANetConfig | None = None, label_names: list[str] | None = None) -> None:
        super().__init__()
        self.config = config = config or ORSANetConfig()
        if label_names is not None and len(label_names) != config.num_classes:
            raise ValueError(f"{len(label_names)} label names for {config.num_classes} classes")
        self.label_names = list(label_names) if label_names is not None else None
        self.image_backbone = IMAGE_BACKBONES[config.image_backbone](config.dim)
        # Priors are built only where a module reads them.
        self.parsing_source = PARSING_SOURCES[config.parsing_source](config.dim) if config.use_ssgm else None
        self.ssgm = SSGM(config.dim, config.dim, hidden=min(128, config.dim // 2)) if config.use_ssgm else None
        self.landmark_source = LANDMARK_SOURCES[config.landmark_source](config.dim) if config.use_mcm else None
        self.mcm = (
            MCM(config.dim, config.depth, num_tokens=TOKEN_GRID**2, num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
                drop_path=config.drop_path, multi_scale=config.multi_scale,
                query_projection=config.query_projection, reintegrate=config.landmark_reintegration)
            if config.use_mcm else None
        )
        self.se_gate = SEGate(config.dim)
        self.head = nn.Linear(config.dim, config.num_classes)

    @property
    def prior_backend(self) -> str | None:
        """The prior backend whose raw priors ``forward`` needs (see ``ORSANetConfig.prior_backend``)."""
        return self.config.prior_backend

    def forward(self, images: torch.Tensor, landmark_prior: torch.Tensor | None = None,
                parsing_prior: torch.Tensor | None = None) -> ORSANetOutput:
        """images ``(B, 3, S, S)`` normalised; the raw priors of a model with a prior backend
        (``orsanet.priors.face_priors``; ``orsanet.FaceModel`` composes both). Network sources
        (the paper configuration) extract their priors from ``images`` when none are given."""
        reads_parsing = self.ssgm is not None or self.config.mask_occluded
        if self.prior_backend is not None and (
                (reads_parsing and parsing_prior is None) or (self.mcm is not None and landmark_prior is None)):
            raise ValueError(f"this model reads {self.prior_backend!r} priors: pass landmark_prior and parsing_prior "
                             "(orsanet.FaceModel computes them from the face crops)")
        grid = self.image_backbone(images)  # (B, D, 7, 7)
        if self.ssgm is not None:
            grid = self.ssgm(grid, self.parsing_source(images, parsing_prior))
        image_tokens = grid.flatten(2).transpose(1, 2)  # (B, 49, D)
        weights = visible_weights(parsing_prior) if self.config.mask_occluded else None
        if self.mcm is not None:
            features = self.mcm(image_tokens, self.landmark_source(images, landmark_prior), weights)
        elif weights is not None:
            features = weighted_mean(image_tokens, weights)  # the visible image tokens' mean
        else:
            features = image_tokens.mean(1)  # "w/o cross-interaction": classify the mean image token
        features = self.se_gate(features)
        return ORSANetOutput(self.head(features), features)

    def prior_sources(self) -> dict[str, nn.Module]:
        """The prior sources this configuration uses, by role."""
        sources = {"landmarks": self.landmark_source, "parsing": self.parsing_source}
        return {role: source for role, source in sources.items() if source is not None}


def compact_config(num_classes: int = 8, **overrides) -> ORSANetConfig:
    """The CPU configuration of the default model: 56-px crops, compact residual backbone, mesh priors,
    SSGM and a two-block MCM of width 128 (see docs/model-card.md for its measured speed and accuracy)."""
    values = dict(num_classes=num_classes, size="tiny", image_backbone="resnet_compact", landmark_source="mesh_heatmaps",
                  parsing_source="mesh_parsing", dim=128, num_heads=4, mlp_ratio=2.0, drop_path=0.05, input_size=56)
    values.update(overrides)
    return ORSANetConfig(**values)
