"""Multi-label evaluation metrics, as scikit-learn defines them, and the eval results files.

The text file keeps the original script's layout, whose numbers its README published: the plain
mean of the per-label AUCs ("Mean AUC"), scikit-learn's Hamming loss, and the support-weighted
mean of the per-label F1s ("Mean F1-score", scikit-learn's `average="weighted"`). The JSON file
beside it holds every number computed here.

Conventions:
  * A label's AUC is undefined when the split holds one class of it only; it is reported as
    undefined (None, JSON null, "undefined" in text) and left out of the mean. The micro, macro
    and weighted AUCs are undefined when scikit-learn cannot compute them.
  * Precision, recall and F1 use `zero_division=0`: a label never predicted has precision 0, a
    label without positives has recall 0, and either has F1 0. For samples-averaged F1 this
    means that an example without true or predicted labels scores 0, not 1.
  * Label ranking average precision gives an example without positive labels the score 1, as
    scikit-learn does.
"""

import dataclasses
import json
import os
from typing import Dict, Optional, Tuple

import numpy as np
from sklearn import metrics as sk_metrics

from fileio import atomic_write_text

_F1_AVERAGES = ("micro", "macro", "weighted", "samples")
_UNDEFINED = "undefined"


@dataclasses.dataclass(frozen=True)
class LabelMetrics:
  """The metrics of one label.

  Attributes:
    label: str, the label's name.
    support: int, the number of examples with this label.
    auc: float, ROC AUC; None when undefined (one class only).
    precision, recall, f1: float, at the cut-off; None when no cut-off applies.
  """
  label: str
  support: int
  auc: Optional[float]
  precision: Optional[float] = None
  recall: Optional[float] = None
  f1: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class EvalMetrics:
  """The metrics of one split; the fields after `auc_averages` are None without a cut-off.

  Attributes:
    num_examples: int, the number of labelled examples evaluated.
    per_label: tuple of `LabelMetrics`, in label order.
    mean_auc: float, the plain mean of the defined per-label AUCs; None if none is defined.
    auc_averages: dict from "micro", "macro", "weighted" to float or None (undefined).
    label_ranking_average_precision: float.
    hamming_loss: float, the share of wrong (example, label) decisions.
    mean_f1: float, the support-weighted mean of per-label F1 (= `f1_averages["weighted"]`).
    f1_averages: dict from "micro", "macro", "weighted", "samples" to float.
    subset_accuracy: float, the share of examples with every label right.
    thresholds_tuned_here: bool, True when the cut-offs were tuned on this same split (dynamic
      cut-offs on dev), which makes the F1 and Hamming loss above optimistic.
    cross_validated: with `thresholds_tuned_here`, a dict of `hamming_loss`, `mean_f1` and
      `f1_averages` of out-of-fold predictions (`thresholds.cross_validated_predictions`): an
      honest estimate; else None.
  """
  num_examples: int
  per_label: Tuple[LabelMetrics, ...]
  mean_auc: Optional[float]
  auc_averages: Dict[str, Optional[float]]
  label_ranking_average_precision: float
  hamming_loss: Optional[float] = None
  mean_f1: Optional[float] = None
  f1_averages: Optional[Dict[str, float]] = None
  subset_accuracy: Optional[float] = None
  thresholds_tuned_here: bool = False
  cross_validated: Optional[Dict[str, object]] = None


def _has_both_classes(labels):
  """Returns whether a 0/1 array holds both a 0 and a 1."""
  return bool(labels.size) and 0 < labels.sum() < labels.size


