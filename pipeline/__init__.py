"""Transfer learning for image classification as a DVC pipeline.

The package is laid out in layers, lowest first; a module imports its own subpackage
and the layers below it, never one above nor a peer of its layer (``tests/test_layers.py``
holds the order and checks every import; docs/pipeline.md, "Layers"):

0. ``pipeline.core``: params, paths, atomic writes, logs, the machine, the stage shell
   (no ML);
1. ``pipeline.data``: data sources, image checks, duplicates, the manifest and its split,
   validation with Great Expectations, the tf.data input;
   ``pipeline.runtimes``: the forward pass on TensorFlow, OpenVINO or NumPy;
2. ``pipeline.models``: the backbone and its weights, cached features, the head, Wide
   ResNets, Big Transfer's ResNet-v2, ResNet-9, saving and loading;
3. ``pipeline.runs``: where a fit runs (placement), its time budget, the backup a killed
   run resumes from, what a run saves, the shell of every training stage;
4. ``pipeline.training``: fitting, schedules, augmentation, the recipes;
5. ``pipeline.evaluation``: scores, calibration, the comparison table, inference;
   ``pipeline.export``: the recommended model in the formats other runtimes serve;
   ``pipeline.serving``: the HTTP service's model, uploads and routes;
6. ``pipeline.gating``: what the quality gate reads, checked;
7. the command lines: ``pipeline.gate`` (the quality gate), ``pipeline.predict``
   (predictions) and ``pipeline.serve`` (the HTTP service).

``stages/`` holds one thin script per DVC stage over these.
"""

from pipeline.core.process_setup import quiet_tensorflow

quiet_tensorflow()
