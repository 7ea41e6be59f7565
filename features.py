"""Examples to model inputs: Google's feature conversion, its TFRecord cache, and tf.data.

Data flows one way: a processor's `InputExample`s become `Features` (numpy, Google's
`convert_single_example` semantics), cached as a TFRecord in `--output_dir` as the original
did; `Features` then feed tf.data pipelines built entirely in-graph (no Python generators), so
they run under every `tf.distribute` strategy.

Training order is a plan computed up front in numpy (`training_plan`): the example indices of
every global batch of the run, a pure function of the seed. A run resumed at step k therefore
sees exactly the batches the uninterrupted run would have seen from step k on.
"""

import dataclasses
import hashlib
import json
import os
from typing import Sequence
import uuid

from absl import logging
import numpy as np
import tensorflow as tf

from errors import UserError
import fileio

# Bump when the record layout changes, so that old caches are rebuilt rather than misread.
_CACHE_FORMAT = "features-v1"
# Records parsed per step when reading a cache back; bounds the memory of one parse.
_READ_CHUNK = 65536
# Sequence widths are rounded up to this multiple when not padding to max_seq_length. Each
# distinct width retraces (under XLA, recompiles) a train step traced with fixed shapes, and
# multiples of 8 suit tensor cores. Measured on lengths like MovieLens' (mean 61 tokens,
# max_seq_length 128, batch 32, bucketed): multiple 1 pads 2.3% over the real tokens with 116
# widths, 8 pads 7.4% with 15, 16 pads 13% with 8, 32 pads 24% with 4; padding everything to 128
# pads 110%. 8 keeps compute close to the minimum at a bounded number of traces.
DEFAULT_LENGTH_MULTIPLE = 8
# Batches' worth of shuffled examples sorted together when bucketing by length.
DEFAULT_WINDOW_BATCHES = 50


@dataclasses.dataclass(frozen=True, eq=False)
class Features:
  """Model inputs of n examples, as numpy arrays; row i comes from the i-th example.

  Attributes:
    guids: tuple of n str, the examples' ids.
    input_ids: int32 [n, max_seq_length], `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` word-piece
      ids, zero-padded.
    segment_ids: int32 [n, max_seq_length], 0 on `[CLS] a [SEP]`, 1 on `b [SEP]`, 0 on padding.
    lengths: int32 [n], the number of real tokens; the input mask is `position < length`.
    labels: float32 [n, num_labels], 0/1 targets; all zeros where `has_labels` is False.
    has_labels: bool [n], False for unscored rows (an unlabelled test row, say).
  """
  guids: Sequence[str]
  input_ids: np.ndarray
  segment_ids: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  has_labels: np.ndarray

  @property
  def num_examples(self):
    return self.input_ids.shape[0]

  @property
  def max_seq_length(self):
    return self.input_ids.shape[1]

  @property
  def num_labels(self):
    return self.labels.shape[1]

  @property
  def input_mask(self):
    """int32 [n, max_seq_length], 1 on real tokens, 0 on padding."""
    return (np.arange(self.max_seq_length) < self.lengths[:, None]).astype(np.int32)


def _check_max_seq_length(max_seq_length, has_pairs):
  """Raises `UserError` when `max_seq_length` cannot hold the special tokens."""
  minimum = 3 if has_pairs else 2
  if max_seq_length < minimum:
    layout = "[CLS] a [SEP] b [SEP]" if has_pairs else "[CLS] a [SEP]"
    raise UserError(f"--max_seq_length={max_seq_length} is too small: this task's inputs are "
                    f"{layout}, which needs at least {minimum}")


