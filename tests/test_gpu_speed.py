"""The prepared GPU check (``benchmarks/gpu_speed.py``) runs: a dry run on the CPU, so that the script a
GPU session will run in one go does not rot."""

from __future__ import annotations

import json
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_gpu_check_dry_run_on_the_cpu(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    sys.modules.pop("gpu_speed", None)
    import gpu_speed

    out = tmp_path / "gpu.json"
    gpu_speed.main(["--device", "cpu", "--quick", "--models", "default", "--batch", "2", "--train-batch", "2",
                    "--runs", "1", "--threads", "1", "--json", str(out)])
    report = json.loads(out.read_text())
    assert [row["mode"] for row in report["inference"]] == ["fp32", "amp", "channels_last"]
    assert all(row["top1_agreement_with_fp32"] == 1.0 and row["max_logit_difference"] < 1e-4
               for row in report["inference"])
    assert [row["mode"] for row in report["training"]] == ["fp32", "bf16 autocast"]
    assert all(row["images_per_second"] > 0 for row in report["training"])
