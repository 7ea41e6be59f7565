"""The multi-label head on BERT's pooled output, and its loss.

As the original multi-label script built it: dropout 0.1 on the pooled output while training,
`logits = pooled · Wᵀ + b` with W `[num_labels, hidden]` (`loss/output_weights`) and b
(`loss/output_bias`), and with `--add_dense` a linear `Dense(num_labels)` on the logits
(`loss/dense/kernel`, `loss/dense/bias`). Probabilities are `sigmoid(logits)`; the loss is the
sigmoid cross-entropy averaged over examples and labels.

Two choices the original did not offer:
  * pooling "mean": the pooled vector is the mean of the last layer over the real tokens
    instead of BERT's pooler (tanh(dense) of [CLS]). Sentence-transformer checkpoints such as
    all-MiniLM-L6-v2 were trained that way, and their pooler never was. The model then has no
    `bert/pooler/*` variables: none is loaded, trained or saved.
  * positive weights: the loss of each label's positive examples is multiplied by a per-label
    weight, such as `positive_weights` computes from the training labels for sparse labels.
"""

import keras
import numpy as np
import tensorflow as tf

import modeling

HEAD_SCOPE = "loss"
POOLINGS = ("cls", "mean")
# The most a positive example of a rare label weighs: SE0714's and PsychExp's ratios (6 to 8.4)
# stay whole, while MovieLens' rarest genres (up to 67 negatives per positive) would otherwise
# let a few dozen examples dominate the loss.
POSITIVE_WEIGHT_CAP = 10.0


def skips_padding(device, use_xla):
  """Whether the classifier skips the padding in BERT's dense layers when predicting on `device`
  ("cpu", "gpu" or "tpu"): on a CPU without XLA (see `modeling.BertModel.call`'s
  `real_tokens_only`).

  XLA compiles for static shapes, and the real tokens' count is not one; on a GPU it was not
  measured. On a 2-core CPU (AVX2, all-MiniLM-L6-v2) psychexp's test split, whose batches are
  ~6% padding, predicted 4-5% faster (medians of 10 passes alternated in one process, twice).
  Training keeps the padded layout: on psychexp's bucketed batches no gain was measurable (0.97
  median over 20 alternated chunks of 8 steps, 1.02 in total), and the padded layout draws the
  same dropout masks as before, so a seed still trains the same model.
  """
  return device == "cpu" and not use_xla


