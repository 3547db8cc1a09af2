"""Serving the exported model over HTTP (``python -m pipeline.serve``).

``model``: the model folder (``artifacts/classifier``) loaded behind one ``predict``
seam, and its version; ``uploads``: what a request must be before TensorFlow sees it;
``app``: the FastAPI routes; ``connections``: deadlines, the connection cap and shutdown
(what uvicorn leaves out); ``malloc``: freed blocks back to the system; ``page.html``:
the drop-an-image page.
"""
