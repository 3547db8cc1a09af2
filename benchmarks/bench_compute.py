"""In-process measurements for benchmarks/run.py: hardware, matmul, features, training.

Everything here runs in the benchmark's own process, on the same TensorFlow, one
measurement after another. Rates are returned as one figure per repeat; run.py takes
the medians.
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

RESNET50_GFLOP_224 = 8.2  # forward pass of one 224 px image (4.1 G multiply-adds)
MATMUL_SIZE = 2048
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".gif", ".bmp")
ROOT_PARAMS = Path(__file__).resolve().parent.parent / "params.yaml"


# --- hardware -------------------------------------------------------------------------


def cpu_model() -> str:
    """The first ``model name`` of /proc/cpuinfo (or what platform says elsewhere)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def cpu_flags() -> list[str]:
    """The AVX-512, AMX and bf16 flags of /proc/cpuinfo that matter to oneDNN."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = line.split(":", 1)[1].split()
                return sorted(f for f in flags if f.startswith(("avx512", "amx")))
    return []


def onednn_state(tf_version: str) -> str:
    """Whether TensorFlow's oneDNN kernels are on: TF_ENABLE_ONEDNN_OPTS, else the default
    (on for x86 since TF 2.9)."""
    value = os.environ.get("TF_ENABLE_ONEDNN_OPTS")
    if value is not None:
        on = value.strip().lower() not in ("0", "false", "no", "off")
        return f"{'on' if on else 'off'} (TF_ENABLE_ONEDNN_OPTS={value})"
    major, minor = (int(p) for p in tf_version.split(".")[:2])
    x86 = platform.machine().lower() in ("x86_64", "amd64", "i686")
    on = x86 and (major, minor) >= (2, 9)
    return f"{'on' if on else 'off'} (default)"


def hardware_line() -> str:
    import keras
    import tensorflow as tf

    cores = os.cpu_count()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    flags = cpu_flags()
    wanted = ("avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")
    shown = ", ".join(f"{f} {'yes' if f in flags else 'no'}" for f in wanted)
    return (f"CPU: {cpu_model()}, {cores} cores ({usable} usable), no GPU used; "
            f"TensorFlow {tf.__version__}, Keras {keras.__version__}, "
            f"oneDNN {onednn_state(tf.__version__)}; {shown}; "
            f"all AVX-512/AMX flags: {' '.join(flags) or 'none'}")


# --- the reference limit: a large matmul ------------------------------------------------


def matmul_gflops(dtype: str, repeats: int, n: int = MATMUL_SIZE,
                  seconds: float = 1.0) -> list[float]:
    """GFLOP/s of an n x n x n ``tf.linalg.matmul`` in a ``tf.function`` (2 n^3 FLOPs each),
    after a warm-up call; each repeat runs the matmul for about ``seconds``."""
    import tensorflow as tf

    matmul = tf.function(tf.linalg.matmul)
    a = tf.cast(tf.random.stateless_normal((n, n), seed=(1, 2)), dtype)
    b = tf.cast(tf.random.stateless_normal((n, n), seed=(3, 4)), dtype)
    start = time.perf_counter()
    matmul(a, b).numpy()  # warm-up: trace, oneDNN primitive creation
    calls = max(3, math.ceil(seconds / max(time.perf_counter() - start, 1e-3)))
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            out = matmul(a, b)
        out[0, 0].numpy()
        rates.append(2 * n**3 * calls / (time.perf_counter() - start) / 1e9)
    return rates


# --- images --------------------------------------------------------------------------


def image_files(folder: Path) -> tuple[list[str], list[int], list[str]]:
    """(paths, labels, class names) of a folder of class folders, in the order
    ``keras.utils.image_dataset_from_directory`` lists them (sorted classes, sorted files)."""
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    paths, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (folder / name).iterdir()
                       if p.suffix.lower() in IMAGE_SUFFIXES)
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    return paths, labels, classes


def subset_folder(source: Path, dest: Path, per_class: int) -> Path:
    """Copy the first ``per_class`` images of each class of ``source`` to ``dest`` (copies,
    not links: the pipeline rejects links that point outside the data folder)."""
    paths, labels, classes = image_files(source)
    taken = dict.fromkeys(range(len(classes)), 0)
    for path, label in zip(paths, labels, strict=True):
        if taken[label] < per_class:
            target = dest / classes[label] / Path(path).name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
            taken[label] += 1
    return dest


@contextlib.contextmanager
def quiet_output():
    """Keras' "Found N files" and tqdm's progress bars go to stderr, or nowhere."""
    with open(os.devnull, "w") as null, contextlib.redirect_stdout(sys.stderr), \
            contextlib.redirect_stderr(null):
        yield


# --- feature extraction ----------------------------------------------------------------


def resnet50_gflop(size: int) -> float:
    """Forward GFLOP of ResNet50 on one size x size image: 8.2 at 224 px, scaled by area."""
    return RESNET50_GFLOP_224 * (size / 224) ** 2


@contextlib.contextmanager
def precision(policy: str):
    """params.yaml's distribute.mixed_precision for the models built inside."""
    from pipeline.runs.placement import set_precision

    set_precision(policy)
    try:
        yield
    finally:
        set_precision("none")


