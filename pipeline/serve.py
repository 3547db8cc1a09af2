"""Serve the recommended model over HTTP.

    python -m pipeline.serve [--model artifacts/classifier] [--host 127.0.0.1] [--port 8000]
        [--max-bytes 10000000] [--max-pixels 89478485] [--max-images 32] [--top-k 3]
        [--runtime auto|tensorflow|openvino] [--precision auto|float32|bfloat16]
        [--verbose | -q]

``POST /predict`` (a multipart image file, or a JSON list of base64 images) returns
labels, probabilities, the model's name and version; ``GET /health``, ``GET /metadata``
(both name the runtime that runs the model); ``/`` is a page to drop an image on. Images
go through Pillow checks, then the decode and resize of training
(pipeline.data.input.decode_image, with the EXIF orientation as card.json records it).
The model runs on the inference runtime of pipeline.runtimes: ``auto`` is OpenVINO
(bfloat16 on a CPU with native bf16) when it converts the model and agrees with
TensorFlow float32, else TensorFlow, with the one-line reason. docs/serving.md has examples.

The settings are flags, not params.yaml: serving produces no pipeline output for DVC
to track, and a folder fetched with ``dvc get`` is served without the project around it.
Prints ``serving <model> <version> on <runtime> <precision> at http://HOST:PORT/`` once
it listens (``--port 0``: a free port). Exit status 2 when the model folder cannot be
served or an explicit runtime cannot run.
"""

from __future__ import annotations

import argparse
import logging
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import logs, paths
from pipeline.core.errors import PipelineError
from pipeline.runtimes.select import PRECISIONS, RUNTIMES
from pipeline.serving.uploads import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_IMAGES,
    DEFAULT_MAX_PIXELS,
    Limits,
)

log = logging.getLogger(__name__)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serve",
                                     description="Serve a model folder over HTTP.")
    parser.add_argument("--model", type=Path, default=paths.BEST,
                        help=f"model folder: model.keras + card.json (default: {paths.BEST})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; "
                        "0.0.0.0 for every interface)")
    parser.add_argument("--port", type=int, default=8000, help="0: any free port")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="largest request body, in bytes")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="largest image, width x height (decompression-bomb guard; "
                        "Pillow's default, as params.yaml's data.images.max_pixels)")
    parser.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES,
                        help="most images in one request")
    parser.add_argument("--top-k", type=int, default=3, help="default top-k of /predict")
    parser.add_argument("--runtime", choices=RUNTIMES, default="auto",
                        help="what runs the model: auto (OpenVINO when installed and it "
                        "agrees with TensorFlow float32, else TensorFlow, saying why), "
                        "tensorflow, or openvino (an error if it cannot run); as "
                        "params.yaml's inference.runtime (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="auto (bfloat16 on OpenVINO where the CPU has native bf16, "
                        "else float32), float32, or bfloat16 (OpenVINO only); as "
                        "params.yaml's inference.precision (default: auto)")
    logs.add_flags(parser)
    args = parser.parse_args(argv)
    for flag in ("max_bytes", "max_pixels", "max_images", "top_k"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: expected 0-65535")
    return args


def listen(host: str, port: int) -> socket.socket:
    """A bound socket, so the address is known (and printed) before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.verbosity)
    from PIL import Image

    from pipeline.core.runtime import quiet_tensorflow
    from pipeline.serving.model import load_served

    quiet_tensorflow()
    # Pillow's own guard at our cap (it raises beyond twice it); the server's only user.
    Image.MAX_IMAGE_PIXELS = args.max_pixels
    try:
        served = load_served(args.model, args.runtime, args.precision)
    except PipelineError as err:
        log.error(f"error: {err}")
        return 2
    try:
        sock = listen(args.host, args.port)
    except OSError as err:
        log.error(f"error: cannot listen on {args.host}:{args.port}: {err.strerror}")
        return 2

    import uvicorn

    from pipeline.serving.app import create_app

    limits = Limits(max_bytes=args.max_bytes, max_pixels=args.max_pixels,
                    max_images=args.max_images)
    app = create_app(served, limits, top_k=args.top_k)
    log.debug("serve: %s from %s; %s; top-k %d", served.name, args.model, limits, args.top_k)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    runtime = served.runtime_info()["runtime"]
    # What a caller waits for (and reads the port of, with --port 0): not hidden by -q.
    print(f"serving {served.name} {served.version} on {runtime} at http://{shown}:{port}/",
          flush=True)
    level = {logs.QUIET: "warning", logs.VERBOSE: "debug"}.get(args.verbosity, "info")
    server = uvicorn.Server(uvicorn.Config(app, log_level=level, access_log=False))
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
