"""Runs Google's own BERT `modeling.py` (from bert-tensorflow) in TF1 graph mode: the oracle.

Run as a script, in its own process: it needs `TF_USE_LEGACY_KERAS=1` (for `tf.layers.dense`
in Google's pooler) and a stand-in for `tf.contrib.layers.layer_norm`, neither of which may leak
into the product or into the test process. Test-only.

  python tests/google_reference.py --config bert_config.json --inputs in.npz --outputs out.npz \
      [--init_checkpoint PREFIX] [--save_checkpoint PREFIX] [--seed N]

With `--init_checkpoint` the weights come from that checkpoint; without it they are Google's
random initialisation, and `--save_checkpoint` writes them with TF1's `Saver`, which makes a real
TF1-format checkpoint. `in.npz` holds `input_ids`, `input_mask`, `token_type_ids` (int32
[batch, seq]); `out.npz` gets `sequence_output` and `pooled_output` (float32).
"""

import argparse
import os
import sys
import types

os.environ["TF_USE_LEGACY_KERAS"] = "1"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # pylint: disable=g-import-not-at-top
import tensorflow.compat.v1 as tf  # pylint: disable=g-import-not-at-top


def _contrib_layer_norm(inputs, begin_norm_axis=-1, begin_params_axis=-1, scope=None):
  """What `tf.contrib.layers.layer_norm` computed for Google's arguments: ε = 1e-12, beta then
  gamma created under the scope `LayerNorm`."""
  del begin_norm_axis, begin_params_axis  # Google passes -1 for both.
  with tf.variable_scope(scope, default_name="LayerNorm"):
    size = inputs.shape[-1:]
    beta = tf.get_variable("beta", shape=size, initializer=tf.zeros_initializer())
    gamma = tf.get_variable("gamma", shape=size, initializer=tf.ones_initializer())
    mean, variance = tf.nn.moments(inputs, [-1], keepdims=True)
    return tf.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma,
                                     variance_epsilon=1e-12)


def _import_google_modeling():
  contrib = types.ModuleType("tensorflow.contrib")
  contrib.layers = types.SimpleNamespace(layer_norm=_contrib_layer_norm)
  sys.modules["tensorflow.contrib"] = contrib
  from bert import modeling  # pylint: disable=g-import-not-at-top
  # Google's code knows only its tanh GELU; a model converted from Hugging Face says
  # "gelu_exact" (see convert_hf_checkpoint.py), which is x·Φ(x) with the error function.
  google_get_activation = modeling.get_activation
  def get_activation(name):
    if name == "gelu_exact":
      return lambda x: 0.5 * x * (1.0 + tf.math.erf(x / np.sqrt(2.0)))
    return google_get_activation(name)
  modeling.get_activation = get_activation
  return modeling


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--config", required=True)
  parser.add_argument("--inputs", required=True)
  parser.add_argument("--outputs", required=True)
  parser.add_argument("--init_checkpoint")
  parser.add_argument("--save_checkpoint")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args()

  modeling = _import_google_modeling()
  tf.disable_eager_execution()
  tf.set_random_seed(args.seed)
  inputs = np.load(args.inputs)
  config = modeling.BertConfig.from_json_file(args.config)
  placeholders = {k: tf.placeholder(tf.int32, inputs[k].shape, name=k)
                  for k in ("input_ids", "input_mask", "token_type_ids")}
  model = modeling.BertModel(config=config, is_training=False,
                             use_one_hot_embeddings=False, **placeholders)
  if args.init_checkpoint:
    names = {v.name.split(":")[0]: v.name.split(":")[0] for v in tf.global_variables()}
    tf.train.init_from_checkpoint(args.init_checkpoint, names)
  with tf.Session() as session:
    session.run(tf.global_variables_initializer())
    sequence_output, pooled_output = session.run(
        [model.get_sequence_output(), model.get_pooled_output()],
        feed_dict={placeholders[k]: inputs[k] for k in placeholders})
    if args.save_checkpoint:
      tf.train.Saver().save(session, args.save_checkpoint)
  np.savez(args.outputs, sequence_output=sequence_output, pooled_output=pooled_output)


if __name__ == "__main__":
  main()
