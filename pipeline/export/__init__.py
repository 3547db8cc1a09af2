"""Export: the recommended model, whole (image in, probabilities out), in the formats other
runtimes serve (``keras_model``: the Keras network and its card; ``savedmodel``: TF Serving;
``tflite``: float and int8; ``onnx``: onnxruntime), each checked against the Keras model on
the test images (``parity``, read as training reads them: ``samples``) and measured
(``formats`` runs them all, one status each)."""
