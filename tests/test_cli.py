"""The command line end to end: profile, info and error reporting."""

from __future__ import annotations

import json
import subprocess
import sys

import torch

from orsanet.cli import main


def test_profile_command_prints_figures(tmp_path, capsys):
    assert main(["profile", "--size", "small", "--json", str(tmp_path / "p.json")]) == 0
    out = capsys.readouterr().out
    assert "MCM" in out and "trainable" in out
    figures = json.loads((tmp_path / "p.json").read_text())
    assert figures["components"][-1]["name"] == "total"


def test_info_and_bad_model_file(tmp_path, capsys):
    from orsanet import save_model
    from orsanet.models import ORSANet, ORSANetConfig

    path = save_model(tmp_path / "m.safetensors", ORSANet(ORSANetConfig(size="small", num_classes=2, use_ssgm=False)),
                      ["neutral", "happiness"])
    assert main(["info", str(path)]) == 0
    assert json.loads(capsys.readouterr().out)["label_names"] == ["neutral", "happiness"]
    assert main(["info", str(tmp_path / "absent.safetensors")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "absent.safetensors: no such model file" in err[0]


def test_convert_official_reports_a_bad_file_in_one_line(tmp_path, capsys):
    torch.save({"model_state_dict": {"module.nonsense": torch.zeros(1)}}, tmp_path / "bad.pth")
    assert main(["convert-official", str(tmp_path / "bad.pth"), str(tmp_path / "out.safetensors"),
                 "--num-classes", "7", "--labels", "rafdb"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bad.pth" in err[0]
    assert not (tmp_path / "out.safetensors").exists()


def test_console_script_entry_point_runs():
    result = subprocess.run([sys.executable, "-m", "orsanet.cli", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "convert-official" in result.stdout


def test_serve_refuses_bad_limits_in_one_line(capsys):
    from orsanet.cli import main

    assert main(["serve", "--max-queue", "0"]) == 2
    assert "--max-queue must be positive" in capsys.readouterr().err


def test_export_writes_the_model_and_mesh_graphs(tiny_model, tmp_path):
    import pytest

    pytest.importorskip("onnxruntime")
    from orsanet.cli import main
    from orsanet.export import read_onnx_metadata

    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_model), str(out)]) == 0
    assert out.is_file() and (tmp_path / "m.mesh.onnx").is_file()
    assert read_onnx_metadata(out)["preprocessing"]["input_size"] == 56
