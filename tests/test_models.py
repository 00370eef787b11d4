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


def _masking_model(**overrides) -> ORSANet:
    from orsanet.models import compact_config

    torch.manual_seed(0)
    config = compact_config(8, dim=32, num_heads=4, landmark_source="occlusion_net_heatmaps",
                            parsing_source="occlusion_net_parsing", **overrides)
    return ORSANet(config).eval()


def _occlusion_priors(batch: int, hidden: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Landmark prior ``(B, 16, 28, 28)`` and a 12-class parsing prior, all face, or occluded where ``hidden``."""
    parsing = torch.zeros(batch, 12, 28, 28)
    parsing[:, 1] = 1
    if hidden is not None:
        parsing[:, :, hidden] = 0
        parsing[:, -1, hidden] = 1
    return torch.rand(batch, 16, 28, 28), parsing


@pytest.mark.parametrize("use_mcm", [True, False])
def test_mask_occluded_changes_nothing_on_a_visible_face_and_has_gradients(use_mcm):
    masked = _masking_model(mask_occluded=True, use_mcm=use_mcm)
    plain = _masking_model(mask_occluded=False, use_mcm=use_mcm)
    plain.load_state_dict(masked.state_dict())  # the switch adds no parameters
    images = torch.randn(2, 3, 56, 56)
    landmarks, parsing = _occlusion_priors(2)
    assert torch.allclose(masked(images, landmarks, parsing).logits, plain(images, landmarks, parsing).logits, atol=1e-5)
    masked.train()
    hidden = torch.zeros(28, 28, dtype=torch.bool)
    hidden[14:] = True
    masked(images, *_occlusion_priors(2, hidden)).logits.sum().backward()
    assert _all_grads(masked.image_backbone) == []


def test_mask_occluded_leaves_hidden_tokens_out_of_pooling_and_attention():
    from orsanet.models.mcm import LandmarkToImageAttention, weighted_mean
    from orsanet.models.orsanet import visible_weights

    hidden = torch.zeros(28, 28, dtype=torch.bool)
    hidden[16:] = True  # the lower three of the 7 token rows
    _, parsing = _occlusion_priors(1, hidden)
    weights = visible_weights(parsing).view(7, 7)
    assert torch.allclose(weights[:4], torch.ones(4, 7)) and torch.allclose(weights[4:], torch.full((3, 7), 0.01))
    # The pooled token is the visible tokens' mean: moving the hidden ones by 10 moves it by < 0.1.
    flat = weights.view(1, 49)
    tokens = torch.randn(1, 49, 32)
    moved = tokens.clone()
    moved[:, 28:] += 10
    assert (weighted_mean(moved, flat) - weighted_mean(tokens, flat)).abs().max() < 0.1
    # Each landmark query's attention to the hidden image tokens shrinks (the leading token counts as visible).
    attn = LandmarkToImageAttention(32, 4)
    image, queries = torch.randn(1, 50, 32), torch.randn(1, 50, 32)
    bias = torch.cat((torch.ones(1, 1), flat), 1).log()
    _, plain = attn(image, queries, return_attention=True)
    _, biased = attn(image, queries, return_attention=True, image_bias=bias)

    def hidden_to_visible(attention):
        return attention[..., 29:].sum(-1) / attention[..., :29].sum(-1)

    assert torch.allclose(hidden_to_visible(biased), 0.01 * hidden_to_visible(plain), rtol=1e-4)
    assert torch.allclose(biased.sum(-1), torch.ones_like(biased.sum(-1)))


def test_mask_occluded_needs_an_occluded_class():
    from orsanet.models import compact_config

    with pytest.raises(ValueError, match="occluded class"):
        compact_config(8, mask_occluded=True)  # mesh parsing has no occluded class
    config = compact_config(8, landmark_source="occlusion_net_heatmaps", parsing_source="occlusion_net_parsing",
                            use_ssgm=False, mask_occluded=True)
    assert config.prior_backend == "occlusion_net"  # the parsing prior is still read
