"""Where the model looked: Grad-CAM on the image backbone's ``7 x 7`` grid, computed only when a
picture or an explanation is asked for (it costs a backward pass)."""

from __future__ import annotations

import torch

from orsanet.face_model import FaceModel
from orsanet.priors.face_priors import Geometry


def grad_cam(face: FaceModel, pixels: torch.Tensor, geometry: Geometry | None, classes: torch.Tensor) -> torch.Tensor:
    """Grad-CAM maps ``(B, 7, 7)`` in [0, 1] of ``classes (B,)`` for face ``pixels (B, 3, S, S)``."""
    model = face.model
    captured = {}

    def keep(_module, _inputs, output):
        output.retain_grad()
        captured["grid"] = output

    handle = model.image_backbone.register_forward_hook(keep)
    try:
        with torch.enable_grad():
            images, priors = face.inputs(pixels, geometry)
            logits = model(images, **priors).logits
            logits.gather(1, classes.view(-1, 1).to(logits.device)).sum().backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    grid, grads = captured["grid"].detach(), captured["grid"].grad
    cam = torch.relu((grads.mean((2, 3), keepdim=True) * grid).sum(1))  # (B, 7, 7)
    return (cam / cam.flatten(1).amax(1).clamp(min=1e-12).view(-1, 1, 1)).cpu()
