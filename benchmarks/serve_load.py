"""A bounded load test of ``python -m pipeline.serve``: N requests from C concurrent clients.

    python benchmarks/serve_load.py [--model artifacts/classifier] [--requests 500]
        [--clients 8] [--image photo.jpg] [--deadline 900] [--runtime auto] [--precision auto]

Starts the server on 127.0.0.1 (a free port) with the model folder, sends a few untimed
warm-up requests, then ``--requests`` multipart POSTs of one image to /predict from
``--clients`` threads (each with its own HTTP connection), and prints the errors (any
status but 200, or a failed connection), the p50/p95/p99 latency and the requests per
second. Bounded in count and in time: clients stop at ``--deadline`` seconds, and what
was not sent by then is counted as errors. The default image is a seeded 256 x 256
noise JPEG, so runs are comparable. ``--runtime`` and ``--precision`` go to the server;
the runtime that ran (its /health) is printed.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WARMUP = 8


def cpu() -> str:
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    name = next((line.split(":", 1)[1].strip() for line in info.splitlines()
                 if line.startswith("model name")), "unknown CPU")
    flags = set(next((line.split(":", 1)[1].split() for line in info.splitlines()
                      if line.startswith("flags")), []))
    return (f"{name}, {os.cpu_count()} cores; avx512f {'avx512f' in flags}, avx512_bf16 "
            f"{'avx512_bf16' in flags}, amx {'amx_bf16' in flags}")


def start(model: Path, timeout: float, *flags: str) -> tuple[subprocess.Popen, str]:
    env = os.environ | {"PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    proc = subprocess.Popen([sys.executable, "-m", "pipeline.serve", "--model", str(model),
                             "--port", "0", *flags], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        line = proc.stdout.readline()
        if line.startswith("serving "):
            return proc, line.split(" at ")[1].strip()
    proc.kill()
    raise SystemExit(f"the server did not start within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "classifier")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--image", type=Path, help="default: a seeded 256 x 256 noise JPEG")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds, at most")
    parser.add_argument("--runtime", default="auto", help="the server's --runtime")
    parser.add_argument("--precision", default="auto", help="the server's --precision")
    args = parser.parse_args()

    if args.image:
        image, name = args.image.read_bytes(), args.image.name
    else:
        pixels = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
        image, name = buffer.getvalue(), "noise.jpg"

    proc, url = start(args.model, 300, "--runtime", args.runtime,
                      "--precision", args.precision)
    files = {"file": (name, image, "image/jpeg")}
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(WARMUP):
                http.post("/predict", files=files).raise_for_status()
            model = http.get("/health").json()

        tickets = itertools.count()
        lock = threading.Lock()
        latencies: list[float] = []
        errors: list[str] = []
        stop_at = time.monotonic() + args.deadline

        def client() -> None:
            with httpx.Client(base_url=url, timeout=60) as http:
                while next(tickets) < args.requests and time.monotonic() < stop_at:
                    began = time.perf_counter()
                    try:
                        response = http.post("/predict", files=files)
                        failed = None if response.status_code == 200 else \
                            f"{response.status_code} {response.text[:200]}"
                    except httpx.HTTPError as err:
                        failed = f"{type(err).__name__}: {err}"
                    took = time.perf_counter() - began
                    with lock:
                        (errors.append(failed) if failed else latencies.append(took))

        began = time.perf_counter()
        with ThreadPoolExecutor(args.clients) as pool:
            for future in [pool.submit(client) for _ in range(args.clients)]:
                future.result()
        wall = time.perf_counter() - began
    finally:
        proc.terminate()
        proc.wait(timeout=30)

    unsent = args.requests - len(latencies) - len(errors)
    ms = np.array(latencies) * 1000
    print(f"model: {model['model']} {model['version']} ({args.model}) on {model['runtime']}")
    print(f"CPU: {cpu()}")
    print(f"image: {name}, {len(image):,} bytes; {args.requests} requests from "
          f"{args.clients} concurrent clients, after {WARMUP} untimed warm-up requests")
    print(f"errors: {len(errors) + unsent} ({len(errors)} failed, {unsent} not sent "
          "before the deadline)")
    for error in sorted(set(errors))[:5]:
        print(f"  {error}")
    if len(ms):
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        print(f"latency ms: p50 {p50:.0f}, p95 {p95:.0f}, p99 {p99:.0f}, max {ms.max():.0f}")
        print(f"throughput: {len(ms) / wall:.1f} requests/s ({len(ms)} in {wall:.1f} s)")
    return 1 if errors or unsent else 0


if __name__ == "__main__":
    sys.exit(main())
