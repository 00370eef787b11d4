"""orsanet's model file: safetensors + metadata, atomic writes, clear errors."""

from __future__ import annotations

import pytest
import torch

from orsanet import load_model, read_metadata, save_model
from orsanet.checkpoint import CheckpointError
from orsanet.models import ORSANet, ORSANetConfig


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    return ORSANet(ORSANetConfig(size="small", num_classes=3, use_ssgm=False), ["neutral", "happiness", "anger"])


def test_save_and_load_round_trip(tiny_model, face_batch, tmp_path):
    path = save_model(tmp_path / "m.safetensors", tiny_model, metrics={"accuracy": 0.5})
    assert [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]  # no temporary file left behind
    metadata = read_metadata(path)
    assert metadata.label_names == ["neutral", "happiness", "anger"] and metadata.metrics == {"accuracy": 0.5}
    assert metadata.config == tiny_model.config and metadata.contract.input_size == 224
    loaded = load_model(path)
    with torch.no_grad():
        torch.testing.assert_close(loaded(face_batch).logits, tiny_model.eval()(face_batch).logits)


def test_label_count_must_match(tiny_model, tmp_path):
    with pytest.raises(CheckpointError, match="2 label names for 3 classes"):
        save_model(tmp_path / "m.safetensors", tiny_model, ["a", "b"])


def test_unreadable_files_give_one_line_errors(tmp_path):
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 10)
    with pytest.raises(CheckpointError, match="junk.safetensors: not a safetensors model file"):
        load_model(tmp_path / "junk.safetensors")
    with pytest.raises(CheckpointError, match="nothing.safetensors: no such model file"):
        load_model(tmp_path / "nothing.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(1)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="without orsanet metadata"):
        load_model(tmp_path / "plain.safetensors")


def test_failed_write_keeps_the_previous_file(tiny_model, tmp_path, monkeypatch):
    path = save_model(tmp_path / "m.safetensors", tiny_model)
    before = path.read_bytes()
    import orsanet.checkpoint as checkpoint

    def explode(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", explode)
    with pytest.raises(RuntimeError):
        save_model(path, tiny_model)
    assert path.read_bytes() == before and len(list(tmp_path.iterdir())) == 1
