"""Tests of the evaluation metrics, the eval results files and the prediction files."""

import json
import os

import numpy as np
import pytest
from sklearn import metrics as sk_metrics

import metrics
import predictions

NAMES = ["fear", "joy", "sadness"]


def random_split(seed, num_examples=40):
  """Returns (labels, probabilities, predictions) [n, 3]; "sadness" has no positive."""
  rng = np.random.default_rng(seed)
  labels = (rng.random([num_examples, 3]) < 0.4).astype(np.int64)
  labels[:, 2] = 0
  probabilities = rng.random([num_examples, 3])
  return labels, probabilities, (probabilities >= 0.5).astype(np.int64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metrics_match_sklearn(seed):
  labels, probabilities, predicted = random_split(seed)
  result = metrics.compute_metrics(labels, probabilities, NAMES, predicted)

  aucs = [sk_metrics.roc_auc_score(labels[:, j], probabilities[:, j]) for j in range(2)]
  assert [m.auc for m in result.per_label] == pytest.approx(aucs + [None])
  assert result.mean_auc == pytest.approx(np.mean(aucs))
  assert result.auc_averages["micro"] == pytest.approx(
      sk_metrics.roc_auc_score(labels.ravel(), probabilities.ravel()))
  assert result.auc_averages["macro"] is None and result.auc_averages["weighted"] is None
  assert result.label_ranking_average_precision == pytest.approx(
      sk_metrics.label_ranking_average_precision_score(labels, probabilities))
  assert result.hamming_loss == pytest.approx(sk_metrics.hamming_loss(labels, predicted))
  f1 = sk_metrics.f1_score(labels, predicted, average=None, zero_division=0)
  assert [m.f1 for m in result.per_label] == pytest.approx(list(f1))
  assert [m.support for m in result.per_label] == list(labels.sum(axis=0))
  assert [m.precision for m in result.per_label] == pytest.approx(list(
      sk_metrics.precision_score(labels, predicted, average=None, zero_division=0)))
  assert [m.recall for m in result.per_label] == pytest.approx(list(
      sk_metrics.recall_score(labels, predicted, average=None, zero_division=0)))
  # The original's "F1 score": per-label F1 weighted by support.
  assert result.mean_f1 == pytest.approx(np.average(f1, weights=labels.sum(axis=0)))
  for average in ("micro", "macro", "weighted", "samples"):
    assert result.f1_averages[average] == pytest.approx(
        sk_metrics.f1_score(labels, predicted, average=average, zero_division=0))
  assert result.subset_accuracy == pytest.approx(sk_metrics.accuracy_score(labels, predicted))


def test_auc_averages_when_every_label_has_both_classes():
  labels, probabilities, _ = random_split(3)
  labels[:2, 2] = 1
  result = metrics.compute_metrics(labels, probabilities, NAMES)
  for average in ("macro", "weighted"):
    assert result.auc_averages[average] == pytest.approx(
        sk_metrics.roc_auc_score(labels, probabilities, average=average))
  assert result.mean_auc == pytest.approx(result.auc_averages["macro"])


def test_without_predictions_only_threshold_free_metrics():
  labels, probabilities, _ = random_split(4)
  result = metrics.compute_metrics(labels, probabilities, NAMES)
  assert result.hamming_loss is None and result.mean_f1 is None and result.f1_averages is None
  assert all(m.f1 is None and m.precision is None for m in result.per_label)
  text = metrics.format_eval_results(result)
  assert text.startswith("AUC:\nfear\t") and "sadness\tundefined\n" in text
  assert "Mean AUC: " in text and "F1" not in text and "Hamming" not in text


def test_no_defined_auc():
  result = metrics.compute_metrics([[0, 0], [0, 0]], [[0.1, 0.2], [0.3, 0.4]], ["a", "b"])
  assert result.mean_auc is None and result.auc_averages["micro"] is None
  assert "Mean AUC: undefined\n" in metrics.format_eval_results(result)


def test_text_layout():
  labels = [[1, 0], [0, 1], [1, 0], [0, 0]]
  probabilities = [[0.9, 0.2], [0.4, 0.8], [0.6, 0.3], [0.1, 0.7]]
  predicted = [[1, 0], [0, 1], [1, 0], [0, 1]]
  text = metrics.format_eval_results(
      metrics.compute_metrics(labels, probabilities, ["a", "b"], predicted))
  assert text == ("AUC:\n"
                  "a\t1.00000\n"
                  "b\t1.00000\n"
                  "Mean AUC: 1.00000\n"
                  "Hamming Loss: 0.12500\n"
                  "F1 score:\n"
                  "a\t1.00000\t2\n"
                  "b\t0.66667\t1\n"
                  "Mean F1-score: 0.88889\n")


def test_write_eval_results_writes_valid_json(tmp_path):
  labels, probabilities, predicted = random_split(5)
  result = metrics.compute_metrics(labels, probabilities, NAMES, predicted)
  text_path, json_path = metrics.write_eval_results(tmp_path, "test_", result)
  assert os.path.basename(text_path) == "test_eval_results.txt"
  with open(text_path, encoding="utf-8") as f:
    assert f.read() == metrics.format_eval_results(result)

  def reject(token):
    raise AssertionError(f"invalid JSON token {token}")

  with open(json_path, encoding="utf-8") as f:
    content = json.load(f, parse_constant=reject)
  assert content["per_label"][2] == {"label": "sadness", "support": 0, "auc": None,
                                     "precision": 0.0, "recall": 0.0, "f1": 0.0}
  assert content["mean_f1"] == result.mean_f1 == content["f1_averages"]["weighted"]
  assert content["auc_averages"]["macro"] is None
  assert sorted(os.listdir(tmp_path)) == ["test_eval_results.json", "test_eval_results.txt"]


@pytest.mark.parametrize("labels,probabilities", [
    (np.zeros([0, 3]), np.zeros([0, 3])),
    (np.zeros([2, 2]), np.zeros([2, 2])),
    (np.zeros([2, 3]), np.zeros([3, 3])),
    (np.full([2, 3], 2), np.zeros([2, 3])),
    (np.zeros([2, 3]), np.full([2, 3], np.nan)),
])
def test_compute_metrics_rejects_bad_input(labels, probabilities):
  with pytest.raises(ValueError):
    metrics.compute_metrics(labels, probabilities, NAMES)


def read_tsv(path):
  with open(path, encoding="utf-8") as f:
    return [line.rstrip("\n").split("\t") for line in f]


def test_write_predictions(tmp_path):
  probabilities = np.array([[0.1, 0.30000001, 1e-8], [0.99999994, 0.5, 0.25]], np.float32)
  paths = predictions.write_predictions(tmp_path, ["7", "a1"], NAMES, probabilities,
                                        probabilities >= 0.3)
  rows = read_tsv(paths[0])
  assert rows[0] == ["id", *NAMES] and [r[0] for r in rows[1:]] == ["7", "a1"]
  # Every probability reads back as the same float32.
  assert (np.array([r[1:] for r in rows[1:]], np.float32) == probabilities).all()
  assert read_tsv(paths[1]) == [["id", *NAMES], ["7", "0", "1", "0"], ["a1", "1", "1", "0"]]
  assert sorted(os.listdir(tmp_path)) == ["test_results.tsv", "test_results_classes.tsv"]


def test_write_predictions_without_cut_off(tmp_path):
  paths = predictions.write_predictions(tmp_path, ["1"], ["a"], [[0.25]])
  assert [os.path.basename(p) for p in paths] == ["test_results.tsv"]
  assert read_tsv(paths[0]) == [["id", "a"], ["1", "0.25"]]
  assert os.listdir(tmp_path) == ["test_results.tsv"]


def test_write_predictions_rejects_mismatched_shapes(tmp_path):
  with pytest.raises(ValueError):
    predictions.write_predictions(tmp_path, ["1", "2"], ["a"], [[0.25]])
  with pytest.raises(ValueError):
    predictions.write_predictions(tmp_path, ["1"], ["a"], [[0.25]], [[1, 0]])
  assert not os.listdir(tmp_path)


def test_one_label_is_scored_as_its_positive_class():
  """A binary data set (kaggle-insults, say): scikit-learn reads [n, 1] as a binary target."""
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, (30, 1))
  probabilities = rng.random((30, 1))
  predictions = (probabilities >= 0.5).astype(int)
  result = metrics.compute_metrics(labels, probabilities, ["insult"], predictions)
  # The same as the label padded with an all-zero column, scored as multi-label.
  padded = [np.concatenate([a, np.zeros_like(a)], axis=1) for a in (labels, predictions)]
  f1 = sk_metrics.f1_score(labels[:, 0], predictions[:, 0])
  assert result.per_label[0].f1 == pytest.approx(f1)
  assert result.per_label[0].precision == pytest.approx(
      sk_metrics.precision_score(labels[:, 0], predictions[:, 0]))
  assert result.f1_averages == pytest.approx({
      "micro": f1, "macro": f1, "weighted": f1,
      "samples": sk_metrics.f1_score(*padded, average="samples", zero_division=0)})
