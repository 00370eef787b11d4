"""Training-step throughput and peak memory on this machine.

    python benchmarks/train_throughput.py                     # paper configuration, batch 4, 224 px
    python benchmarks/train_throughput.py --config compact    # the default model's, batch 64, 56 px

The paper configuration steps with the official recipe (SAM: two passes per step); the compact one
with its own recipe (AdamW: one pass). ``live``: the frozen priors run inside every step (for
the compact model: the face mesh is fitted on every crop). ``cached``: the raw priors are
precomputed (what the prior cache provides; for the compact model the heatmaps and parsing maps
are still drawn from the cached points in every step, as in training).
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


def measure(config: str, size: str, batch: int, steps: int, cached: bool, backbone: str) -> dict:
    from orsanet.engine.sam import SAM
    from orsanet.losses import ORSANetObjective
    from orsanet.models import ORSANet, ORSANetConfig, compact_config
    from orsanet.priors.face_priors import MeshPriors

    torch.manual_seed(0)
    objective = ORSANetObjective()
    if config == "compact":
        model = ORSANet(compact_config(8)).train().to(memory_format=torch.channels_last)
        optimizer = torch.optim.AdamW(model.parameters(), lr=2e-3)
        images, passes = torch.randn(batch, 3, 56, 56).contiguous(memory_format=torch.channels_last), 1
        pixels = torch.rand(batch, 3, 56, 56)
        backend = MeshPriors()
        geometry = {"points": torch.rand(batch, 468, 2) * 0.5 + 0.25, "presence": torch.ones(batch)}  # stand-in cache

        def priors():  # cached: drawn from the cached geometry; live: the mesh measured on the crops first
            return backend.draw(geometry if cached else backend.measure(pixels))
    else:
        model = ORSANet(ORSANetConfig(size=size, image_backbone=backbone)).train()
        optimizer = SAM([p for p in model.parameters() if p.requires_grad], torch.optim.Adam, rho=0.05, lr=1e-5)
        images, passes = torch.randn(batch, 3, 224, 224), 2
        fixed = {}
        if cached:
            fixed = {"landmark_prior": model.landmark_source.extract(images),
                     "parsing_prior": model.parsing_source.extract(images)}

        def priors():
            return fixed
    targets = torch.randint(0, model.config.num_classes, (batch,))
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        objective(model(images, **priors()).logits, targets, epoch=6).backward()
        if passes == 2:
            optimizer.first_step()
            objective(model(images, **priors()).logits, targets, epoch=6).backward()
            optimizer.second_step()
        else:
            optimizer.step()
            optimizer.zero_grad()
        if step:  # the first step is a warm-up
            times.append(time.perf_counter() - start)
    median = statistics.median(times)
    name = f"ORSANet-{size} ({backbone})" if config == "paper" else "compact ORSANet (resnet_compact, 56 px)"
    return {"mode": "cached priors" if cached else "live priors", "model": name, "batch": batch,
            "threads": torch.get_num_threads(), "step_seconds": median, "images_per_second": batch / median,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="paper", choices=["paper", "compact"])
    parser.add_argument("--size", default="large", choices=["small", "base", "large"])
    parser.add_argument("--backbone", default="ir50")
    parser.add_argument("--batch", type=int, help="default: 4 (paper), 64 (compact)")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--modes", nargs="+", default=["live", "cached"], choices=["live", "cached"])
    parser.add_argument("--one", choices=["live", "cached"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.batch = args.batch or (4 if args.config == "paper" else 64)
    if args.one:
        print(json.dumps(measure(args.config, args.size, args.batch, args.steps, args.one == "cached", args.backbone)))
        return
    for mode in args.modes:
        result = subprocess.run([sys.executable, __file__, "--one", mode, "--config", args.config, "--size", args.size,
                                 "--backbone",
                                 args.backbone, "--batch", str(args.batch), "--steps", str(args.steps)],
                                capture_output=True, text=True, check=True)
        r = json.loads(result.stdout.strip().splitlines()[-1])
        print(f"{r['model']}, {r['mode']}, batch {r['batch']}, {r['threads']} threads: "
              f"{r['images_per_second']:.2f} images/s ({r['step_seconds']:.2f} s per step), "
              f"peak memory {r['peak_rss_mib']:.0f} MiB")


if __name__ == "__main__":
    main()