def truncated_pair_lengths(length_a, length_b, budget):
  """Returns the lengths Google's `_truncate_seq_pair` leaves, without popping token by token.

  Google pops one token at a time from the longer sequence, from b on ties, until the pair fits
  `budget`. So the longer one shrinks alone until both are equal, then they shrink in turn, b
  first: a keeps the odd token.

  Args:
    length_a: int, tokens in text a.
    length_b: int, tokens in text b.
    budget: int >= 0, the most tokens the two may keep together.

  Returns:
    (int, int), the numbers of leading tokens kept of a and of b.
  """
  if length_a + length_b <= budget:
    return length_a, length_b
  keep_a = min(length_a, max(budget - length_b, (budget + 1) // 2))
  return keep_a, budget - keep_a


def _label_width(examples, num_labels):
  """Returns the number of labels, checking every labelled example has that many."""
  widths = {len(e.labels) for e in examples if e.labels is not None}
  if num_labels is not None:
    widths.add(num_labels)
  if len(widths) > 1:
    raise ValueError(f"examples have label vectors of different lengths: {sorted(widths)}")
  return widths.pop() if widths else 0


def convert_examples(examples, tokenizer, max_seq_length, num_labels=None):
  """Converts examples to `Features` exactly as Google's `convert_single_example` does.

  Pairs are truncated longest-first to `max_seq_length - 3` tokens, single texts to
  `max_seq_length - 2`. As in Google's code, a text b that is None, empty or without tokens
  gives a single-text input, and so does a b that truncation cuts to nothing (max_seq_length 3
  or 4), though a was then truncated as one of a pair.

  Args:
    examples: sequence of `InputExample`.
    tokenizer: an object with `convert_tokens_to_ids(tokens)` and `tokenize_batch(texts)`
      (word-piece ids of each text, no special tokens), such as `tokenization.FullTokenizer`.
    max_seq_length: int, the padded length.
    num_labels: int, or None to take it from the labelled examples; pass it when no example may
      have labels.

  Returns:
    `Features` of the examples, in their order.

  Raises:
    UserError: `max_seq_length` is too small for the special tokens.
  """
  num_labels = _label_width(examples, num_labels)
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])

  ids_a = tokenizer.tokenize_batch([e.text_a for e in examples])
  ids_b = [None] * len(examples)
  with_b = [i for i, e in enumerate(examples) if e.text_b]
  for i, ids in zip(with_b, tokenizer.tokenize_batch([examples[i].text_b for i in with_b])):
    # Google pairs only when b has tokens (`if tokens_b:`); else the input is a single text.
    if len(ids):
      ids_b[i] = ids
  _check_max_seq_length(max_seq_length, has_pairs=any(b is not None for b in ids_b))

  n = len(examples)
  input_ids = np.zeros([n, max_seq_length], dtype=np.int32)
  segment_ids = np.zeros([n, max_seq_length], dtype=np.int32)
  lengths = np.zeros([n], dtype=np.int32)
  for i, (a, b) in enumerate(zip(ids_a, ids_b)):
    if b is None:
      keep_a, keep_b = min(len(a), max_seq_length - 2), 0
    else:
      keep_a, keep_b = truncated_pair_lengths(len(a), len(b), max_seq_length - 3)
    row = input_ids[i]
    row[0] = cls_id
    row[1:1 + keep_a] = a[:keep_a]
    row[1 + keep_a] = sep_id
    length = 2 + keep_a
    # Google tests `if tokens_b` again after truncating: a b cut to nothing adds no [SEP].
    if keep_b:
      row[length:length + keep_b] = b[:keep_b]
      row[length + keep_b] = sep_id
      segment_ids[i, length:length + keep_b + 1] = 1
      length += keep_b + 1
    lengths[i] = length

  labels = np.zeros([n, num_labels], dtype=np.float32)
  has_labels = np.array([e.labels is not None for e in examples], dtype=bool)
  if has_labels.any():
    labels[has_labels] = [e.labels for e in examples if e.labels is not None]
  return Features(guids=tuple(e.guid for e in examples), input_ids=input_ids,
                  segment_ids=segment_ids, lengths=lengths, labels=labels,
                  has_labels=has_labels)


def hash_file(path):
  """Returns the SHA-256 hex digest of a file's bytes."""
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      digest.update(chunk)
  return digest.hexdigest()


def fingerprint(*parts):
  """Returns a hex digest identifying `parts` (JSON values: str, int, float, bool, None).

  JSON keeps `1`, `"1"` and `True` apart, and no choice of strings can make two different
  part lists encode alike.
  """
  return hashlib.sha256(json.dumps(list(parts)).encode("utf-8")).hexdigest()


def _sidecar_path(cache_path):
  return cache_path + ".json"


