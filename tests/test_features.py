"""Tests for features.py: Google's conversion, the TFRecord cache, training plans and tf.data."""

import os
import subprocess
import sys
import textwrap

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest
import tensorflow as tf

from errors import UserError
import features
import fileio
from processors.base import InputExample

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORDS = [f"w{i}" for i in range(1, 30)]


class FakeTokenizer:
  """Whitespace tokenization over a small vocab, with `tokenization.FullTokenizer`'s interface.

  `calls` counts `tokenize_batch` calls, which shows whether features were rebuilt.
  """

  def __init__(self):
    self.vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS)}
    self.calls = 0

  def tokenize(self, text):
    return text.split()

  def convert_tokens_to_ids(self, tokens):
    return [self.vocab.get(t, self.vocab["[UNK]"]) for t in tokens]

  def tokenize_batch(self, texts):
    self.calls += 1
    return [self.convert_tokens_to_ids(self.tokenize(t)) for t in texts]


def google_truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Google's `_truncate_seq_pair`, verbatim in behaviour: pops in place."""
  while True:
    total_length = len(tokens_a) + len(tokens_b)
    if total_length <= max_length:
      break
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def google_convert(example, tokenizer, max_seq_length):
  """Google's `convert_single_example`: returns (input_ids, input_mask, segment_ids) lists."""
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = None
  if example.text_b:
    tokens_b = tokenizer.tokenize(example.text_b)
  if tokens_b:
    google_truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  elif len(tokens_a) > max_seq_length - 2:
    tokens_a = tokens_a[0:(max_seq_length - 2)]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  input_mask = [1] * len(input_ids)
  while len(input_ids) < max_seq_length:
    input_ids.append(0)
    input_mask.append(0)
    segment_ids.append(0)
  return input_ids, input_mask, segment_ids


def words(*indices):
  return " ".join(f"w{i}" for i in indices)


def random_examples(rng, n, max_words=40, num_labels=3, pair_share=0.5):
  examples = []
  for i in range(n):
    text_a = words(*rng.integers(1, 30, size=rng.integers(0, max_words)))
    text_b = None
    if rng.random() < pair_share:
      text_b = words(*rng.integers(1, 30, size=rng.integers(0, max_words)))
    examples.append(InputExample(guid=f"id{i}", text_a=text_a, text_b=text_b,
                                 labels=tuple(rng.integers(0, 2, size=num_labels))))
  return examples


def assert_features_equal(x, y):
  assert x.guids == y.guids
  for name in ("input_ids", "segment_ids", "lengths", "labels", "has_labels"):
    np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
    assert getattr(x, name).dtype == getattr(y, name).dtype, name


# Conversion.


def test_single_text_is_truncated_and_padded():
  tokenizer = FakeTokenizer()
  examples = [InputExample("0", words(1, 2, 3, 4, 5)), InputExample("1", words(7))]
  f = features.convert_examples(examples, tokenizer, max_seq_length=6, num_labels=2)
  cls, sep = 2, 3
  w = tokenizer.vocab
  np.testing.assert_array_equal(f.input_ids, [[cls, w["w1"], w["w2"], w["w3"], w["w4"], sep],
                                              [cls, w["w7"], sep, 0, 0, 0]])
  np.testing.assert_array_equal(f.segment_ids, np.zeros([2, 6]))
  np.testing.assert_array_equal(f.lengths, [6, 3])
  np.testing.assert_array_equal(f.input_mask, [[1] * 6, [1, 1, 1, 0, 0, 0]])
  assert f.input_ids.dtype == f.segment_ids.dtype == f.lengths.dtype == np.int32