def project_features(paths: list[str], labels: list[int], size: int, repeats: int,
                     policy: str = "none", keep: list | None = None,
                     runtime: tuple[str, str] | None = None) -> list[float]:
    """Images/s of the project's own path: build_backbone (random weights), image_dataset
    (batch 32) and features.Extractor, one graph trace per pass as one features stage run
    has, under the mixed-precision ``policy``; or, with ``runtime`` = (inference.runtime,
    inference.precision), on what compile_forward resolves them to (converted once, as the
    stage does; the conversion is not in the rate). ``keep``: receives the last pass's
    features (and, with ``runtime``, the label it resolved to)."""
    import keras

    from pipeline.data.input import image_dataset
    from pipeline.models.backbone import build_backbone
    from pipeline.models.features import Extractor
    from pipeline.runtimes.select import compile_forward

    keras.utils.set_random_seed(0)
    with precision(policy):
        backbone = build_backbone("resnet50", size, None)
        forward = compile_forward(backbone, *runtime) if runtime else None
        rates = []
        for _ in range(repeats):
            dataset = image_dataset(np.array(paths), np.array(labels, dtype=np.int32), size,
                                    batch_size=32)
            with quiet_output():
                # A new Extractor per pass: TensorFlow's path traces again, as a stage run.
                features, rate = Extractor(backbone, forward=forward)(dataset, len(paths))
            rates.append(rate)
    if keep is not None:
        keep.append(features)
        if forward is not None:
            keep.append(forward.label())
    keras.backend.clear_session()
    return rates


# (figure, distribute.mixed_precision, inference.runtime, inference.precision)
RUNTIMES = (
    ("TensorFlow float32", "none", "tensorflow", "float32"),
    ("TensorFlow mixed_bfloat16", "mixed_bfloat16", "tensorflow", "auto"),
    ("OpenVINO float32", "none", "openvino", "float32"),
    ("OpenVINO bfloat16", "none", "openvino", "bfloat16"),
)


def runtime_rates(size: int, repeats: int, batches: int = 4, batch: int = 32
                  ) -> dict[str, tuple[list[float], str]]:
    """Images/s of ResNet50's forward pass (random weights) on each of RUNTIMES, on random
    images in memory (the compute alone), after a warm-up batch; with what ran."""
    import keras

    from pipeline.models.backbone import build_backbone
    from pipeline.runtimes.select import compile_forward

    x = np.random.default_rng(0).uniform(0, 255, (batch, size, size, 3)).astype("float32")
    out = {}
    for name, policy, runtime, prec in RUNTIMES:
        keras.utils.set_random_seed(0)
        with precision(policy):
            forward = compile_forward(build_backbone("resnet50", size, None), runtime, prec,
                                      check=False)
            forward(x)
            rates = []
            for _ in range(repeats):
                start = time.perf_counter()
                for _ in range(batches):
                    forward(x)
                rates.append(batches * batch / (time.perf_counter() - start))
        out[name] = (rates, forward.label())
        keras.backend.clear_session()
    return out


