"""modeling.py against Google's own modeling code on the same TF1 checkpoint."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import modeling
from errors import UserError
from tests import conftest


@pytest.fixture(scope="module")
def config(tiny_bert):
  return modeling.BertConfig.from_json_file(tiny_bert["config_file"])


@pytest.fixture(scope="module")
def loaded_model(tiny_bert, config):
  model = modeling.BertModel(config)
  modeling.load_checkpoint(model, tiny_bert["checkpoint"])
  return model


def test_outputs_equal_googles_on_its_own_checkpoint(tiny_bert, loaded_model):
  sequence_output, pooled_output = loaded_model(**tiny_bert["inputs"], training=False)
  assert sequence_output.dtype == "float32" and pooled_output.dtype == "float32"
  conftest.assert_close(sequence_output, tiny_bert["sequence_output"])
  conftest.assert_close(pooled_output, tiny_bert["pooled_output"])


def test_tanh_and_exact_gelu_differ_and_config_picks_one(config):
  x = np.linspace(-4, 4, 101).astype(np.float32)
  # In float64 whatever numpy's promotion rules: the float32 GELU is then a few ulps off (no
  # sums, so a tight tolerance), while the exact form is up to 4.7e-4 away.
  x64 = x.astype(np.float64)
  tanh_form = 0.5 * x64 * (1 + np.tanh(np.sqrt(2 / np.pi) * (x64 + 0.044715 * x64 ** 3)))
  np.testing.assert_allclose(modeling.ACTIVATIONS["gelu"](x), tanh_form, rtol=1e-6, atol=1e-6)
  assert np.abs(modeling.ACTIVATIONS["gelu_exact"](x) - tanh_form).max() > 1e-4
  exact = modeling.BertModel(modeling.BertConfig(**dict(config.to_dict(), hidden_act="gelu_exact")))
  assert all(layer.activation is modeling.gelu_exact for layer in exact.encoder_layers)
  assert modeling.BertModel(config).encoder_layers[0].activation is modeling.gelu_tanh


@pytest.mark.parametrize("name", ["gelu", "gelu_exact"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_trained_gelu_has_the_values_and_gradients_of_autodiff(name, jit_compile):
  activation = modeling.ACTIVATIONS[name]
  trained = modeling.TRAINED_ACTIVATIONS[activation]
  x = tf.constant(np.linspace(-6, 6, 241), tf.float32)

  def value_and_gradient(function):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = function(x)
    return y, tape.gradient(y, x, output_gradients=tf.cos(x))

  expected = value_and_gradient(activation)
  got = tf.function(lambda: value_and_gradient(trained), jit_compile=jit_compile)()
  np.testing.assert_allclose(got[0], expected[0], rtol=1e-6, atol=1e-6)
  np.testing.assert_allclose(got[1], expected[1], rtol=1e-5, atol=1e-6)


def test_training_uses_the_trained_gelu_with_autodiffs_gradients(tiny_bert, config):
  model = modeling.BertModel(modeling.BertConfig(**dict(
      config.to_dict(), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)))
  modeling.load_checkpoint(model, tiny_bert["checkpoint"])
  assert all(layer.trained_activation is modeling.TRAINED_ACTIVATIONS[modeling.gelu_tanh]
             for layer in model.encoder_layers)

  def gradients():
    with tf.GradientTape() as tape:
      _, pooled = model(**tiny_bert["inputs"], training=True)
      loss = tf.reduce_sum(pooled * tf.sin(tf.range(pooled.shape[-1], dtype=tf.float32)))
    return [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]

  trained = gradients()
  for layer in model.encoder_layers:
    layer.trained_activation = layer.activation
  for got, expected in zip(trained, gradients()):
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_trained_layer_norm_has_the_values_and_gradients_of_keras(dtype, jit_compile):
  rng = np.random.default_rng(0)
  layer = keras.layers.LayerNormalization(epsilon=1e-12)
  layer.build((None, None, 16))
  layer.gamma.assign(rng.normal(1.0, 0.3, 16))
  layer.beta.assign(rng.normal(0.0, 0.3, 16))
  # Rows with their own offset and spread, as a residual sum has.
  x = tf.constant(rng.normal(rng.normal(0, 3, (3, 5, 1)), rng.uniform(0.1, 4, (3, 5, 1)),
                             (3, 5, 16)), dtype)
  upstream = tf.constant(rng.normal(size=(3, 5, 16)), dtype)

  def value_and_gradients(normalize):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = normalize(layer, x)
    return [y, *tape.gradient(y, [x, layer.gamma, layer.beta], output_gradients=upstream)]

  expected = value_and_gradients(lambda layer, x: layer(x))
  got = tf.function(lambda: value_and_gradients(modeling.trained_layer_norm),
                    jit_compile=jit_compile)()
  assert got[0].dtype == dtype and got[1].dtype == dtype
  # Forward, the same ops as Keras (XLA may fuse them differently); gradients, float32 sums in
  # another order. bfloat16 rounds both to its 8 bits.
  tight, loose = (1e-6, 1e-5) if dtype == "float32" else (1e-2, 1e-2)
  np.testing.assert_allclose(np.float32(got[0]), np.float32(expected[0]), rtol=tight, atol=tight)
  for g, e in zip(got[1:], expected[1:]):
    np.testing.assert_allclose(np.float32(g), np.float32(e), rtol=loose,
                               atol=loose * np.abs(np.float32(e)).max())


def test_training_uses_the_trained_layer_norm_with_autodiffs_gradients(tiny_bert, config,
                                                                       monkeypatch):
  model = modeling.BertModel(modeling.BertConfig(**dict(
      config.to_dict(), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)))
  modeling.load_checkpoint(model, tiny_bert["checkpoint"])
  calls = []
  trained_layer_norm = modeling.trained_layer_norm
  monkeypatch.setattr(modeling, "trained_layer_norm",
                      lambda layer, x: calls.append(layer) or trained_layer_norm(layer, x))

  def gradients():
    with tf.GradientTape() as tape:
      sequence, pooled = model(**tiny_bert["inputs"], training=True)
      loss = (tf.reduce_sum(pooled * tf.sin(tf.range(pooled.shape[-1], dtype=tf.float32)))
              + tf.reduce_sum(sequence[:, 1] ** 2))
    return [tf.convert_to_tensor(g) for g in tape.gradient(loss, model.trainable_variables)]

  trained = gradients()
  # Every LayerNorm of the model: the embeddings' and two per block.
  assert len(calls) == 1 + 2 * config.num_hidden_layers
  monkeypatch.setattr(modeling, "trained_layer_norm", lambda layer, x: layer(x))
  for got, expected in zip(trained, gradients()):
    # Float32 sums in another order, through every LayerNorm: up to 3.2e-6 of each gradient's
    # largest value. The key biases' gradients are zero but for rounding (about 1e-11).
    np.testing.assert_allclose(got, expected, rtol=1e-4,
                               atol=1e-5 * np.abs(expected).max() + 1e-9)


def test_real_positions_ignore_extra_padding(tiny_bert, loaded_model):
  inputs = tiny_bert["inputs"]
  padded = {k: np.pad(v, [(0, 0), (0, 7)]) for k, v in inputs.items()}
  short_seq, short_pooled = loaded_model(**inputs, training=False)
  long_seq, long_pooled = loaded_model(**padded, training=False)
  mask = inputs["input_mask"].astype(bool)
  conftest.assert_close(np.asarray(long_seq)[:, :12][mask], np.asarray(short_seq)[mask])
  conftest.assert_close(long_pooled, short_pooled)


def test_dropout_only_when_training(tiny_bert, loaded_model):
  inputs = tiny_bert["inputs"]
  a, _ = loaded_model(**inputs, training=False)
  b, _ = loaded_model(**inputs, training=False)
  c, _ = loaded_model(**inputs, training=True)
  np.testing.assert_array_equal(a, b)
  assert np.abs(np.asarray(a) - np.asarray(c)).max() > 1e-3


def test_pooled_only_gives_googles_pooled_output_and_the_same_gradients(tiny_bert,
                                                                       loaded_model):
  inputs = tiny_bert["inputs"]
  sequence_output, pooled_output = loaded_model(**inputs, training=False, pooled_only=True)
  assert sequence_output is None
  conftest.assert_close(pooled_output, tiny_bert["pooled_output"])

  weights = np.random.default_rng(0).normal(size=pooled_output.shape).astype(np.float32)

  def gradients(pooled_only):
    with tf.GradientTape() as tape:
      _, pooled = loaded_model(**inputs, training=False, pooled_only=pooled_only)
      loss = tf.reduce_sum(pooled * weights)
    return tape.gradient(loss, loaded_model.trainable_variables)

  full, first_token_only = gradients(False), gradients(True)
  last_query = loaded_model.encoder_layers[-1].query.kernel
  index = next(i for i, v in enumerate(loaded_model.trainable_variables) if v is last_query)
  assert np.abs(first_token_only[index]).max() > 0
  for variable, a, b in zip(loaded_model.trainable_variables, full, first_token_only):
    # Relative to each tensor's scale (the [CLS]-only layer sums in another order). The key
    # biases' gradients are zero in exact arithmetic (softmax ignores a shift shared by all
    # keys): ~1e-11 of rounding noise, hence the floor, 1e-5 of the smallest other gradient.
    conftest.assert_close(tf.convert_to_tensor(b), tf.convert_to_tensor(a), atol=1e-9,
                          err_msg=variable.path)


@pytest.mark.parametrize("pooled_only", [False, True])
def test_real_tokens_only_gives_the_same_outputs_and_gradients(tiny_bert, loaded_model,
                                                               pooled_only):
  inputs = tiny_bert["inputs"]
  mask = inputs["input_mask"].astype(bool)
  assert not mask.all()  # Some padding to skip.
  weights = np.random.default_rng(1).normal(size=[mask.shape[0], 32]).astype(np.float32)

  def run(real_tokens_only):
    with tf.GradientTape() as tape:
      sequence, pooled = loaded_model(**inputs, training=False, pooled_only=pooled_only,
                                      real_tokens_only=real_tokens_only)
      loss = tf.reduce_sum(pooled * weights[:, :pooled.shape[1]])
      if sequence is not None:
        loss += tf.reduce_sum(tf.boolean_mask(sequence, mask)[:, 0])
    return sequence, pooled, tape.gradient(loss, loaded_model.trainable_variables)

  padded, packed = run(False), run(True)
  conftest.assert_close(packed[1], padded[1])
  if pooled_only:
    assert packed[0] is None
  else:
    conftest.assert_close(np.asarray(packed[0])[mask], np.asarray(padded[0])[mask])
    assert not np.asarray(packed[0])[~mask].any()
  for variable, a, b in zip(loaded_model.trainable_variables, padded[2], packed[2]):
    # The key biases' gradients are rounding noise around zero, as above.
    conftest.assert_close(tf.convert_to_tensor(b), tf.convert_to_tensor(a), atol=1e-9,
                          err_msg=variable.path)


def test_real_tokens_only_with_dropout(tiny_bert, loaded_model):
  """Dropout draws masks of the packed shape: outputs change, padding stays zero."""
  inputs = tiny_bert["inputs"]
  mask = inputs["input_mask"].astype(bool)
  plain, _ = loaded_model(**inputs, training=False, real_tokens_only=True)
  dropped, pooled = loaded_model(**inputs, training=True, real_tokens_only=True)
  assert np.abs(np.asarray(dropped) - np.asarray(plain))[mask].min() > 0
  assert not np.asarray(dropped)[~mask].any() and np.isfinite(pooled).all()


@pytest.mark.parametrize("pooled_only,real_tokens_only,training", [
    (False, False, False), (True, True, False), (False, False, True), (True, True, True)])
def test_a_traced_model_traces_one_block_and_computes_what_each_block_does(
    tiny_bert, loaded_model, monkeypatch, pooled_only, real_tokens_only, training):
  """Traced, the blocks run one trace of the first block on their own weights; eagerly, each
  block runs itself. Outputs, gradients and the dropouts' seed states come out the same."""
  traced_blocks = []
  block_call = modeling.TransformerLayer.call

  def counted_call(layer, *args, **kwargs):
    traced_blocks.append(layer.name)
    return block_call(layer, *args, **kwargs)

  monkeypatch.setattr(modeling.TransformerLayer, "call", counted_call)
  inputs = {name: tf.constant(value) for name, value in tiny_bert["inputs"].items()}
  seed_states = loaded_model.non_trainable_variables  # The dropouts' (embeddings' too).
  start = [v.numpy() for v in seed_states]

  def run():
    with tf.GradientTape() as tape:
      sequence, pooled = loaded_model(**inputs, training=training, pooled_only=pooled_only,
                                      real_tokens_only=real_tokens_only)
      loss = tf.reduce_sum(pooled * pooled)
      if sequence is not None:
        loss += tf.reduce_sum(sequence[:, :, 0])
    return pooled, tape.gradient(loss, loaded_model.trainable_variables)

  try:
    eager = run()
    eager_states = [v.numpy() for v in seed_states]
    assert len(traced_blocks) == len(loaded_model.encoder_layers)
    for variable, value in zip(seed_states, start):
      variable.assign(value)
    del traced_blocks[:]
    traced = tf.function(run)()
    traced_states = [v.numpy() for v in seed_states]
  finally:
    for variable, value in zip(seed_states, start):
      variable.assign(value)
  # The first block's layer, once, and again for a last block that computes [CLS] alone.
  assert traced_blocks == ["layer_0"] * (2 if pooled_only else 1)
  conftest.assert_close(traced[0], eager[0])
  for variable, a, b in zip(loaded_model.trainable_variables, eager[1], traced[1]):
    # The key biases' gradients are rounding noise around zero, as above.
    conftest.assert_close(tf.convert_to_tensor(b), tf.convert_to_tensor(a), atol=1e-9,
                          err_msg=variable.path)
  for a, b in zip(eager_states, traced_states):
    np.testing.assert_array_equal(b, a)
  if training:  # Each dropout drew, so that the blocks' masks differ from one another.
    assert all((a != b).any() for a, b in zip(start, traced_states))


