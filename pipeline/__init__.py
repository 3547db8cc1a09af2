"""Transfer learning for image classification as a DVC pipeline.

The package is laid out by concern, in the order the pipeline runs:

- ``pipeline.core``: params, paths, atomic writes, the stage shell (no ML);
- ``pipeline.data``: data sources, image checks, duplicates, the manifest and its
  split, validation with Great Expectations, the tf.data input;
- ``pipeline.models``: the backbone and its weights, cached features, the head,
  Wide ResNets and Big Transfer's ResNet-v2;
- ``pipeline.training``: fitting, schedules, augmentation, the recipes;
- ``pipeline.evaluation``: scores, the comparison table, inference;
- ``pipeline.predict``: the prediction command line.

``stages/`` holds one thin script per DVC stage over these.
"""

from pipeline.core.runtime import quiet_tensorflow

quiet_tensorflow()
