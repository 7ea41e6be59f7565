"""The multi-label head on BERT's pooled output, and its loss.

As the original multi-label script built it: dropout 0.1 on the pooled output while training,
`logits = pooled · Wᵀ + b` with W `[num_labels, hidden]` (`loss/output_weights`) and b
(`loss/output_bias`), and with `--add_dense` a linear `Dense(num_labels)` on the logits
(`loss/dense/kernel`, `loss/dense/bias`). Probabilities are `sigmoid(logits)`; the loss is the
sigmoid cross-entropy averaged over examples and labels.
"""

import keras
import tensorflow as tf

import modeling

HEAD_SCOPE = "loss"


class MultiLabelClassifier(keras.Model):
  """BERT plus the sigmoid head.

  Call with a dict of int32 [batch, seq] tensors `input_ids`, `input_mask`, `segment_ids`.
  Returns float32 logits [batch, num_labels], also under a mixed-precision policy.
  """

  def __init__(self, bert_config, num_labels, add_dense=False, **kwargs):
    super().__init__(**kwargs)
    self.bert_config = bert_config
    self.num_labels = num_labels
    self.add_dense = add_dense
    self.bert = modeling.BertModel(bert_config, dtype=self.dtype_policy)
    self.dropout = modeling.Dropout(0.1)
    # The head runs in float32 whatever the policy: its cost is negligible, and the logits feed
    # the sigmoid and the loss, which must stay float32.
    self.output_weights = self.add_weight(
        name="output_weights", shape=(num_labels, bert_config.hidden_size),
        initializer=keras.initializers.TruncatedNormal(stddev=0.02), dtype="float32")
    self.output_bias = self.add_weight(name="output_bias", shape=(num_labels,),
                                       initializer="zeros", dtype="float32")
    self.dense = None
    if add_dense:
      self.dense = keras.layers.Dense(num_labels, name="dense", dtype="float32")
      self.dense.build((None, num_labels))
    self.built = True

  def call(self, features, training=False):
    _, pooled = self.bert(input_ids=features["input_ids"], input_mask=features["input_mask"],
                          token_type_ids=features["segment_ids"], training=training,
                          pooled_only=True)
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
            "num_labels": self.num_labels, "add_dense": self.add_dense}


def is_head_variable(name):
  return name.startswith(HEAD_SCOPE + "/")


def per_example_loss(labels, logits):
  """Sigmoid cross-entropy averaged over labels: float32 [batch]."""
  losses = tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32),
                                                   logits=tf.cast(logits, tf.float32))
  return tf.reduce_mean(losses, axis=-1)
