"""Plumbing every stage shares, and nothing about images or models.

``params`` (the typed, validated view of params.yaml), ``paths`` (where each
stage reads and writes), ``io`` (atomic writes: an interrupted stage never leaves
half a file for DVC to cache), ``hashing`` and ``net`` (file digests and the one
network timeout), ``process_setup`` (seeds, determinism, TensorFlow's log noise) and
``stage`` (the shell of every stage script: ``--help``, params, clean errors).
"""
