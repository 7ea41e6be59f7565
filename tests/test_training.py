"""training.py: one step counter under loss scaling, the loss scale in checkpoints, and the
record of the training plan that a resume must follow."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classifier
import modeling
import training
from tests.conftest import assert_close


@pytest.fixture(name="loss_scaled")
def fixture_loss_scaled(tiny_bert):
  """A tiny classifier (float32 weights) with the fp16 run's loss-scaling optimizer."""
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  model = classifier.MultiLabelClassifier(config, 3)
  optimizer = training.make_optimizer(model, 1e-3, 10, 0, precision="fp16")
  rng = np.random.default_rng(0)
  inputs = {"input_ids": tf.constant(rng.integers(1, config.vocab_size, (4, 8)), tf.int32),
            "input_mask": tf.ones((4, 8), tf.int32), "segment_ids": tf.zeros((4, 8), tf.int32)}
  labels = tf.constant(rng.integers(0, 2, (4, 3)), tf.float32)
  dataset = tf.data.Dataset.from_tensors((inputs, labels)).repeat()
  strategy = tf.distribute.get_strategy()
  loop = training.make_train_loop(model, optimizer, strategy, 4)
  return model, optimizer, iter(dataset), loop


def weights(model):
  return [v.numpy().copy() for v in model.trainable_variables]


def test_a_step_skipped_by_the_loss_scale_still_counts(loss_scaled):
  model, optimizer, iterator, loop = loss_scaled
  before = weights(model)
  # An infinite scale makes every gradient overflow: the updates are skipped.
  optimizer.dynamic_scale.assign(float("inf"))
  loop(iterator, tf.constant(2))
  assert training.global_step(optimizer) == 2
  for old, new in zip(before, weights(model)):
    np.testing.assert_array_equal(new, old)
  # With a finite scale the next step updates the weights and counts once.
  optimizer.dynamic_scale.assign(2.0 ** 10)
  loop(iterator, tf.constant(1))
  assert training.global_step(optimizer) == 3
  assert any(np.any(new != old) for old, new in zip(before, weights(model)))


def test_the_loss_scale_is_checkpointed(loss_scaled, tmp_path):
  model, optimizer, iterator, loop = loss_scaled
  optimizer.dynamic_scale.assign(float("inf"))
  loop(iterator, tf.constant(1))  # Skipped: the scale halves (inf stays inf) ...
  optimizer.dynamic_scale.assign(96.0)
  loop(iterator, tf.constant(3))  # ... and three good steps count towards growing it.
  prefix = training.save(model, optimizer, str(tmp_path), keep=2)
  assert prefix.endswith("model.ckpt-4")
  reader = tf.train.load_checkpoint(prefix)
  assert reader.get_tensor("loss_scale/dynamic_scale") == 96.0
  assert reader.get_tensor("loss_scale/good_steps") == 3
  fresh = training.make_optimizer(model, 1e-3, 10, 0, precision="fp16")
  assert training.initialize(model, fresh, tf.distribute.get_strategy(), str(tmp_path),
                             None) == 4
  assert float(fresh.dynamic_scale.numpy()) == 96.0 and int(fresh.step_counter.numpy()) == 3


def test_a_checkpoint_without_loss_scale_resumes(loss_scaled, tmp_path):
  """The original script's checkpoints, and ours of fp32 runs, hold no loss scale."""
  model, optimizer, _, _ = loss_scaled
  fp32 = training.make_optimizer(model, 1e-3, 10, 0)
  training.save(model, fp32, str(tmp_path), keep=1)
  assert not any(name.startswith("loss_scale/")
                 for name, _ in tf.train.list_variables(checkpoints.latest(str(tmp_path))))
  assert training.initialize(model, optimizer, tf.distribute.get_strategy(), str(tmp_path),
                             None) == 0


PLAN = {training.TRAINING_DATA: "abc", "train_batch_size": 32, "seed": 42,
        "learning_rate": 2e-5, "head_learning_rate": None, "bucket_by_length": True}


def test_plan_mismatch_names_the_changed_flags(tmp_path):
  folder = str(tmp_path)
  training.record_plan(folder, PLAN)
  # Without a checkpoint there is nothing to resume: any plan may start.
  assert training.plan_mismatch(folder, dict(PLAN, seed=1)) is None
  checkpoints.write(str(tmp_path / "model.ckpt-5"), {"global_step": tf.constant(5, tf.int64)})
  assert training.plan_mismatch(folder, PLAN) is None
  message = training.plan_mismatch(folder, dict(PLAN, train_batch_size=16, seed=7))
  assert "--train_batch_size was 32, now 16" in message and "--seed was 42, now 7" in message
  assert "new --output_dir" in message
  assert "training data changed" in training.plan_mismatch(
      folder, dict(PLAN, **{training.TRAINING_DATA: "xyz"}))


