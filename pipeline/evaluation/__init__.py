"""Evaluation: scores on the held-out test split (``scores``, ``confusion``), the table
that compares models (``compare``), and inference with a saved model (``inference``)."""
