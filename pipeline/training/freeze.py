"""Which weights of a keras.applications ResNet train while fine-tuning.

keras.io's recipe: unfreeze the last stages (or all), and keep BatchNormalization
frozen: in Keras 3 a frozen BN layer also runs in inference mode, so its moving
statistics, learnt on far more data than a small set can supply, are used and
never updated.
"""

from __future__ import annotations

import keras

# keras.applications ResNet layer-name prefixes, last stage first: ``unfreeze: N`` opens
# the first N. The stem (conv1_, pool1_) opens only with ``unfreeze: all``.
RESNET_STAGES = ("conv5_", "conv4_", "conv3_", "conv2_")


def freeze(resnet: keras.Model, unfreeze: str | int, train_bn: bool) -> None:
    """Set ``trainable`` on every layer of a keras.applications ResNet.

    ``unfreeze="all"`` opens every layer, an int N only the last N stages (0: none).
    BatchNormalization layers stay frozen unless ``train_bn``; in Keras 3 a frozen BN
    layer also runs in inference mode (moving statistics used, never updated).
    """
    if unfreeze != "all" and not 0 <= int(unfreeze) <= len(RESNET_STAGES):
        raise ValueError(f"unfreeze must be 'all' or 0..{len(RESNET_STAGES)}, got {unfreeze!r}")
    open_prefixes = None if unfreeze == "all" else RESNET_STAGES[: int(unfreeze)]
    # A container's own flag gates its children's weights, so open it before the layers.
    resnet.trainable = True
    for layer in resnet.layers:
        on = open_prefixes is None or layer.name.startswith(open_prefixes)
        if isinstance(layer, keras.layers.BatchNormalization):
            on = on and train_bn
        layer.trainable = on
