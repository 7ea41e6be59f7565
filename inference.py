"""Eval and predict: which checkpoint to use, and the probabilities it gives, in input order."""

from absl import logging
import numpy as np
import tensorflow as tf

import checkpoints
import classifier
import features as features_lib
from errors import UserError


def load(model, output_dir, init_checkpoint):
  """Loads the weights to predict with, as the Estimator chose them.

  The latest checkpoint in `output_dir` wins over `init_checkpoint`: the original README's
  predict command passes the pre-trained checkpoint and still predicts with the fine-tuned one.

  Returns:
    (checkpoint prefix, its global step).

  Raises:
    UserError: there is no checkpoint to load, or it does not fit the model.
  """
  source = checkpoints.latest(output_dir) or init_checkpoint
  if not source:
    raise UserError(f"nothing to predict with: no checkpoint in --output_dir {output_dir} and "
                    "no --init_checkpoint")
  report = checkpoints.restore(model.checkpoint_variables(), source,
                               optional=classifier.is_head_variable)
  if report.absent:
    logging.warning("%s has no classifier head (%s): its predictions are those of an untrained "
                    "head. Train first (--do_train) or point --output_dir at a fine-tuned run.",
                    report.checkpoint, ", ".join(report.absent))
  step = checkpoints.global_step(report.checkpoint)
  logging.info("Predicting with %s (step %d)", report.checkpoint, step)
  return report.checkpoint, step


def predict_probabilities(model, strategy, features, batch_size, bucket_by_length, pad_to_max):
  """Returns sigmoid probabilities, float32 [n, num_labels], row i for example i."""
  dataset = strategy.experimental_distribute_dataset(features_lib.predict_dataset(
      features, batch_size, bucket_by_length, pad_to_max))

  # One trace for every batch width and size: the signature leaves both dimensions open.
  @tf.function(input_signature=[dataset.element_spec])
  def predict_step(batch):
    inputs, example_index = batch
    probabilities = strategy.run(lambda x: tf.sigmoid(model(x, training=False)), args=(inputs,))
    return (strategy.gather(probabilities, axis=0), strategy.gather(example_index, axis=0))

  indices, rows = [], []
  for batch in dataset:
    probabilities, example_index = predict_step(batch)
    rows.append(probabilities.numpy())
    indices.append(example_index.numpy())
  if not rows:
    return np.zeros([0, model.num_labels], np.float32)
  return features_lib.restore_order(np.concatenate(indices), np.concatenate(rows))
