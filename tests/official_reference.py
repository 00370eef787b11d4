"""An independent, purely functional ORSANet forward pass that reads the *official* key layout.

Written from the architecture specification with ``torch.nn.functional`` only (plus
torchvision's ``swin_b`` loaded directly with the official Swin keys), so that the package's
modules and key mapping are checked against something that shares no code with them.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.models import swin_b

MANIFEST = Path(__file__).parent / "data" / "official_orsanet_large_keys.tsv"


def read_manifest(size: str = "large") -> list[tuple[str, tuple[int, ...], str, str]]:
    """(key, shape, dtype, role) rows; ``small``/``base`` keep only the first 4/6 pyramid blocks."""
    depth = {"small": 4, "base": 6, "large": 8}[size]
    rows = []
    for line in MANIFEST.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        key, shape, dtype, role = line.split("\t")
        if key.startswith("pyramid_fuse.blocks.") and int(key.split(".")[2]) >= depth:
            continue
        rows.append((key, tuple(int(s) for s in shape.strip("()").split(",") if s.strip()), dtype, role))
    return rows


def random_official_state(size: str = "large", num_classes: int = 7, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random but numerically sane state dict in the official layout (every manifest key)."""
    generator = torch.Generator().manual_seed(seed)
    swin_index = {k: v for k, v in swin_b(weights=None).features.state_dict().items() if k.endswith("position_index")}
    state = {}
    for key, shape, dtype, _ in read_manifest(size):
        if key.startswith("head.linear."):
            shape = (num_classes,) + shape[1:]
        leaf = key.rsplit(".", 1)[-1]
        if dtype == "int64":
            value = swin_index[key.removeprefix("face_segment.backbone.0.")] if "position_index" in key \
                else torch.zeros(shape, dtype=torch.int64)
        elif leaf == "running_var":
            value = 0.5 + torch.rand(shape, generator=generator)
        elif leaf in ("weight_u", "weight_v"):
            value = F.normalize(torch.randn(shape, generator=generator), dim=0)
        elif len(shape) >= 2:
            fan_in = math.prod(shape[1:])
            value = torch.randn(shape, generator=generator) / math.sqrt(fan_in)
        elif leaf in ("weight", "scale"):  # norm scales, PReLU slopes, MCM scale
            value = 1.0 + 0.1 * torch.randn(shape, generator=generator)
        else:  # biases, running means, position embeddings
            value = 0.1 * torch.randn(shape, generator=generator)
        state[key] = value
    return state


def _bn(x, sd, p):
    return F.batch_norm(x, sd[p + "running_mean"], sd[p + "running_var"], sd[p + "weight"], sd[p + "bias"],
                        False, 0.0, 1e-5)


def _ir50(sd, x):
    x = F.interpolate(x, size=112)
    x = F.prelu(_bn(F.conv2d(x, sd["ir_back.input_layer.0.weight"], padding=1), sd, "ir_back.input_layer.1."),
                sd["ir_back.input_layer.2.weight"])
    for i in range(21):
        p = f"ir_back.body.{i}."
        stride = 2 if i in (0, 3, 7) else 1
        r = _bn(x, sd, p + "res_layer.0.")
        r = F.prelu(F.conv2d(r, sd[p + "res_layer.1.weight"], padding=1), sd[p + "res_layer.2.weight"])
        r = _bn(F.conv2d(r, sd[p + "res_layer.3.weight"], stride=stride, padding=1), sd, p + "res_layer.4.")
        if p + "shortcut_layer.0.weight" in sd:
            s = _bn(F.conv2d(x, sd[p + "shortcut_layer.0.weight"], stride=stride), sd, p + "shortcut_layer.1.")
        else:
            s = x[:, :, ::stride, ::stride]
        x = r + s
    return x


def _conv_bn(sd, p, x, stride=1, padding=0, groups=1, act=True):
    x = _bn(F.conv2d(x, sd[p + "conv.weight"], stride=stride, padding=padding, groups=groups), sd, p + "bn.")
    return F.prelu(x, sd[p + "prelu.weight"]) if act else x


def _depthwise(sd, p, x, stride, residual):
    groups = sd[p + "conv.conv.weight"].shape[0]
    y = _conv_bn(sd, p + "conv.", x)
    y = _conv_bn(sd, p + "conv_dw.", y, stride=stride, padding=1, groups=groups)
    y = _conv_bn(sd, p + "project.", y, act=False)
    return x + y if residual else y


def _mobilefacenet(sd, x):
    p = "face_landback."
    x = _conv_bn(sd, p + "conv1.", F.interpolate(x, size=112), stride=2, padding=1)
    x = _conv_bn(sd, p + "conv2_dw.", x, padding=1, groups=64)
    for down, stage, n in (("conv_23", "conv_3", 4), ("conv_34", "conv_4", 6), ("conv_45", "conv_5", 2)):
        x = _depthwise(sd, p + down + ".", x, 2, False)
        for j in range(n):
            x = _depthwise(sd, f"{p}{stage}.model.{j}.", x, 1, True)
    return _conv_bn(sd, p + "conv_6_sep.", x)


