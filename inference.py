"""Eval and predict: which checkpoint to use, and the probabilities it gives, in input order."""

import collections
import concurrent.futures
import os
import weakref

from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
import classifier
import distribution
import input_pipeline
from errors import UserError


def load(model, strategy, output_dir, init_checkpoint, checkpoint=None):
  """Loads the weights to predict with, as the Estimator chose them.

  The latest checkpoint in `output_dir` wins over `init_checkpoint`: the original README's
  predict command passes the pre-trained checkpoint and still predicts with the fine-tuned one.
  `checkpoint`, a prefix (the best one of `model_selection`), wins over both.
  The chief chooses and reads; every other worker takes the chief's weights.

  Returns:
    The `checkpoints.Identity` of the checkpoint loaded; on a worker other than the chief, None.

  Raises:
    UserError: there is no checkpoint to load, or it does not fit the model.
  """
  identity = None
  if distribution.is_chief(strategy):
    source = checkpoint or checkpoints.latest(output_dir) or init_checkpoint
    if not source:
      raise UserError(f"nothing to predict with: no checkpoint in --output_dir {output_dir} and "
                      "no --init_checkpoint")
    report = checkpoints.restore(model.checkpoint_variables(), source,
                                 optional=classifier.is_head_variable)
    if model.pooling == "mean" and not report.absent and any(
        name.startswith("bert/pooler/") for name in report.unused):
      # A head trained on the pooler's output would read the mean instead: wrong, silently.
      raise UserError(f"{report.checkpoint} was fine-tuned with --pooling=cls (its head reads "
                      "BERT's pooler); predict with --pooling=cls")
    if report.absent:
      logging.warning("%s has no classifier head (%s): its predictions are those of an "
                      "untrained head. Train first (--do_train) or point --output_dir at a "
                      "fine-tuned run.", report.checkpoint, ", ".join(report.absent))
    identity = checkpoints.identify(report.checkpoint)
    logging.info("Predicting with %s (step %d)", identity.prefix, identity.step)
  distribution.sync_from_chief(strategy, list(model.checkpoint_variables().values()))
  return identity


# Tokens per prediction batch on one replica. On a 2-core CPU (all-MiniLM-L6-v2, batches 32
# tokens wide) 8 rows ran at 145 examples/s, 64 at 213, 128 at 215 and 256 at 189: more rows
# amortise each op's fixed cost until the activations outgrow the caches. bench/throughput.py.
PREDICT_TOKENS_PER_BATCH = 2048

# The traced prediction step of each live model, by strategy and input structure: a run that
# evaluates and then predicts, and every later call, skip the tracing and graph optimisation
# (about half a second of a psychexp test-split prediction on a 2-core CPU).
_PREDICT_STEPS = weakref.WeakKeyDictionary()


def _predict_step(model, strategy, element_spec):
  """Returns the traced step: a distributed batch -> (probabilities, example_index), gathered."""
  steps = _PREDICT_STEPS.setdefault(model, {})
  key = (strategy, repr(element_spec))
  if key not in steps:
    # A weak reference, so that the cache entry does not keep its own key alive.
    model_ref = weakref.ref(model)

    # One trace for every batch width and size: the signature leaves both dimensions open.
    # Traced without AutoGraph, like the training loop: the step has no Python control flow on
    # tensors to convert, and converting it took 0.04-0.14 s of the trace (psychexp's test split,
    # all-MiniLM-L6-v2, 3 runs each: 0.18-0.22 against 0.22-0.36 s).
    @tf.function(input_signature=[element_spec], autograph=False)
    def predict_step(batch):
      inputs, example_index = batch
      probabilities = strategy.run(lambda x: tf.sigmoid(model_ref()(x, training=False)),
                                   args=(inputs,))
      return (strategy.gather(probabilities, axis=0), strategy.gather(example_index, axis=0))

    steps[key] = predict_step
  return steps[key]


# Batches predicted at once on a CPU by one replica. A batch's graph has stretches that leave a
# core idle (LayerNorm, softmax, the step's start and end); a second batch beside it fills them:
# psychexp's test split with all-MiniLM-L6-v2 on 2 cores (AVX2) ran 1.15x faster (median of 6
# paired passes in one process; 1.08-1.27), and a third batch added nothing (1.01x). Each
# batch's probabilities are the same either way.
CPU_BATCHES_IN_FLIGHT = 2


