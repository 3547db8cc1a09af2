"""A bounded load test of ``python -m pipeline.serve``: throughput, a burst, slow clients.

    python benchmarks/serve_load.py [--model artifacts/classifier] [--requests 500]
        [--clients 8] [--image photo.jpg] [--deadline 900] [--runtime auto] [--precision auto]
        [--burst 16] [--slow 20]

Starts the server on 127.0.0.1 (a free port) with the model folder and measures, in order:

1. load: a few untimed warm-up requests, then ``--requests`` multipart POSTs of one image
   to /predict from ``--clients`` threads (each with its own HTTP connection): the
   errors (any status but 200, or a failed connection), the p50/p95/p99 latency and the
   requests per second. The default image is a seeded 256 x 256 noise JPEG, so runs
   are comparable.
2. burst: ``--burst`` requests of large-but-legal images from ``--clients`` threads: as
   many seeded 4000 x 3000 JPEGs ("phone photos", 12 MP) as one request may carry
   (the server's /metadata: its pixel budget, byte cap and image count), and the
   server's memory (RSS, from /proc) before, at its peak during and 3 s after the burst.
3. shutdown: ``--slow`` clients sending a body a byte a second and as many connected
   without a word, then SIGTERM: the seconds until the server has exited.

Bounded in count and in time: clients stop at ``--deadline`` seconds, and what was not
sent by then is counted as errors; every socket is on 127.0.0.1. ``--runtime`` and
``--precision`` go to the server; the runtime that ran (its /health) is printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import os
import signal
import socket
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
PHOTO = (4000, 3000)  # a 12 MP phone photo, the burst's image


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


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid``, MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def photo_jpeg() -> bytes:
    """A seeded 4000 x 3000 JPEG that compresses like a photo (smooth, a little noise)."""
    rng = np.random.default_rng(1)
    small = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    big = Image.fromarray(small).resize(PHOTO, Image.Resampling.BICUBIC)
    pixels = np.asarray(big, dtype=np.int16) + rng.integers(-6, 7, (*PHOTO[::-1], 3))
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, format="JPEG",
                                                                   quality=85)
    return buffer.getvalue()


def run_clients(url: str, clients: int, count: int, deadline: float, post
                ) -> tuple[list[float], list[str], float]:
    """``count`` requests (``post(http)``) from ``clients`` threads: latencies (s), errors,
    wall seconds."""
    tickets = itertools.count()
    lock = threading.Lock()
    latencies: list[float] = []
    errors: list[str] = []
    stop_at = time.monotonic() + deadline

    def client() -> None:
        with httpx.Client(base_url=url, timeout=120) as http:
            while next(tickets) < count and time.monotonic() < stop_at:
                began = time.perf_counter()
                try:
                    response = post(http)
                    failed = None if response.status_code == 200 else \
                        f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as err:
                    failed = f"{type(err).__name__}: {err}"
                took = time.perf_counter() - began
                with lock:
                    (errors.append(failed) if failed else latencies.append(took))

    began = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(client) for _ in range(clients)]:
            future.result()
    return latencies, errors, time.perf_counter() - began


def burst(url: str, pid: int, requests: int, clients: int, deadline: float) -> list[str]:
    """The burst of large-but-legal requests, and the server's RSS around it."""
    with httpx.Client(base_url=url, timeout=60) as http:
        meta = http.get("/metadata").json()
    photo = photo_jpeg()
    pixels = PHOTO[0] * PHOTO[1]
    budget = meta.get("max_request_pixels", meta["max_pixels"])
    per_request = min(budget // pixels, meta["max_images"],
                      int(meta["max_bytes"] * 0.98) // (len(photo) + 256))
    if per_request < 1:
        return [f"burst: skipped, one {pixels:,}-pixel photo is over a request's budget"]
    files = [("file", (f"photo{i}.jpg", photo, "image/jpeg")) for i in range(per_request)]
    peak, sampling = [rss_mb(pid)], threading.Event()

    def sample() -> None:
        while not sampling.wait(0.05):
            peak.append(rss_mb(pid))

    before = peak[0]
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    latencies, errors, wall = run_clients(url, clients, requests, deadline,
                                          lambda http: http.post("/predict", files=files))
    sampling.set()
    sampler.join()
    time.sleep(3)
    after = rss_mb(pid)
    ms = np.array(latencies) * 1000
    lines = [f"burst: {requests} requests of {per_request} x {PHOTO[0]} x {PHOTO[1]} JPEG "
             f"({per_request * pixels:,} pixels, {per_request * len(photo):,} bytes each) "
             f"from {clients} clients: {len(errors)} errors"]
    lines += [f"  {error}" for error in sorted(set(errors))[:3]]
    if len(ms):
        lines.append(f"  latency ms: p50 {np.percentile(ms, 50):.0f}, p99 "
                     f"{np.percentile(ms, 99):.0f}; {len(ms) / wall:.2f} requests/s, "
                     f"{len(ms) * per_request * pixels / wall / 1e6:.0f} Mpixel/s")
    lines.append(f"  server RSS MB: before {before:.0f}, peak {max(peak):.0f}, 3 s after "
                 f"{after:.0f} ({after - before:+.0f})")
    return lines


def shutdown_time(proc: subprocess.Popen, url: str, slow: int, limit: float = 60) -> str:
    """SIGTERM with ``slow`` clients trickling a body and ``slow`` saying nothing: seconds
    until the server exits (SIGKILL, and said so, past ``limit``)."""
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    head = (b"POST /predict HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n[")
    sockets = []
    for i in range(2 * slow):
        sock = socket.create_connection((host, int(port)), timeout=5)
        if i < slow:
            sock.sendall(head)
        sockets.append(sock)
    stop = threading.Event()

    def trickle() -> None:  # a byte a second on each slow body
        while not stop.wait(1.0):
            for sock in sockets[:slow]:
                with contextlib.suppress(OSError):  # the server closed it: fine
                    sock.send(b" ")

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    time.sleep(1.5)
    began = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=limit)
        took = f"{time.monotonic() - began:.1f} s"
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        took = f"over {limit:.0f} s (killed)"
    stop.set()
    thread.join()
    for sock in sockets:
        sock.close()
    return (f"shutdown: SIGTERM with {slow} clients sending a body a byte a second and {slow} "
            f"connected without a word: exited after {took}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=ROOT / "artifacts" / "classifier")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--image", type=Path, help="default: a seeded 256 x 256 noise JPEG")
    parser.add_argument("--deadline", type=float, default=900.0, help="seconds, at most")
    parser.add_argument("--runtime", default="auto", help="the server's --runtime")
    parser.add_argument("--precision", default="auto", help="the server's --precision")
    parser.add_argument("--burst", type=int, default=16,
                        help="requests of large-but-legal photos (0: none)")
    parser.add_argument("--slow", type=int, default=20,
                        help="slow clients (and as many silent ones) at SIGTERM (0: none)")
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
    burst_lines, shutdown_line = [], ""
    try:
        with httpx.Client(base_url=url, timeout=60) as http:
            for _ in range(WARMUP):
                http.post("/predict", files=files).raise_for_status()
            model = http.get("/health").json()
        latencies, errors, wall = run_clients(url, args.clients, args.requests, args.deadline,
                                              lambda http: http.post("/predict", files=files))
        if args.burst:
            burst_lines = burst(url, proc.pid, args.burst, args.clients, args.deadline)
        if args.slow:
            shutdown_line = shutdown_time(proc, url, args.slow)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)

    unsent = args.requests - len(latencies) - len(errors)
    ms = np.array(latencies) * 1000
    print(f"model: {model['model']} {model['version']} ({args.model}) on {model['runtime']}")
    print(f"CPU: {cpu()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
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
    for line in [*burst_lines, shutdown_line]:
        if line:
            print(line)
    return 1 if errors or unsent else 0


if __name__ == "__main__":
    sys.exit(main())