def compute_metrics(labels, probabilities, label_names, predictions=None,
                    out_of_fold_predictions=None):
  """Computes the evaluation metrics of one split.

  Args:
    labels: array-like [n, k] of 0/1, n >= 1; the caller leaves out examples without labels.
    probabilities: array-like [n, k] of float, the sigmoid outputs.
    label_names: sequence of k str.
    predictions: array-like [n, k] of 0/1 at the cut-off, or None when no cut-off applies, in
      which case only the threshold-free metrics (AUCs, ranking precision) are computed.
    out_of_fold_predictions: array-like [n, k] of 0/1, given when `predictions` come from
      thresholds tuned on this split: the cross-validated predictions that estimate them
      honestly (see `EvalMetrics.cross_validated`).

  Returns:
    `EvalMetrics`.

  Raises:
    ValueError: empty input, shapes that disagree with each other or with `label_names`, labels
      other than 0/1, or non-finite probabilities.
  """
  labels = np.asarray(labels, dtype=np.int64)
  probabilities = np.asarray(probabilities, dtype=np.float64)
  num_labels = len(label_names)
  if labels.ndim != 2 or labels.shape[0] == 0 or labels.shape[1] != num_labels:
    raise ValueError(f"labels must be [n >= 1, {num_labels}], got {labels.shape}")
  if probabilities.shape != labels.shape:
    raise ValueError(f"probabilities {probabilities.shape} differ from labels {labels.shape}")
  if not np.isin(labels, (0, 1)).all():
    raise ValueError("labels must be 0 or 1")
  if not np.isfinite(probabilities).all():
    raise ValueError("probabilities hold NaN or infinity; did training diverge?")

  aucs = [float(sk_metrics.roc_auc_score(labels[:, j], probabilities[:, j]))
          if _has_both_classes(labels[:, j]) else None for j in range(num_labels)]
  defined = [auc for auc in aucs if auc is not None]
  # Micro AUC pools every (example, label) pair; macro and weighted need every label's AUC.
  averages_defined = {"micro": _has_both_classes(labels),
                      "macro": len(defined) == num_labels,
                      "weighted": len(defined) == num_labels}
  auc_averages = {
      average: float(sk_metrics.roc_auc_score(labels, probabilities, average=average))
      if is_defined else None
      for average, is_defined in averages_defined.items()}
  threshold_free = EvalMetrics(
      num_examples=int(labels.shape[0]),
      per_label=tuple(LabelMetrics(label=name, support=int(support), auc=auc)
                      for name, support, auc in zip(label_names, labels.sum(axis=0), aucs)),
      mean_auc=float(np.mean(defined)) if defined else None,
      auc_averages=auc_averages,
      label_ranking_average_precision=float(
          sk_metrics.label_ranking_average_precision_score(labels, probabilities)))
  if predictions is None:
    return threshold_free

  decided = _decision_metrics(labels, predictions)
  precision, recall, f1 = _per_label_scores(labels, decided["predictions"])
  cross_validated = None
  if out_of_fold_predictions is not None:
    honest = _decision_metrics(labels, out_of_fold_predictions)
    cross_validated = {key: honest[key] for key in ("hamming_loss", "mean_f1", "f1_averages")}
  return dataclasses.replace(
      threshold_free,
      per_label=tuple(
          dataclasses.replace(m, precision=float(p), recall=float(r), f1=float(f))
          for m, p, r, f in zip(threshold_free.per_label, precision, recall, f1)),
      hamming_loss=decided["hamming_loss"],
      mean_f1=decided["mean_f1"],
      f1_averages=decided["f1_averages"],
      subset_accuracy=decided["subset_accuracy"],
      thresholds_tuned_here=out_of_fold_predictions is not None,
      cross_validated=cross_validated)


def _decision_metrics(labels, predictions):
  """The metrics of 0/1 `predictions` [n, k] against `labels` [n, k], as a dict."""
  predictions = np.asarray(predictions, dtype=np.int64)
  if predictions.shape != labels.shape:
    raise ValueError(f"predictions {predictions.shape} differ from labels {labels.shape}")
  f1_averages = {average: _f1(labels, predictions, average) for average in _F1_AVERAGES}
  return {"predictions": predictions,
          "hamming_loss": float(sk_metrics.hamming_loss(labels, predictions)),
          "mean_f1": f1_averages["weighted"],
          "f1_averages": f1_averages,
          "subset_accuracy": float(sk_metrics.accuracy_score(labels, predictions))}


