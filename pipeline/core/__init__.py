"""Plumbing every stage shares, and the image rules every layer reads images by; no models.

``params`` (the typed, validated view of params.yaml), ``paths`` (where each
stage reads and writes), ``io`` (atomic writes: an interrupted stage never leaves
half a file for DVC to cache), ``errors`` (a failure a user can fix, said in one line),
``hashing`` and ``net`` (file digests and the one network timeout), ``logs`` (how much
the entry points say), ``machine`` (which CPU and versions a figure came from),
``run_facts`` (how a stage ran, kept apart from what it found), ``process_setup`` (seeds,
determinism, TensorFlow's log noise) and ``stage`` (the shell of every stage script:
``--help``, params, clean errors).

Images, so that prepare, training, evaluation and serving read a file alike:
``image_formats`` (which files are images, what the decoder reads, a JPEG's EXIF
orientation), ``pixels`` (the decompression-bomb limit, from the header) and
``contact_sheets`` (the PNG thumbnail sheets every stage's pictures are drawn with).
"""