def test_dropout_drops_the_rate_and_keeps_the_expectation():
  dropout = modeling.Dropout(0.1, seed=3)
  x = tf.ones([1001, 999])  # An odd size: the last 32-bit draw serves one element.
  y = np.asarray(dropout(x, training=True))
  kept = y != 0
  assert abs(1 - kept.mean() - 0.1) < 0.002
  # The effective rate is round(0.1 * 65536) / 65536; kept elements are scaled by its inverse.
  np.testing.assert_allclose(y[kept], 65536 / (65536 - 6554), rtol=1e-7)
  assert abs(y.mean() - 1) < 0.003
  again = np.asarray(dropout(x, training=True))
  assert (again != 0).mean() > 0.85 and ((again != 0) != kept).mean() > 0.1  # A fresh mask.
  np.testing.assert_array_equal(dropout(x, training=False), x)
  np.testing.assert_array_equal(modeling.Dropout(0.0)(x, training=True), x)


def test_dropout_masks_follow_the_seed_and_the_gradient_is_the_mask():
  x = tf.random.stateless_normal([4, 7, 5], seed=[1, 2])
  first, second = modeling.Dropout(0.3, seed=5), modeling.Dropout(0.3, seed=5)
  np.testing.assert_array_equal(first(x, training=True), second(x, training=True))
  upstream = tf.random.stateless_normal(x.shape, seed=[3, 4])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = first(x, training=True)
    loss = tf.reduce_sum(y * upstream)
  mask = np.asarray(y) / np.asarray(x)
  np.testing.assert_allclose(tape.gradient(loss, x), np.asarray(upstream) * mask, rtol=1e-6)


