"""Parameter and multiply-accumulate counts of a model, per component.

MACs are measured by running one forward pass under ``torch.utils.flop_counter``
(convolutions and matrix products; MACs = FLOPs / 2). "Used" parameters are those that
some operation of that forward pass reads.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten
from torch.utils.flop_counter import FlopCounterMode

from orsanet.models import ORSANet
from orsanet.models.ir50 import ir50_embedding_head

# Component name -> module path prefixes inside ORSANet.
COMPONENTS = (
    ("image backbone", ("image_backbone.trunk",)),
    ("token projection", ("image_backbone.token_proj",)),
    ("parsing prior (frozen)", ("parsing_source.extractor",)),
    ("parsing adapter", ("parsing_source.adapter",)),
    ("landmark prior (frozen)", ("landmark_source.extractor",)),
    ("landmark adapter", ("landmark_source.adapter",)),
    ("SSGM", ("ssgm",)),
    ("MCM", ("mcm",)),
    ("SE gate + head", ("se_gate", "head")),
)


@dataclass
class ComponentProfile:
    name: str
    parameters: int
    trainable: int
    used: int
    macs: int


@dataclass
class ModelProfile:
    components: list[ComponentProfile]
    input_size: int

    @property
    def total(self) -> ComponentProfile:
        return ComponentProfile("total", *(sum(getattr(c, f) for c in self.components)
                                           for f in ("parameters", "trainable", "used", "macs")))

    @property
    def trainable_macs(self) -> int:
        """MACs of the components that hold trainable parameters (the part that training updates)."""
        return sum(c.macs for c in self.components if c.trainable)

    def to_dict(self) -> dict:
        rows = [vars(c) for c in self.components] + [vars(self.total)]
        return {"input_size": self.input_size, "components": rows, "trainable_macs": self.trainable_macs}


class _TensorUseRecorder(TorchFunctionMode):
    """Records the ids of every tensor passed to a torch function (parameters included)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[int] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.seen.update(id(leaf) for leaf in tree_flatten((args, kwargs))[0] if isinstance(leaf, torch.Tensor))
        return func(*args, **kwargs)


def _component_of(name: str) -> str | None:
    return next((component for component, prefixes in COMPONENTS
                 if any(name == p or name.startswith(p + ".") for p in prefixes)), None)


def profile_model(model: ORSANet, input_size: int | None = None) -> ModelProfile:
    """Count parameters and MACs of ``model`` for one ``input_size``² image (no gradient)."""
    input_size = input_size or model.config.input_size
    recorder = _TensorUseRecorder()
    counter = FlopCounterMode(display=False, depth=None)
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        priors = {}
        if model.prior_backend is not None:  # raw priors of a face on which nothing was measured: same cost
            from orsanet.priors.face_priors import prior_backend

            backend = prior_backend(model.prior_backend)
            priors = {k: v.to(device) for k, v in backend.draw(backend.empty(1)).items()}
        with torch.no_grad(), counter, recorder:
            model(torch.zeros(1, 3, input_size, input_size, device=device), **priors)
    finally:
        model.train(was_training)
    flops = {name.removeprefix(f"{type(model).__name__}."): sum(ops.values())
             for name, ops in counter.get_flop_counts().items()}

    rows = {name: ComponentProfile(name, 0, 0, 0, 0) for name, _ in COMPONENTS}
    for module_name, module in model.named_modules():
        component = _component_of(module_name)
        if component is None:
            continue
        for parameter in module.parameters(recurse=False):
            rows[component].parameters += parameter.numel()
            rows[component].trainable += parameter.numel() if parameter.requires_grad else 0
            rows[component].used += parameter.numel() if id(parameter) in recorder.seen else 0
    for name, prefixes in COMPONENTS:
        rows[name].macs = sum(flops.get(prefix, 0) for prefix in prefixes) // 2
    if model.prior_backend == "mesh":
        rows["face mesh (frozen, shipped)"] = _face_mesh_profile()
    if model.prior_backend == "occlusion_net":
        rows["occlusion-aware prior net (frozen, shipped)"] = _prior_net_profile(input_size)
    return ModelProfile([row for row in rows.values() if row.parameters or row.macs], input_size)


def _face_mesh_profile() -> ComponentProfile:
    """The face-mesh network that mesh-prior models run outside their checkpoint: two passes per
    face (a fit, then a re-crop from it) on 192-px crops."""
    from orsanet.priors.face_mesh import INPUT_SIZE, FaceMesh

    mesh = FaceMesh()
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        mesh(torch.zeros(1, 3, INPUT_SIZE, INPUT_SIZE))
    count = sum(p.numel() for p in mesh.parameters())
    return ComponentProfile("face mesh (frozen, shipped)", count, 0, count, counter.get_total_flops())


def _prior_net_profile(input_size: int) -> ComponentProfile:
    """The occlusion-aware prior network (``orsanet.priors.occlusion_net``), one pass per face."""
    from orsanet.priors.occlusion_net import OcclusionPriorNet

    net = OcclusionPriorNet().eval()
    counter = FlopCounterMode(display=False, depth=None)
    with torch.no_grad(), counter:
        net(torch.zeros(1, 3, input_size, input_size))
    count = sum(p.numel() for p in net.parameters())
    return ComponentProfile("occlusion-aware prior net (frozen, shipped)", count, 0, count, counter.get_total_flops() // 2)


def official_layout_extra_trainable(model: ORSANet) -> int:
    """Trainable parameters that the authors' model holds but never runs (not built by orsanet).

    The IR-50 face-embedding head (``ir_back.output_layer``) and the MCM ``cls_token``; they are
    what makes the official count 60.29 M where 47.44 M are used.
    """
    if model.config.image_backbone != "ir50" or not model.config.use_mcm:
        return 0
    return sum(p.numel() for p in ir50_embedding_head().parameters()) + model.config.dim


def format_profile(profile: ModelProfile, model: ORSANet) -> str:
    """A table for the terminal."""
    def m(n: int) -> str:
        return f"{n / 1e6:9.2f} M"

    lines = [f"input {profile.input_size}x{profile.input_size}, one image",
             f"{'component':26s} {'params':>11s} {'trainable':>11s} {'used':>11s} {'MACs':>9s}"]
    for row in profile.components + [profile.total]:
        lines.append(f"{row.name:26s} {m(row.parameters)} {m(row.trainable)} {m(row.used)} {row.macs / 1e9:7.2f} G")
    total = profile.total
    lines.append(f"trainable parameters: {total.trainable / 1e6:.2f} M, of which used by the forward pass "
                 f"{sum(r.used for r in profile.components if r.trainable) / 1e6:.2f} M")
    extra = official_layout_extra_trainable(model)
    if extra:
        lines.append(f"official code layout: {(total.trainable + extra) / 1e6:.2f} M trainable "
                     f"(+{extra / 1e6:.2f} M it holds but never runs: IR-50 embedding head, cls_token)")
    lines.append(f"MACs: trainable part {profile.trainable_macs / 1e9:.2f} G, whole forward {total.macs / 1e9:.2f} G")
    return "\n".join(lines)
