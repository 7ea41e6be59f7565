"""Cut-offs that turn probabilities into 0/1 predictions, and the dynamic ones' file.

`static`: one cut-off for every label. `dynamic`: per label, the threshold that maximises that
label's F1 on the dev split, found by an exact search over every distinct dev probability, and
saved as `thresholds.json` so that later eval and predict runs on the same checkpoint reuse it.
A label is predicted when its probability is at or above its threshold, in both cases.
"""

import json
import math
from typing import NamedTuple

import numpy as np

from errors import file_error
from fileio import atomic_write_text

THRESHOLDS_FILE = "thresholds.json"


class F1Thresholds(NamedTuple):
  """The outcome of the dynamic threshold search.

  Attributes:
    thresholds: np.ndarray [k] of float64, one per label.
    dev_f1: np.ndarray [k] of float64, the dev F1 of `p >= threshold`, each label.
    fallback_used: np.ndarray [k] of bool, True where the label had no positive in dev and got
      the fallback cut-off (its dev F1 is then 0, as scikit-learn's `zero_division=0` has it).
  """
  thresholds: np.ndarray
  dev_f1: np.ndarray
  fallback_used: np.ndarray


def static_predictions(probabilities, cut_off):
  """Returns 0/1 predictions `probabilities >= cut_off`.

  Args:
    probabilities: array-like [n, k] of float.
    cut_off: float for every label, or array-like [k] with one per label (the dynamic
      thresholds).

  Returns:
    np.ndarray [n, k] of int64.
  """
  return (np.asarray(probabilities) >= np.asarray(cut_off)).astype(np.int64)


def _best_threshold(labels, probabilities):
  """Finds the threshold with the highest F1 for one label with at least one positive.

  With the probabilities sorted in descending order, predicting `p >= v` for the distinct value
  v marks positive every example down to v's last occurrence, so the counts of true and all
  positives at every candidate come from cumulative sums: O(n log n) for the sort.

  Ties: the highest v reaching the best F1 wins (fewest positive predictions). The threshold is
  the midpoint between v and the next lower distinct probability: no dev probability lies in
  between, so `p >= threshold` predicts on dev exactly what `p >= v` does, while test
  probabilities close to v are not decided by which side of v they fall on. When v is the lowest
  probability, the threshold is v itself.

  Args:
    labels: np.ndarray [n] of 0/1, with at least one 1.
    probabilities: np.ndarray [n] of float64.

  Returns:
    (threshold, f1): two floats.
  """
  order = np.argsort(-probabilities, kind="stable")
  sorted_probabilities = probabilities[order]
  true_positives = np.cumsum(labels[order])
  # The last position of each run of equal probabilities: the candidates.
  ends = np.flatnonzero(np.append(sorted_probabilities[1:] != sorted_probabilities[:-1], True))
  # F1 = 2 TP / (2 TP + FP + FN) = 2 TP / (predicted positives + actual positives).
  f1 = 2 * true_positives[ends] / (ends + 1 + true_positives[-1])
  best = int(np.argmax(f1))  # The first maximum: the highest threshold.
  value = sorted_probabilities[ends[best]]
  if best + 1 == len(ends):
    return float(value), float(f1[best])
  below = sorted_probabilities[ends[best + 1]]
  midpoint = (value + below) / 2
  # Between adjacent floats the midpoint rounds to one of them; `below` must stay negative.
  return float(midpoint if midpoint > below else value), float(f1[best])


def best_f1_thresholds(labels, probabilities, fallback):
  """Chooses, per label, the threshold that maximises its F1 on the dev split.

  Every distinct dev probability is a candidate (an exact search, not a grid); see
  `_best_threshold` for the choice among ties and where exactly the threshold lies. Predicting
  `probabilities >= thresholds` on the same dev split makes exactly the predictions that scored
  `dev_f1`.

  Args:
    labels: array-like [n, k] of 0/1, the dev labels.
    probabilities: array-like [n, k] of float, the dev probabilities.
    fallback: float, the threshold of a label without any positive in dev (`--cut_off`).

  Returns:
    `F1Thresholds`.

  Raises:
    ValueError: the shapes differ, labels are not 0/1 or probabilities are not finite.
  """
  labels = np.asarray(labels, dtype=np.int64)
  probabilities = np.asarray(probabilities, dtype=np.float64)
  if labels.ndim != 2 or labels.shape != probabilities.shape:
    raise ValueError(f"labels {labels.shape} and probabilities {probabilities.shape} must be "
                     "the same [n, k]")
  if not np.isin(labels, (0, 1)).all():
    raise ValueError("labels must be 0 or 1")
  if not np.isfinite(probabilities).all():
    raise ValueError("probabilities hold NaN or infinity; did training diverge?")
  num_labels = labels.shape[1]
  thresholds = np.full([num_labels], float(fallback))
  dev_f1 = np.zeros([num_labels])
  fallback_used = ~labels.any(axis=0)
  for j in np.flatnonzero(~fallback_used):
    thresholds[j], dev_f1[j] = _best_threshold(labels[:, j], probabilities[:, j])
  return F1Thresholds(thresholds, dev_f1, fallback_used)