@pytest.mark.parametrize("len_a, len_b, max_seq_length, keep_a, keep_b", [
    (6, 2, 10, 5, 2),  # The longer one alone is cut.
    (4, 4, 8, 3, 2),  # Ties pop from b first, so a keeps the odd token.
    (1, 9, 8, 1, 4),
    (3, 2, 10, 3, 2),  # Fits: untouched, padded.
    (3, 2, 4, 1, 0),  # b cut to nothing: no second [SEP], as Google's `if tokens_b` after.
])
def test_pair_is_truncated_longest_first(len_a, len_b, max_seq_length, keep_a, keep_b):
  tokenizer = FakeTokenizer()
  a, b = list(range(1, len_a + 1)), list(range(11, 11 + len_b))
  f = features.convert_examples([InputExample("0", words(*a), words(*b))], tokenizer,
                                max_seq_length)
  expected = ["[CLS]"] + [f"w{i}" for i in a[:keep_a]] + ["[SEP]"]
  if keep_b:
    expected += [f"w{i}" for i in b[:keep_b]] + ["[SEP]"]
  length = len(expected)
  np.testing.assert_array_equal(
      f.input_ids[0], tokenizer.convert_tokens_to_ids(expected) + [0] * (max_seq_length - length))
  np.testing.assert_array_equal(
      f.segment_ids[0], [0] * (keep_a + 2) + [1] * (length - keep_a - 2) +
      [0] * (max_seq_length - length))
  assert f.lengths[0] == length


@pytest.mark.parametrize("text_b", [None, "", "   "])
def test_text_b_without_tokens_gives_a_single_text(text_b):
  f = features.convert_examples([InputExample("0", words(1, 2, 3, 4), text_b)], FakeTokenizer(),
                                max_seq_length=5, num_labels=1)
  np.testing.assert_array_equal(f.input_ids[0], [2, 4, 5, 6, 3])
  np.testing.assert_array_equal(f.segment_ids[0], np.zeros(5))


@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 100))
def test_truncated_pair_lengths_match_googles_loop(len_a, len_b, budget):
  tokens_a, tokens_b = list(range(len_a)), list(range(len_b))
  google_truncate_seq_pair(tokens_a, tokens_b, budget)
  assert features.truncated_pair_lengths(len_a, len_b, budget) == (len(tokens_a), len(tokens_b))


texts = st.lists(st.sampled_from(WORDS), max_size=20).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(texts, st.one_of(st.none(), st.just(""), texts)), min_size=1,
                max_size=8),
       st.integers(3, 24))
def test_convert_matches_google(pairs, max_seq_length):
  tokenizer = FakeTokenizer()
  examples = [InputExample(str(i), a, b) for i, (a, b) in enumerate(pairs)]
  f = features.convert_examples(examples, tokenizer, max_seq_length, num_labels=1)
  for i, example in enumerate(examples):
    input_ids, input_mask, segment_ids = google_convert(example, tokenizer, max_seq_length)
    np.testing.assert_array_equal(f.input_ids[i], input_ids)
    np.testing.assert_array_equal(f.input_mask[i], input_mask)
    np.testing.assert_array_equal(f.segment_ids[i], segment_ids)


def test_labels_and_unscored_rows():
  examples = [InputExample("a", "w1", labels=(0, 1, 1)), InputExample("b", "w2"),
              InputExample("c", "w3", labels=(1, 0, 0))]
  f = features.convert_examples(examples, FakeTokenizer(), max_seq_length=8)
  np.testing.assert_array_equal(f.labels, [[0, 1, 1], [0, 0, 0], [1, 0, 0]])
  assert f.labels.dtype == np.float32
  np.testing.assert_array_equal(f.has_labels, [True, False, True])
  assert f.guids == ("a", "b", "c")


def test_unlabelled_examples_take_num_labels():
  f = features.convert_examples([InputExample("a", "w1")], FakeTokenizer(), 8, num_labels=4)
  assert f.labels.shape == (1, 4)


@pytest.mark.parametrize("text_b, max_seq_length", [(None, 1), ("w2", 2)])
def test_max_seq_length_too_small_is_a_user_error(text_b, max_seq_length):
  with pytest.raises(UserError, match="max_seq_length"):
    features.convert_examples([InputExample("0", "w1", text_b)], FakeTokenizer(), max_seq_length)


# Cache.


def test_fingerprint_and_hash_file(tmp_path):
  assert features.fingerprint("a", 1, True) == features.fingerprint("a", 1, True)
  assert len({features.fingerprint("1"), features.fingerprint(1), features.fingerprint(True),
              features.fingerprint("a", "b"), features.fingerprint("a,b")}) == 5
  path = tmp_path / "data.txt"
  path.write_bytes(b"x" * 3_000_000)
  first = features.hash_file(str(path))
  path.write_bytes(b"x" * 2_999_999 + b"y")
  assert features.hash_file(str(path)) != first


