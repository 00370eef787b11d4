"""MCM: the multi-scale cross-interaction module.

Image tokens and landmark tokens (each ``(B, 49, D)`` plus a leading mean token) are
stacked into ``X = (B, 100, D)``. The three *scales* live on the embedding axis: the 100
tokens act as Conv1d channels, so ``Conv1d(100, 100, k=2, s=2)`` halves D (512 -> 256) and
``k=4, s=4`` quarters it (-> 128). Each pyramid block applies a cross-fusion block (CFB)
per scale, then merges small into medium into large with transposed convs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p`` in training."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep


def weighted_mean(tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """tokens ``(B, N, D)``, weights ``(B, N)`` (positive) -> ``(B, D)``."""
    weights = weights.to(tokens.dtype)
    return (tokens * weights.unsqueeze(-1)).sum(1) / weights.sum(1, keepdim=True)


class Mlp(nn.Module):
    """Linear -> GELU -> Linear."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x)))


class LandmarkToImageAttention(nn.Module):
    """Landmark tokens query the image tokens.

    Keys and values are projected from the image tokens; the queries are the (normalised)
    landmark tokens split into heads *without* a projection, as in the official code.
    ``query_projection=True`` adds the W_q of the paper's equations.
    """

    def __init__(self, dim: int, num_heads: int = 8, query_projection: bool = False) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.q = nn.Linear(dim, dim) if query_projection else None
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, image: torch.Tensor, landmarks: torch.Tensor, return_attention: bool = False,
                image_bias: torch.Tensor | None = None):
        """image ``(B, N, D)``, landmarks ``(B, M, D)`` -> ``(B, M, D)`` (and attention ``(B, heads, M, N)``).
        ``image_bias (B, N)``: added to every query's logits over the image tokens (log-visibility)."""
        b, n, d = image.shape
        k, v = self.kv(image).reshape(b, n, 2, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q = self.q(landmarks) if self.q is not None else landmarks
        q = q.reshape(b, -1, self.num_heads, self.head_dim).transpose(1, 2)  # (B, heads, M, hd)
        logits = (q @ k.transpose(-2, -1)) * self.head_dim**-0.5  # (B, heads, M, N)
        if image_bias is not None:
            logits = logits + image_bias[:, None, None, :].to(logits.dtype)
        attention = logits.softmax(dim=-1)
        out = self.proj((attention @ v).transpose(1, 2).reshape(b, -1, d))
        return (out, attention) if return_attention else out


class CrossFusionBlock(nn.Module):
    """CFB at one width ``dim``: landmark-guided attention and MLP on the image half, then reintegration.

    Input and output ``(B, 2 * T, dim)``: image tokens first, landmark tokens last (T = 50).
    Reintegration scales the landmark half by a learnable scalar and mixes all 2T tokens with a
    1x1 Conv1d. With ``reintegrate=False`` (Table 6 ablation) the landmark half passes unchanged.
    """

    def __init__(self, dim: int, tokens_per_side: int = 50, num_heads: int = 8, mlp_ratio: float = 2.0,
                 drop_path: float = 0.0, query_projection: bool = False, reintegrate: bool = True) -> None:
        super().__init__()
        self.tokens_per_side = tokens_per_side
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn_img = LandmarkToImageAttention(dim, num_heads, query_projection)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)
        self.reintegrate = reintegrate
        if reintegrate:
            self.scale = nn.Parameter(torch.ones(1))
            self.conv = nn.Conv1d(2 * tokens_per_side, 2 * tokens_per_side, 1)

    def forward(self, x: torch.Tensor, image_bias: torch.Tensor | None = None) -> torch.Tensor:
        t = self.tokens_per_side
        image, landmarks = x[:, :t], x[:, t:]
        normed = self.norm1(x)
        image = image + self.drop_path(self.attn_img(normed[:, :t], normed[:, t:], image_bias=image_bias))
        image = image + self.drop_path(self.mlp(self.norm2(image)))
        if not self.reintegrate:
            return torch.cat((image, landmarks), dim=1)
        return self.conv(torch.cat((image, landmarks * self.scale), dim=1))


