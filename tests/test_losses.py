"""DARE against the official reference values, and the training objective."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from orsanet.losses import ORSANetObjective, dare_loss, soft_cross_entropy

REFERENCE = json.loads((Path(__file__).parent / "data" / "dareloss_official.json").read_text())


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: f"batch{len(c['target'])}")
def test_dare_matches_official_loss_and_gradient(case):
    logits = torch.tensor(case["logits"], dtype=torch.float64, requires_grad=True)
    loss = dare_loss(logits, torch.tensor(case["target"]))
    loss.backward()
    assert abs(loss.item() - case["loss"]) < 1e-9
    assert (logits.grad - torch.tensor(case["grad"], dtype=torch.float64)).abs().max().item() < 1e-9


def test_dare_touches_only_target_and_strongest_wrong_logit():
    logits = torch.tensor([[2.0, 1.0, 3.0, -1.0]], requires_grad=True)
    dare_loss(logits, torch.tensor([0])).backward()
    assert logits.grad[0, 1] == 0 and logits.grad[0, 3] == 0
    assert logits.grad[0, 0] < 0 < logits.grad[0, 2]


def test_multiplicative_form_is_the_paper_formula():
    logits = torch.tensor([[1.0, 2.0, 0.5]], dtype=torch.float64)
    p_target = F.softmax(logits, 1)[0, 0]
    z_prime = (1 + (1 - p_target)) * 2.0
    expected = -torch.log(torch.exp(logits[0, 0]) / (torch.exp(logits[0, 0]) + torch.exp(z_prime)))
    assert torch.isclose(dare_loss(logits, torch.tensor([0]), form="multiplicative"), expected)
    with pytest.raises(ValueError, match="form"):
        dare_loss(logits, torch.tensor([0]), form="other")


def test_objective_switches_from_label_smoothing_to_dare_after_warmup():
    objective = ORSANetObjective()
    logits, target = torch.randn(6, 7, generator=torch.Generator().manual_seed(0)), torch.arange(6)
    ce = F.cross_entropy(logits, target)
    warm = ce + 2 * F.cross_entropy(logits, target, label_smoothing=0.2)
    assert torch.isclose(objective(logits, target, epoch=5), warm)
    assert torch.isclose(objective(logits, target, epoch=6), ce + 0.1 * dare_loss(logits, target))


def test_soft_targets_reduce_to_hard_cross_entropy_for_one_hot():
    logits = torch.randn(4, 8)
    target = torch.tensor([1, 0, 7, 3])
    torch.testing.assert_close(soft_cross_entropy(logits, F.one_hot(target, 8).float()),
                               F.cross_entropy(logits, target))