def _serialize(features):
  """Yields one serialized `tf.train.Example` per example, ids unpadded to keep files small."""
  first_segment_lengths = features.lengths - features.segment_ids.sum(axis=1)
  for i in range(features.num_examples):
    feature = {
        "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(
            value=features.input_ids[i, :features.lengths[i]])),
        "first_segment_length": tf.train.Feature(int64_list=tf.train.Int64List(
            value=[first_segment_lengths[i]])),
        "labels": tf.train.Feature(float_list=tf.train.FloatList(value=features.labels[i])),
        "has_labels": tf.train.Feature(int64_list=tf.train.Int64List(
            value=[int(features.has_labels[i])])),
        "guid": tf.train.Feature(bytes_list=tf.train.BytesList(
            value=[features.guids[i].encode("utf-8")])),
    }
    yield tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _write_cache(cache_path, features, cache_fingerprint):
  """Writes the TFRecord, then its sidecar; a crash at any point leaves no cache that loads."""
  sidecar_path = _sidecar_path(cache_path)
  # The old sidecar goes first: a new record beside the old sidecar would pass for the old data.
  if os.path.exists(sidecar_path):
    os.remove(sidecar_path)
  # TFRecordWriter writes only to a path, so the records are framed in TF's in-memory file
  # system and their bytes reach the disk through `atomic_open`.
  ram_path = f"ram://features-{uuid.uuid4().hex}.tf_record"
  try:
    with tf.io.TFRecordWriter(ram_path) as writer:
      for record in _serialize(features):
        writer.write(record)
    with tf.io.gfile.GFile(ram_path, "rb") as f:
      data = f.read()
  finally:
    if tf.io.gfile.exists(ram_path):
      tf.io.gfile.remove(ram_path)
  with fileio.atomic_open(cache_path, "wb") as f:
    f.write(data)
  fileio.atomic_write_text(sidecar_path, json.dumps({
      "format": _CACHE_FORMAT,
      "fingerprint": cache_fingerprint,
      "num_examples": features.num_examples,
      "max_seq_length": features.max_seq_length,
      "num_labels": features.num_labels,
      "record_bytes": len(data),
  }, indent=2) + "\n")


def _read_cache(cache_path, num_examples, max_seq_length, num_labels):
  """Parses a whole cache file back into `Features`.

  Raises:
    tf.errors.OpError: the file is corrupt (bad CRC, truncated record, unparsable example).
    ValueError: the records do not match the expected shapes.
  """
  spec = {
      "input_ids": tf.io.RaggedFeature(tf.int64),
      "first_segment_length": tf.io.FixedLenFeature([], tf.int64),
      "labels": tf.io.FixedLenFeature([num_labels], tf.float32),
      "has_labels": tf.io.FixedLenFeature([], tf.int64),
      "guid": tf.io.FixedLenFeature([], tf.string),
  }

  def parse(serialized):
    parsed = tf.io.parse_example(serialized, spec)
    ids = parsed.pop("input_ids")
    parsed["lengths"] = ids.row_lengths()
    parsed["input_ids"] = ids.to_tensor(shape=[None, max_seq_length])
    return parsed

  dataset = tf.data.TFRecordDataset(cache_path).batch(_READ_CHUNK).map(parse)
  chunks = list(dataset.as_numpy_iterator())
  if sum(len(c["guid"]) for c in chunks) != num_examples:
    raise ValueError(f"expected {num_examples} records")
  columns = {k: np.concatenate([c[k] for c in chunks])
             for k in ("input_ids", "lengths", "first_segment_length", "labels", "has_labels",
                       "guid")}
  lengths = columns["lengths"].astype(np.int32)
  first_segment_lengths = columns["first_segment_length"]
  if np.any(lengths > max_seq_length) or np.any(first_segment_lengths > lengths):
    raise ValueError("record lengths out of range")
  positions = np.arange(max_seq_length)
  segment_ids = ((positions >= first_segment_lengths[:, None]) &
                 (positions < lengths[:, None])).astype(np.int32)
  return Features(
      guids=tuple(g.decode("utf-8") for g in columns["guid"]),
      input_ids=columns["input_ids"].astype(np.int32).reshape(num_examples, max_seq_length),
      segment_ids=segment_ids.reshape(num_examples, max_seq_length), lengths=lengths,
      labels=columns["labels"].astype(np.float32).reshape(num_examples, num_labels),
      has_labels=columns["has_labels"].astype(bool))


