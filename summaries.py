"""TensorBoard event files of a run: training curves, dev and test metrics, PR curves.

The layout under `--output_dir` is the Estimator's, so `tensorboard --logdir=OUTPUT_DIR` shows a
run's folders side by side, and a parent folder of several runs compares them:

  train/  `loss`, `learning_rate`, `gradient_norm`, `examples_per_second`, every log step
  eval/   the dev split's metrics and per-label PR curves, at the checkpoint's step
  test/   the same for the test split, when it has labels

A run resumed from a checkpoint repeats the steps between that checkpoint and the point where the
previous run stopped, and an eval run may be repeated on the same checkpoint. TensorBoard would
draw a repeated step as a line going back, so each tag's step is written at most once: a writer
reads the steps already in its folder and writes only later ones. The first value written for a
step stays (a resumed run recomputes the same steps on the same data order).
"""

import os

import numpy as np
from tensorboard.plugins.pr_curve import summary as pr_curve_summary
import tensorflow as tf

TRAIN_DIR = "train"
EVAL_DIR = "eval"
TEST_DIR = "test"

# TensorBoard's default resolution of a PR curve.
PR_CURVE_THRESHOLDS = 201
_PR_CURVE_SUFFIX = "/pr_curves"


def _event_files(logdir):
  """The event files directly in `logdir`, oldest first (their names start with a timestamp)."""
  if not os.path.isdir(logdir):
    return []
  return sorted(os.path.join(logdir, name) for name in os.listdir(logdir)
                if name.startswith("events.out.tfevents."))


def read_events(logdir):
  """Yields (tag, step, value) of every summary value in `logdir`'s event files, in file order.

  A file cut short by a killed run is read up to its last whole record.

  Args:
    logdir: str, a folder such as `OUTPUT_DIR/train`; missing means no events.

  Yields:
    (str, int, np.ndarray or None): the tag, the step and the value (a scalar has shape []);
    None for what is neither a tensor nor a TF1 `simple_value` (images, histograms).
  """
  for path in _event_files(logdir):
    try:
      for record in tf.data.TFRecordDataset(path):
        event = tf.compat.v1.Event.FromString(record.numpy())
        for value in event.summary.value:
          yield value.tag, int(event.step), _value_array(value)
    except tf.errors.DataLossError:
      continue


def _value_array(value):
  """The number(s) of a `Summary.Value`: TF2 writes tensors, TF1's Estimator `simple_value`."""
  if value.HasField("tensor"):
    return tf.make_ndarray(value.tensor)
  if value.HasField("simple_value"):
    return np.asarray(value.simple_value)
  return None


def read_scalars(logdir):
  """Returns {tag: (steps int64 [m], values float64 [m])} of the scalars in `logdir`, by step."""
  series = {}
  for tag, step, value in read_events(logdir):
    if value is not None and value.size == 1:
      series.setdefault(tag, []).append((step, float(value.reshape(()))))
  result = {}
  for tag, points in series.items():
    points.sort()
    result[tag] = (np.array([s for s, _ in points], np.int64),
                   np.array([v for _, v in points], np.float64))
  return result


def metric_scalars(metrics):
  """The scalars of one split's metrics, as eval/ and test/ hold them.

  Args:
    metrics: a dict shaped as `eval_results.json` (`dataclasses.asdict` of
      `metrics.EvalMetrics`).

  Returns:
    {tag: float}: `mean_auc`, `auc/micro|macro|weighted`, `label_ranking_average_precision`,
    `hamming_loss`, `subset_accuracy`, `f1/micro|macro|weighted|samples` and `auc/LABEL` per
    label; undefined metrics (None), and those of a run without a cut-off, are left out.
  """
  scalars = {"mean_auc": metrics["mean_auc"],
             "label_ranking_average_precision": metrics["label_ranking_average_precision"],
             "hamming_loss": metrics["hamming_loss"],
             "subset_accuracy": metrics["subset_accuracy"]}
  scalars.update({f"auc/{average}": value
                  for average, value in metrics["auc_averages"].items()})
  scalars.update({f"f1/{average}": value
                  for average, value in (metrics["f1_averages"] or {}).items()})
  scalars.update({f"auc/{m['label']}": m["auc"] for m in metrics["per_label"]})
  return {tag: float(value) for tag, value in scalars.items() if value is not None}


class EventWriter:
  """Writes summaries into one folder, each tag's step at most once (see the module docstring).

  The event file is created at the first value written, so that a run that has nothing new to
  say leaves no empty file.
  """

  def __init__(self, logdir):
    self.logdir = logdir
    self._last_steps = {}
    for tag, step, _ in read_events(logdir):
      self._last_steps[tag] = max(step, self._last_steps.get(tag, step))
    self._writer = None

  def _is_new(self, tag, step):
    if step <= self._last_steps.get(tag, -1):
      return False
    self._last_steps[tag] = step
    return True

  def _summary_writer(self):
    if self._writer is None:
      self._writer = tf.summary.create_file_writer(self.logdir)
    return self._writer

  def write_scalars(self, step, scalars):
    """Writes {tag: float} at `step`, leaving out the tags that already have this step or later.

    Returns:
      list of str, the tags written.
    """
    written = [tag for tag in scalars if self._is_new(tag, step)]
    if written:
      with self._summary_writer().as_default():
        for tag in written:
          tf.summary.scalar(tag, float(scalars[tag]), step=step)
      self._writer.flush()
    return written

  def write_pr_curves(self, step, labels, probabilities, label_names):
    """Writes one PR curve per label (TensorBoard's pr_curves plugin), tagged `LABEL/pr_curves`.

    Args:
      step: int, the checkpoint step evaluated.
      labels: array-like [n, k] of 0/1.
      probabilities: array-like [n, k] of float in [0, 1].
      label_names: sequence of k str.

    Returns:
      list of str, the tags written.
    """
    labels = np.asarray(labels).astype(bool)
    probabilities = np.asarray(probabilities, np.float64)
    written = []
    for j, name in enumerate(label_names):
      if not self._is_new(name + _PR_CURVE_SUFFIX, step):
        continue
      summary = pr_curve_summary.pb(name, labels[:, j], probabilities[:, j],
                                    num_thresholds=PR_CURVE_THRESHOLDS)
      with self._summary_writer().as_default():
        tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=step)
      written.append(name + _PR_CURVE_SUFFIX)
    if written:
      self._writer.flush()
    return written

  def close(self):
    if self._writer is not None:
      self._writer.close()
      self._writer = None
