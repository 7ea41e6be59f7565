"""The classifier's options through training and the command line: positive weights in the
training step's loss, and a mean-pooled, bias-corrected run end to end."""

import os
import subprocess

import numpy as np
import tensorflow as tf

import checkpoints
import classifier
import modeling
import training
from tests.test_distribution import classifier_command, write_se0714


def test_training_step_loss_is_the_positive_weighted_loss(tiny_bert):
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  # Without dropout the training step's logits are those of a plain call.
  config = modeling.BertConfig(**dict(config.to_dict(), hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0))
  model = classifier.MultiLabelClassifier(config, 3)
  model.dropout.rate = 0.0
  modeling.load_checkpoint(model.bert, tiny_bert["checkpoint"])
  inputs = {"input_ids": tiny_bert["inputs"]["input_ids"],
            "input_mask": tiny_bert["inputs"]["input_mask"],
            "segment_ids": tiny_bert["inputs"]["token_type_ids"]}
  labels = np.array([[1, 0, 0], [1, 1, 0], [0, 0, 0]], np.float32)
  weights = np.array([2.0, 7.0, 10.0], np.float32)
  p = 1.0 / (1.0 + np.exp(-np.asarray(model(inputs), np.float64)))
  by_hand = np.sum(np.mean(-(weights * labels * np.log(p) + (1 - labels) * np.log(1 - p)),
                           axis=-1)) / 4  # A global batch of 4, of which this replica has 3.

  strategy = tf.distribute.get_strategy()
  optimizer = training.make_optimizer(model, 1e-3, 10, 0)
  train_loop = training.make_train_loop(model, optimizer, strategy, 4, pos_weight=weights)
  dataset = tf.data.Dataset.from_tensors((inputs, labels)).repeat()
  losses, _ = train_loop(iter(strategy.experimental_distribute_dataset(dataset)),
                         tf.constant(1))
  np.testing.assert_allclose(losses.numpy(), [by_hand], rtol=1e-5)


def test_mean_pooling_positive_weights_and_bias_correction_train_end_to_end(tiny_bert, tmp_path):
  data_dir, output_dir = tmp_path / "data", tmp_path / "out"
  write_se0714(data_dir)
  result = subprocess.run(
      classifier_command(tiny_bert, data_dir, output_dir, "--do_eval", "--do_predict",
                         "--cutoff_type=dynamic", "--pooling=mean", "--pos_weight=auto",
                         "--adam_bias_correction", "--learning_rate=1e-3"),
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))), capture_output=True,
      text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Positive weights, in label order: " in result.stderr
  names = checkpoints.shapes(checkpoints.latest(str(output_dir)))
  assert "loss/output_weights" in names and "bert/encoder/layer_1/output/dense/kernel" in names
  assert not [name for name in names if name.startswith("bert/pooler/")]
  with open(output_dir / "test_results.tsv", encoding="utf-8") as f:
    assert len(f.read().splitlines()) == 1 + 8
