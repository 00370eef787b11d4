"""Losses: DARE and label-smoothed cross-entropy, and the official training objective."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def dare_loss(logits: torch.Tensor, target: torch.Tensor, *, form: str = "additive", tau: float = 1.0,
              reduction: str = "mean") -> torch.Tensor:
    """DARE: a two-way cross-entropy between the target logit and the most confusable wrong logit.

    logits ``(B, C)``, target ``(B,)`` class indices. With ``z_t`` the target logit, ``z_y`` the
    largest wrong logit and ``alpha = 1 - p_t`` (softmax probability of the target, no gradient)::

        loss = -log(exp(z_t) / (exp(z_t) + exp(z'_y)))  =  softplus(z'_y - z_t)

    ``form="additive"`` (official code, default): ``z'_y = z_y + tau * alpha``;
    ``form="multiplicative"`` (paper text): ``z'_y = (1 + alpha) * z_y``.
    """
    if form not in ("additive", "multiplicative"):
        raise ValueError(f"form must be 'additive' or 'multiplicative', got {form!r}")
    target = target.long()
    target_logit = logits.gather(1, target[:, None]).squeeze(1)
    wrong = logits.scatter(1, target[:, None], float("-inf"))
    confusable = wrong.max(dim=1).values
    alpha = 1.0 - F.softmax(logits.detach(), dim=1).gather(1, target[:, None]).squeeze(1)
    if form == "additive":
        confusable = confusable + tau * alpha
    else:
        confusable = (1.0 + alpha) * confusable
    loss = F.softplus(confusable - target_logit)
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


class DARELoss(nn.Module):
    """Module form of :func:`dare_loss`."""

    def __init__(self, form: str = "additive", tau: float = 1.0) -> None:
        super().__init__()
        self.form, self.tau = form, tau

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return dare_loss(logits, target, form=self.form, tau=self.tau)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy for hard targets ``(B,)`` or soft targets ``(B, C)`` (e.g. FERPlus vote distributions)."""
    if target.dim() == 1:
        return F.cross_entropy(logits, target.long(), label_smoothing=label_smoothing)
    if label_smoothing:
        target = target * (1 - label_smoothing) + label_smoothing / logits.shape[1]
    return -(target * F.log_softmax(logits, dim=1)).sum(1).mean()


class ORSANetObjective(nn.Module):
    """The official objective: ``CE + 2 * LS-CE(eps)`` for the first ``warmup_epochs``, then ``CE + 0.1 * DARE``.

    Soft targets ``(B, C)`` are accepted: DARE then uses their argmax as the target class.
    """

    def __init__(self, dare_weight: float = 0.1, smoothing_weight: float = 2.0, smoothing: float = 0.2,
                 warmup_epochs: int = 5, dare_form: str = "additive", use_dare: bool = True) -> None:
        super().__init__()
        self.dare_weight, self.smoothing_weight, self.smoothing = dare_weight, smoothing_weight, smoothing
        self.warmup_epochs, self.use_dare = warmup_epochs, use_dare
        self.dare = DARELoss(dare_form)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, epoch: int) -> torch.Tensor:
        """``epoch`` counts from 1, as the official code's ``epoch <= 5`` test."""
        loss = soft_cross_entropy(logits, target)
        if epoch <= self.warmup_epochs:
            return loss + self.smoothing_weight * soft_cross_entropy(logits, target, self.smoothing)
        if self.use_dare:
            hard = target if target.dim() == 1 else target.argmax(1)
            loss = loss + self.dare_weight * self.dare(logits, hard)
        return loss
