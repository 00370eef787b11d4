"""Forward time per image of an ORSANet model on this machine's CPU (or a GPU with --device cuda).

    python benchmarks/forward_time.py --size large --batch 8 --runs 5

Prints the median over ``--runs`` timed passes after one warm-up pass.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from orsanet import load_model
from orsanet.models import ORSANet, ORSANetConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="large", choices=["small", "base", "large"])
    parser.add_argument("--model", help="a model file instead of the random paper configuration")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model) if args.model else ORSANet(ORSANetConfig(size=args.size))
    model = model.to(args.device).eval()
    size = model.config.input_size
    images = torch.randn(args.batch, 3, size, size, device=args.device)
    times = []
    with torch.inference_mode():
        for run in range(args.runs + 1):
            start = time.perf_counter()
            model(images)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            if run:  # the first pass is a warm-up
                times.append(time.perf_counter() - start)
    median = statistics.median(times)
    print(f"model: {args.model or 'ORSANet-' + args.size + ' (paper configuration)'}; device {args.device}, "
          f"{args.threads} threads, batch {args.batch}, {size} px")
    print(f"forward per batch: median {median:.3f} s over {args.runs} runs (min {min(times):.3f}, max {max(times):.3f})")
    print(f"forward per image: {median / args.batch * 1000:.1f} ms; {args.batch / median:.2f} images/s")


if __name__ == "__main__":
    main()
