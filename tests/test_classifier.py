"""classifier.py: [CLS] and mean pooling, the head's variables, and the positive-weighted loss."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classifier
from errors import UserError
import modeling
import optimization


def config_up_to_128(tiny_bert):
  """The tiny model's config with positions up to 128 (its own stop at 64)."""
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  return modeling.BertConfig(**dict(config.to_dict(), max_position_embeddings=128))


def padded(token_ids, width):
  """int32 model inputs [len(token_ids), width] for lists of real token ids."""
  input_ids = np.zeros([len(token_ids), width], np.int32)
  input_mask = np.zeros([len(token_ids), width], np.int32)
  for i, ids in enumerate(token_ids):
    input_ids[i, :len(ids)] = ids
    input_mask[i, :len(ids)] = 1
  return {"input_ids": input_ids, "input_mask": input_mask,
          "segment_ids": np.zeros_like(input_ids)}


def test_mean_pooling_averages_the_real_tokens_and_ignores_padding(tiny_bert):
  keras.utils.set_random_seed(3)
  model = classifier.MultiLabelClassifier(config_up_to_128(tiny_bert), 3, pooling="mean")
  rng = np.random.default_rng(0)
  texts = [rng.integers(5, 60, size=n).tolist() for n in (11, 4)]
  short, long = padded(texts, 16), padded(texts, 128)
  np.testing.assert_allclose(model(long), model(short), atol=1e-5)

  sequence, pooled = model.bert(long["input_ids"], long["input_mask"], long["segment_ids"])
  assert pooled is None
  sequence = np.asarray(sequence)
  by_hand = np.stack([sequence[i, :len(ids)].mean(axis=0) for i, ids in enumerate(texts)])
  np.testing.assert_allclose(classifier.masked_mean(sequence, long["input_mask"]), by_hand,
                             atol=1e-6)
  # The padded positions do carry vectors: averaging them in would change the result.
  everything = classifier.masked_mean(sequence, np.ones_like(long["input_mask"]))
  assert np.abs(everything - by_hand).max() > 1e-2


@pytest.mark.parametrize("pooling", classifier.POOLINGS)
def test_skipping_the_padding_predicts_the_same_and_trains_as_before(tiny_bert, pooling):
  def build(skip_padding):
    keras.utils.set_random_seed(4)  # The same weights and dropout seeds.
    return classifier.MultiLabelClassifier(config_up_to_128(tiny_bert), 3, pooling=pooling,
                                           skip_padding=skip_padding)

  model, skipping = build(False), build(True)
  rng = np.random.default_rng(1)
  inputs = padded([rng.integers(5, 60, size=n).tolist() for n in (17, 3, 9)], 24)
  np.testing.assert_allclose(skipping(inputs), model(inputs), rtol=1e-5, atol=1e-6)
  # Training runs the padded layout: the same dropout masks, the same logits.
  np.testing.assert_array_equal(skipping(inputs, training=True), model(inputs, training=True))
  assert skipping.get_config()["skip_padding"] and not model.get_config()["skip_padding"]


def test_only_a_cpu_without_xla_skips_the_padding():
  assert classifier.skips_padding("cpu", use_xla=False)
  assert not classifier.skips_padding("cpu", use_xla=True)
  assert not classifier.skips_padding("gpu", use_xla=False)
  assert not classifier.skips_padding("tpu", use_xla=True)


def test_mean_pooled_model_has_no_pooler_to_load_train_or_save(tiny_bert, tmp_path):
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  model = classifier.MultiLabelClassifier(config, 3, pooling="mean")
  variables = model.checkpoint_variables()
  assert not [name for name in variables if name.startswith("bert/pooler/")]
  # Google's checkpoint has a pooler: it is left unused, and nothing else is missing.
  report = checkpoints.restore(variables, tiny_bert["checkpoint"],
                               optional=classifier.is_head_variable)
  assert "bert/pooler/dense/kernel" in report.unused
  assert report.absent == ["loss/output_bias", "loss/output_weights"]

  # Every trainable variable has a checkpoint name and a gradient: none is left over.
  assert {id(v) for v in model.trainable_variables} == {id(v) for v in variables.values()}
  optimizer = optimization.create_optimizer(1e-3, 10, 1, variables)
  optimizer.build(model.trainable_variables)
  inputs = {"input_ids": tiny_bert["inputs"]["input_ids"],
            "input_mask": tiny_bert["inputs"]["input_mask"],
            "segment_ids": tiny_bert["inputs"]["token_type_ids"]}
  with tf.GradientTape() as tape:
    loss = tf.reduce_mean(classifier.per_example_loss(np.ones([3, 3]), model(inputs, training=True)))
  gradients = tape.gradient(loss, model.trainable_variables)
  assert all(g is not None for g in gradients)

  prefix = str(tmp_path / "model.ckpt-1")
  checkpoints.write(prefix, variables)
  assert not [name for name in checkpoints.shapes(prefix) if "pooler" in name]
  again = classifier.MultiLabelClassifier(config, 3, pooling="mean")
  assert not checkpoints.restore(again.checkpoint_variables(), prefix,
                                 optional=classifier.is_head_variable).absent
  np.testing.assert_allclose(again(inputs), model(inputs), atol=1e-6)
  with pytest.raises(UserError, match="bert/pooler/dense/kernel: missing"):
    checkpoints.restore(classifier.MultiLabelClassifier(config, 3).checkpoint_variables(), prefix)