def share_cpu_cores(use_tpu):
  """Gives each of the `CPU_BATCHES_IN_FLIGHT` batches its own share of a CPU's cores.

  For a process that predicts and trains nothing, on one CPU replica; it must run before
  TensorFlow's runtime starts, which sizes its thread pools once. By default each op spreads
  over every core, so the batches in flight contend for the same threads; with cores //
  `CPU_BATCHES_IN_FLIGHT` threads per op, each batch runs on cores of its own. psychexp's test
  split (all-MiniLM-L6-v2, 2 cores, AVX2; one thread per op against two, passes alternated
  between two resident processes): 1.03x and 1.07x warm (median of 8 and of 10 rounds), and
  first passes of 1.08x and 0.92x.
  Training keeps the default: its step is one chain of ops, and one thread each made a MiniLM
  step slower (584-622 against 535-540 ms at 32 x 29).

  Returns:
    The threads per op now set, or None where nothing changed: the run is not on one CPU
    replica, TF_NUM_INTRAOP_THREADS sets them, or the runtime had started (a caller that
    already ran ops keeps its threads).
  """
  if "TF_NUM_INTRAOP_THREADS" in os.environ:
    return None  # The user's own setting stands.
  if not distribution.one_cpu_replica(use_tpu):
    return None
  cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
  threads = max(1, cores // CPU_BATCHES_IN_FLIGHT)
  try:
    tf.config.threading.set_intra_op_parallelism_threads(threads)
  except RuntimeError:  # TensorFlow's runtime has started: its thread pools are fixed.
    return None
  logging.info("Predicting on %d CPU cores: %d batches at once, %d thread(s) per op", cores,
               CPU_BATCHES_IN_FLIGHT, threads)
  return threads


def batches_in_flight(strategy):
  """How many prediction batches `predict_probabilities` runs at once under `strategy`.

  `CPU_BATCHES_IN_FLIGHT` for one replica on the CPU; 1 on accelerators (which run one
  program at a time) and for several replicas (each step is a collective across them).
  """
  on_cpu = distribution.on_accelerator(strategy) == "cpu"
  return CPU_BATCHES_IN_FLIGHT if on_cpu and strategy.num_replicas_in_sync == 1 else 1


def _predicted_batches(predict_step, dataset, in_flight):
  """Yields (probabilities, example_index) of each batch as numpy arrays, in dataset order.

  With `in_flight` > 1, that many batches run at once on a thread pool, and as many more wait
  queued so that a worker never waits for the calling thread, which alone reads `dataset`.
  """
  def predict(batch):
    probabilities, example_index = predict_step(batch)
    return probabilities.numpy(), example_index.numpy()

  if in_flight == 1:
    yield from map(predict, dataset)
    return
  with concurrent.futures.ThreadPoolExecutor(in_flight) as pool:
    pending = collections.deque()
    for batch in dataset:
      pending.append(pool.submit(predict, batch))
      if len(pending) == 2 * in_flight:
        yield pending.popleft().result()
    while pending:
      yield pending.popleft().result()


def predict_probabilities(model, strategy, features, batch_size, bucket_by_length, pad_to_max,
                          length_multiple=input_pipeline.DEFAULT_LENGTH_MULTIPLE, on_batch=None):
  """Returns sigmoid probabilities, float32 [n, num_labels], row i for example i.

  `length_multiple`: see `input_pipeline.predict_dataset`. `on_batch`, when given, is called
  after each batch with the number of examples done so far.
  """
  # One replica takes batches by tokens: the speed of a bigger batch whatever
  # --predict_batch_size is, the same probabilities. Several replicas split a fixed batch.
  tokens_per_batch = PREDICT_TOKENS_PER_BATCH if strategy.num_replicas_in_sync == 1 else None
  dataset = strategy.experimental_distribute_dataset(input_pipeline.predict_dataset(
      features, batch_size, bucket_by_length, pad_to_max, length_multiple, tokens_per_batch))
  predict_step = _predict_step(model, strategy, dataset.element_spec)
  indices, rows = [], []
  done = 0
  for probabilities, example_index in _predicted_batches(predict_step, dataset,
                                                         batches_in_flight(strategy)):
    rows.append(probabilities)
    indices.append(example_index)
    done += int(np.count_nonzero(example_index >= 0))  # Padding rows (index -1) aside.
    if on_batch:
      on_batch(done)
  if not rows:
    return np.zeros([0, model.num_labels], np.float32)
  return input_pipeline.restore_order(np.concatenate(indices), np.concatenate(rows))