def _per_label_scores(labels, predictions):
  """Precision, recall and F1 of each label: three float arrays [k].

  scikit-learn reads an [n, 1] matrix as a binary target and would score both of its classes;
  one label is scored as the positive class of its column.
  """
  if labels.shape[1] == 1:
    scores = sk_metrics.precision_recall_fscore_support(
        labels[:, 0], predictions[:, 0], average="binary", zero_division=0)[:3]
    return tuple(np.array([score]) for score in scores)
  return sk_metrics.precision_recall_fscore_support(labels, predictions, average=None,
                                                    zero_division=0)[:3]


def _f1(labels, predictions, average):
  """scikit-learn's multi-label F1 at `average`, also for one label.

  With one label (see `_per_label_scores`) the micro, macro and weighted averages are that
  label's F1, and an example's F1 is 1 when its label and prediction are both 1, else 0 (an
  example with neither scores 0, `zero_division=0`): the samples average is their mean.
  """
  if labels.shape[1] == 1:
    if average == "samples":
      return float(np.mean(labels[:, 0] & predictions[:, 0]))
    return float(_per_label_scores(labels, predictions)[2][0])
  return float(sk_metrics.f1_score(labels, predictions, average=average, zero_division=0))


def _number(value):
  """Formats a metric for the text file: 5 decimals, or "undefined" for None."""
  return _UNDEFINED if value is None else f"{value:.5f}"


def format_eval_results(metrics):
  """Returns the text of `eval_results.txt` in the original script's layout.

  Without a cut-off (no F1 computed) only the AUC part is written.

  Args:
    metrics: `EvalMetrics`.

  Returns:
    str, lines ending in "\\n".
  """
  lines = ["AUC:"]
  lines += [f"{m.label}\t{_number(m.auc)}" for m in metrics.per_label]
  lines.append(f"Mean AUC: {_number(metrics.mean_auc)}")
  if metrics.f1_averages is not None:
    lines.append(f"Hamming Loss: {_number(metrics.hamming_loss)}")
    lines.append("F1 score:")
    lines += [f"{m.label}\t{_number(m.f1)}\t{m.support}" for m in metrics.per_label]
    lines.append(f"Mean F1-score: {_number(metrics.mean_f1)}")
  if metrics.cross_validated is not None:
    honest = metrics.cross_validated
    lines.append("The F1 scores and Hamming loss above use thresholds tuned on this same split, "
                 "so they are optimistic. Cross-validated (each fold predicted with thresholds "
                 "tuned on the other folds):")
    lines.append(f"Cross-validated Hamming Loss: {_number(honest['hamming_loss'])}")
    lines.append(f"Cross-validated Mean F1-score: {_number(honest['mean_f1'])}")
  return "\n".join(lines) + "\n"


def write_eval_results(output_dir, prefix, metrics):
  """Writes `{prefix}eval_results.txt` and `{prefix}eval_results.json` atomically.

  Args:
    output_dir: str, an existing folder.
    prefix: str, "" for the dev split, "test_" for the test split.
    metrics: `EvalMetrics`.

  Returns:
    (text_path, json_path): the two files written.
  """
  text_path = os.path.join(output_dir, f"{prefix}eval_results.txt")
  json_path = os.path.join(output_dir, f"{prefix}eval_results.json")
  atomic_write_text(text_path, format_eval_results(metrics))
  # Undefined metrics are None (JSON null) already; allow_nan=False makes sure no NaN, which
  # JSON cannot hold, slips through as the invalid token NaN.
  atomic_write_text(json_path,
                    json.dumps(dataclasses.asdict(metrics), indent=2, allow_nan=False) + "\n")
  return text_path, json_path