@pytest.mark.parametrize("jit_compile", [False, True])
def test_dropout_on_dynamic_shapes_and_bfloat16(jit_compile):
  dropout = modeling.Dropout(0.5, seed=1)
  apply = tf.function(lambda x: dropout(x, training=True), jit_compile=jit_compile,
                      input_signature=[tf.TensorSpec([None, None], tf.bfloat16)])
  for shape in ([3, 5], [8, 33]):
    y = np.asarray(apply(tf.ones(shape, tf.bfloat16)), np.float32)
    assert y.shape == tuple(shape) and set(np.unique(y)) <= {0.0, 2.0}
    assert 0 < (y == 0).sum() < y.size


def test_defaults_for_mask_and_token_types(tiny_bert, loaded_model):
  ids = tiny_bert["inputs"]["input_ids"][:1]
  full, _ = loaded_model(input_ids=ids, training=False)
  explicit, _ = loaded_model(input_ids=ids, input_mask=np.ones_like(ids),
                             token_type_ids=np.zeros_like(ids), training=False)
  np.testing.assert_array_equal(full, explicit)


def test_save_then_load_round_trip_with_google_names(tiny_bert, config, loaded_model, tmp_path):
  prefix = str(tmp_path / "model.ckpt-7")
  modeling.save_checkpoint(loaded_model, prefix)
  names = dict(checkpoints.shapes(prefix))
  assert names == {n: list(v.shape) for n, v in loaded_model.checkpoint_variables().items()}
  assert names["bert/encoder/layer_1/attention/self/query/kernel"] == [32, 32]
  assert "bert/pooler/dense/kernel" in names and "bert/embeddings/LayerNorm/gamma" in names
  # Google's own checkpoint holds exactly the same names and shapes.
  assert names == checkpoints.shapes(tiny_bert["checkpoint"])
  fresh = modeling.BertModel(config)
  report = modeling.load_checkpoint(fresh, prefix)
  assert len(report.loaded) == len(names) and not report.unused
  for model in (fresh, loaded_model):
    sequence_output, pooled_output = model(**tiny_bert["inputs"], training=False)
    np.testing.assert_array_equal(pooled_output, loaded_model(**tiny_bert["inputs"])[1])
    conftest.assert_close(sequence_output, tiny_bert["sequence_output"])


