"""FaceModel's inference speed options give the answers of the plain model: channels-last (here),
torch.compile (slow: it compiles), bf16 autocast (CUDA only; a no-op on the CPU)."""

from __future__ import annotations

import pytest
import torch

from orsanet.face_model import FaceModel


def logits_with(path, **options) -> torch.Tensor:
    torch.manual_seed(0)
    pixels = torch.rand(3, 3, 56, 56)
    return FaceModel.load(path, **options).logits(pixels, flip=True)


def test_channels_last_and_cpu_amp_change_nothing(tiny_model):
    plain = logits_with(tiny_model)
    assert torch.allclose(logits_with(tiny_model, channels_last=True), plain, atol=1e-5)
    assert torch.equal(logits_with(tiny_model, amp=True), plain)  # autocast is for CUDA only


@pytest.mark.slow
def test_compiled_network_gives_the_same_logits(tiny_model):
    assert torch.allclose(logits_with(tiny_model, compile=True), logits_with(tiny_model), atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_bf16_autocast_on_cuda_stays_close(tiny_model):
    plain = logits_with(tiny_model).cuda()
    amp = FaceModel.load(tiny_model, "cuda", amp=True)
    torch.manual_seed(0)
    pixels = torch.rand(3, 3, 56, 56)
    assert (amp.logits(pixels, flip=True) - plain).abs().max() < 0.05
