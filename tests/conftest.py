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
