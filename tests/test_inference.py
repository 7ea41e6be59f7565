"""inference.py: bucketed prediction gives the fixed-padding probabilities, in input order."""

import os
import time

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classifier
from errors import UserError
import features
import inference
import modeling
import tokenization
from processors.base import InputExample
from tests import clitools
from tests import conftest


# One batch of all 23 examples; batches of 64 tokens (3 to 16 rows, by width), exactly as wide
# as their longest example or rounded up to 8, predicted one, two or three at a time.
@pytest.mark.parametrize("tokens_per_batch,length_multiple,in_flight",
                         [(2048, 8, 2), (64, 1, 2), (64, 8, 1), (64, 1, 3)])
def test_bucketed_prediction_equals_fixed_padding_in_input_order(tiny_bert, monkeypatch,
                                                                  tokens_per_batch,
                                                                  length_multiple, in_flight):
  monkeypatch.setattr(inference, "PREDICT_TOKENS_PER_BATCH", tokens_per_batch)
  monkeypatch.setattr(inference, "CPU_BATCHES_IN_FLIGHT", in_flight)
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  model = classifier.MultiLabelClassifier(config, 3)
  modeling.load_checkpoint(model.bert, tiny_bert["checkpoint"])
  rng = np.random.default_rng(5)
  examples = [InputExample(guid=str(i), text_a=" ".join(rng.choice(conftest.TINY_WORDS, n)),
                           text_b=" ".join(rng.choice(conftest.TINY_WORDS, 3)) if i % 3 else None)
              for i, n in enumerate(rng.integers(1, 25, size=23))]
  tokenizer = tokenization.FullTokenizer(tiny_bert["vocab_file"], True)
  converted = features.convert_examples(examples, tokenizer, 32, 3)
  spread_logits(model, converted)
  strategy = tf.distribute.get_strategy()
  bucketed = inference.predict_probabilities(model, strategy, converted, 4, bucket_by_length=True,
                                             pad_to_max=False, length_multiple=length_multiple)
  fixed = inference_probabilities(model, strategy, converted, bucket=False, pad=True)
  assert bucketed.shape == fixed.shape == (23, 3)
  # The head multiplies the pooled output's rounding (~1e-7 of its ~0.3) by ~1000: up to 1e-4
  # in the probabilities. Two examples' rows differ by more than 0.05, and attending to the
  # padding (a missing mask) moves every row by more than 0.09.
  tolerance = 1e-3
  rows_apart = np.abs(fixed[:, None] - fixed[None, :]).max(axis=2) + np.eye(23)
  assert rows_apart.min() > 50 * tolerance
  np.testing.assert_allclose(bucketed, fixed, rtol=0, atol=tolerance)
  # Row i is example i: the same as predicting that example alone.
  for i in (0, 7, 22):
    alone = features.convert_examples([examples[i]], tokenizer, 32, 3)
    np.testing.assert_allclose(
        inference_probabilities(model, strategy, alone, bucket=False, pad=False)[0],
        bucketed[i], rtol=0, atol=tolerance)
  assert len(set(converted.lengths.tolist())) > 5  # The buckets really differ in width.


def test_batches_in_flight_only_for_one_replica_on_the_cpu():
  assert inference.batches_in_flight(tf.distribute.get_strategy()) == (
      inference.CPU_BATCHES_IN_FLIGHT)

  class TwoReplicas:
    num_replicas_in_sync = 2

  assert inference.batches_in_flight(TwoReplicas()) == 1


SHARE_CPU_CORES = """
import json
import os
import sys
import inference
import tensorflow as tf
if sys.argv[1] == "started":
  tf.constant(1.0) + 1.0  # The runtime starts with its default threads.
on_tpu = inference.share_cpu_cores(use_tpu=True)
shared = inference.share_cpu_cores(use_tpu=False)
print(json.dumps({"on_tpu": on_tpu, "shared": shared,
                  "threads": tf.config.threading.get_intra_op_parallelism_threads(),
                  "cores": len(os.sched_getaffinity(0))}))
"""


