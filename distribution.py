"""Chooses the `tf.distribute` strategy and the numeric precision from flags and environment.

  --use_tpu (with --tpu_name/--tpu_zone/--gcp_project or --master)  -> TPUStrategy
  TF_CONFIG naming more than one worker                              -> MultiWorkerMirroredStrategy
  more than one local GPU                                            -> MirroredStrategy
  otherwise                                                          -> the default strategy

Batch sizes are global: each step's batch is split over the replicas.
"""

import json
import os

from absl import logging
import keras
import numpy as np
import tensorflow as tf

from errors import UserError

_KERAS_POLICIES = {"fp32": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


def _cluster_workers():
  """The number of workers that TF_CONFIG names (1 when it is unset)."""
  config = os.environ.get("TF_CONFIG")
  if not config:
    return 1
  try:
    cluster = json.loads(config).get("cluster", {})
  except (json.JSONDecodeError, AttributeError):
    raise UserError("TF_CONFIG is not a JSON object with a 'cluster' entry") from None
  return len(cluster.get("worker", [])) + len(cluster.get("chief", []))


def make_strategy(use_tpu=False, tpu_name=None, tpu_zone=None, gcp_project=None, master=None):
  """Returns the strategy for this machine or cluster (see the module docstring)."""
  if use_tpu:
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver(
        tpu=tpu_name or master, zone=tpu_zone, project=gcp_project)
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    strategy = tf.distribute.TPUStrategy(resolver)
  elif _cluster_workers() > 1:
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
  elif len(tf.config.list_logical_devices("GPU")) > 1:
    strategy = tf.distribute.MirroredStrategy()
  else:
    strategy = tf.distribute.get_strategy()
  logging.info("Strategy %s with %d replica(s)", type(strategy).__name__,
               strategy.num_replicas_in_sync)
  return strategy


def one_cpu_replica(use_tpu):
  """Whether `make_strategy` will run one replica on the CPU; asked before it builds anything.

  Unlike the strategy itself, the answer does not start TensorFlow's runtime, so the runtime's
  settings may still follow from it.
  """
  return (not use_tpu and _cluster_workers() == 1
          and not tf.config.list_physical_devices("GPU"))


def is_chief(strategy):
  """Whether this worker writes checkpoints and results: true except on non-chief workers."""
  return strategy.extended.should_checkpoint


def chief_values(strategy, values):
  """Returns the chief's `values` on every worker.

  A decision that one worker makes from its own disk (which checkpoint to resume, whether a
  thresholds file fits) must be the same on every worker, or their collectives stop matching.
  The chief decides; the others take its values through an all-reduce in which only replica 0,
  which lives on the chief, contributes: a sum with zeros, so the values arrive exactly.

  Args:
    strategy: the `tf.distribute.Strategy`.
    values: list of array-likes (numeric).

  Returns:
    list of np.ndarray, the chief's values, in the order of `values`.
  """
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return [np.asarray(v) for v in values]
  tensors = [tf.convert_to_tensor(v) for v in values]

  def from_replica_zero():
    context = tf.distribute.get_replica_context()
    is_first = tf.equal(context.replica_id_in_sync_group, 0)
    # Collectives sum numbers, not booleans: a flag travels as 0 or 1.
    return [context.all_reduce(tf.distribute.ReduceOp.SUM,
                               tf.where(is_first, _summable(t), tf.zeros_like(_summable(t))))
            for t in tensors]

  reduced = strategy.run(tf.function(from_replica_zero))
  return [strategy.experimental_local_results(r)[0].numpy().astype(t.dtype.as_numpy_dtype)
          for r, t in zip(reduced, tensors)]


def _summable(tensor):
  return tf.cast(tensor, tf.int32) if tensor.dtype == tf.bool else tensor


def sync_from_chief(strategy, variables):
  """Assigns every worker's `variables` (a list) the chief's values; see `chief_values`."""
  if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return
  for variable, value in zip(variables, chief_values(strategy, variables)):
    variable.assign(value)


def on_accelerator(strategy):
  if isinstance(strategy, tf.distribute.TPUStrategy):
    return "tpu"
  return "gpu" if tf.config.list_logical_devices("GPU") else "cpu"


def resolve_precision(precision, strategy):
  """'auto' becomes bf16 on TPUs and on GPUs that compute in bf16 (compute capability 8 and up),
  fp32 elsewhere."""
  if precision != "auto":
    return precision
  device = on_accelerator(strategy)
  if device == "tpu":
    return "bf16"
  if device == "gpu":
    details = tf.config.experimental.get_device_details(tf.config.list_physical_devices("GPU")[0])
    if details.get("compute_capability", (0, 0))[0] >= 8:
      return "bf16"
  return "fp32"


def set_precision(precision):
  """Sets Keras' global dtype policy: variables stay float32; bf16/fp16 compute in 16 bits."""
  keras.mixed_precision.set_dtype_policy(_KERAS_POLICIES[precision])
