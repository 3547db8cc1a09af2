"""Where and in which precision networks run: TensorFlow's own distribution strategies.

params.yaml's ``distribute`` section picks a ``tf.distribute`` strategy and a Keras
mixed-precision policy for every stage that runs a network. Models, optimizers and
metrics are built under ``Placement.scope()``; Keras then splits each global batch over
the replicas (``experimental_distribute_dataset``) and all-reduces the gradients.

* ``auto``: ``mirrored`` when more than one GPU is visible, else ``default``.
* ``mirrored``: one machine, every GPU (on a machine without GPUs, every logical CPU
  device: one, unless the process split the CPU with
  ``tf.config.set_logical_device_configuration``, as the tests do).
* ``multi_worker``: ``MultiWorkerMirroredStrategy`` over the machines ``TF_CONFIG`` names,
  as Kubernetes operators and cloud trainers set it. Every worker runs the same stage
  command; only the chief (task ``chief``, else ``worker`` 0) writes outputs, metrics and
  DVCLive files. Inference (features, evaluation) needs no other machine: the chief runs
  it on its own devices and the other workers have nothing to do.
* ``tpu``: ``TPUStrategy`` on the TPU the cluster resolver finds (Cloud TPU VMs).

Mixed precision computes in float16 or bfloat16 and keeps variables in float32; the
softmax outputs stay float32 (their layers say so). ``mixed_float16`` scales the loss
(Keras wraps the optimizer) and is for GPUs; ``mixed_bfloat16`` needs no scaling and is
fast on TPUs and on CPUs with AVX512-BF16 or AMX.
"""

from __future__ import annotations

import json
import os
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.core.errors import PipelineError
from pipeline.core.machine import parse_cpuinfo
from pipeline.core.params import DistributeParams

if TYPE_CHECKING:  # which process is the chief (task, is_chief) needs no TensorFlow
    import tensorflow as tf


class DistributeError(PipelineError, RuntimeError):
    """The requested strategy cannot run here; the message names the setting."""


@dataclass(frozen=True)
class Placement:
    """The strategy a stage runs under, and what the stage needs to know about it."""

    strategy: tf.distribute.Strategy
    name: str  # default | mirrored | multi_worker | tpu: what ``auto`` resolved to
    mixed_precision: str
    chief: bool  # this process writes the outputs
    worker: int  # this process's index among the workers (0 on one machine)

    @property
    def replicas(self) -> int:
        return int(self.strategy.num_replicas_in_sync)

    def scope(self) -> AbstractContextManager:
        return self.strategy.scope()

    def global_batch(self, per_replica: int) -> int:
        """params.yaml's batch sizes are per replica."""
        return per_replica * self.replicas

    def backup_dir(self, root: Path) -> Path:
        """Where this process keeps its BackupAndRestore checkpoint: workers other than
        the chief keep theirs beside it, so that no two processes write (or remove) one."""
        return root if self.chief else root.with_name(f"{root.name}-worker{self.worker}")

    def label(self) -> str:
        """One short string for `dvc exp show`: "mirrored x2 mixed_bfloat16"."""
        precision = "float32" if self.mixed_precision == "none" else self.mixed_precision
        return f"{self.name} x{self.replicas} {precision}"


POLICIES = {"float32": "none", "bfloat16": "mixed_bfloat16"}  # a recipe's precision
NATIVE_BF16 = ("amx_bf16", "avx512_bf16")  # /proc/cpuinfo flags: bfloat16 in hardware


def recipe_distribute(distribute: DistributeParams, precision: str,
                      cpuinfo: str | Path = "/proc/cpuinfo") -> DistributeParams:
    """The distribute section a recipe trains under: its own ``precision`` (float32,
    bfloat16; auto: bfloat16 where the CPU computes it natively, as AMX and AVX512-BF16
    do, float32 elsewhere, where bfloat16 is emulated and slow) in place of
    ``mixed_precision``; ``distribute``: the section as it is."""
    if precision == "distribute":
        return distribute
    if precision == "auto":
        try:
            _, features = parse_cpuinfo(Path(cpuinfo).read_text())
        except OSError:
            features = []
        precision = "bfloat16" if set(NATIVE_BF16) & set(features) else "float32"
    return distribute.model_copy(update={"mixed_precision": POLICIES[precision]})


def task() -> tuple[str | None, int, dict]:
    """(task type, index, cluster) of ``TF_CONFIG``, or (None, 0, {}) when it is not set."""
    raw = os.environ.get("TF_CONFIG", "").strip()
    if not raw:
        return None, 0, {}
    try:
        config = json.loads(raw)
        spec = config.get("task", {})
        return spec.get("type"), int(spec.get("index", 0)), dict(config.get("cluster", {}))
    except (ValueError, TypeError, AttributeError) as err:
        raise DistributeError(f"TF_CONFIG is not valid JSON of cluster and task: {err}"
                              ) from None