class PyramidBlock(nn.Module):
    """One CFB per scale (widths D, D/2, D/4), then merge: ``m += up(s)``, ``l += up(m)``.

    With ``multi_scale=False`` only the full-width CFB exists.
    """

    def __init__(self, dim: int, multi_scale: bool = True, **cfb_options) -> None:
        super().__init__()
        channels = 2 * cfb_options.get("tokens_per_side", 50)
        self.block_l = CrossFusionBlock(dim, **cfb_options)
        self.multi_scale = multi_scale
        if multi_scale:
            self.block_m = CrossFusionBlock(dim // 2, **cfb_options)
            self.block_s = CrossFusionBlock(dim // 4, **cfb_options)
            self.upsample_m = nn.ConvTranspose1d(channels, channels, 2, 2)  # medium -> large
            self.upsample_s = nn.ConvTranspose1d(channels, channels, 2, 2)  # small -> medium

    def forward(self, scales: list[torch.Tensor], image_bias: torch.Tensor | None = None) -> list[torch.Tensor]:
        if not self.multi_scale:
            return [self.block_l(scales[0], image_bias)]
        large = self.block_l(scales[0], image_bias)
        medium, small = self.block_m(scales[1], image_bias), self.block_s(scales[2], image_bias)
        medium = medium + self.upsample_s(small)
        large = large + self.upsample_m(medium)
        return [large, medium, small]


class MCM(nn.Module):
    """Image tokens ``(B, T-1, D)`` and landmark tokens ``(B, T-1, D)`` -> fused feature ``(B, D)``."""

    def __init__(self, dim: int = 512, depth: int = 8, num_tokens: int = 49, num_heads: int = 8,
                 mlp_ratio: float = 2.0, drop_path: float = 0.1, multi_scale: bool = True,
                 query_projection: bool = False, reintegrate: bool = True) -> None:
        super().__init__()
        tokens_per_side = num_tokens + 1
        channels = 2 * tokens_per_side
        self.pos_embed = nn.Parameter(torch.zeros(1, tokens_per_side, dim))
        self.multi_scale = multi_scale
        if multi_scale:
            self.downsample_m = nn.Conv1d(channels, channels, 2, 2)
            self.downsample_s = nn.Conv1d(channels, channels, 4, 4)
        rates = torch.linspace(0, drop_path, depth).tolist()
        self.blocks = nn.ModuleList(
            PyramidBlock(dim, multi_scale=multi_scale, tokens_per_side=tokens_per_side, num_heads=num_heads,
                         mlp_ratio=mlp_ratio, drop_path=rate, query_projection=query_projection,
                         reintegrate=reintegrate)
            for rate in rates
        )
        self.norm = nn.LayerNorm(dim, eps=1e-6)

    def forward(self, image_tokens: torch.Tensor, landmark_tokens: torch.Tensor,
                token_weights: torch.Tensor | None = None) -> torch.Tensor:
        """``token_weights (B, T-1)`` in (0, 1], optional: how visible each image token is. The leading
        token is then their weighted mean, and the landmarks' attention to image tokens is biased by
        the log of the weights (the leading token counts as visible)."""
        bias = None
        if token_weights is None:
            pooled = image_tokens.mean(1, keepdim=True)
        else:
            pooled = weighted_mean(image_tokens, token_weights).unsqueeze(1)
            bias = torch.cat((token_weights.new_ones(token_weights.shape[0], 1), token_weights), 1).log()
        image = torch.cat((pooled, image_tokens), dim=1) + self.pos_embed
        landmarks = torch.cat((landmark_tokens.mean(1, keepdim=True), landmark_tokens), dim=1)
        x = torch.cat((image, landmarks), dim=1)  # (B, 2T, D)
        scales = [x, self.downsample_m(x), self.downsample_s(x)] if self.multi_scale else [x]
        for block in self.blocks:
            scales = block(scales, bias)
        return self.norm(scales[0])[:, 0]