def _swin(sd, x):
    features = swin_b(weights=None).features
    prefix = "face_segment.backbone.0."
    features.load_state_dict({k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)})
    return features.eval()(x).permute(0, 3, 1, 2)


def _spade(sd, p, x, s):
    s = F.interpolate(s, size=x.shape[2:], mode="nearest")
    a = F.relu(F.conv2d(s, sd[p + "mlp_shared.0.weight"], sd[p + "mlp_shared.0.bias"], padding=1))
    gamma = F.conv2d(a, sd[p + "mlp_gamma.weight"], sd[p + "mlp_gamma.bias"], padding=1)
    beta = F.conv2d(a, sd[p + "mlp_beta.weight"], sd[p + "mlp_beta.bias"], padding=1)
    return F.instance_norm(x) * (1 + gamma) + beta


def _sn_conv(sd, p, x):
    w = sd[p + "weight_orig"]
    sigma = sd[p + "weight_u"] @ (w.reshape(w.shape[0], -1) @ sd[p + "weight_v"])
    return F.conv2d(x, w / sigma, sd[p + "bias"], padding=1)


def _cfb(sd, p, x):
    dim = x.shape[-1]
    heads, hd, b = 8, dim // 8, x.shape[0]
    img, lm = x[:, :50], x[:, 50:]
    n = F.layer_norm(x, (dim,), sd[p + "norm1.weight"], sd[p + "norm1.bias"], 1e-6)
    kv = F.linear(n[:, :50], sd[p + "attn_img.kv.weight"], sd[p + "attn_img.kv.bias"])
    k, v = kv.reshape(b, 50, 2, heads, hd).permute(2, 0, 3, 1, 4)
    q = n[:, 50:].reshape(b, 50, heads, hd).permute(0, 2, 1, 3)
    a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(hd), dim=-1) @ v
    a = F.linear(a.transpose(1, 2).reshape(b, 50, dim), sd[p + "attn_img.proj.weight"], sd[p + "attn_img.proj.bias"])
    img = img + a
    h = F.layer_norm(img, (dim,), sd[p + "norm2.weight"], sd[p + "norm2.bias"], 1e-6)
    h = F.linear(F.gelu(F.linear(h, sd[p + "mlp.fc1.weight"], sd[p + "mlp.fc1.bias"])),
                 sd[p + "mlp.fc2.weight"], sd[p + "mlp.fc2.bias"])
    img = img + h
    return F.conv1d(torch.cat((img, lm * sd[p + "scale"]), 1), sd[p + "conv.weight"], sd[p + "conv.bias"])


def official_forward(sd: dict[str, torch.Tensor], x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits ``(B, C)`` and feature ``(B, 512)`` of the official model with state ``sd`` (no prefix)."""
    b = x.shape[0]
    lm = _mobilefacenet(sd, x).reshape(b, 512, 49).transpose(1, 2)
    seg = F.conv2d(_swin(sd, x), sd["seg_sample.weight"], sd["seg_sample.bias"])
    img = F.linear(_ir50(sd, x).reshape(b, 49, 1024), sd["ir_layer.weight"], sd["ir_layer.bias"])
    img = img.permute(0, 2, 1).reshape(b, 512, 7, 7)
    dx = _sn_conv(sd, "seg_fusion.conv_0.", F.leaky_relu(_spade(sd, "seg_fusion.norm_0.", img, seg), 0.2))
    dx = _sn_conv(sd, "seg_fusion.conv_1.", F.leaky_relu(_spade(sd, "seg_fusion.norm_1.", dx, seg), 0.2))
    img = (img + dx).reshape(b, 512, 49).transpose(1, 2)

    p = "pyramid_fuse."
    img = torch.cat((img.mean(1, keepdim=True), img), 1) + sd[p + "pos_embed"]
    lm = torch.cat((lm.mean(1, keepdim=True), lm), 1)
    xl = torch.cat((img, lm), 1)
    xm = F.conv1d(xl, sd[p + "downsample_m.weight"], sd[p + "downsample_m.bias"], stride=2)
    xs = F.conv1d(xl, sd[p + "downsample_s.weight"], sd[p + "downsample_s.bias"], stride=4)
    depth = len({k.split(".")[2] for k in sd if k.startswith(p + "blocks.")})
    for i in range(depth):
        q = f"{p}blocks.{i}."
        xl, xm, xs = _cfb(sd, q + "block_l.", xl), _cfb(sd, q + "block_m.", xm), _cfb(sd, q + "block_s.", xs)
        xm = xm + F.conv_transpose1d(xs, sd[q + "upsample_s.weight"], sd[q + "upsample_s.bias"], stride=2)
        xl = xl + F.conv_transpose1d(xm, sd[q + "upsample_m.weight"], sd[q + "upsample_m.bias"], stride=2)
    f = F.layer_norm(xl, (512,), sd[p + "norm.weight"], sd[p + "norm.bias"], 1e-6)[:, 0]
    gate = F.linear(F.relu(F.linear(f, sd["se_block.linear1.weight"], sd["se_block.linear1.bias"])),
                    sd["se_block.linear2.weight"], sd["se_block.linear2.bias"])
    f = f * torch.sigmoid(gate)
    return F.linear(f, sd["head.linear.weight"], sd["head.linear.bias"]), f
