"""Transfer learning for image classification as a DVC pipeline."""

import os

# TensorFlow's C++ start-up chatter buries the stage output; warnings still show.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
