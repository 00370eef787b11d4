"""Put a trained run's best model into the package as ``orsanet/weights/default.safetensors``.

    python scripts/package_default_model.py RUN_DIR [--eval-report REPORT.json ...] [--earlier-run DIR]
        [--earlier-model MODEL] [--prior-run runs/occlusion-priors --prior-minutes M]

The weights are copied unchanged; the metadata gains what a user of the packaged model needs:
grey input (FERPlus faces are grey), the run's validation and test figures, the evaluation
reports of ``orsanet eval`` (e.g. under occlusion; a ``--flip`` report is kept as ``eval_flip``) and
the training time.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from orsanet.checkpoint import DEFAULT_MODEL_PATH, load_model, read_metadata, save_model

KEEP = ("accuracy", "mean_class_accuracy", "macro_f1", "ece", "num_images")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--eval-report", type=Path, action="append", default=[],
                        help="JSON written by 'orsanet eval ... --json' (repeat for a --flip report)")
    parser.add_argument("--earlier-run", type=Path, action="append", default=[],
                        help="a run this one started from (model.init): its training time is added")
    parser.add_argument("--earlier-model", action="append", default=[],
                        help="a model file this run started from (model.init, e.g. the previous default): "
                             "the training time its metadata records is added")
    parser.add_argument("--prior-run", type=Path, default=None,
                        help="the occlusion-prior network's run (orsanet train-priors): its weights are shipped "
                             "next to the model, its measured figures and minutes recorded")
    parser.add_argument("--prior-minutes", type=float, default=0.0,
                        help="minutes of the prior stage spent outside its training loop (the mesh cache)")
    parser.add_argument("--color", default="gray", choices=["gray", "rgb"])
    parser.add_argument("--destination", type=Path, default=DEFAULT_MODEL_PATH)
    args = parser.parse_args()

    best = args.run_dir / "best.safetensors"
    metadata = read_metadata(best)
    model = load_model(best)
    history = [json.loads(line) for line in (args.run_dir / "metrics.jsonl").read_text().splitlines()]
    metrics = dict(metadata.metrics)
    test_report = args.run_dir / "test_report.json"
    if test_report.is_file():
        report = json.loads(test_report.read_text())
        metrics["test"] = {key: report[key] for key in KEEP if key in report}
    for path in args.eval_report:
        report = json.loads(path.read_text())
        name = "eval_flip" if report.get("test_time_flip") else "eval"
        metrics[name] = {key: report[key] for key in KEEP if key in report}
        metrics[name]["occlusion"] = {
            area: {key: figures[key] for key in KEEP if key in figures}
            for area, figures in report.get("occlusion", {}).items()}
    earlier = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
               for run in args.earlier_run]
    started_from = [read_metadata(path).provenance for path in args.earlier_model]
    minutes = (history[-1].get("minutes", 0.0) + sum(rows[-1].get("minutes", 0.0) for rows in earlier)
               + sum(p.get("training_minutes", 0.0) for p in started_from))
    provenance = {**metadata.provenance, "training_minutes": round(minutes, 2),
                  "epochs_run": (len(history) + sum(len(rows) for rows in earlier)
                                 + sum(p.get("epochs_run", 0) for p in started_from)),
                  "runs": ([run for p in started_from for run in p.get("runs", [])]
                           + [run.name for run in args.earlier_run] + [args.run_dir.name])}
    if args.prior_run is not None:
        import hashlib
        import shutil

        from orsanet.priors.occlusion_net import DEFAULT_WEIGHTS, prior_net_info

        weights = args.prior_run / "occlusion-priors.safetensors"
        info = prior_net_info(weights)
        prior_minutes = info.get("minutes", 0.0) + args.prior_minutes
        provenance["prior_weights"] = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        provenance["prior_stage_minutes"] = round(prior_minutes, 2)
        provenance["training_minutes"] = round(minutes + prior_minutes, 2)
        measured = args.prior_run / "measured.json"
        if measured.is_file():
            metrics["prior_net"] = json.loads(measured.read_text())
        if "face_score" in info:  # share of held-out faces and non-faces its face score calls a face
            metrics.setdefault("prior_net", {})["face_score"] = info["face_score"]["held_out"]
        if weights.resolve() != DEFAULT_WEIGHTS.resolve():
            shutil.copyfile(weights, DEFAULT_WEIGHTS)
    contract = dataclasses.replace(metadata.contract, color=args.color)
    args.destination.parent.mkdir(parents=True, exist_ok=True)
    save_model(args.destination, model, metadata.label_names, contract, metrics, provenance)
    size_mb = args.destination.stat().st_size / 1e6
    print(f"{args.destination}: {size_mb:.1f} MB, labels {metadata.label_names}, metrics {json.dumps(metrics)}")


if __name__ == "__main__":
    main()
