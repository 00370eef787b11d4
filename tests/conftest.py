"""Shared fixtures. Tests that need ../shared (FERPlus) skip when it is absent."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
torch.set_num_threads(2)

SHARED = Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def official_state_large() -> dict[str, torch.Tensor]:
    from official_reference import random_official_state

    return random_official_state("large", num_classes=7, seed=0)


@pytest.fixture(scope="session")
def face_batch() -> torch.Tensor:
    """Two normalised 224 px 'images' (random, but fixed)."""
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A random compact mesh-prior model file (FERPlus labels, grey 56-px input), like the default's layout."""
    from orsanet.checkpoint import save_model
    from orsanet.contract import InputContract
    from orsanet.labels import dataset_label_names
    from orsanet.models import ORSANet, compact_config

    torch.manual_seed(0)
    labels = dataset_label_names("ferplus")
    model = ORSANet(compact_config(len(labels), dim=32, num_heads=4), labels)
    return save_model(tmp_path_factory.mktemp("model") / "tiny.safetensors", model, labels, InputContract(56, color="gray"))


@pytest.fixture()
def prior_net_model(tmp_path, monkeypatch):
    """``make(**config) -> path``: a random compact model file on the occlusion-aware priors, whose
    prior network (random weights, width 8) ``$ORSANET_OCCLUSION_PRIORS`` points to."""
    from orsanet.checkpoint import save_model
    from orsanet.contract import InputContract
    from orsanet.labels import dataset_label_names
    from orsanet.models import ORSANet, compact_config
    from orsanet.priors.occlusion_net import OcclusionPriorNet
    from orsanet.priors.occlusion_net_training import write_weights

    def make(**config) -> Path:
        torch.manual_seed(0)
        weights = tmp_path / "priors.safetensors"
        write_weights(OcclusionPriorNet(width=8), weights, {})
        monkeypatch.setenv("ORSANET_OCCLUSION_PRIORS", str(weights))
        labels = dataset_label_names("ferplus")
        model = ORSANet(compact_config(len(labels), dim=32, num_heads=4, landmark_source="occlusion_net_heatmaps",
                                       parsing_source="occlusion_net_parsing", **config), labels)
        return save_model(tmp_path / "priored.safetensors", model, labels, InputContract(56, color="gray"))

    return make
