"""Runtimes: where the forward passes that do not train run (params.yaml ``inference``).

One factory, :func:`compile_forward` (``select``), turns a Keras model into a
:class:`Forward`: NumPy batch in, NumPy array out, with the runtime and precision it
resolved to. TensorFlow (``tensorflow``) is the reference and the fallback; OpenVINO
(``openvino``) runs the same model converted, in float32 or bfloat16; a head alone runs in
NumPy too (``numpy_head``). Each gives back the same callable (``forward``). The features
stage, the evaluate stages, pipeline.predict and the HTTP server all call the factory.
Importing this package imports neither TensorFlow nor OpenVINO.
"""