def share_cpu_cores_in_process(runtime, **environment):
  """What `SHARE_CPU_CORES` prints in a new process, its runtime "fresh" or "started"."""
  return clitools.printed_json(
      clitools.run_python(SHARE_CPU_CORES, runtime, env={**os.environ, **environment}))


def test_prediction_gives_each_batch_in_flight_its_share_of_the_cores():
  fresh = share_cpu_cores_in_process("fresh")
  expected = max(1, fresh["cores"] // inference.CPU_BATCHES_IN_FLIGHT)
  assert fresh["on_tpu"] is None
  assert fresh["shared"] == fresh["threads"] == expected
  # Once the runtime has started its threads stay (0: TensorFlow's default, every core).
  started = share_cpu_cores_in_process("started")
  assert started["shared"] is None and started["threads"] == 0
  # The user's own setting stands.
  assert share_cpu_cores_in_process("fresh", TF_NUM_INTRAOP_THREADS="3")["shared"] is None


def test_batches_in_flight_keep_dataset_order_and_raise_a_batch_error():
  """Later batches may finish first; the results still come back in dataset order."""
  finished = []

  def predict_step(batch):
    if batch == 6:
      raise ValueError("batch 6")
    time.sleep(0.05 * (batch % 3 == 0))  # Batches 0 and 3 finish after the one beside them.
    finished.append(batch)
    return tf.constant([float(batch)]), tf.constant([batch])

  results = list(inference._predicted_batches(predict_step, range(6), in_flight=2))
  assert [int(index[0]) for _, index in results] == list(range(6))
  assert [float(p[0]) for p, _ in results] == list(range(6))
  assert finished != list(range(6))  # Two really ran at once.
  with pytest.raises(ValueError, match="batch 6"):
    list(inference._predicted_batches(predict_step, range(8), in_flight=2))


def spread_logits(model, converted):
  """Sets the head so that the examples' logits spread with a standard deviation of 2.

  A random tiny BERT gives every text nearly the same pooled output (they differ by ~3e-4 in
  each unit), so that a random head's probabilities all lie within 1e-5 of 0.5: closer than
  the rows of two examples need be told apart.
  """
  _, pooled = model.bert(input_ids=converted.input_ids, input_mask=converted.input_mask,
                         token_type_ids=converted.segment_ids, training=False)
  pooled = np.asarray(pooled, np.float64)
  weights = np.random.default_rng(0).normal(size=(pooled.shape[1], model.num_labels))
  weights *= 2 / ((pooled - pooled.mean(axis=0)) @ weights).std(axis=0)
  model.output_weights.assign(weights.T.astype(np.float32))
  model.output_bias.assign((-pooled.mean(axis=0) @ weights).astype(np.float32))


def inference_probabilities(model, strategy, converted, bucket, pad):
  return inference.predict_probabilities(model, strategy, converted, 4, bucket_by_length=bucket,
                                         pad_to_max=pad)


def test_a_cls_trained_head_is_not_read_with_mean_pooling(tiny_bert, tmp_path):
  """The mean-pooled model has no pooler to load: without a check it would load silently."""
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  trained = classifier.MultiLabelClassifier(config, 3)
  checkpoints.write(str(tmp_path / "model.ckpt-5"), trained.checkpoint_variables())
  checkpoints.record(str(tmp_path), str(tmp_path / "model.ckpt-5"), keep=1)
  strategy = tf.distribute.get_strategy()
  with pytest.raises(UserError, match="--pooling=cls"):
    inference.load(classifier.MultiLabelClassifier(config, 3, pooling="mean"), strategy,
                   str(tmp_path), None)
  # Google's pre-trained checkpoint has a pooler but no head: mean pooling may start from it.
  assert inference.load(classifier.MultiLabelClassifier(config, 3, pooling="mean"), strategy,
                        str(tmp_path / "empty"), tiny_bert["checkpoint"]) is not None
  assert inference.load(classifier.MultiLabelClassifier(config, 3), strategy, str(tmp_path),
                        None).step == 5
