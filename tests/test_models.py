"""Shapes, gradients and frozen-prior behaviour of every component and of the whole model."""

from __future__ import annotations

import pytest
import torch

from orsanet.models import ORSANet, ORSANetConfig
from orsanet.models.ir50 import IR50
from orsanet.models.mcm import MCM, CrossFusionBlock
from orsanet.models.mobilefacenet import LandmarkMobileFaceNet
from orsanet.models.ssgm import SSGM
from orsanet.models.swin_parser import SwinParserEncoder


def _all_grads(module: torch.nn.Module) -> list[str]:
    return [name for name, p in module.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum())]


def test_ir50_shape_and_gradient():
    net = IR50()
    out = net(torch.randn(2, 3, 224, 224))
    assert out.shape == (2, 256, 14, 14)
    out.mean().backward()
    assert _all_grads(net) == []


def test_mobilefacenet_features_and_points():
    net = LandmarkMobileFaceNet().eval()
    points, features = net(torch.randn(2, 3, 112, 112))
    assert features.shape == (2, 512, 7, 7) and points.shape == (2, 68, 2)


def test_swin_parser_encoder_stage4_features():
    out = SwinParserEncoder().eval()(torch.randn(1, 3, 224, 224))
    assert out.shape == (1, 1024, 7, 7)


def test_ssgm_uses_the_label_map_and_has_gradients():
    ssgm = SSGM(64, 32)
    x, labels = torch.randn(2, 64, 7, 7), torch.randn(2, 32, 14, 14)
    out = ssgm(x, labels)
    assert out.shape == x.shape
    assert not torch.allclose(out, ssgm(x, labels + 1.0))
    out.square().mean().backward()
    assert _all_grads(ssgm) == []


@pytest.mark.parametrize("multi_scale", [True, False])
@pytest.mark.parametrize("reintegrate", [True, False])
def test_mcm_shapes_and_gradients(multi_scale, reintegrate):
    mcm = MCM(dim=64, depth=2, num_heads=8, multi_scale=multi_scale, reintegrate=reintegrate)
    image, landmarks = torch.randn(3, 49, 64), torch.randn(3, 49, 64, requires_grad=True)
    out = mcm(image, landmarks)
    assert out.shape == (3, 64)
    out.square().mean().backward()
    assert landmarks.grad is not None and landmarks.grad.abs().sum() > 0
    assert _all_grads(mcm) == []


def test_cross_fusion_block_without_reintegration_passes_landmarks_through():
    block = CrossFusionBlock(64, tokens_per_side=50, reintegrate=False)
    x = torch.randn(2, 100, 64)
    assert torch.equal(block(x)[:, 50:], x[:, 50:])


def test_query_projection_variant_adds_wq():
    plain = CrossFusionBlock(64).attn_img
    projected = CrossFusionBlock(64, query_projection=True).attn_img
    assert plain.q is None and projected.q.weight.shape == (64, 64)


@pytest.fixture(scope="module")
def small_model() -> ORSANet:
    torch.manual_seed(0)
    return ORSANet(ORSANetConfig(num_classes=7, size="small"))


def test_full_model_forward_backward(small_model, face_batch):
    model = small_model.train()
    out = model(face_batch)
    logits, features = out  # tuple unpacking works as well as attributes
    assert logits.shape == (2, 7) and features.shape == (2, 512)
    logits.sum().backward()
    assert _all_grads(model) == []
    model.zero_grad()


def test_priors_are_frozen_and_stay_in_eval_mode(small_model, face_batch):
    model = small_model.train()
    for source in model.prior_sources().values():
        assert not any(p.requires_grad for p in source.extractor.parameters())
        assert not source.extractor.training
        assert source.adapter.training or not any(True for _ in source.adapter.parameters())
    bn = model.landmark_source.extractor.network.conv1.bn
    before = bn.running_mean.clone()
    model(face_batch + 3.0)
    assert torch.equal(bn.running_mean, before), "BN statistics of a frozen prior drifted"


def test_precomputed_priors_give_the_same_output(small_model, face_batch):
    model = small_model.eval()
    with torch.no_grad():
        direct = model(face_batch).logits
        cached = model(face_batch, landmark_prior=model.landmark_source.extract(face_batch),
                       parsing_prior=model.parsing_source.extract(face_batch)).logits
    torch.testing.assert_close(direct, cached)


@pytest.mark.parametrize("switch,absent", [("use_ssgm", ("ssgm", "parsing_source")),
                                           ("use_mcm", ("mcm", "landmark_source"))])
def test_ablation_switches_remove_modules(switch, absent, face_batch):
    model = ORSANet(ORSANetConfig(size="small", **{switch: False})).eval()
    for name in absent:
        assert getattr(model, name) is None
    with torch.no_grad():
        assert model(face_batch).logits.shape == (2, 7)


def test_config_rejects_unknown_values():
    with pytest.raises(ValueError, match="size"):
        ORSANetConfig(size="huge")
    with pytest.raises(ValueError, match="unknown ORSANet config keys: colour"):
        ORSANetConfig.from_dict({"colour": 1})