@pytest.fixture(name="cache")
def fixture_cache(tmp_path):
  """Examples (pairs, singles, one unscored), a counting tokenizer and a cache path."""
  examples = random_examples(np.random.default_rng(0), 30, max_words=12)
  examples[3] = InputExample("unscored", "w1 w2", labels=None)
  tokenizer = FakeTokenizer()

  def load(fp="A", max_seq_length=16):
    return features.load_or_build_features(examples, tokenizer, max_seq_length,
                                           str(tmp_path / "train.tf_record"), fp)

  return load, tokenizer, tmp_path / "train.tf_record"


def test_cache_is_reused_when_fingerprint_matches(cache):
  load, tokenizer, path = cache
  built = load()
  calls = tokenizer.calls
  assert calls > 0 and path.exists() and os.path.exists(str(path) + ".json")
  reused = load()
  assert tokenizer.calls == calls
  assert_features_equal(built, reused)


def test_cache_is_rebuilt_when_inputs_change(cache):
  load, tokenizer, _ = cache
  load("A")
  calls = tokenizer.calls
  load("B")
  assert tokenizer.calls > calls
  calls = tokenizer.calls
  load("B")
  assert tokenizer.calls == calls
  rebuilt = load("B", max_seq_length=12)
  assert tokenizer.calls > calls and rebuilt.max_seq_length == 12


def truncate(path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def flip_a_byte(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))


def remove_sidecar(path):
  os.remove(str(path) + ".json")


def garble_sidecar(path):
  with open(str(path) + ".json", "w", encoding="utf-8") as f:
    f.write('{"format": ')


@pytest.mark.parametrize("damage", [truncate, flip_a_byte, remove_sidecar, garble_sidecar])
def test_damaged_cache_is_rebuilt(cache, damage):
  load, tokenizer, path = cache
  built = load()
  calls = tokenizer.calls
  damage(path)
  assert_features_equal(load(), built)
  assert tokenizer.calls > calls
  calls = tokenizer.calls
  load()
  assert tokenizer.calls == calls


