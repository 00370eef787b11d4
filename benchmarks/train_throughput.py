"""Training-step throughput and peak memory on this machine (official recipe: SAM, two passes per step).

    python benchmarks/train_throughput.py                     # paper configuration, batch 4, 224 px
    python benchmarks/train_throughput.py --modes live cached

``live``: the frozen priors run inside every step. ``cached``: the raw priors are given to the
model precomputed (what a prior cache provides), so only the trainable part runs.
Each mode runs in its own process so that its peak resident memory is its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch


def measure(size: str, batch: int, steps: int, cached: bool, backbone: str) -> dict:
    from orsanet.engine.sam import SAM
    from orsanet.losses import ORSANetObjective
    from orsanet.models import ORSANet, ORSANetConfig

    torch.manual_seed(0)
    model = ORSANet(ORSANetConfig(size=size, image_backbone=backbone)).train()
    objective = ORSANetObjective()
    optimizer = SAM([p for p in model.parameters() if p.requires_grad], torch.optim.Adam, rho=0.05, lr=1e-5)
    images, targets = torch.randn(batch, 3, 224, 224), torch.randint(0, 7, (batch,))
    priors = {}
    if cached:
        priors = {"landmark_prior": model.landmark_source.extract(images),
                  "parsing_prior": model.parsing_source.extract(images)}
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        objective(model(images, **priors).logits, targets, epoch=6).backward()
        optimizer.first_step()
        objective(model(images, **priors).logits, targets, epoch=6).backward()
        optimizer.second_step()
        if step:  # the first step is a warm-up
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    return {"mode": "cached priors" if cached else "live priors", "size": size, "backbone": backbone, "batch": batch,
            "threads": torch.get_num_threads(), "step_seconds": median, "images_per_second": batch / median,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=["small", "base", "large"])
    parser.add_argument("--backbone", default="ir50")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["live", "cached"], choices=["live", "cached"])
    parser.add_argument("--one", choices=["live", "cached"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.size, args.batch, args.steps, args.one == "cached", args.backbone)))
        return
    for mode in args.modes:
        result = subprocess.run([sys.executable, __file__, "--one", mode, "--size", args.size, "--backbone",
                                 args.backbone, "--batch", str(args.batch), "--steps", str(args.steps)],
                                capture_output=True, text=True, check=True)
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"ORSANet-{r['size']} ({r['backbone']}), {r['mode']}, batch {r['batch']}, {r['threads']} threads: "
              f"{r['images_per_second']:.2f} images/s ({r['step_seconds']:.2f} s per SAM step), "
              f"peak memory {r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
