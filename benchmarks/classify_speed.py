"""Per-face classification speed on FERPlus test crops, ours and the peers side by side in one run.

    python benchmarks/classify_speed.py ../shared/data/ferplus                 # default model, both peers
    python benchmarks/classify_speed.py ../shared/data/ferplus --models default runs/x/best.safetensors \
        --onnx --channels-last --threads 2 --batches 1 64

Each model reads the same FERPlus test images (the first ``--faces`` of the split) through its own
input contract, as ``orsanet robustness`` feeds them: ours with their priors measured on the crop and
drawn (``FaceModel.logits``: the face mesh or the prior network, then the classifier), the peers
(``peer:fer-mini-xception``, ``peer:face-api-expression``, PyTorch ports) with their own resize
and normalisation. ``--onnx`` adds our models exported to ONNX Runtime, float and int8 (int8
calibrated on the data's validation faces). Figures: median milliseconds per face over runs lasting
at least ``--min-time`` seconds, after a warm-up; ratios are each model's time over the peers'.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch
from export_speed import timed  # the same timing as the export benchmark (this folder is on sys.path)

PEERS = ["peer:fer-mini-xception", "peer:face-api-expression"]


def ferplus_test_images(data: str, count: int):
    from orsanet.data import open_dataset
    from orsanet.engine.evaluate import resolve_split

    kind, split = resolve_split("auto", Path(data), "test")
    dataset = open_dataset(kind, data, split)
    return [dataset.load_image(i) for i in range(min(count, len(dataset)))]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("data", help="FERPlus root (its test split is read)")
    parser.add_argument("--models", nargs="+", default=["default"], help="our model files (default: the packaged one)")
    parser.add_argument("--onnx", action="store_true", help="also our models on ONNX Runtime, float and int8")
    parser.add_argument("--channels-last", action="store_true",
                        help="also our PyTorch models with channels-last weights and images (FaceModel's option)")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--faces", type=int, default=256, help="test images read (cycled to fill a batch)")
    parser.add_argument("--min-time", type=float, default=2.0)
    args = parser.parse_args(argv)

    from orsanet.engine.robustness import HarnessModel

    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    images = ferplus_test_images(args.data, args.faces)
    with tempfile.TemporaryDirectory() as folder:
        contenders = []  # each of our models (and its channels-last copy), then their graphs, then the peers
        for model in args.models:
            contenders.append(HarnessModel.load(model))
            if args.channels_last:
                contenders.append(HarnessModel.load(model, channels_last=True))
                contenders[-1].name += "-channels-last"
        specs = []
        if args.onnx:
            from orsanet.export import export_onnx, int8_graph_path

            for k, model in enumerate(args.models):
                graph = export_onnx(model, Path(folder) / str(k) / f"{Path(model).stem}-onnxruntime.onnx", int8=True,
                                    calibration_data=args.data)
                specs += [str(graph), str(int8_graph_path(graph))]
        if not args.no_peers:
            specs += PEERS
        contenders += [HarnessModel.load(spec) for spec in specs]
        print(f"{len(images)} FERPlus test images, {args.threads} threads, torch {torch.__version__}")
        header = f"{'model':<42} {'input':>10} " + " ".join(f"{'batch ' + str(b) + ' ms/face':>18}" for b in args.batches)
        print(header)
        results: dict[str, list[float]] = {}
        for contender in contenders:
            crops = torch.stack([contender.pixels(image) for image in images])
            row = []
            for batch in args.batches:
                pixels = crops.repeat((batch + len(crops) - 1) // len(crops), 1, 1, 1)[:batch].contiguous()
                row.append(timed(lambda p=pixels: contender.logits(p), batch, args.min_time))
            results[contender.name] = row
            print(f"{contender.name:<42} {contender.input_size:>4} {contender.color:>5} "
                  + " ".join(f"{ms:>18.3f}" for ms in row), flush=True)
        peers = [c.name for c in contenders if c.source == "peer"]
        for peer in peers:
            print(f"ratio: each model's time / {peer}'s (below 1: faster than {peer})")
            for name, row in results.items():
                if name != peer:
                    print(f"  {name:<40} " + " ".join(f"{'batch ' + str(b):>8} x{ms / ref:5.2f}"
                                                      for b, ms, ref in zip(args.batches, row, results[peer])))


if __name__ == "__main__":
    main()