def test_load_from_a_folder_uses_its_latest_checkpoint(tiny_bert, config, loaded_model, tmp_path):
  prefix = str(tmp_path / "model.ckpt-3")
  modeling.save_checkpoint(loaded_model, prefix)
  checkpoints.record(str(tmp_path), prefix, keep=5)
  report = modeling.load_checkpoint(modeling.BertModel(config), str(tmp_path))
  assert report.checkpoint == prefix


def test_latest_checkpoint_of_a_relative_folder(config, loaded_model, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  os.makedirs("out")
  for step in (3, 6):
    modeling.save_checkpoint(loaded_model, f"out/model.ckpt-{step}")
    checkpoints.record("out", f"out/model.ckpt-{step}", keep=5)
  assert checkpoints.latest("out") == "out/model.ckpt-6"
  assert checkpoints.complete("out") == ["out/model.ckpt-3", "out/model.ckpt-6"]
  # Written but not yet listed (a run killed in between) still counts.
  modeling.save_checkpoint(loaded_model, "out/model.ckpt-9")
  assert checkpoints.latest("out") == "out/model.ckpt-9"


def test_wrong_shape_names_variable_and_both_shapes(tiny_bert, config):
  bigger = modeling.BertConfig(**dict(config.to_dict(), intermediate_size=48))
  with pytest.raises(UserError) as error:
    modeling.load_checkpoint(modeling.BertModel(bigger), tiny_bert["checkpoint"])
  message = str(error.value)
  assert "bert/encoder/layer_0/intermediate/dense/kernel" in message
  assert "[32, 64]" in message and "[32, 48]" in message


def test_missing_variable_is_named(tiny_bert, config):
  deeper = modeling.BertConfig(**dict(config.to_dict(), num_hidden_layers=3))
  with pytest.raises(UserError, match=r"bert/encoder/layer_2/.*missing from the checkpoint"):
    modeling.load_checkpoint(modeling.BertModel(deeper), tiny_bert["checkpoint"])


def test_missing_checkpoint_mentions_the_readme_typo(tiny_bert, config):
  with pytest.raises(UserError, match="stray '.'"):
    modeling.load_checkpoint(modeling.BertModel(config), "." + tiny_bert["checkpoint"])
  with pytest.raises(UserError, match="no such checkpoint"):
    modeling.load_checkpoint(modeling.BertModel(config), tiny_bert["checkpoint"] + "x")
  with pytest.raises(UserError, match="without the file's extension"):
    modeling.load_checkpoint(modeling.BertModel(config), tiny_bert["checkpoint"] + ".index")


@pytest.mark.parametrize("change, message", [
    ({"hidden_size": 30}, "not a multiple of 'num_attention_heads'"),
    ({"num_hidden_layers": 0}, "'num_hidden_layers' must be a positive integer"),
    ({"hidden_act": "gelu_fast"}, "'hidden_act'"),
    ({"hidden_dropout_prob": 1.5}, "'hidden_dropout_prob'"),
    ({"vocab_size": "big"}, "'vocab_size'"),
])
def test_impossible_config_is_a_clear_error(config, tmp_path, change, message):
  path = tmp_path / "bert_config.json"
  path.write_text(json.dumps(dict(config.to_dict(), **change)))
  with pytest.raises(UserError, match=message) as error:
    modeling.BertConfig.from_json_file(str(path))
  assert str(path) in str(error.value)


def test_malformed_or_missing_config_file(tmp_path):
  path = tmp_path / "bert_config.json"
  path.write_text('{"vocab_size": 10,\n "hidden_size": }')
  with pytest.raises(UserError, match="line 2: not valid JSON"):
    modeling.BertConfig.from_json_file(str(path))
  path.write_text('{"hidden_size": 8}')
  with pytest.raises(UserError, match="'vocab_size' is missing"):
    modeling.BertConfig.from_json_file(str(path))
  with pytest.raises(UserError, match="cannot read"):
    modeling.BertConfig.from_json_file(str(tmp_path / "absent.json"))


def test_hugging_face_keys_are_ignored(config):
  hf = dict(config.to_dict(), model_type="bert", layer_norm_eps=1e-12, architectures=["BertModel"])
  assert modeling.BertConfig.from_dict(hf) == config


def test_layers_give_their_config(config):
  model = modeling.BertModel(config)
  assert model.get_config()["config"] == config.to_dict()
  assert model.encoder_layers[0].get_config()["config"]["hidden_size"] == 32
