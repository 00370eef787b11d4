"""Small networks on ONNX Runtime (``orsanet.onnx_runtime``): the same outputs, cached graphs, fallbacks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

pytest.importorskip("onnxruntime")

from orsanet.onnx_runtime import CpuFastPath, check_runtime, stand_in  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


class TwoHeads(nn.Module):
    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1, groups=1)
        self.dw = nn.Conv2d(4, 4, 3, padding=1, groups=4)
        self.as_dict = as_dict

    def forward(self, x):
        h = self.dw(torch.relu(self.conv(x)))
        pooled = h.mean((2, 3))
        return {"map": h, "pooled": pooled} if self.as_dict else (h, pooled)


class Antialiased(nn.Module):
    def forward(self, x):
        return F.interpolate(x, size=(4, 4), mode="bilinear", antialias=True)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ORSANET_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "graphs"


@pytest.mark.parametrize("as_dict", [False, True])
def test_stand_in_matches_pytorch_on_any_batch_and_is_cached(cache, as_dict):
    torch.manual_seed(0)
    network = TwoHeads(as_dict).eval()
    fast = stand_in(network, torch.zeros(1, 3, 16, 16), "two_heads")
    x = torch.rand(3, 3, 16, 16)  # another batch size than the traced one
    with torch.no_grad():
        expected = network(x)
    got = fast(x)
    if as_dict:
        assert list(got) == ["map", "pooled"]
        expected, got = tuple(expected.values()), tuple(got.values())
    for e, g in zip(expected, got):
        assert g.shape == e.shape and torch.allclose(g, e, atol=1e-5)
    files = list(cache.glob("two_heads-*.onnx"))
    assert len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    stand_in(network, torch.zeros(1, 3, 16, 16), "two_heads")  # read back, not made again
    assert files[0].stat().st_mtime_ns == stamp
    with torch.no_grad():
        network.conv.weight.add_(1)  # other weights: another graph
    stand_in(network, torch.zeros(1, 3, 16, 16), "two_heads")
    assert len(list(cache.glob("two_heads-*.onnx"))) == 2


def test_unwritable_cache_keeps_the_graph_in_memory(tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("ORSANET_CACHE", str(blocker))
    network = TwoHeads().eval()
    fast = stand_in(network, torch.zeros(1, 3, 8, 8), "two_heads")
    x = torch.rand(2, 3, 8, 8)
    with torch.no_grad():
        assert torch.allclose(fast(x)[1], network(x)[1], atol=1e-5)


def test_runtime_choices_and_fallbacks(cache, monkeypatch):
    network = TwoHeads().eval()
    assert stand_in(network, torch.zeros(1, 3, 8, 8), "two_heads", "pytorch") is None
    with pytest.raises(ValueError, match="runtime must be one of"):
        check_runtime("tensorrt")
    monkeypatch.setenv("ORSANET_RUNTIME", "pytorch")
    assert check_runtime(None) == "pytorch"
    monkeypatch.delenv("ORSANET_RUNTIME")
    # an operator ONNX opset 17 lacks: auto falls back to PyTorch, an explicit onnxruntime says so
    assert stand_in(Antialiased(), torch.zeros(1, 1, 9, 9), "antialiased") is None
    with pytest.raises(ValueError, match="antialiased does not export"):
        stand_in(Antialiased(), torch.zeros(1, 1, 9, 9), "antialiased", "onnxruntime")
    fast = CpuFastPath("antialiased")
    x = torch.rand(2, 1, 9, 9)
    assert torch.equal(fast(Antialiased(), x), Antialiased()(x))
    # gradients asked for, or a module in training mode: always PyTorch
    path = CpuFastPath("two_heads")
    assert path(network, torch.rand(2, 3, 8, 8, requires_grad=True))[0].requires_grad
    network.train()
    out = path(network, torch.rand(2, 3, 8, 8))
    assert out[0].grad_fn is not None


def test_detectors_find_the_same_faces_on_both_runtimes(cache):
    from PIL import Image

    from orsanet.priors import FaceDetector
    from orsanet.priors.face_detector_full_range import FullRangeFaceDetector

    photos = [np.asarray(Image.open(path).convert("RGB")) for path in sorted(EXAMPLES.glob("*.jpg"))]
    for detector in (FaceDetector, FullRangeFaceDetector):
        fast, plain = detector(runtime="onnxruntime").detect(photos, 0.3), detector(runtime="pytorch").detect(photos, 0.3)
        assert [len(faces) for faces in fast] == [len(faces) for faces in plain] and sum(map(len, fast)) >= 2
        for a, b in zip(sum(fast, []), sum(plain, [])):
            assert np.abs(a.box - b.box).max() < 1e-2 and abs(a.score - b.score) < 1e-4


def test_face_model_runs_its_network_on_onnx_runtime_only_when_asked(cache):
    from orsanet.face_model import FaceModel
    from orsanet.models import ORSANet, compact_config

    torch.manual_seed(0)
    labels = ["neutral", "happiness", "surprise"]
    model = ORSANet(compact_config(len(labels), dim=32, num_heads=4, landmark_source="occlusion_net_heatmaps",
                                   parsing_source="occlusion_net_parsing"), labels)
    pixels = torch.rand(3, 3, 56, 56)
    plain = FaceModel(model)  # the default: PyTorch, whose weights training may still change
    fast = FaceModel(model, runtime="onnxruntime")
    geometry = plain.measure(pixels)
    expected = plain.logits(pixels, geometry)
    assert not list(cache.glob("ORSANet-*.onnx"))
    got = fast.logits(pixels, geometry, flip=True)
    assert len(list(cache.glob("ORSANet-*.onnx"))) == 1
    assert torch.allclose(got, plain.logits(pixels, geometry, flip=True), atol=1e-4)
    assert torch.allclose(fast.logits(pixels[:1], geometry={k: v[:1] for k, v in geometry.items()}), expected[:1],
                          atol=1e-4)
    assert FaceModel(model, runtime="onnxruntime", channels_last=True).fast.runtime == "pytorch"
    model.train()
    assert fast._run(*fast.inputs(pixels, geometry)).grad_fn is not None  # training mode: PyTorch
