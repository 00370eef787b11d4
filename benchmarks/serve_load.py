"""Load test of ``orsanet serve``: many concurrent requests from a local client to a local server.

    python benchmarks/serve_load.py                       # 200 concurrent uploads of the example photo
    python benchmarks/serve_load.py --requests 400 --max-queue 16

Starts ``orsanet serve`` on a free localhost port in its own process, fires ``--requests`` uploads
at once (each its own connection, all bounded by ``--timeout``), and prints how many were answered
(200, and 503 "queue full" with Retry-After when the queue is smaller than the crowd), none lost,
the p50 / p95 latency of the answered ones and the throughput. A client that honours Retry-After
(``--retry``) resends a refused request after the advised delay, until every request has a face.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "astronaut.jpg"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_ready(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while time.monotonic() < deadline:
            try:
                if (await client.get(f"{url}/v1/health")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"the server at {url} did not start within {timeout:.0f} s")


async def crowd(url: str, count: int, timeout: float, retry: bool) -> list[tuple[int, float, int]]:
    """(final status, seconds from first send to final answer, tries) per request."""
    data = EXAMPLE.read_bytes()
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=0)
    async with httpx.AsyncClient(timeout=timeout, limits=limits) as client:
        async def one() -> tuple[int, float, int]:
            start, tries = time.perf_counter(), 0
            while True:
                tries += 1
                try:
                    response = await client.post(f"{url}/v1/predict", files={"file": ("a.jpg", data, "image/jpeg")})
                    status = response.status_code
                except httpx.TimeoutException:
                    status = 0  # no answer in time: counted as lost
                if status == 503 and retry and time.perf_counter() - start < timeout:
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                    continue
                return status, time.perf_counter() - start, tries

        return await asyncio.gather(*(one() for _ in range(count)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--max-queue", type=int, default=256, help="the server's queue (default: room for the crowd)")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0, help="per request, seconds")
    parser.add_argument("--retry", action="store_true", help="resend 503 answers after Retry-After")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "orsanet.cli", "serve", "--port", str(port), "--max-queue", str(args.max_queue),
         "--max-batch", str(args.max_batch), "--request-timeout-s", str(args.timeout)],
        env={**os.environ, "OMP_NUM_THREADS": str(args.threads)}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(wait_ready(url))
        started = time.perf_counter()
        results = asyncio.run(crowd(url, args.requests, args.timeout, args.retry))
        wall = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(30)
    counts: dict[int, int] = {}
    for status, _, _ in results:
        counts[status] = counts.get(status, 0) + 1
    ok = sorted(seconds for status, seconds, _ in results if status == 200)
    p95 = ok[max(0, round(0.95 * len(ok)) - 1)] if ok else float("nan")
    print(f"{args.requests} concurrent requests, queue {args.max_queue}, batch {args.max_batch}, "
          f"{args.threads} threads{', retrying 503' if args.retry else ''}: answered {len(results) - counts.get(0, 0)}"
          f" (status counts {dict(sorted(counts.items()))}), lost {counts.get(0, 0)}; "
          f"latency of the 200s p50 {statistics.median(ok) if ok else float('nan'):.2f} s, p95 {p95:.2f} s; "
          f"{len(ok) / wall:.1f} pictures/s over {wall:.1f} s; tries {sum(t for *_, t in results)}")


if __name__ == "__main__":
    main()
