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


def is_chief(strategy):
  """Whether this worker writes checkpoints and results (always, except on non-chief workers)."""
  resolver = getattr(strategy, "cluster_resolver", None)
  if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
    return True
  task_type, task_id = resolver.task_type, resolver.task_id
  return task_type in (None, "chief") or (task_type == "worker" and task_id == 0 and
                                          "chief" not in resolver.cluster_spec().as_dict())


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
