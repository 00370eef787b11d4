"""Prior sources: where ORSANet's two frozen priors come from.

A prior source is a frozen *extractor* followed by a trainable *adapter*:

- ``extract(images)`` runs the frozen extractor (no gradient, always in eval mode) and
  returns the *raw prior*. Raw priors can be computed once, cached on disk and passed
  back to the model, so a source may also have no extractor at all (offline priors).
- ``adapter(raw)`` turns the raw prior into what the model consumes.

The two roles and what their adapters must return:

- landmark source -> landmark tokens ``(B, 49, dim)`` for the cross-attention (MCM);
- parsing source  -> label features ``(B, label_channels, h, w)`` for SSGM.

The paper configuration uses network features for both (MobileFaceNet conv features;
Swin-B parser features through a 1x1 conv). Offline sources that give points or label
maps plug in the same way with their own adapters.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from orsanet.models.mobilefacenet import LandmarkMobileFaceNet
from orsanet.models.swin_parser import SwinParserEncoder


class PriorSource(nn.Module):
    """A frozen extractor (optional) and a trainable adapter."""

    def __init__(self, extractor: nn.Module | None, adapter: nn.Module) -> None:
        super().__init__()
        self.extractor = extractor
        self.adapter = adapter
        if extractor is not None:
            extractor.requires_grad_(False)
            extractor.eval()

    def extract(self, images: torch.Tensor) -> torch.Tensor:
        """Raw prior of ``images`` from the frozen extractor."""
        if self.extractor is None:
            raise ValueError(f"{type(self).__name__} has no extractor: pass the precomputed prior to the model")
        with torch.no_grad():
            return self.extractor(images)

    def forward(self, images: torch.Tensor, raw: torch.Tensor | None = None) -> torch.Tensor:
        if raw is None:
            raw = self.extract(images)
        return self.adapter(raw)

    def train(self, mode: bool = True) -> "PriorSource":
        super().train(mode)
        if self.extractor is not None:
            self.extractor.eval()  # frozen priors never update BN statistics
        return self


class MobileFaceNetFeatures(nn.Module):
    """Images ``(B, 3, H, W)`` -> MobileFaceNet conv features ``(B, 512, 7, 7)`` (input resized to 112, nearest)."""

    def __init__(self) -> None:
        super().__init__()
        self.network = LandmarkMobileFaceNet(num_points=68)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network.features(F.interpolate(images, size=112))

    def points(self, images: torch.Tensor) -> torch.Tensor:
        """68 landmarks ``(B, 68, 2)`` in [0, 1] image coordinates, for pictures."""
        with torch.no_grad():
            return self.network.points(self(images))


class GridToTokens(nn.Module):
    """``(B, C, h, w)`` -> ``(B, h*w, C)``, no parameters."""

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        return grid.flatten(2).transpose(1, 2)


def mobilefacenet_landmark_source(out_channels: int = 512) -> PriorSource:
    """The paper's landmark source: frozen MobileFaceNet features used directly as 49 tokens of width 512.

    For a model narrower than 512 a trainable Linear(512 -> width) follows (not in the paper).
    """
    adapter = GridToTokens() if out_channels == 512 else nn.Sequential(GridToTokens(), nn.Linear(512, out_channels))
    return PriorSource(MobileFaceNetFeatures(), adapter)


def swin_parsing_source(out_channels: int = 512) -> PriorSource:
    """The paper's parsing source: frozen Swin-B parser features -> trainable 1x1 conv (``seg_sample``)."""
    return PriorSource(SwinParserEncoder(), nn.Conv2d(SwinParserEncoder.out_channels, out_channels, 1))


def mesh_landmark_source(out_channels: int) -> PriorSource:
    """Offline landmarks: face-mesh points -> part heatmaps -> trainable conv encoder -> 49 tokens."""
    from orsanet.models.mesh_priors import LandmarkHeatmapEncoder

    return PriorSource(None, LandmarkHeatmapEncoder(out_channels))


def mesh_parsing_source(out_channels: int) -> PriorSource:
    """Offline parsing: the soft 11-class map drawn from the mesh -> trainable conv encoder (7x7)."""
    from orsanet.models.mesh_priors import conv_encoder
    from orsanet.priors.parsing_map import NUM_CLASSES

    return PriorSource(None, conv_encoder(NUM_CLASSES, out_channels))


class MapTokens(nn.Module):
    """Prior maps ``(B, C, 28, 28)`` -> tokens ``(B, 49, dim)`` (conv encoder, then one token per cell)."""

    def __init__(self, in_channels: int, dim: int) -> None:
        super().__init__()
        from orsanet.models.mesh_priors import conv_encoder

        self.encoder = conv_encoder(in_channels, dim)

    def forward(self, maps: torch.Tensor) -> torch.Tensor:
        return self.encoder(maps).flatten(2).transpose(1, 2)


def occlusion_net_landmark_source(out_channels: int) -> PriorSource:
    """Occlusion-aware landmarks: the prior network's part heatmaps and their visibility-weighted
    copies ``(B, 16, 28, 28)`` -> trainable conv encoder -> 49 tokens."""
    from orsanet.priors.occlusion_net import NUM_PARTS

    return PriorSource(None, MapTokens(2 * NUM_PARTS, out_channels))


def occlusion_net_parsing_source(out_channels: int) -> PriorSource:
    """Occlusion-aware parsing: the prior network's 12-class map (11 face classes + occluded) -> conv encoder."""
    from orsanet.models.mesh_priors import conv_encoder
    from orsanet.priors.occlusion_net import NUM_CLASSES

    return PriorSource(None, conv_encoder(NUM_CLASSES, out_channels))


LANDMARK_SOURCES = {"mobilefacenet": mobilefacenet_landmark_source, "mesh_heatmaps": mesh_landmark_source,
                    "occlusion_net_heatmaps": occlusion_net_landmark_source}
PARSING_SOURCES = {"swin_b": swin_parsing_source, "mesh_parsing": mesh_parsing_source,
                   "occlusion_net_parsing": occlusion_net_parsing_source}
# Parsing sources whose raw prior ends with an "occluded" class (``ORSANetConfig.mask_occluded``).
OCCLUDED_CLASS_SOURCES = ("occlusion_net_parsing",)
# Sources without an extractor: their raw priors come from this backend of ``orsanet.priors.face_priors``.
SOURCE_BACKENDS = {"mesh_heatmaps": "mesh", "mesh_parsing": "mesh",
                   "occlusion_net_heatmaps": "occlusion_net", "occlusion_net_parsing": "occlusion_net"}