def _load_cache(cache_path, cache_fingerprint, examples, max_seq_length, num_labels):
  """Returns (cached `Features` or None, why they cannot be used)."""
  try:
    with open(_sidecar_path(cache_path), encoding="utf-8") as f:
      sidecar = json.load(f)
  except FileNotFoundError:
    return None, "no cache"
  except (OSError, ValueError) as e:
    return None, f"unreadable sidecar ({e})"
  if not isinstance(sidecar, dict):
    return None, "unreadable sidecar"
  expected = {"format": _CACHE_FORMAT, "fingerprint": cache_fingerprint,
              "num_examples": len(examples), "max_seq_length": max_seq_length}
  if num_labels is not None:
    expected["num_labels"] = num_labels
  changed = sorted(k for k, v in expected.items() if sidecar.get(k) != v)
  if changed:
    return None, f"inputs changed ({', '.join(changed)})"
  try:
    if os.path.getsize(cache_path) != sidecar.get("record_bytes"):
      return None, "record file has the wrong size"
    features = _read_cache(cache_path, len(examples), max_seq_length, sidecar["num_labels"])
  except (OSError, KeyError, TypeError, ValueError, tf.errors.OpError) as e:
    return None, f"unreadable record file ({type(e).__name__})"
  # A cheap guard against a fingerprint that missed an input (the dev hold-out, say).
  if features.guids != tuple(e.guid for e in examples):
    return None, "example ids differ"
  return features, None


def load_or_build_features(examples, tokenizer, max_seq_length, cache_path,
                           fingerprint,  # pylint: disable=redefined-outer-name
                           num_labels=None):
  """Returns the `Features` of `examples`, from the cache when it is valid, else converting.

  The cache is `cache_path` (a TFRecord, e.g. `train.tf_record`) plus a sidecar
  `cache_path + ".json"` holding `fingerprint`. It is reused when the sidecar's fingerprint,
  example count, `max_seq_length` and record size match and the records parse back with the
  examples' ids; otherwise (missing, stale, truncated or corrupt) it is rebuilt, and the log
  says which and why.

  Args:
    examples: sequence of `InputExample`.
    tokenizer: as for `convert_examples`; not called when the cache is reused.
    max_seq_length: int, the padded length.
    cache_path: str, the TFRecord path.
    fingerprint: str, identifies everything the features depend on: the data file contents,
      the vocab file, do_lower_case, max_seq_length, the task and the split.
    num_labels: as for `convert_examples`.

  Returns:
    `Features`.
  """
  features, reason = _load_cache(cache_path, fingerprint, examples, max_seq_length, num_labels)
  if features is not None:
    logging.info("Reusing features of %d examples cached in %s", features.num_examples,
                 cache_path)
    return features
  logging.info("Building features of %d examples into %s: %s", len(examples), cache_path,
               reason)
  features = convert_examples(examples, tokenizer, max_seq_length, num_labels)
  _write_cache(cache_path, features, fingerprint)
  return features


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


def predict_dataset(features, batch_size, bucket_by_length, pad_to_max,
                    length_multiple=DEFAULT_LENGTH_MULTIPLE):
  """Returns every example exactly once, in batches, as a tf.data pipeline.

  Each element is `(inputs, example_index)`: `inputs` as in `train_dataset`, `example_index`
  int32 [batch], the row of each example in `features` (pass the concatenated indices and model
  outputs to `restore_order`). Without `pad_to_max` the last batch may be smaller. With
  `pad_to_max` every shape is static, as TPUs need: the last batch is filled up with padding rows
  (example_index -1, all inputs zero), as Google's `PaddingInputExample` did.

  Distribution: as for `train_dataset`; a smaller last batch is split unevenly among replicas,
  which tf.distribute allows (some get fewer rows, possibly none).

  Args:
    features: `Features`.
    batch_size: int >= 1, the global batch size.
    bucket_by_length: bool, predict longest first (see `predict_order`).
    pad_to_max: bool.
    length_multiple: int >= 1.

  Returns:
    tf.data.Dataset.
  """
  order = predict_order(features.lengths, bucket_by_length)
  if pad_to_max:
    order = np.concatenate([order, np.full([-order.size % batch_size], -1, dtype=np.int32)])
  tables = _tables(features)

  def to_batch(indices):
    return (_gather_inputs(tables, indices, features.max_seq_length, pad_to_max,
                           length_multiple), indices)

  dataset = (tf.data.Dataset.from_tensor_slices(order)
             .batch(batch_size, drop_remainder=pad_to_max)
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
