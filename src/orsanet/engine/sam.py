"""Sharpness-aware minimisation (Foret et al., 2021) around any base optimiser.

One SAM step is two forward/backward passes::

    loss(model).backward(); sam.first_step()    # climb to w + rho * g / |g|
    loss(model).backward(); sam.second_step()   # back to w, base step with the gradient found there
"""

from __future__ import annotations

import torch


class SAM(torch.optim.Optimizer):
    """Non-adaptive SAM with radius ``rho``; ``base`` is an optimiser class, e.g. ``torch.optim.Adam``."""

    def __init__(self, params, base: type[torch.optim.Optimizer], rho: float = 0.05, **base_options) -> None:
        if rho < 0:
            raise ValueError(f"rho must be non-negative, got {rho}")
        super().__init__(params, dict(rho=rho, **base_options))
        self.base_optimizer = base(self.param_groups, **base_options)
        self.param_groups = self.base_optimizer.param_groups  # one set of groups: schedulers see the base lr

    @torch.no_grad()
    def _grad_norm(self) -> torch.Tensor:
        norms = [p.grad.norm(2) for group in self.param_groups for p in group["params"] if p.grad is not None]
        return torch.stack(norms).norm(2) if norms else torch.tensor(0.0)

    @torch.no_grad()
    def first_step(self, zero_grad: bool = True) -> None:
        grad_norm = self._grad_norm()
        if not torch.isfinite(grad_norm):  # overflow under fp16: no ascent step (the scaler skips the update)
            if zero_grad:
                self.zero_grad()
            return
        for group in self.param_groups:
            scale = group["rho"] / (grad_norm + 1e-12)
            for p in group["params"]:
                if p.grad is None:
                    continue
                step = p.grad * scale.to(p)
                p.add_(step)
                self.state[p]["sam_step"] = step
        if zero_grad:
            self.zero_grad()

    @torch.no_grad()
    def restore(self) -> None:
        """Undo the ascent step of ``first_step`` (keeping the gradients computed there)."""
        for group in self.param_groups:
            for p in group["params"]:
                if "sam_step" in self.state[p]:
                    p.sub_(self.state[p].pop("sam_step"))

    @torch.no_grad()
    def second_step(self, zero_grad: bool = True) -> None:
        self.restore()
        self.base_optimizer.step()
        if zero_grad:
            self.zero_grad()

    def step(self, closure=None):
        """Full SAM step; ``closure`` must run forward and backward and return the loss."""
        if closure is None:
            raise ValueError("SAM.step needs a closure (or call first_step / second_step)")
        self.first_step()
        with torch.enable_grad():
            closure()
        self.second_step()

    def state_dict(self) -> dict:
        return self.base_optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self.base_optimizer.load_state_dict(state_dict)
        self.param_groups = self.base_optimizer.param_groups
