"""What ships for occlusion: the trained occlusion-aware prior network finds the mask on the masked
example face and little on the clean one, the MobileFaceNet trunk is there for the backbone, and
every shipped weight file together stays within the 30 MB budget."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

from orsanet.priors.occlusion_net import DEFAULT_WEIGHTS, OCCLUDED, OcclusionNetPriors

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PACKAGE = Path(__file__).resolve().parents[1] / "src" / "orsanet"


def test_shipped_weights_stay_within_30_mb():
    files = [p for p in PACKAGE.rglob("*") if p.suffix in (".safetensors", ".onnx", ".bin", ".pt")]
    assert files and sum(p.stat().st_size for p in files) <= 30 * 2**20


def example_crop(name: str) -> torch.Tensor:
    """The example photo's face as the default contract frames it, ``(1, 3, 56, 56)``."""
    from orsanet.checkpoint import read_metadata
    from orsanet.inference.framing import FaceFinder

    finder = FaceFinder(read_metadata("default").contract)
    photo = Image.open(EXAMPLES / name).convert("RGB")
    return finder.pixels(photo, [finder.best_face(photo)])


@pytest.mark.skipif(not DEFAULT_WEIGHTS.exists(), reason="occlusion-prior weights not shipped")
def test_shipped_prior_net_sees_the_mask_on_the_example_face():
    priors = OcclusionNetPriors(weights=DEFAULT_WEIGHTS)
    masked = priors.measure(example_crop("astronaut_masked.jpg"))
    clean = priors.measure(example_crop("astronaut.jpg"))
    occluded_masked, occluded_clean = masked["parsing"][0, OCCLUDED], clean["parsing"][0, OCCLUDED]
    lower, upper = occluded_masked[16:].mean(), occluded_masked[:10].mean()
    print(f"occluded share: masked lower face {lower:.2f}, upper face {upper:.2f}; clean face {occluded_clean.mean():.2f}")
    assert lower > 0.4 and upper < 0.1 and occluded_clean.mean() < 0.05
    assert masked["face"].item() > 0.5 and clean["face"].item() > 0.5
    # the mouth is covered: its parts are marked hidden, the eyes visible
    assert masked["visibility"][0, 5:7].max() < 0.5 < masked["visibility"][0, 2:4].min()


@pytest.mark.skipif(not (PACKAGE / "weights" / "default.safetensors").exists(), reason="default model not packaged")
def test_shipped_default_loads_predicts_the_examples_and_records_its_contract():
    from orsanet import Recognizer
    from orsanet.checkpoint import read_metadata

    metadata = read_metadata("default")
    contract = metadata.contract.to_dict()
    assert contract["input_size"] == metadata.config.input_size and contract["color"] in ("gray", "rgb")
    assert {"mean", "std", "interpolation", "framing"} <= set(contract)
    assert metadata.label_names[:2] == ["neutral", "happiness"] and len(metadata.label_names) == 8
    recognizer = Recognizer()
    for name in ("astronaut.jpg", "astronaut_masked.jpg"):
        faces = recognizer.predict(EXAMPLES / name)
        assert len(faces) == 1, name  # one face, no false second one from the small-face search
        face = faces[0]
        assert face.expression in metadata.label_names and abs(sum(face.probabilities.values()) - 1) < 1e-4
        assert face.prior_valid
    assert recognizer.info()["input_contract"] == contract
