"""The HTTP routes: ``POST /predict``, ``GET /health``, ``GET /metadata`` and the page ``/``.

Every error is JSON ``{"error": "..."}``: a bad request gets its 4xx and a message naming
the problem (and the file or list index); anything unexpected gets a 500 with a generic
message, and the traceback goes to the server's log only.
"""

from __future__ import annotations

import json
import logging
import os
from importlib import resources
from typing import Any

import anyio
import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException

from pipeline.serving.model import ServedModel
from pipeline.serving.uploads import (
    Limits,
    Upload,
    UploadError,
    capped_receive,
    check_count,
    check_decodes,
    check_header,
    check_part,
    check_request_pixels,
    from_json,
    media_type,
)

log = logging.getLogger("pipeline.serve")
ACCEPTED = ("multipart/form-data", "application/json")


def create_app(served: ServedModel, limits: Limits | None = None, top_k: int = 3,
               decoders: int | None = None) -> FastAPI:
    """``decoders``: requests decoded and run at once (default: one per CPU core); the rest
    wait their turn, so the memory of decoding is at most this many request budgets."""
    limits = limits or Limits()
    decoders = decoders or os.cpu_count() or 1
    limiter: list[anyio.CapacityLimiter] = []  # made in the event loop, by the first request
    # No /docs or /redoc: their pages load from a CDN, blank offline. /openapi.json stays.
    app = FastAPI(title="transfer-pipeline classifier", docs_url=None, redoc_url=None)
    page = resources.files("pipeline.serving").joinpath("page.html").read_text("utf-8")

    @app.exception_handler(UploadError)
    async def bad_upload(request: Request, err: UploadError) -> JSONResponse:
        return JSONResponse({"error": str(err)}, status_code=err.status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, err: HTTPException) -> JSONResponse:
        detail = err.detail if err.status_code != 404 else f"no such page: {request.url.path}"
        return JSONResponse({"error": str(detail)}, status_code=err.status_code)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("error: unexpected error on %s %s", request.method, request.url.path)
        return JSONResponse({"error": "internal server error (details in the server's log)"},
                            status_code=500)

    @app.get("/", response_class=HTMLResponse)
    async def index() -> str:
        return page

    @app.get("/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "model": served.name, "version": served.version,
                "runtime": served.runtime_info()["runtime"]}

    @app.get("/metadata")
    async def metadata() -> dict[str, Any]:
        return served.metadata() | {
            "input_formats": list(limits.formats),
            "max_bytes": limits.max_bytes,
            "max_pixels": limits.max_pixels,
            "max_images": limits.max_images,
            "max_request_pixels": limits.max_request_pixels,
            "top_k": top_k,
        }

    @app.post("/predict")
    async def predict(request: Request) -> dict[str, Any]:
        k = _top_k(request.query_params.get("top_k"), top_k, len(served.classes))
        uploads = await read_uploads(request, limits)
        if not limiter:
            limiter.append(anyio.CapacityLimiter(decoders))
        probabilities = await anyio.to_thread.run_sync(infer, served, uploads, limits,
                                                       limiter=limiter[0])
        return {
            "model": served.name,
            "version": served.version,
            "predictions": [_prediction(u.name, p, served.classes, k)
                            for u, p in zip(uploads, probabilities, strict=True)],
        }

    return app


async def read_uploads(request: Request, limits: Limits) -> list[Upload]:
    """The images of a multipart or JSON request, the body capped as it streams in."""
    kind = media_type(request.headers.get("content-type"))
    if kind not in ACCEPTED:
        raise UploadError(415, f"content type {kind or '(none)'}: send multipart/form-data "
                          "(an image file field) or application/json (a list of base64 images)")
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip() == "0":
        raise UploadError(400, "empty body: no image sent")
    capped = Request(request.scope, capped_receive(request.receive, declared, limits.max_bytes,
                                                   limits.body_timeout))
    if kind == "application/json":
        body = await capped.body()
        if not body.strip():
            raise UploadError(400, "empty body: no image sent")
        try:
            payload = json.loads(body)
        except ValueError as err:
            raise UploadError(400, f"the body is not valid JSON ({err})") from None
        return from_json(payload, limits)

    try:
        form = await capped.form(max_files=limits.max_images + 1)
    except HTTPException as err:  # Starlette's own multipart parse errors
        if "too many files" in str(err.detail).lower():  # it stops counting past max_files
            raise UploadError(413, f"more than {limits.max_images + 1} images in one request; "
                              f"at most {limits.max_images} (--max-images)") from None
        raise UploadError(400, f"malformed multipart body: {err.detail}") from None
    try:
        parts = [(key, value) for key, value in form.multi_items()
                 if isinstance(value, UploadFile)]
        if not parts:
            raise UploadError(400, "empty body: no image sent" if not form else
                              "no file in the multipart body (send the image as a file "
                              "field: curl -F file=@photo.jpg)")
        check_count(len(parts), limits)
        uploads = []
        for key, part in parts:
            name = part.filename or key
            check_part(name, part.content_type, limits)
            uploads.append(Upload(name, await part.read()))
        return uploads
    finally:
        await form.close()


def infer(served: ServedModel, uploads: list[Upload], limits: Limits) -> np.ndarray:
    """Check every image (headers and the request's pixel budget before any decode), decode
    as training did, one batch through the runtime."""
    import tensorflow as tf

    check_request_pixels([check_header(upload, limits) for upload in uploads], limits)
    for upload in uploads:
        check_decodes(upload)
    images = []
    for upload in uploads:
        try:
            images.append(served.decode(upload.data))
        except tf.errors.InvalidArgumentError:  # Pillow read it, TensorFlow cannot
            raise UploadError(422, f"{upload.name}: TensorFlow cannot decode this image") \
                from None
    return served.runtime.predict(np.stack(images))


def _top_k(given: str | None, default: int, classes: int) -> int:
    if given is None:
        return min(default, classes)
    try:
        k = int(given)
    except ValueError:
        k = 0
    if k < 1:
        raise UploadError(400, f"top_k={given!r}: expected a whole number >= 1")
    return min(k, classes)


def _prediction(name: str, probabilities: np.ndarray, classes: list[str], k: int) -> dict:
    order = np.argsort(-probabilities, kind="stable")
    top = [{"label": classes[i], "probability": float(probabilities[i])} for i in order[:k]]
    return {
        "name": name,
        "label": top[0]["label"],
        "probability": top[0]["probability"],
        "top": top,
        "probabilities": {c: float(p) for c, p in zip(classes, probabilities, strict=True)},
    }