def test_a_run_without_a_plan_record_resumes(tmp_path):
  """Checkpoints of the original script, or of our earlier versions, have no record."""
  checkpoints.write(str(tmp_path / "model.ckpt-5"), {"global_step": tf.constant(5, tf.int64)})
  assert training.plan_mismatch(str(tmp_path), PLAN) is None


def test_the_plan_record_is_json(tmp_path):
  training.record_plan(str(tmp_path), PLAN)
  with open(tmp_path / training.PLAN_FILE, encoding="utf-8") as f:
    assert json.load(f) == PLAN


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_the_loop_updates_as_the_optimizer_applied_step_by_step(tiny_bert, jit_compile):
  """Batches of three widths through the training loop: losses, gradient norms, weights, slots
  and step match the optimizer applied eagerly to the same gradients. Also with the step
  compiled by XLA, as `--use_xla` runs it on accelerators (the fused update kernel included)."""
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  config = modeling.BertConfig(**dict(config.to_dict(), hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0))
  keras.utils.set_random_seed(0)  # The same weights, whichever tests ran before in the process.
  rng = np.random.default_rng(1)
  batches = []
  for width in (8, 5, 11):  # The embedding gradient's IndexedSlices differ in length.
    inputs = {"input_ids": tf.constant(rng.integers(1, config.vocab_size, (4, width)), tf.int32),
              "input_mask": tf.ones((4, width), tf.int32),
              "segment_ids": tf.zeros((4, width), tf.int32)}
    batches.append((inputs, tf.constant(rng.integers(0, 2, (4, 3)), tf.float32)))
  looped, eager = (classifier.MultiLabelClassifier(config, 3) for _ in range(2))
  for model in (looped, eager):
    model.dropout.rate = 0.0  # The head's own dropout; the config turned BERT's off.
  for a, b in zip(looped.trainable_variables, eager.trainable_variables):
    b.assign(a)
  initial = weights(looped)
  optimizers = [training.make_optimizer(model, 1e-2, 10, 2) for model in (looped, eager)]
  dataset = tf.data.Dataset.from_generator(
      lambda: iter(batches), output_signature=(
          {k: tf.TensorSpec([4, None], tf.int32) for k in batches[0][0]},
          tf.TensorSpec([4, 3], tf.float32)))
  loop = training.make_train_loop(looped, optimizers[0], tf.distribute.get_strategy(), 4,
                                  jit_compile)
  losses, norms = loop(iter(dataset), tf.constant(3))
  for step, (inputs, labels) in enumerate(batches):
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(classifier.per_example_loss(labels, eager(inputs, training=True))) / 4
    optimizers[1].apply_gradients(zip(tape.gradient(loss, eager.trainable_variables),
                                      eager.trainable_variables))
    np.testing.assert_allclose(losses[step], loss, rtol=1e-5)
  np.testing.assert_allclose(norms[-1], optimizers[1].gradient_norm.numpy(), rtol=1e-5)
  assert training.global_step(optimizers[0]) == training.global_step(optimizers[1]) == 3
  slots = [[optimizer.slot_variables(v) for v in model.trainable_variables]
           for optimizer, model in zip(optimizers, (looped, eager))]
  # A gradient that is zero in exact arithmetic (the key bias's) is rounding noise, ~1e-11 in
  # m and in the bias it moves: slots are compared on the scale of all slots of their kind,
  # weights with a floor far below the ~1e-3 a step moves them. XLA sums the gradients in
  # another order: where an element nearly cancels, its relative rounding error is large, and
  # Adam's normalised step (up to the learning rate, 1e-2) passes it on to the weight. Over 16
  # seeds that reached 1.9e-6 under XLA, 2.3 times the tolerance without a floor (without XLA,
  # at most 0.4 times it over 12 seeds). The floor under XLA is a thousandth of the learning
  # rate.
  floor = 1e-5 if jit_compile else 1e-9
  scales = [max(np.abs(pair[kind].numpy()).max() for pair in slots[1]) for kind in (0, 1)]
  for a, b, slots_a, slots_b in zip(looped.trainable_variables, eager.trainable_variables,
                                    *slots):
    assert_close(a.numpy(), b.numpy(), rtol=1e-5, atol=floor, err_msg=a.path)
    for slot_a, slot_b, scale, kind in zip(slots_a, slots_b, scales, ("m", "v")):
      assert_close(slot_a.numpy(), slot_b.numpy(), rtol=1e-5, atol=1e-5 * scale,
                   err_msg=f"{a.path} {kind}")
  # The weights moved by far more than the tolerance: the comparison could fail.
  assert max(np.abs(a - b).max() for a, b in zip(weights(looped), initial)) > 1e-3
