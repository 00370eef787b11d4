"""The GPU checks in one short run: inference speed options and a training step, fp32 against bf16.

    python benchmarks/gpu_speed.py                          # CUDA: the default model and the paper configuration
    python benchmarks/gpu_speed.py --json gpu.json          # the figures also as JSON
    python benchmarks/gpu_speed.py --device cpu --quick --models default   # a dry run on the CPU (tests/test_gpu_speed.py)

For each model (the packaged default, and the paper configuration with seeded random weights;
both read the same random pixels at their input size):

- inference through ``FaceModel.logits`` (priors included) at ``--batch`` faces: fp32, bf16 autocast
  (``amp``), channels-last, ``torch.compile``: ms per face, and against fp32 on the same faces the
  top-1 agreement and the largest logit difference;
- a training step (AdamW, the official objective ``CE + 0.1 DARE``), fp32 and under bf16 autocast:
  images per second and the device's peak memory.

Times are medians over ``--runs`` passes after warm-up passes (``torch.compile``'s first pass compiles).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

INFERENCE_MODES = ("fp32", "amp", "channels_last", "compile")


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(step, device: torch.device, runs: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        step()
    synchronize(device)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(name: str, device: torch.device, quick: bool):
    """``(label, fresh ORSANet on device, input size)``: the packaged default, or the paper configuration
    (seeded random weights; ``quick``: the small one)."""
    from orsanet import load_model
    from orsanet.models import ORSANet, ORSANetConfig

    torch.manual_seed(0)
    if name == "default":
        model = load_model("default", device)
        return "default (compact, 56 px)", model, model.config.input_size
    size = "small" if quick else "large"
    model = ORSANet(ORSANetConfig(size=size)).to(device)
    return f"paper configuration ({size}, random weights)", model, model.config.input_size


def inference(name: str, device: torch.device, batch: int, runs: int, quick: bool) -> list[dict]:
    from orsanet.face_model import FaceModel

    rows, reference = [], None
    modes = INFERENCE_MODES[:3] if quick else INFERENCE_MODES
    for mode in modes:
        label, model, size = build(name, device, quick)
        face = FaceModel(model, amp=mode == "amp", channels_last=mode == "channels_last", compile=mode == "compile")
        pixels = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
        geometry = face.measure(pixels)
        seconds = median_seconds(lambda: face.logits(pixels, geometry), device, runs, warmup=3 if mode == "compile" else 1)
        logits = face.logits(pixels, geometry).float().cpu()
        reference = logits if reference is None else reference
        rows.append({"model": label, "mode": mode, "batch": batch, "ms_per_face": 1000 * seconds / batch,
                     "top1_agreement_with_fp32": float((logits.argmax(1) == reference.argmax(1)).float().mean()),
                     "max_logit_difference": float((logits - reference).abs().max())})
    return rows


def training(name: str, device: torch.device, batch: int, runs: int, quick: bool) -> list[dict]:
    from orsanet.face_model import FaceModel
    from orsanet.losses import ORSANetObjective

    rows = []
    for amp in (False, True):
        label, model, size = build(name, device, quick)
        face = FaceModel(model)
        pixels = torch.rand(batch, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
        with torch.no_grad():
            images, priors = face.inputs(pixels)  # the priors measured once, as training's cache provides them
        targets = torch.randint(0, model.config.num_classes, (batch,), generator=torch.Generator().manual_seed(2))
        targets = targets.to(device)
        model.train()
        optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
        objective = ORSANetObjective()
        dtype = torch.bfloat16 if device.type != "cuda" or torch.cuda.is_bf16_supported() else torch.float16

        def step():
            with torch.autocast(device.type, dtype=dtype, enabled=amp):
                loss = objective(model(images, **priors).logits.float(), targets, epoch=6)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        seconds = median_seconds(step, device, runs)
        peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        rows.append({"model": label, "mode": "bf16 autocast" if amp else "fp32", "batch": batch,
                     "images_per_second": batch / seconds, "peak_memory_mib": peak})
    return rows


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["default", "paper"], choices=["default", "paper"])
    parser.add_argument("--batch", type=int, default=64, help="faces per inference batch")
    parser.add_argument("--train-batch", type=int, default=32, help="images per training step")
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="the small paper configuration, no torch.compile")
    parser.add_argument("--threads", type=int, help="CPU threads (default: PyTorch's)")
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.exit(2, "gpu_speed: no CUDA device here (use --device cpu for a dry run)\n")
    print(f"device {torch.cuda.get_device_name(device) if device.type == 'cuda' else 'cpu'}, torch {torch.__version__}")
    report = {"inference": [], "training": []}
    for name in args.models:
        for row in inference(name, device, args.batch, args.runs, args.quick):
            report["inference"].append(row)
            print(f"inference  {row['model']:<44} {row['mode']:<14} {row['ms_per_face']:8.3f} ms/face  "
                  f"top-1 agreement {100 * row['top1_agreement_with_fp32']:5.1f} %  "
                  f"max |logit diff| {row['max_logit_difference']:.2e}", flush=True)
        for row in training(name, device, args.train_batch, args.runs, args.quick):
            report["training"].append(row)
            peak = f"{row['peak_memory_mib']:.0f} MiB peak" if row["peak_memory_mib"] is not None else ""
            print(f"training   {row['model']:<44} {row['mode']:<14} {row['images_per_second']:8.1f} images/s  {peak}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