class MultiLabelClassifier(keras.Model):
  """BERT plus the sigmoid head.

  Call with a dict of int32 [batch, seq] tensors `input_ids`, `input_mask`, `segment_ids`.
  Returns float32 logits [batch, num_labels], also under a mixed-precision policy.

  `pooling` is "cls" (BERT's pooler, as the original) or "mean" (the mean of the last layer over
  the real tokens; the model has no pooler). With `skip_padding`, prediction (`training` False)
  runs BERT's dense layers on the real tokens alone (see `skips_padding`): the same logits, less
  work. `draw_weights` is BERT's (see `modeling.BertModel`); the head's weights are drawn always.
  """

  def __init__(self, bert_config, num_labels, add_dense=False, pooling="cls",
               skip_padding=False, draw_weights=True, **kwargs):
    super().__init__(**kwargs)
    if pooling not in POOLINGS:
      raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    self.bert_config = bert_config
    self.num_labels = num_labels
    self.add_dense = add_dense
    self.pooling = pooling
    self.skip_padding = skip_padding
    self.draw_weights = draw_weights
    self.bert = modeling.BertModel(bert_config, add_pooler=pooling == "cls",
                                   draw_weights=draw_weights, dtype=self.dtype_policy)
    self.dropout = modeling.Dropout(0.1, dtype="float32")
    # The head runs in float32 whatever the policy: its cost is negligible, and the logits feed
    # the sigmoid and the loss, which must stay float32.
    self.output_weights = self.add_weight(
        name="output_weights", shape=(num_labels, bert_config.hidden_size),
        initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype="float32",
        autocast=False)
    self.output_bias = self.add_weight(name="output_bias", shape=(num_labels,),
                                       initializer="zeros", dtype="float32", autocast=False)
    self.dense = None
    if add_dense:
      self.dense = keras.layers.Dense(num_labels, name="dense", dtype="float32")
      self.dense.build((None, num_labels))
    self.built = True

  def call(self, features, training=False):
    # With the pooler, the last block need only compute [CLS] (`pooled_only`).
    sequence, pooled = self.bert(
        input_ids=features["input_ids"], input_mask=features["input_mask"],
        token_type_ids=features["segment_ids"], training=training,
        pooled_only=self.pooling == "cls", real_tokens_only=self.skip_padding and not training)
    if self.pooling == "mean":
      pooled = masked_mean(sequence, features["input_mask"])
    pooled = self.dropout(tf.cast(pooled, tf.float32), training=training)
    logits = tf.matmul(pooled, self.output_weights, transpose_b=True) + self.output_bias
    if self.dense is not None:
      logits = self.dense(logits)
    return logits

  def checkpoint_variables(self):
    """{Google name: variable}: BERT's `bert/...` and the head's `loss/...`."""
    variables = self.bert.checkpoint_variables()
    variables[f"{HEAD_SCOPE}/output_weights"] = self.output_weights
    variables[f"{HEAD_SCOPE}/output_bias"] = self.output_bias
    if self.dense is not None:
      variables[f"{HEAD_SCOPE}/dense/kernel"] = self.dense.kernel
      variables[f"{HEAD_SCOPE}/dense/bias"] = self.dense.bias
    return variables

  def get_config(self):
    return {**super().get_config(), "bert_config": self.bert_config.to_dict(),
            "num_labels": self.num_labels, "add_dense": self.add_dense,
            "pooling": self.pooling, "skip_padding": self.skip_padding,
            "draw_weights": self.draw_weights}


def masked_mean(sequence_output, input_mask):
  """The mean of the vectors of the real tokens ([CLS] and [SEP] included), padding left out.

  Args:
    sequence_output: [batch, seq, hidden], any float dtype.
    input_mask: int [batch, seq], 1 on real tokens, 0 on padding.

  Returns:
    float32 [batch, hidden]; zeros for a row without real tokens.
  """
  mask = tf.cast(input_mask, tf.float32)[:, :, tf.newaxis]
  total = tf.reduce_sum(tf.cast(sequence_output, tf.float32) * mask, axis=1)
  return total / tf.maximum(tf.reduce_sum(mask, axis=1), 1.0)


def is_head_variable(name):
  return name.startswith(HEAD_SCOPE + "/")


def positive_weights(labels, cap=POSITIVE_WEIGHT_CAP):
  """Per label, the number of negatives per positive in `labels`, at most `cap`.

  Args:
    labels: array-like [n, num_labels] of 0/1, the training labels.
    cap: the largest weight; a label without positives gets it.

  Returns:
    float32 [num_labels], for `per_example_loss`'s `pos_weight`.
  """
  labels = np.asarray(labels, np.float64)
  positives = labels.sum(axis=0)
  ratios = (labels.shape[0] - positives) / np.maximum(positives, 1.0)
  return np.where(positives > 0, np.minimum(ratios, cap), cap).astype(np.float32)


def per_example_loss(labels, logits, pos_weight=None):
  """Sigmoid cross-entropy averaged over labels: float32 [batch].

  With `pos_weight` (float [num_labels]), label j's loss on a positive example is multiplied
  by `pos_weight[j]`: -(w·y·log σ(z) + (1 - y)·log(1 - σ(z))).
  """
  labels = tf.cast(labels, tf.float32)
  logits = tf.cast(logits, tf.float32)
  if pos_weight is None:
    losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits)
  else:
    losses = tf.nn.weighted_cross_entropy_with_logits(
        labels=labels, logits=logits, pos_weight=tf.constant(pos_weight, tf.float32))
  return tf.reduce_mean(losses, axis=-1)
