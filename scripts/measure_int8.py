#!/usr/bin/env python3
"""How closely the int8 graph follows the float one: top-1 agreement on a test split.

    python scripts/measure_int8.py default ../shared/data/ferplus --out /tmp/int8
    python scripts/measure_int8.py default ../shared/data/ferplus --calibration none   # generated faces

Exports MODEL to ``OUT/model.onnx`` with its int8 copy (``orsanet export --int8``), calibrated on
``--calibration-count`` faces of DATA's validation split (``--calibration DATA``, the default) or on
generated faces (``--calibration none``), then runs ``orsanet eval`` on DATA's test split with both
graphs and prints: the share of test faces whose top-1 class the int8 graph agrees on, and both
accuracies. The reports (``float.json``, ``int8.json``) are kept in OUT.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import torch

from orsanet.engine.evaluate import evaluate
from orsanet.export import export_onnx, int8_graph_path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="model file, or 'default'")
    parser.add_argument("data", help="dataset root (its test split is measured)")
    parser.add_argument("--out", default="int8-agreement", help="folder for the graphs and reports")
    parser.add_argument("--calibration", default="data", help="'data' (DATA's validation split) or 'none'")
    parser.add_argument("--calibration-count", type=int, default=512)
    parser.add_argument("--calibration-method", choices=("minmax", "percentile"), default="minmax")
    parser.add_argument("--split", default="test")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_num_threads(args.threads)

    out = Path(args.out)
    start = time.perf_counter()
    graph = export_onnx(args.model, out / "model.onnx", int8=True, calibration_count=args.calibration_count,
                        calibration_method=args.calibration_method,
                        calibration_data=args.data if args.calibration == "data" else None)
    print(f"exported and quantised in {time.perf_counter() - start:.0f} s")
    reports = {}
    for name, path in (("float", graph), ("int8", int8_graph_path(graph))):
        reports[name] = evaluate(str(path), args.data, split=args.split, per_image=True, num_workers=0,
                                 json_out=str(out / f"{name}.json"))
    float_top = torch.tensor(reports["float"]["per_image"]["probabilities"]).argmax(1)
    int8_top = torch.tensor(reports["int8"]["per_image"]["probabilities"]).argmax(1)
    agreement = (float_top == int8_top).float().mean().item()
    print(f"{args.split}: {len(float_top)} faces; top-1 agreement int8 vs float {100 * agreement:.2f} %; "
          f"accuracy float {100 * reports['float']['accuracy']:.2f} %, int8 {100 * reports['int8']['accuracy']:.2f} %")


if __name__ == "__main__":
    main()
