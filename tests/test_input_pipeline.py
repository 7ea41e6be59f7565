"""The seeded training plan and the tf.data pipelines for training and prediction."""

import os
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import features
import input_pipeline
from tests import clitools
from tests.test_features import FakeTokenizer, random_examples



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
  plan = input_pipeline.training_plan(lengths, batch_size, steps, seed=7, bucket_by_length=False)
  assert plan.shape == (steps, batch_size) and plan.dtype == np.int32
  np.testing.assert_array_equal(plan.ravel(), google_stream(7, n, steps * batch_size))
  for e in range(steps * batch_size // n):
    np.testing.assert_array_equal(np.sort(plan.ravel()[e * n:(e + 1) * n]), np.arange(n))


@pytest.mark.parametrize("bucket", [False, True])
def test_plan_depends_on_the_seed_only(bucket):
  lengths = np.random.default_rng(1).integers(3, 64, size=103)
  plan = input_pipeline.training_plan(lengths, 8, 60, seed=7, bucket_by_length=bucket)
  np.testing.assert_array_equal(
      plan, input_pipeline.training_plan(lengths, 8, 60, seed=7, bucket_by_length=bucket))
  assert not np.array_equal(
      plan, input_pipeline.training_plan(lengths, 8, 60, seed=8, bucket_by_length=bucket))
  # Its first rows do not depend on how long the run is.
  np.testing.assert_array_equal(
      plan[:17], input_pipeline.training_plan(lengths, 8, 17, seed=7, bucket_by_length=bucket))


def test_bucketed_epochs_hold_the_same_examples():
  n, batch_size, steps = 103, 8, 60
  lengths = np.random.default_rng(1).integers(3, 64, size=n)
  plain = input_pipeline.training_plan(lengths, batch_size, steps, 7, bucket_by_length=False)
  bucketed = input_pipeline.training_plan(lengths, batch_size, steps, 7, bucket_by_length=True,
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

  plain = input_pipeline.training_plan(lengths, batch_size, steps, 0, bucket_by_length=False)
  bucketed = input_pipeline.training_plan(lengths, batch_size, steps, 0, bucket_by_length=True)
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
  plan = input_pipeline.training_plan(f.lengths, 6, 12, seed=0, bucket_by_length=True,
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
  batches = as_numpy(input_pipeline.train_dataset(f, plan, length_multiple=multiple))
  assert len(batches) == len(plan)
  for rows, (inputs, labels) in zip(plan, batches):
    longest = f.lengths[rows].max()
    width = min(-(-longest // multiple) * multiple, f.max_seq_length)
    assert_inputs_equal(inputs, expected_inputs(f, rows, width))
    np.testing.assert_array_equal(labels, f.labels[rows])
    assert labels.dtype == np.float32


def test_resumed_training_sees_the_same_batches(small):
  f, plan = small
  full = as_numpy(input_pipeline.train_dataset(f, plan))
  for start in (1, 5, 11, 12):
    resumed = as_numpy(input_pipeline.train_dataset(f, plan, start_step=start))
    assert len(resumed) == len(full) - start
    for (a_inputs, a_labels), (b_inputs, b_labels) in zip(resumed, full[start:]):
      assert_inputs_equal(a_inputs, b_inputs)
      np.testing.assert_array_equal(a_labels, b_labels)


def test_train_pad_to_max_has_static_shapes(small):
  f, plan = small
  dataset = input_pipeline.train_dataset(f, plan, start_step=10, pad_to_max=True)
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
    input_pipeline.train_dataset(features.Features(f.guids, f.input_ids, f.segment_ids, f.lengths,
                                             f.labels, has_labels), plan)


@pytest.mark.parametrize("bucket", [False, True])
def test_predict_covers_every_example_once(small, bucket):
  f, _ = small
  batches = as_numpy(input_pipeline.predict_dataset(f, batch_size=7, bucket_by_length=bucket,
                                              pad_to_max=False))
  assert [len(index) for _, index in batches] == [7] * 5 + [5]
  index = np.concatenate([index for _, index in batches])
  assert index.dtype == np.int32
  np.testing.assert_array_equal(index, input_pipeline.predict_order(f.lengths, bucket))
  if bucket:
    assert np.all(np.diff(f.lengths[index]) <= 0)
  for inputs, rows in batches:
    width = min(-(-f.lengths[rows].max() // 8) * 8, 32)
    assert_inputs_equal(inputs, expected_inputs(f, rows, width))
  # Per-row outputs computed from the batches come back in input order.
  lengths = np.concatenate([inputs["input_mask"].sum(axis=1) for inputs, _ in batches])
  np.testing.assert_array_equal(input_pipeline.restore_order(index, lengths), f.lengths)


def test_token_budget_sizes():
  # 40 tokens wide: max(2, 60 // 40) = 2 rows; 30: 2; 10: 6, of which 4 remain.
  np.testing.assert_array_equal(
      input_pipeline.token_budget_sizes([40, 30, 30, 20, 10, 5, 5, 1], 2, 60), [2, 2, 4])
  np.testing.assert_array_equal(input_pipeline.token_budget_sizes([0, 0, 0], 1, 2), [2, 1])
  assert input_pipeline.token_budget_sizes([], 8, 64).size == 0


@pytest.mark.parametrize("length_multiple", [1, 8])
def test_predict_by_tokens_covers_every_example_once(small, length_multiple):
  f, _ = small
  batches = as_numpy(input_pipeline.predict_dataset(f, batch_size=3, bucket_by_length=True,
                                                    pad_to_max=False,
                                                    length_multiple=length_multiple,
                                                    tokens_per_batch=96))
  index = np.concatenate([index for _, index in batches])
  np.testing.assert_array_equal(index, input_pipeline.predict_order(f.lengths, True))
  sizes = [len(rows) for _, rows in batches]
  np.testing.assert_array_equal(
      sizes, input_pipeline.token_budget_sizes(f.lengths[index], 3, 96))
  assert len(set(sizes)) > 1
  for inputs, rows in batches:
    width = min(-(-f.lengths[rows].max() // length_multiple) * length_multiple, 32)
    assert_inputs_equal(inputs, expected_inputs(f, rows, width))


def test_length_multiple_is_one_on_a_cpu_without_xla():
  assert input_pipeline.length_multiple("cpu", use_xla=False) == 1
  for device, use_xla in (("cpu", True), ("gpu", False), ("tpu", True)):
    assert input_pipeline.length_multiple(device, use_xla) == 8
  # The tests see no GPU: this process's devices are a CPU's.
  assert input_pipeline.local_length_multiple(use_xla=False) == 1
  assert input_pipeline.local_length_multiple(use_xla=True) == 8


def test_predict_pad_to_max_fills_the_last_batch(small):
  f, _ = small
  dataset = input_pipeline.predict_dataset(f, batch_size=7, bucket_by_length=True, pad_to_max=True)
  assert dataset.element_spec[0]["input_ids"].shape == (7, 32)
  batches = as_numpy(dataset)
  assert len(batches) == 6
  inputs, index = batches[-1]
  np.testing.assert_array_equal(index[5:], [-1, -1])
  for name in ("input_ids", "input_mask", "segment_ids"):
    assert not inputs[name][5:].any()
  index = np.concatenate([index for _, index in batches])
  guids = np.array(f.guids)
  np.testing.assert_array_equal(input_pipeline.restore_order(index, guids[np.maximum(index, 0)]), guids)


def test_restore_order_rejects_a_missing_or_repeated_example():
  with pytest.raises(ValueError):
    input_pipeline.restore_order([0, 2], np.zeros(2))
  with pytest.raises(ValueError):
    input_pipeline.restore_order([0, 0, 1], np.zeros(3))
  with pytest.raises(ValueError):
    input_pipeline.restore_order([0, 1], np.zeros(3))


def test_mirrored_strategy_splits_each_global_batch():
  """Two replicas on two logical CPUs; in a subprocess, as devices are fixed at TF start-up."""
  script = textwrap.dedent("""
      import numpy as np
      import tensorflow as tf
      import features, input_pipeline
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
      plan = input_pipeline.training_plan(f.lengths, 8, 9, seed=0, bucket_by_length=True)

      def check(dataset):
        plain = list(dataset)
        distributed = list(strategy.experimental_distribute_dataset(dataset))
        assert len(plain) == len(distributed)
        for whole, parts in zip(plain, distributed):
          for w, p in zip(tf.nest.flatten(whole), tf.nest.flatten(parts)):
            local = strategy.experimental_local_results(p)
            assert len(local) == 2
            np.testing.assert_array_equal(np.concatenate([t.numpy() for t in local]), w.numpy())

      check(input_pipeline.train_dataset(f, plan))
      check(input_pipeline.predict_dataset(f, 8, bucket_by_length=True, pad_to_max=False))
      print("OK")
  """)
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  assert "OK" in clitools.run_python(script, env=env).stdout