def test_cls_pooling_reads_googles_pooled_output(tiny_bert):
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  model = classifier.MultiLabelClassifier(config, 3)
  assert model.pooling == "cls" and "bert/pooler/dense/kernel" in model.checkpoint_variables()
  modeling.load_checkpoint(model.bert, tiny_bert["checkpoint"])
  inputs = tiny_bert["inputs"]
  logits = model({"input_ids": inputs["input_ids"], "input_mask": inputs["input_mask"],
                  "segment_ids": inputs["token_type_ids"]})
  expected = (tiny_bert["pooled_output"] @ model.output_weights.numpy().T
              + model.output_bias.numpy())
  np.testing.assert_allclose(logits, expected, atol=1e-5)
  with pytest.raises(ValueError, match="pooling"):
    classifier.MultiLabelClassifier(config, 3, pooling="max")


@pytest.mark.parametrize("add_dense", [False, True])
def test_undrawn_bert_starts_at_zero_and_a_checkpoint_fills_every_weight(tiny_bert, add_dense):
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])

  def build(draw_weights):
    keras.utils.set_random_seed(5)
    return classifier.MultiLabelClassifier(config, 3, add_dense, draw_weights=draw_weights)

  drawn, undrawn = build(True), build(False)
  drawn_variables = drawn.checkpoint_variables()
  head = {name for name in drawn_variables if classifier.is_head_variable(name)}
  for name, variable in undrawn.checkpoint_variables().items():
    value, drawn_value = variable.numpy(), drawn_variables[name].numpy()
    if name in head:
      np.testing.assert_array_equal(value, drawn_value, err_msg=name)
    elif name.endswith(("kernel", "embeddings")):
      assert not value.any() and drawn_value.std() > 0.01, name
    else:  # Biases, LayerNorm: their initial values are constants anyway.
      np.testing.assert_array_equal(value, drawn_value, err_msg=name)

  for model in (drawn, undrawn):
    modeling.load_checkpoint(model.bert, tiny_bert["checkpoint"])
  # Every trainable weight is BERT's, which the checkpoint holds, or the head's, drawn in both.
  assert len(undrawn.trainable_variables) == len(drawn_variables)
  for a, b in zip(undrawn.trainable_variables, drawn.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=a.path)


def test_positive_weights_are_negatives_per_positive_capped():
  labels = np.zeros([24, 4], np.float32)
  labels[:6, 0] = 1      # 18 / 6
  labels[0, 2] = 1       # 23 / 1, capped
  labels[:16, 3] = 1     # 8 / 16
  np.testing.assert_allclose(classifier.positive_weights(labels), [3.0, 10.0, 10.0, 0.5])
  np.testing.assert_allclose(classifier.positive_weights(labels, cap=20.0),
                             [3.0, 20.0, 20.0, 0.5])
  assert classifier.positive_weights(labels).dtype == np.float32


def test_positive_weighted_loss_equals_the_formula():
  rng = np.random.default_rng(4)
  labels = rng.integers(0, 2, size=(5, 3)).astype(np.float32)
  logits = rng.normal(scale=3.0, size=(5, 3)).astype(np.float32)
  weights = np.array([3.0, 0.5, 10.0], np.float32)
  p = 1.0 / (1.0 + np.exp(-logits.astype(np.float64)))

  def by_hand(w):
    return np.mean(-(w * labels * np.log(p) + (1 - labels) * np.log(1 - p)), axis=-1)

  np.testing.assert_allclose(classifier.per_example_loss(labels, logits, weights),
                             by_hand(weights), rtol=1e-5)
  np.testing.assert_allclose(classifier.per_example_loss(labels, logits), by_hand(1.0),
                             rtol=1e-5)
