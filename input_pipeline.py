"""`Features` to tf.data: the seeded training plan and the training and prediction pipelines.

Training order is a plan computed up front in numpy (`training_plan`): the example indices of
every global batch of the run, a pure function of the seed. A run resumed at step k therefore
sees exactly the batches the uninterrupted run would have seen from step k on.

The pipelines are built entirely in-graph (no Python generators), so they run under every
`tf.distribute` strategy.
"""

import numpy as np
import tensorflow as tf

# Sequence widths are rounded up to this multiple when not padding to max_seq_length. Under XLA
# each distinct width recompiles the step, and multiples of 8 suit tensor cores. Measured on
# lengths like MovieLens' (mean 61 tokens, max_seq_length 128, batch 32, bucketed): multiple 1
# pads 2.3% over the real tokens with 116 widths, 8 pads 7.4% with 15, 16 pads 13% with 8, 32
# pads 24% with 4; padding everything to 128 pads 110%. 8 keeps compute close to the minimum at
# a bounded number of compilations.
DEFAULT_LENGTH_MULTIPLE = 8


def length_multiple(device, use_xla):
  """The width multiple for `device` ("cpu", "gpu" or "tpu"): 1 on a CPU without XLA.

  There a new width costs nothing (a psychexp-like training step took 551 ms at a width first
  seen and 559 ms again; the step is traced once for all widths), while rounding up to 8 made
  the psychexp train split's batches 11% wider (32.7 tokens on average against 29.3).
  """
  return 1 if device == "cpu" and not use_xla else DEFAULT_LENGTH_MULTIPLE


def local_length_multiple(use_xla):
  """`length_multiple` for this process's own devices: a GPU if it sees one, else the CPU."""
  device = "gpu" if tf.config.list_physical_devices("GPU") else "cpu"
  return length_multiple(device, use_xla)


# Batches' worth of shuffled examples sorted together when bucketing by length.
DEFAULT_WINDOW_BATCHES = 50


