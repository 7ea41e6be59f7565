"""The features of a split, cached in `--output_dir` as a TFRecord, as the original did.

`load_or_build_features` reuses `train.tf_record` (and its `.json` sidecar) while the data file,
the vocabulary, the casing, `--max_seq_length` and the long-text settings are unchanged, and
rebuilds it otherwise. A crash at any point leaves either the old cache or none that loads,
never a half-written one.

`tf.data.Dataset.save`/`load` would store the same arrays, but it writes a folder of shards
whose completeness it does not check on load, and it keeps no fingerprint of the inputs; the
TFRecord plus a sidecar written last gives both guarantees in two files.
"""

import hashlib
import json
import os
import uuid

from absl import logging
import numpy as np
import tensorflow as tf

import features as features_lib
import fileio
import windows

# Bump when the record layout changes, so that old caches are rebuilt rather than misread.
_CACHE_FORMAT = "features-v2"
# Records parsed per step when reading a cache back; bounds the memory of one parse.
_READ_CHUNK = 65536


def hash_file(path):
  """Returns the SHA-256 hex digest of a file's bytes."""
  with open(path, "rb") as f:
    return hashlib.file_digest(f, "sha256").hexdigest()


def fingerprint(*parts):
  """Returns a hex digest identifying `parts` (JSON values: str, int, float, bool, None).

  JSON keeps `1`, `"1"` and `True` apart, and no choice of strings can make two different
  part lists encode alike.
  """
  return hashlib.sha256(json.dumps(list(parts)).encode("utf-8")).hexdigest()


def _sidecar_path(cache_path):
  return cache_path + ".json"


def _serialize(features):
  """Yields one serialized `tf.train.Example` per row, ids unpadded to keep files small."""
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
        "document_index": tf.train.Feature(int64_list=tf.train.Int64List(
            value=[features.document_index[i]])),
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
      "num_examples": len(windows.first_rows(features.document_index)),
      "num_rows": features.num_examples,
      "max_seq_length": features.max_seq_length,
      "num_labels": features.num_labels,
      "record_bytes": len(data),
  }, indent=2) + "\n")


def _read_cache(cache_path, num_rows, max_seq_length, num_labels):
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
      "document_index": tf.io.FixedLenFeature([], tf.int64),
  }

  def parse(serialized):
    parsed = tf.io.parse_example(serialized, spec)
    ids = parsed.pop("input_ids")
    parsed["lengths"] = ids.row_lengths()
    parsed["input_ids"] = ids.to_tensor(shape=[None, max_seq_length])
    return parsed

  dataset = tf.data.TFRecordDataset(cache_path).batch(_READ_CHUNK).map(parse)
  chunks = list(dataset.as_numpy_iterator())
  if sum(len(c["guid"]) for c in chunks) != num_rows:
    raise ValueError(f"expected {num_rows} records")
  columns = {k: np.concatenate([c[k] for c in chunks])
             for k in ("input_ids", "lengths", "first_segment_length", "labels", "has_labels",
                       "guid", "document_index")}
  lengths = columns["lengths"].astype(np.int32)
  first_segment_lengths = columns["first_segment_length"]
  if np.any(lengths > max_seq_length) or np.any(first_segment_lengths > lengths):
    raise ValueError("record lengths out of range")
  positions = np.arange(max_seq_length)
  segment_ids = ((positions >= first_segment_lengths[:, None]) &
                 (positions < lengths[:, None])).astype(np.int32)
  return features_lib.Features(
      guids=tuple(g.decode("utf-8") for g in columns["guid"]),
      input_ids=columns["input_ids"].astype(np.int32).reshape(num_rows, max_seq_length),
      segment_ids=segment_ids.reshape(num_rows, max_seq_length), lengths=lengths,
      labels=columns["labels"].astype(np.float32).reshape(num_rows, num_labels),
      has_labels=columns["has_labels"].astype(bool),
      document_index=columns["document_index"].astype(np.int32))


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
    features = _read_cache(cache_path, sidecar["num_rows"], max_seq_length,
                           sidecar["num_labels"])
    examples_read = features.per_document()
  except (OSError, KeyError, TypeError, ValueError, tf.errors.OpError) as e:
    return None, f"unreadable record file ({type(e).__name__})"
  # A cheap guard against a fingerprint that missed an input (the dev hold-out, say).
  if examples_read.guids != tuple(e.guid for e in examples):
    return None, "example ids differ"
  return features, None


def load_or_build_features(examples, tokenizer, max_seq_length, cache_path,
                           fingerprint,  # pylint: disable=redefined-outer-name
                           num_labels=None, long_texts=windows.Options()):
  """Returns the `Features` of `examples`, from the cache when it is valid, else converting.

  The cache is `cache_path` (a TFRecord, e.g. `train.tf_record`) plus a sidecar
  `cache_path + ".json"` holding `fingerprint`. It is reused when the sidecar's fingerprint,
  example count, `max_seq_length` and record size match and the records parse back with the
  examples' ids; otherwise (missing, stale, truncated or corrupt) it is rebuilt, and the log
  says which and why.

  Args:
    examples: sequence of `InputExample`.
    tokenizer: as for `features.convert_examples`; not called when the cache is reused.
    max_seq_length: int, the padded length.
    cache_path: str, the TFRecord path.
    fingerprint: str, identifies everything the features depend on: the data file contents,
      the vocab file, do_lower_case, max_seq_length, the long-text settings, the task and the
      split.
    num_labels: as for `features.convert_examples`.
    long_texts: as for `features.convert_examples`.

  Returns:
    `Features`.
  """
  features, reason = _load_cache(cache_path, fingerprint, examples, max_seq_length, num_labels)
  if features is not None:
    logging.info("Reusing features of %d examples cached in %s", len(examples), cache_path)
    return features
  logging.info("Building features of %d examples into %s: %s", len(examples), cache_path,
               reason)
  features = features_lib.convert_examples(examples, tokenizer, max_seq_length, num_labels,
                                           long_texts)
  _write_cache(cache_path, features, fingerprint)
  return features