def cross_validated_predictions(labels, probabilities, fallback, num_folds=5, seed=0):
  """Out-of-fold 0/1 predictions on the dev split, for an honest estimate of dynamic cut-offs.

  The F1 of thresholds tuned on the split that scores them is optimistic: the search saw the
  answers. Here the split is cut into `num_folds` seeded folds, and each fold is predicted with
  thresholds tuned on the other folds; the metrics of these predictions estimate what the tuned
  thresholds give on unseen data.

  Args:
    labels: array-like [n, k] of 0/1.
    probabilities: array-like [n, k] of float.
    fallback: float, as for `best_f1_thresholds`.
    num_folds: int >= 2; fewer when n is smaller.
    seed: int, the fold assignment.

  Returns:
    np.ndarray [n, k] of int64, or None when n < 2 (no fold to tune on).
  """
  labels = np.asarray(labels, dtype=np.int64)
  probabilities = np.asarray(probabilities, dtype=np.float64)
  n = labels.shape[0]
  if n < 2:
    return None
  num_folds = min(num_folds, n)
  folds = np.random.default_rng(seed).permutation(n) % num_folds
  predictions = np.zeros(labels.shape, dtype=np.int64)
  for fold in range(num_folds):
    held_out = folds == fold
    found = best_f1_thresholds(labels[~held_out], probabilities[~held_out], fallback)
    predictions[held_out] = static_predictions(probabilities[held_out], found.thresholds)
  return predictions


def save_thresholds(path, label_names, found, checkpoint, dev_fingerprint):
  """Writes the dynamic thresholds as JSON, atomically, with what they were tuned on.

  Args:
    path: str, the file (`THRESHOLDS_FILE` in `--output_dir`).
    label_names: sequence of k str.
    found: `F1Thresholds` of k labels.
    checkpoint: `checkpoints.Identity` of the checkpoint whose dev probabilities were used.
    dev_fingerprint: str, identifies the dev features (data, vocab, casing, max_seq_length).
  """
  content = {
      "checkpoint_step": int(checkpoint.step),
      "checkpoint_digest": checkpoint.digest,
      "dev_features": dev_fingerprint,
      "labels": [
          {"label": name, "threshold": float(t), "dev_f1": float(f), "fallback": bool(b)}
          for name, t, f, b in zip(label_names, found.thresholds, found.dev_f1,
                                   found.fallback_used, strict=True)],
  }
  atomic_write_text(path, json.dumps(content, indent=2, allow_nan=False) + "\n")


def _is_number(value):
  """Returns whether a decoded JSON value is a finite number (not a bool)."""
  return (isinstance(value, (int, float)) and not isinstance(value, bool) and
          math.isfinite(value))


def _is_thresholds_content(content):
  """Returns whether decoded JSON is shaped as `save_thresholds` writes it."""
  return (isinstance(content, dict) and _is_number(content.get("checkpoint_step")) and
          isinstance(content.get("labels"), list) and
          all(isinstance(entry, dict) and isinstance(entry.get("label"), str) and
              _is_number(entry.get("threshold")) for entry in content["labels"]))


def _read_thresholds_file(path):
  """Returns the decoded content of a thresholds file, checked for shape.

  Raises:
    UserError: the file is missing, unreadable, not JSON or not shaped as `save_thresholds`
      writes it.
  """
  recompute = "rerun with --do_eval to recompute it"
  try:
    with open(path, encoding="utf-8") as f:
      content = json.load(f)
  except FileNotFoundError:
    raise file_error(path, None, "no such file; dynamic cut-offs need the thresholds that a "
                     "run with --do_eval computes on the dev split") from None
  except json.JSONDecodeError as e:
    raise file_error(path, e.lineno, f"not valid JSON ({e.msg}); {recompute}") from None
  except (OSError, UnicodeDecodeError) as e:
    raise file_error(path, None, f"cannot read it ({e}); {recompute}") from None
  if not _is_thresholds_content(content):
    raise file_error(path, None, "not a thresholds file: it needs a checkpoint_step and labels "
                     f"each with a label name and a finite threshold; {recompute}")
  return content


def load_thresholds(path, label_names, checkpoint, dev_fingerprint=None):
  """Reads the thresholds that `save_thresholds` wrote, checking they fit this run.

  Thresholds tuned on another checkpoint's dev probabilities, or on other dev features, are not
  this run's, so a mismatch is an error, not a warning. A file without the checkpoint's digest
  (written by an older version) does not fit either.

  Args:
    path: str, the file.
    label_names: sequence of k str, the task's labels in order.
    checkpoint: `checkpoints.Identity` of the checkpoint about to be used.
    dev_fingerprint: str identifying this run's dev features, or None not to check them (an
      export has no dev split).

  Returns:
    np.ndarray [k] of float64, in the order of `label_names`.

  Raises:
    UserError: the file is missing or corrupt, its labels are not `label_names` (in order), or it
      was computed on another checkpoint or other dev features; the message says to rerun with
      --do_eval.
  """
  content = _read_thresholds_file(path)
  names = [entry["label"] for entry in content["labels"]]
  rerun = "rerun with --do_eval to recompute them"
  if names != list(label_names):
    raise file_error(path, None, f"its labels ({', '.join(names)}) are not the task's "
                     f"({', '.join(label_names)}); {rerun}")
  step = content["checkpoint_step"]
  if step != checkpoint.step or content.get("checkpoint_digest") != checkpoint.digest:
    raise file_error(path, None, f"holds thresholds tuned on another checkpoint (step {step}) "
                     f"than {checkpoint.prefix} (step {checkpoint.step}); {rerun}")
  if dev_fingerprint is not None and content.get("dev_features") != dev_fingerprint:
    raise file_error(path, None, "holds thresholds tuned on other dev features (another dev "
                     f"file, vocabulary, casing or --max_seq_length); {rerun}")
  return np.asarray([entry["threshold"] for entry in content["labels"]], dtype=np.float64)