def _epoch_start(epoch, num_examples, batch_size):
  """Returns the stream position where `epoch`'s first batch starts.

  Batches are consecutive slices of the stream of epoch permutations; an epoch owns the batches
  that start inside its permutation.
  """
  return -(-epoch * num_examples // batch_size) * batch_size


def _bucket_by_length(stream, lengths, batch_size, window_batches, rng):
  """Sorts each window of `stream` by length, cuts batches, and shuffles the batch order.

  Args:
    stream: int [k * batch_size], shuffled example indices.
    lengths: int [n], example lengths.
    batch_size: int.
    window_batches: int, batches' worth of examples sorted together.
    rng: np.random.Generator for the batch order.

  Returns:
    int [k, batch_size].
  """
  window = np.arange(stream.size) // (window_batches * batch_size)
  # lexsort is stable, so examples of equal length keep their shuffled order.
  batches = stream[np.lexsort((lengths[stream], window))].reshape(-1, batch_size)
  return batches[rng.permutation(len(batches))]


def training_plan(lengths, batch_size, num_train_steps, seed, bucket_by_length,
                  window_batches=DEFAULT_WINDOW_BATCHES):
  """Returns the example indices of every global training batch, a pure function of the seed.

  The stream of examples is epoch after epoch of permutations, epoch e's drawn by
  `np.random.default_rng([seed, e])`, cut into consecutive full batches: the stream Google's
  Estimator drew from `repeat()` and `batch(drop_remainder=True)`. So every batch is full, and
  an epoch's last partial batch is completed with the first examples of the next epoch's
  permutation, which that epoch then skips; no other batch mixes epochs, and every pass over the
  stream sees each example once.

  With `bucket_by_length`, each epoch's batches are rearranged: its examples, in their shuffled
  order, are taken `window_batches` batches' worth at a time and sorted by length, cut into
  batches, and the epoch's batch order is shuffled (by the same generator, after its
  permutation). Batches are then length-homogeneous, which makes padding tight, while their order
  stays random. Each epoch still holds exactly the examples it holds without bucketing.

  A plan's first k rows do not depend on `num_train_steps`.

  Args:
    lengths: int [n], the examples' lengths (`Features.lengths`).
    batch_size: int, the global batch size.
    num_train_steps: int, the number of steps (rows).
    seed: int >= 0.
    bucket_by_length: bool.
    window_batches: int, the sorting window, in batches.

  Returns:
    int32 [num_train_steps, batch_size].

  Raises:
    ValueError: no examples, or a non-positive batch size or window.
  """
  lengths = np.asarray(lengths)
  n = lengths.size
  if batch_size < 1 or window_batches < 1:
    raise ValueError(f"batch_size ({batch_size}) and window_batches ({window_batches}) must be "
                     "positive")
  if num_train_steps <= 0:
    return np.zeros([0, batch_size], dtype=np.int32)
  if n == 0:
    raise ValueError("cannot plan training batches without examples")
  # The first epoch whose batches all start at or past the last step ends the plan.
  num_epochs = (num_train_steps - 1) * batch_size // n + 1
  stream_size = _epoch_start(num_epochs, n, batch_size)
  generators = [np.random.default_rng([seed, e]) for e in range(-(-stream_size // n))]
  stream = np.concatenate([g.permutation(n) for g in generators])
  epochs = []
  for e in range(num_epochs):
    owned = stream[_epoch_start(e, n, batch_size):_epoch_start(e + 1, n, batch_size)]
    if bucket_by_length:
      epochs.append(_bucket_by_length(owned, lengths, batch_size, window_batches,
                                      generators[e]))
    else:
      epochs.append(owned.reshape(-1, batch_size))
  return np.concatenate(epochs)[:num_train_steps].astype(np.int32)


def _tables(features):
  """The feature arrays as constant tensors for in-graph gathers.

  Segment ids are rebuilt from where segment b starts rather than stored: that halves the
  constant the pipeline holds.
  """
  return {
      "input_ids": tf.constant(features.input_ids),
      "lengths": tf.constant(features.lengths),
      "first_segment_lengths": tf.constant(
          (features.lengths - features.segment_ids.sum(axis=1)).astype(np.int32)),
      "labels": tf.constant(features.labels),
  }


def _gather_inputs(tables, indices, max_seq_length, pad_to_max, length_multiple):
  """Builds the model inputs of a batch of example indices, in-graph.

  No Python control flow depends on a tensor here, so the pipelines' map functions skip
  AutoGraph: converting them took 0.1-0.2 s of a process's first prediction pass.

  Args:
    tables: dict from `_tables`.
    indices: int32 [batch]; -1 marks a padding row, given length 0 (all ids and mask zero).
    max_seq_length: int.
    pad_to_max: bool, pad to `max_seq_length` (static shape) rather than the batch's longest
      example rounded up to `length_multiple`.
    length_multiple: int.

  Returns:
    dict of int32 [batch, width]: `input_ids`, `input_mask`, `segment_ids`.
  """
  valid = indices >= 0
  safe_indices = tf.maximum(indices, 0)
  lengths = tf.where(valid, tf.gather(tables["lengths"], safe_indices), 0)
  if pad_to_max:
    width = max_seq_length
  else:
    longest = tf.reduce_max(lengths)
    width = tf.minimum(-(-longest // length_multiple) * length_multiple, max_seq_length)
  # Gather full rows, then slice: slicing the table first would copy all of it every batch.
  ids = tf.gather(tables["input_ids"], safe_indices)[:, :width]
  positions = tf.range(width)[None, :]
  mask = positions < lengths[:, None]
  second_segment = positions >= tf.gather(tables["first_segment_lengths"], safe_indices)[:, None]
  return {
      "input_ids": tf.where(mask, ids, 0),
      "input_mask": tf.cast(mask, tf.int32),
      "segment_ids": tf.cast(mask & second_segment, tf.int32),
  }


def _with_options(dataset):
  """Shards by element across workers: every worker builds the same dataset in the same order,
  and there are no files to shard (AUTO would try files first, then warn).

  Without tf.data's autotuning thread: deleting an iterator waits for that thread, which took
  up to 4 s after the last batch (a third of a psychexp test-split prediction). The parallel map
  and the prefetch keep their AUTOTUNE settings, which then mean one call per core and a default
  buffer; the model, not these in-graph gathers, is what takes the time.
  """
  options = tf.data.Options()
  options.deterministic = True
  options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
  options.autotune.enabled = False
  return dataset.with_options(options)


def train_dataset(features, plan, start_step=0, pad_to_max=False,
                  length_multiple=DEFAULT_LENGTH_MULTIPLE):
  """Returns the training batches of `plan` from `start_step` on, as a tf.data pipeline.

  Each element is `(inputs, labels)`: `inputs` a dict of int32 [batch_size, width] tensors
  `input_ids`, `input_mask`, `segment_ids`; `labels` float32 [batch_size, num_labels]. Width is
  `max_seq_length` with `pad_to_max` (static shapes, as TPUs need); otherwise the batch's
  longest example rounded up to `length_multiple` (at most `max_seq_length`), so that bucketed
  batches carry little padding. The batch dimension is always static.

  Element k is plan row `start_step + k`, so a resumed run sees exactly the batches of the
  uninterrupted run. The features live in the graph as constants; each batch is a gather.

  Distribution: pass the dataset to `strategy.experimental_distribute_dataset`. Each element is
  a global batch, which tf.distribute splits among the replicas; `batch_size` must be divisible
  by `strategy.num_replicas_in_sync`, or replicas get uneven shares that straddle batches of
  different widths. With several workers, each builds this same dataset (same features, same
  plan) and keeps its replicas' shares of every global batch (auto-shard policy DATA).

  Args:
    features: `Features`, every example labelled.
    plan: int [num_train_steps, batch_size], from `training_plan`.
    start_step: int, the first step to yield.
    pad_to_max: bool.
    length_multiple: int >= 1.

  Returns:
    tf.data.Dataset.

  Raises:
    ValueError: an example is unlabelled, or the plan names an example that does not exist.
  """
  plan = np.asarray(plan)
  if not features.has_labels.all():
    raise ValueError(f"{np.sum(~features.has_labels)} training examples have no labels")
  if plan.size and (plan.min() < 0 or plan.max() >= features.num_examples):
    raise ValueError(f"the plan names examples outside 0..{features.num_examples - 1}")
  batch_size = plan.shape[1]
  tables = _tables(features)

  @tf.autograph.experimental.do_not_convert  # Plain graph code: see `_gather_inputs`.
  def to_batch(indices):
    inputs = _gather_inputs(tables, indices, features.max_seq_length, pad_to_max,
                            length_multiple)
    return inputs, tf.gather(tables["labels"], indices)

  # A real batch op, rather than slices of plan rows, is where tf.distribute reads the global
  # batch size it splits.
  dataset = (tf.data.Dataset.from_tensor_slices(plan[start_step:].reshape(-1).astype(np.int32))
             .batch(batch_size, drop_remainder=True)
             .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
  return _with_options(dataset)


def predict_order(lengths, bucket_by_length):
  """Returns the order examples are predicted in: input order, or longest first.

  Longest first makes batches tight and puts the widest batch first, so that a memory shortfall
  shows at once rather than at the end.

  Args:
    lengths: int [n].
    bucket_by_length: bool.

  Returns:
    int32 [n], a permutation of 0..n-1.
  """
  lengths = np.asarray(lengths)
  if not bucket_by_length:
    return np.arange(lengths.size, dtype=np.int32)
  return np.argsort(-lengths, kind="stable").astype(np.int32)


def token_budget_sizes(sorted_lengths, batch_size, tokens_per_batch):
  """Splits examples sorted longest first into batches of about `tokens_per_batch` tokens.

  A batch is as wide as its first example, so it takes max(batch_size, tokens_per_batch // that
  width) rows: short texts go many to a batch, long ones at least `batch_size` at a time.

  Args:
    sorted_lengths: int [n], non-increasing.
    batch_size: int >= 1, the fewest rows of a batch (the last may have fewer).
    tokens_per_batch: int >= 1.

  Returns:
    int64 [num_batches], the rows of each batch, summing to n.
  """
  sizes = []
  start, n = 0, len(sorted_lengths)
  while start < n:
    rows = max(batch_size, tokens_per_batch // max(int(sorted_lengths[start]), 1))
    sizes.append(min(rows, n - start))
    start += rows
  return np.array(sizes, dtype=np.int64)


def predict_dataset(features, batch_size, bucket_by_length, pad_to_max,
                    length_multiple=DEFAULT_LENGTH_MULTIPLE, tokens_per_batch=None):
  """Returns every example exactly once, in batches, as a tf.data pipeline.

  Each element is `(inputs, example_index)`: `inputs` as in `train_dataset`, `example_index`
  int32 [batch], the row of each example in `features` (pass the concatenated indices and model
  outputs to `restore_order`). Without `pad_to_max` the last batch may be smaller. With
  `pad_to_max` every shape is static, as TPUs need: the last batch is filled up with padding rows
  (example_index -1, all inputs zero), as Google's `PaddingInputExample` did.

  With `tokens_per_batch` (and `bucket_by_length`, without `pad_to_max`), batches hold about that
  many tokens each (see `token_budget_sizes`) rather than `batch_size` rows. Each example's
  output does not depend on the batch it is in, so only the speed changes.

  Distribution: as for `train_dataset`; a smaller last batch is split unevenly among replicas,
  which tf.distribute allows (some get fewer rows, possibly none). Batches of `tokens_per_batch`
  have no batch op for tf.distribute to split: use them with one replica.

  Args:
    features: `Features`.
    batch_size: int >= 1, the global batch size.
    bucket_by_length: bool, predict longest first (see `predict_order`).
    pad_to_max: bool.
    length_multiple: int >= 1.
    tokens_per_batch: int or None.

  Returns:
    tf.data.Dataset.
  """
  order = predict_order(features.lengths, bucket_by_length)
  if pad_to_max:
    order = np.concatenate([order, np.full([-order.size % batch_size], -1, dtype=np.int32)])
  tables = _tables(features)

  @tf.autograph.experimental.do_not_convert  # Plain graph code: see `_gather_inputs`.
  def to_batch(indices):
    return (_gather_inputs(tables, indices, features.max_seq_length, pad_to_max,
                           length_multiple), indices)

  if tokens_per_batch and bucket_by_length and not pad_to_max:
    batches = tf.data.Dataset.from_tensor_slices(tf.RaggedTensor.from_row_lengths(
        order, token_budget_sizes(features.lengths[order], batch_size, tokens_per_batch)))
  else:
    batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size,
                                                              drop_remainder=pad_to_max)
  dataset = (batches
             .map(to_batch, num_parallel_calls=tf.data.AUTOTUNE)
             .prefetch(tf.data.AUTOTUNE))
  return _with_options(dataset)


def restore_order(example_index, rows):
  """Puts model outputs back in input order.

  Args:
    example_index: int [m], the concatenated `example_index` of `predict_dataset`'s batches; -1
      marks padding rows, which are dropped.
    rows: array [m, ...], the outputs for those rows, in the same order.

  Returns:
    array [n, ...], row i the output for example i.

  Raises:
    ValueError: the indices (padding aside) are not each of 0..n-1 exactly once.
  """
  example_index = np.asarray(example_index)
  rows = np.asarray(rows)
  if example_index.shape[0] != rows.shape[0]:
    raise ValueError(f"{example_index.shape[0]} indices for {rows.shape[0]} rows")
  real = example_index >= 0
  example_index, rows = example_index[real], rows[real]
  if not np.array_equal(np.sort(example_index), np.arange(example_index.size)):
    raise ValueError("example indices are not each example exactly once")
  restored = np.empty_like(rows)
  restored[example_index] = rows
  return restored