def is_chief(task_type: str | None, index: int, cluster: dict) -> bool:
    """Keras' and TensorFlow's rule: the ``chief`` task, else ``worker`` 0 when the
    cluster has no chief; a process outside any cluster is its own chief."""
    if task_type is None:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and index == 0 and "chief" not in cluster


def place(params: DistributeParams, *, inference: bool = False) -> Placement:
    """Create the strategy and set the precision policy; call it first in a stage, before
    TensorFlow runs anything (``MultiWorkerMirroredStrategy`` must be created first).

    ``inference``: features and evaluation, which need no other machine (see the module)."""
    import tensorflow as tf

    set_precision(params.mixed_precision)
    several_gpus = len(tf.config.list_physical_devices("GPU")) > 1
    name = params.strategy
    if name == "auto":
        name = "mirrored" if several_gpus else "default"
    task_type, index, cluster = task()
    if name == "multi_worker":
        if task_type is None:
            raise DistributeError(
                "distribute.strategy: multi_worker needs TF_CONFIG (the cluster's "
                "addresses and this process's task), as a Kubernetes operator or cloud "
                "trainer sets it; see the README's Scaling out")
        chief = is_chief(task_type, index, cluster)  # the strategy reads the same TF_CONFIG
        if inference:
            # Only the chief writes; it runs on its own devices, the others stop here.
            local = _mirrored() if several_gpus else None
            return Placement(local or tf.distribute.get_strategy(),
                             "mirrored" if local else "default", params.mixed_precision,
                             chief, index)
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        _mend_keras_multi_worker()
        return Placement(strategy, name, params.mixed_precision, chief, index)
    if name == "mirrored":
        return Placement(_mirrored(), name, params.mixed_precision, True, 0)
    if name == "tpu":
        return Placement(_tpu(), name, params.mixed_precision, True, 0)
    return Placement(tf.distribute.get_strategy(), "default", params.mixed_precision, True, 0)


def _mend_keras_multi_worker() -> None:
    """Work around keras-team/keras#20585 (open): Keras 3's ``fit`` fails under
    ``MultiWorkerMirroredStrategy`` twice: the symbolic build before the first step
    reduces a data batch across workers, and the metrics are reduced with ``axis=0``
    although they are scalars. Skip the first (Keras then builds when it traces the
    step, as it does without a strategy) and reduce the metrics without an axis."""
    import keras
    from keras.src.backend.tensorflow import trainer

    names = ("reduce_per_replica", "_collective_all_reduce_multi_worker", "TensorFlowTrainer")
    if not all(hasattr(trainer, n) for n in names):
        raise DistributeError(
            f"distribute.strategy: multi_worker: Keras {keras.__version__} changed the code "
            "this pipeline mends for keras-team/keras#20585; check that issue")
    if getattr(trainer, "_pipeline_mended", False):
        return
    multi = trainer._collective_all_reduce_multi_worker
    reduce_per_replica = trainer.reduce_per_replica
    build = trainer.TensorFlowTrainer._maybe_symbolic_build

    def reduce(values, strategy, reduction):  # noqa: ANN001, ANN202 - Keras' signature
        if multi(strategy) and reduction in ("auto", "mean"):
            return trainer.tree.map_structure(
                lambda v: strategy.reduce("MEAN", v, axis=None), values)
        return reduce_per_replica(values, strategy, reduction)

    def maybe_build(self, iterator=None, data_batch=None):  # noqa: ANN001, ANN202
        if multi(self._distribute_strategy):
            return None
        return build(self, iterator=iterator, data_batch=data_batch)

    trainer.reduce_per_replica = reduce
    trainer.TensorFlowTrainer._maybe_symbolic_build = maybe_build
    trainer._pipeline_mended = True


def set_precision(policy: str) -> None:
    import keras

    keras.mixed_precision.set_global_policy("float32" if policy == "none" else policy)


def _mirrored() -> tf.distribute.MirroredStrategy:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    devices = gpus or tf.config.list_logical_devices("CPU")
    return tf.distribute.MirroredStrategy([d.name for d in devices])


def _tpu() -> tf.distribute.TPUStrategy:
    import tensorflow as tf

    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as err:
        raise DistributeError(f"distribute.strategy: tpu: no TPU found here ({err})") from None
    return tf.distribute.TPUStrategy(resolver)
