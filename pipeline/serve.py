"""Serve the recommended model over HTTP.

    python -m pipeline.serve [--model artifacts/classifier] [--host 127.0.0.1] [--port 8080]
        [--max-bytes 10000000] [--max-pixels N] [--max-request-pixels N] [--max-images 32]
        [--max-connections 32] [--header-timeout 10] [--body-timeout 30]
        [--shutdown-timeout 5] [--top-k 3]
        [--runtime auto|RUNTIME] [--precision auto|float32|bfloat16]
        [--verbose | -q]

``POST /predict`` (a multipart image file, or a JSON list of base64 images) returns
labels, probabilities, the model's name and version; ``GET /health``, ``GET /metadata``
(both name the runtime that runs the model); ``/`` is a page to drop an image on. Images
go through Pillow checks, then the decode and resize of training
(pipeline.data.input.decode_image, with the EXIF orientation as card.json records it).
The model runs on the inference runtime of pipeline.runtimes (``RUNTIME``: a name its
registry lists, tensorflow or openvino): ``auto`` is the first registered runtime
(OpenVINO, bfloat16 on a CPU with native bf16) that converts the model and agrees with
TensorFlow float32, else TensorFlow, with the one-line reason. docs/serving.md has examples.

Every connection has deadlines (its headers, its body), their number a cap, and SIGTERM
stops the server within ``--shutdown-timeout`` seconds whatever the clients do
(pipeline.serving.connections). The pixel rule is the pipeline's (pipeline.core.pixels):
by default the limit the model card records, the one its training data passed.

The settings are flags, not params.yaml: serving produces no pipeline output for DVC
to track, and a folder fetched with ``dvc get`` is served without the project around it.
Prints ``serving <model> <version> on <runtime> <precision> at http://HOST:PORT/`` once
it listens (``--port 0``: a free port). Exit status 2 when the model folder cannot be
served or an explicit runtime cannot run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from pipeline.core import logs, paths
from pipeline.core.errors import PipelineError
from pipeline.runtimes import registry
from pipeline.runtimes.select import PRECISIONS
from pipeline.serving.connections import (
    DEFAULT_HEADER_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_SHUTDOWN_TIMEOUT,
    ConnectionLimits,
    listen,
)
from pipeline.serving.uploads import (
    DEFAULT_BODY_TIMEOUT,
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_IMAGES,
    Limits,
)

log = logging.getLogger(__name__)
DEFAULT_PORT = 8080


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m pipeline.serve",
                                     description="Serve a model folder over HTTP.")
    parser.add_argument("--model", type=Path, default=paths.BEST,
                        help=f"model folder: model.keras + card.json (default: {paths.BEST})")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1, this machine only; "
                        "0.0.0.0 for every interface)")
    # Not mkdocs serve's 8000: the docs site and the model can be open side by side.
    parser.add_argument("--port", type=int, default=DEFAULT_PORT,
                        help=f"0: any free port (default: {DEFAULT_PORT})")
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES,
                        help="largest request body, in bytes")
    parser.add_argument("--max-pixels", type=int,
                        help="largest image, width x height (the decompression-bomb rule of "
                        "the pipeline; default: the model card's max_pixels, the "
                        "data.images.max_pixels its training data passed, else 89478485)")
    parser.add_argument("--max-request-pixels", type=int,
                        help="every image of one request together, width x height "
                        "(default: --max-pixels: a request costs at most one image at the cap)")
    parser.add_argument("--max-images", type=int, default=DEFAULT_MAX_IMAGES,
                        help="most images in one request")
    parser.add_argument("--max-connections", type=int, default=DEFAULT_MAX_CONNECTIONS,
                        help="connections open at once; beyond it a 503 and closed "
                        f"(default: {DEFAULT_MAX_CONNECTIONS})")
    parser.add_argument("--header-timeout", type=float, default=DEFAULT_HEADER_TIMEOUT,
                        help="seconds a connection may take to send a request's headers "
                        f"(default: {DEFAULT_HEADER_TIMEOUT:g})")
    parser.add_argument("--body-timeout", type=float, default=DEFAULT_BODY_TIMEOUT,
                        help="seconds a request may take to send its whole body after its "
                        f"headers; beyond it a 408 (default: {DEFAULT_BODY_TIMEOUT:g})")
    parser.add_argument("--shutdown-timeout", type=float, default=DEFAULT_SHUTDOWN_TIMEOUT,
                        help="seconds requests in flight get after SIGTERM before they are "
                        f"cancelled (default: {DEFAULT_SHUTDOWN_TIMEOUT:g})")
    parser.add_argument("--top-k", type=int, default=3, help="default top-k of /predict")
    tried = " then ".join(r.label for r in registry.candidates())
    bf16 = " or ".join(r.label for r in registry.RUNTIMES.values() if "bfloat16" in r.precisions)
    parser.add_argument("--runtime", choices=registry.names(), default="auto",
                        help=f"what runs the model: auto (tries {tried}: the first installed "
                        "that agrees with TensorFlow float32 runs, else TensorFlow, saying "
                        "why), or one by name (an error if it cannot run); as params.yaml's "
                        "inference.runtime (default: auto)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help=f"auto (bfloat16 on {bf16} where the CPU has native bf16, "
                        f"else float32), float32, or bfloat16 ({bf16} only); as "
                        "params.yaml's inference.precision (default: auto)")
    logs.add_flags(parser)
    args = parser.parse_args(argv)
    for flag in ("max_bytes", "max_pixels", "max_request_pixels", "max_images",
                 "max_connections", "top_k"):
        if getattr(args, flag) is not None and getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be at least 1")
    for flag in ("header_timeout", "body_timeout", "shutdown_timeout"):
        if not 0 < getattr(args, flag) < float("inf"):
            parser.error(f"--{flag.replace('_', '-')} must be a positive number of seconds")
    if not 0 <= args.port <= 65535:
        parser.error(f"--port {args.port}: expected 0-65535")
    return args


def limits_of(args: argparse.Namespace, card: dict) -> Limits:
    """The upload limits: the flags, and the pixel rule the model card records unless
    --max-pixels says otherwise."""
    from pipeline.core.pixels import limit_of

    if args.max_pixels is not None:
        max_pixels, setting = args.max_pixels, "--max-pixels"
    else:
        max_pixels, source = limit_of(card, None)  # read_card checked the card's value
        setting = "--max-pixels" + (f", by default {source}" if "card" in source else "")
    return Limits(max_bytes=args.max_bytes, max_pixels=max_pixels, max_images=args.max_images,
                  max_request_pixels=args.max_request_pixels or max_pixels,
                  body_timeout=args.body_timeout, pixels_setting=setting)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logs.configure(args.verbosity)
    from PIL import Image

    from pipeline.core.process_setup import quiet_tensorflow
    from pipeline.serving.malloc import return_large_blocks
    from pipeline.serving.model import load_served

    return_large_blocks()  # before anything large is allocated
    quiet_tensorflow()
    try:
        served = load_served(args.model, args.runtime, args.precision)
        limits = limits_of(args, served.card)
    except PipelineError as err:
        log.error(f"error: {err}")
        return 2
    # Pillow's own guard at our cap (it raises beyond twice it); the server's only user.
    Image.MAX_IMAGE_PIXELS = limits.max_pixels
    connections = ConnectionLimits(max_connections=args.max_connections,
                                   header_timeout=args.header_timeout,
                                   shutdown_timeout=args.shutdown_timeout)
    try:
        sock = listen(args.host, args.port)
    except OSError as err:
        log.error(f"error: cannot listen on {args.host}:{args.port}: {err.strerror}")
        return 2

    from pipeline.serving.app import create_app
    from pipeline.serving.connections import make_server

    app = create_app(served, limits, top_k=args.top_k)
    log.debug("serve: %s from %s; %s; %s; top-k %d", served.name, args.model, limits,
              connections, args.top_k)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    runtime = served.runtime_info()["runtime"]
    # What a caller waits for (and reads the port of, with --port 0): not hidden by -q.
    print(f"serving {served.name} {served.version} on {runtime} at http://{shown}:{port}/",
          flush=True)
    level = {logs.QUIET: "warning", logs.VERBOSE: "debug"}.get(args.verbosity, "info")
    make_server(app, connections, log_level=level).run(sockets=[sock])
    return 0


if __name__ == "__main__":
    sys.exit(main())