def head_accuracy(features, labels: list[int], seed: int = 0) -> float:
    """Test accuracy of the project's head (params.yaml's head section) on a stratified
    70/30 split of ``features``: what a change of feature precision costs downstream."""
    import keras
    from sklearn.model_selection import train_test_split

    from pipeline.core.params import load
    from pipeline.models.features import Features
    from pipeline.runs.placement import place
    from pipeline.training.head_recipes import train_head

    params = load(ROOT_PARAMS)
    y = np.array(labels, dtype=np.int32)
    names = np.array([str(c) for c in sorted(set(labels))])
    a, b = train_test_split(np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed)
    split = [Features(features[i], y[i], np.array([""] * len(i)), names) for i in (a, b)]
    keras.utils.set_random_seed(seed)
    with quiet_output():
        model, _ = train_head(split[0], split[1], params.head, None,
                              place(params.distribute), seed=seed)
        proba = model.predict(split[1].features, verbose=0)
    keras.backend.clear_session()
    return float((proba.argmax(1) == split[1].labels).mean())


def plain_features(folder: Path, size: int, repeats: int) -> list[float]:
    """Images/s of the plain-Keras way on the same files: image_dataset_from_directory,
    resnet.preprocess_input, ResNet50(weights=None) and model.predict. The predict function
    is dropped before each repeat, so each pays one trace, like the project's path."""
    import keras

    keras.utils.set_random_seed(0)
    model = keras.applications.ResNet50(include_top=False, weights=None, pooling="avg",
                                        input_shape=(size, size, 3))
    preprocess = keras.applications.resnet.preprocess_input
    count = len(image_files(folder)[0])
    rates = []
    for _ in range(repeats):
        with quiet_output():
            dataset = keras.utils.image_dataset_from_directory(
                folder, image_size=(size, size), batch_size=32, shuffle=False)
        images = dataset.map(lambda x, y: preprocess(x))
        model.predict_function = None  # a fresh trace per repeat, as in a fresh process
        start = time.perf_counter()
        model.predict(images, verbose=0)
        rates.append(count / (time.perf_counter() - start))
    keras.backend.clear_session()
    return rates


# --- training speed ---------------------------------------------------------------------


def all_layers(model) -> list:
    """Every layer of ``model``, nested models expanded."""
    out = []
    for layer in model.layers:
        out += all_layers(layer) if hasattr(layer, "layers") else [layer]
    return out


def forward_gflop(model) -> float:
    """Forward GFLOP of one image, counted from the layers' shapes: 2 x the multiply-adds of
    every Conv2D (output pixels x kernel area x input channels / groups x filters) and
    Dense layer. BatchNorm, activations, pooling and additions are left out. Gives 7.7
    for Keras' ResNet50 at 224 px, against the 8.2 usually quoted."""
    import keras

    macs = 0
    for layer in all_layers(model):
        if isinstance(layer, keras.layers.Conv2D):
            _, height, width, filters = layer.output.shape
            kh, kw, cin, _ = layer.kernel.shape
            macs += height * width * kh * kw * cin * filters // max(layer.groups, 1)
        elif isinstance(layer, keras.layers.Dense):
            macs += math.prod(layer.kernel.shape)
    return 2 * macs / 1e9


def resnet50_classifier(size: int, classes: int = 5):
    """The project's backbone (random weights), all trainable, with a softmax Dense top."""
    import keras

    from pipeline.models.backbone import build_backbone

    backbone = build_backbone("resnet50", size, None)
    backbone.trainable = True
    outputs = keras.layers.Dense(classes, activation="softmax")(backbone.output)
    return keras.Model(backbone.input, outputs, name="resnet50_finetune")


def wrn_16_2(size: int, classes: int = 5):
    from pipeline.models.wide_resnet import WideResNet

    return WideResNet(16, 2, 0.3, include_top=True, classes=classes,
                      input_shape=(size, size, 3))


def train_rates(build: Callable[[], object], size: int, batch: int, steps: int,
                repeats: int, classes: int = 5) -> tuple[list[float], float]:
    """(training images/s per repeat, forward GFLOP per image) of ``model.fit`` with Adam on
    random images, after a one-step warm-up fit that traces the train step."""
    import keras

    keras.utils.set_random_seed(0)
    model = build()
    gflop = forward_gflop(model)
    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, size=(batch * steps, size, size, 3)).astype("float32")
    y = rng.integers(0, classes, size=batch * steps)
    model.fit(x[:batch], y[:batch], batch_size=batch, epochs=1, verbose=0)
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)
        rates.append(len(x) / (time.perf_counter() - start))
    keras.backend.clear_session()
    return rates, gflop
