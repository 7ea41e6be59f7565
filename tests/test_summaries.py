"""TensorBoard event files: scalars and PR curves, each step at most once, also across runs."""

import os

import numpy as np
import pytest
from tensorboard.plugins.pr_curve import metadata as pr_curve_metadata
import tensorflow as tf

import summaries


def events_in(logdir):
  """[(file, tag, step, value)] of every summary value in `logdir`, read with TF's own reader."""
  found = []
  for name in sorted(os.listdir(logdir)):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
      for value in event.summary.value:
        found.append((name, value.tag, event.step, tf.make_ndarray(value.tensor)))
  return found


def test_a_second_writer_appends_only_later_steps(tmp_path):
  logdir = str(tmp_path / "train")
  first = summaries.EventWriter(logdir)
  for step in (5, 10, 15):
    assert first.write_scalars(step, {"loss": 1.0 / step, "learning_rate": 1e-3}) == [
        "loss", "learning_rate"]
  assert first.write_scalars(15, {"loss": 9.0}) == []  # Same step again: refused.
  first.close()
  # A resumed run starts again from its checkpoint at step 10.
  second = summaries.EventWriter(logdir)
  assert second.write_scalars(15, {"loss": 2.0, "gradient_norm": 0.5}) == ["gradient_norm"]
  assert second.write_scalars(20, {"loss": 0.05}) == ["loss"]
  second.close()

  events = events_in(logdir)
  assert len({name for name, *_ in events}) == 2  # One file per run.
  loss = [(step, float(value)) for _, tag, step, value in events if tag == "loss"]
  assert loss == [(5, pytest.approx(0.2)), (10, pytest.approx(0.1)),
                  (15, pytest.approx(1 / 15)), (20, pytest.approx(0.05))]
  read = summaries.read_scalars(logdir)
  np.testing.assert_array_equal(read["loss"][0], [5, 10, 15, 20])
  np.testing.assert_array_equal(read["gradient_norm"][0], [15])


def test_nothing_new_leaves_no_file(tmp_path):
  logdir = tmp_path / "eval"
  writer = summaries.EventWriter(str(logdir))
  assert writer.write_scalars(3, {}) == []
  writer.close()
  assert not logdir.exists()


def test_a_truncated_file_is_read_up_to_its_last_whole_record(tmp_path):
  logdir = str(tmp_path / "train")
  writer = summaries.EventWriter(logdir)
  for step in (1, 2, 3):
    writer.write_scalars(step, {"loss": float(step)})
  writer.close()
  (path,) = [os.path.join(logdir, name) for name in os.listdir(logdir)]
  with open(path, "rb") as f:
    content = f.read()
  with open(path, "wb") as f:
    f.write(content[:-7])  # A run killed while writing step 3.
  np.testing.assert_array_equal(summaries.read_scalars(logdir)["loss"][0], [1, 2])
  assert summaries.EventWriter(logdir).write_scalars(3, {"loss": 3.0}) == ["loss"]


def test_estimator_simple_values_count_as_steps_on_disk(tmp_path):
  logdir = str(tmp_path / "eval")
  with tf.summary.create_file_writer(logdir).as_default():
    tf.summary.experimental.write_raw_pb(tf.compat.v1.Summary(value=[
        tf.compat.v1.Summary.Value(tag="auc", simple_value=0.75)]).SerializeToString(), step=40)
  read = summaries.read_scalars(logdir)
  assert read["auc"][0].tolist() == [40] and read["auc"][1][0] == pytest.approx(0.75)
  assert summaries.EventWriter(logdir).write_scalars(40, {"auc": 0.8}) == []


def test_pr_curves_hold_tensorboard_counts(tmp_path):
  logdir = str(tmp_path / "eval")
  labels = np.array([[1, 0], [0, 0], [1, 1], [0, 1], [1, 0]])
  probabilities = np.array([[0.9, 0.2], [0.6, 0.1], [0.4, 0.8], [0.1, 0.7], [0.7, 0.3]])
  writer = summaries.EventWriter(logdir)
  assert writer.write_pr_curves(7, labels, probabilities, ["a", "b"]) == [
      "a/pr_curves", "b/pr_curves"]
  assert writer.write_pr_curves(7, labels, probabilities, ["a", "b"]) == []
  writer.close()
  events = {tag: (step, value) for _, tag, step, value in events_in(logdir)}
  step, data = events["a/pr_curves"]
  assert step == 7 and data.shape == (6, summaries.PR_CURVE_THRESHOLDS)
  # Rows: TP, FP, TN, FN, precision, recall; at threshold 0.5 (index 100) label a has
  # p >= 0.5 for 0.9, 0.6, 0.7: two true positives, one false positive, one missed.
  tp, fp, tn, fn, precision, recall = data[:, 100]
  assert (tp, fp, tn, fn) == (2, 1, 1, 1)
  assert precision == pytest.approx(2 / 3) and recall == pytest.approx(2 / 3)
  (path,) = [os.path.join(logdir, name) for name in os.listdir(logdir)]
  assert {value.metadata.plugin_data.plugin_name
          for event in tf.compat.v1.train.summary_iterator(path)
          for value in event.summary.value} == {pr_curve_metadata.PLUGIN_NAME}


def test_metric_scalars_leave_out_the_undefined():
  metrics = {"mean_auc": 0.8, "label_ranking_average_precision": 0.9, "hamming_loss": None,
             "subset_accuracy": None, "auc_averages": {"micro": 0.7, "macro": None},
             "f1_averages": None,
             "per_label": [{"label": "joy", "auc": 0.8}, {"label": "fear", "auc": None}]}
  assert summaries.metric_scalars(metrics) == {
      "mean_auc": 0.8, "label_ranking_average_precision": 0.9, "auc/micro": 0.7,
      "auc/joy": 0.8}