def test_crash_before_sidecar_leaves_no_usable_cache(cache, monkeypatch):
  load, tokenizer, _ = cache
  load("A")

  def crash(path, text):
    raise KeyboardInterrupt

  with monkeypatch.context() as patch:
    patch.setattr(fileio, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
      load("B")
  # The record on disk is now B's: A's sidecar must not vouch for it.
  calls = tokenizer.calls
  load("A")
  assert tokenizer.calls > calls


# Training plans.


def google_stream(seed, n, size):
  """The unbucketed stream: epoch permutations back to back."""
  epochs = -(-size // n)
  return np.concatenate([np.random.default_rng([seed, e]).permutation(n)
                         for e in range(epochs)])[:size]


def epoch_rows(e, n, batch_size):
  """The plan rows epoch e owns: the batches that start inside its permutation."""
  return slice(-(-e * n // batch_size), -(-(e + 1) * n // batch_size))


@pytest.mark.parametrize("n, batch_size, steps", [(103, 8, 60), (5, 8, 10), (64, 8, 16)])
def test_plan_is_the_stream_of_epoch_permutations(n, batch_size, steps):
  lengths = np.random.default_rng(1).integers(3, 64, size=n)
  plan = features.training_plan(lengths, batch_size, steps, seed=7, bucket_by_length=False)
  assert plan.shape == (steps, batch_size) and plan.dtype == np.int32
  np.testing.assert_array_equal(plan.ravel(), google_stream(7, n, steps * batch_size))
  for e in range(steps * batch_size // n):
    np.testing.assert_array_equal(np.sort(plan.ravel()[e * n:(e + 1) * n]), np.arange(n))


@pytest.mark.parametrize("bucket", [False, True])
def test_plan_depends_on_the_seed_only(bucket):
  lengths = np.random.default_rng(1).integers(3, 64, size=103)
  plan = features.training_plan(lengths, 8, 60, seed=7, bucket_by_length=bucket)
  np.testing.assert_array_equal(
      plan, features.training_plan(lengths, 8, 60, seed=7, bucket_by_length=bucket))
  assert not np.array_equal(
      plan, features.training_plan(lengths, 8, 60, seed=8, bucket_by_length=bucket))
  # Its first rows do not depend on how long the run is.
  np.testing.assert_array_equal(
      plan[:17], features.training_plan(lengths, 8, 17, seed=7, bucket_by_length=bucket))


def test_bucketed_epochs_hold_the_same_examples():
  n, batch_size, steps = 103, 8, 60
  lengths = np.random.default_rng(1).integers(3, 64, size=n)
  plain = features.training_plan(lengths, batch_size, steps, 7, bucket_by_length=False)
  bucketed = features.training_plan(lengths, batch_size, steps, 7, bucket_by_length=True,
                                    window_batches=4)
  for e in range(steps * batch_size // n):
    rows = epoch_rows(e, n, batch_size)
    np.testing.assert_array_equal(np.sort(bucketed[rows].ravel()), np.sort(plain[rows].ravel()))


def test_bucketed_batches_are_tight_and_in_random_order():
  lengths = np.random.default_rng(2).integers(5, 129, size=4000)
  batch_size, steps = 16, 500

  def padding_share(plan):
    batch_lengths = lengths[plan]
    padded = batch_lengths.max(axis=1).sum() * batch_size
    return 1 - batch_lengths.sum() / padded

  plain = features.training_plan(lengths, batch_size, steps, 0, bucket_by_length=False)
  bucketed = features.training_plan(lengths, batch_size, steps, 0, bucket_by_length=True)
  assert padding_share(plain) > 0.3
  assert padding_share(bucketed) < 0.02
  longest = lengths[bucketed].max(axis=1)
  assert not np.all(np.diff(longest[:50]) >= 0)
  assert abs(np.corrcoef(np.arange(steps), longest)[0, 1]) < 0.2


# tf.data.


@pytest.fixture(name="small", scope="module")
def fixture_small():
  """40 labelled examples (pairs and singles) at max_seq_length 32, and a 12-step plan."""
  f = features.convert_examples(random_examples(np.random.default_rng(3), 40, max_words=20),
                                FakeTokenizer(), max_seq_length=32)
  plan = features.training_plan(f.lengths, 6, 12, seed=0, bucket_by_length=True,
                                window_batches=2)
  return f, plan


def as_numpy(dataset):
  return [tf.nest.map_structure(lambda t: t.numpy(), element) for element in dataset]


def expected_inputs(f, rows, width):
  return {"input_ids": f.input_ids[rows, :width], "input_mask": f.input_mask[rows, :width],
          "segment_ids": f.segment_ids[rows, :width]}


def assert_inputs_equal(actual, expected):
  assert sorted(actual) == sorted(expected)
  for name in expected:
    np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
    assert actual[name].dtype == np.int32


@pytest.mark.parametrize("multiple", [1, 8])
def test_train_batches_follow_the_plan_with_tight_widths(small, multiple):
  f, plan = small
  batches = as_numpy(features.train_dataset(f, plan, length_multiple=multiple))
  assert len(batches) == len(plan)
  for rows, (inputs, labels) in zip(plan, batches):
    longest = f.lengths[rows].max()
    width = min(-(-longest // multiple) * multiple, f.max_seq_length)
    assert_inputs_equal(inputs, expected_inputs(f, rows, width))
    np.testing.assert_array_equal(labels, f.labels[rows])
    assert labels.dtype == np.float32


def test_resumed_training_sees_the_same_batches(small):
  f, plan = small
  full = as_numpy(features.train_dataset(f, plan))
  for start in (1, 5, 11, 12):
    resumed = as_numpy(features.train_dataset(f, plan, start_step=start))
    assert len(resumed) == len(full) - start
    for (a_inputs, a_labels), (b_inputs, b_labels) in zip(resumed, full[start:]):
      assert_inputs_equal(a_inputs, b_inputs)
      np.testing.assert_array_equal(a_labels, b_labels)


def test_train_pad_to_max_has_static_shapes(small):
  f, plan = small
  dataset = features.train_dataset(f, plan, start_step=10, pad_to_max=True)
  inputs_spec, labels_spec = dataset.element_spec
  for spec in inputs_spec.values():
    assert spec.shape == (6, 32)
  assert labels_spec.shape == (6, 3)
  (inputs, _), _ = as_numpy(dataset)
  assert_inputs_equal(inputs, expected_inputs(f, plan[10], 32))


def test_training_refuses_unlabelled_examples(small):
  f, plan = small
  has_labels = f.has_labels.copy()
  has_labels[0] = False
  with pytest.raises(ValueError, match="no labels"):
    features.train_dataset(features.Features(f.guids, f.input_ids, f.segment_ids, f.lengths,
                                             f.labels, has_labels), plan)


@pytest.mark.parametrize("bucket", [False, True])
def test_predict_covers_every_example_once(small, bucket):
  f, _ = small
  batches = as_numpy(features.predict_dataset(f, batch_size=7, bucket_by_length=bucket,
                                              pad_to_max=False))
  assert [len(index) for _, index in batches] == [7] * 5 + [5]
  index = np.concatenate([index for _, index in batches])
  assert index.dtype == np.int32
  np.testing.assert_array_equal(index, features.predict_order(f.lengths, bucket))
  if bucket:
    assert np.all(np.diff(f.lengths[index]) <= 0)
  for inputs, rows in batches:
    width = min(-(-f.lengths[rows].max() // 8) * 8, 32)
    assert_inputs_equal(inputs, expected_inputs(f, rows, width))
  # Per-row outputs computed from the batches come back in input order.
  lengths = np.concatenate([inputs["input_mask"].sum(axis=1) for inputs, _ in batches])
  np.testing.assert_array_equal(features.restore_order(index, lengths), f.lengths)


def test_predict_pad_to_max_fills_the_last_batch(small):
  f, _ = small
  dataset = features.predict_dataset(f, batch_size=7, bucket_by_length=True, pad_to_max=True)
  assert dataset.element_spec[0]["input_ids"].shape == (7, 32)
  batches = as_numpy(dataset)
  assert len(batches) == 6
  inputs, index = batches[-1]
  np.testing.assert_array_equal(index[5:], [-1, -1])
  for name in ("input_ids", "input_mask", "segment_ids"):
    assert not inputs[name][5:].any()
  index = np.concatenate([index for _, index in batches])
  guids = np.array(f.guids)
  np.testing.assert_array_equal(features.restore_order(index, guids[np.maximum(index, 0)]), guids)


def test_restore_order_rejects_a_missing_or_repeated_example():
  with pytest.raises(ValueError):
    features.restore_order([0, 2], np.zeros(2))
  with pytest.raises(ValueError):
    features.restore_order([0, 0, 1], np.zeros(3))
  with pytest.raises(ValueError):
    features.restore_order([0, 1], np.zeros(3))


def test_mirrored_strategy_splits_each_global_batch():
  """Two replicas on two logical CPUs; in a subprocess, as devices are fixed at TF start-up."""
  script = textwrap.dedent("""
      import numpy as np
      import tensorflow as tf
      import features
      cpu = tf.config.list_physical_devices("CPU")[0]
      tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
      strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
      rng = np.random.default_rng(0)
      n, max_seq_length = 50, 24
      lengths = rng.integers(2, max_seq_length + 1, size=n).astype(np.int32)
      mask = np.arange(max_seq_length) < lengths[:, None]
      second_segment = np.arange(max_seq_length) >= lengths[:, None] // 2
      f = features.Features(
          guids=tuple(map(str, range(n))),
          input_ids=(rng.integers(4, 99, size=mask.shape) * mask).astype(np.int32),
          segment_ids=(mask & second_segment).astype(np.int32),
          lengths=lengths, labels=rng.integers(0, 2, size=(n, 3)).astype(np.float32),
          has_labels=np.ones(n, bool))
      plan = features.training_plan(f.lengths, 8, 9, seed=0, bucket_by_length=True)

      def check(dataset):
        plain = list(dataset)
        distributed = list(strategy.experimental_distribute_dataset(dataset))
        assert len(plain) == len(distributed)
        for whole, parts in zip(plain, distributed):
          for w, p in zip(tf.nest.flatten(whole), tf.nest.flatten(parts)):
            local = strategy.experimental_local_results(p)
            assert len(local) == 2
            np.testing.assert_array_equal(np.concatenate([t.numpy() for t in local]), w.numpy())

      check(features.train_dataset(f, plan))
      check(features.predict_dataset(f, 8, bucket_by_length=True, pad_to_max=False))
      print("OK")
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
  assert result.returncode == 0 and "OK" in result.stdout, result.stderr[-3000:]
