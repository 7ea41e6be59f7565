"""Tests of the cut-offs: the exact F1 search against brute force, and thresholds.json."""

import dataclasses
import json

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest
from sklearn import metrics as sk_metrics

import checkpoints
from errors import UserError
import thresholds

GRID = np.linspace(0, 1, 1001)


def f1_at(labels, probabilities, threshold):
  """F1 of `probabilities >= threshold` for one label, as scikit-learn defines it."""
  return sk_metrics.f1_score(labels, probabilities >= threshold, zero_division=0)


def brute_force_best(labels, probabilities):
  """Returns (best F1, highest threshold reaching it) over a fine grid and every probability.

  F1 = 2 TP / (2 TP + FP + FN) is counted directly for all candidates at once; sklearn checks
  the winner.
  """
  candidates = np.unique(np.concatenate([GRID, probabilities]))[::-1]
  predicted = probabilities[None, :] >= candidates[:, None]
  true_positives = (predicted & (labels[None, :] == 1)).sum(axis=1)
  f1 = 2 * true_positives / (predicted.sum(axis=1) + labels.sum())
  best = int(np.argmax(f1))
  assert f1_at(labels, probabilities, candidates[best]) == pytest.approx(f1[best], abs=1e-12)
  return f1[best], candidates[best]


def check_against_brute_force(labels, probabilities, fallback=0.5):
  result = thresholds.best_f1_thresholds(labels, probabilities, fallback)
  for j in range(labels.shape[1]):
    y, p = labels[:, j], probabilities[:, j].astype(np.float64)
    if not y.any():
      assert result.fallback_used[j] and result.thresholds[j] == fallback
      assert result.dev_f1[j] == 0
      continue
    assert not result.fallback_used[j]
    best_f1, highest = brute_force_best(y, p)
    assert result.dev_f1[j] == pytest.approx(best_f1, abs=1e-12)
    # Predicting with the saved threshold reproduces the dev F1 exactly...
    assert f1_at(y, p, result.thresholds[j]) == pytest.approx(result.dev_f1[j], abs=1e-12)
    # ... and ties go to the highest threshold: the same dev predictions as it makes.
    assert ((p >= result.thresholds[j]) == (p >= highest)).all()


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.integers(0, 1), min_size=3, max_size=3), min_size=n, max_size=n),
    st.lists(st.lists(st.one_of(st.sampled_from([0.0, 0.25, 0.5, 0.5000001, 1.0]),
                                st.floats(0, 1)), min_size=3, max_size=3),
             min_size=n, max_size=n))))
def test_exact_search_equals_brute_force(data):
  labels, probabilities = data
  check_against_brute_force(np.array(labels), np.array(probabilities))


@pytest.mark.parametrize("seed", range(4))
def test_exact_search_on_larger_random_splits(seed):
  rng = np.random.default_rng(seed)
  labels = (rng.random([500, 4]) < [0.02, 0.2, 0.5, 0.0]).astype(np.int64)
  # Rounded to two decimals: many ties.
  probabilities = np.round(np.clip(labels * 0.2 + rng.random([500, 4]) * 0.8, 0, 1), 2)
  check_against_brute_force(labels, probabilities, fallback=0.3)


def test_all_equal_probabilities_predict_everything():
  labels = np.array([[1], [0], [1], [0]])
  result = thresholds.best_f1_thresholds(labels, np.full([4, 1], 0.7), 0.5)
  assert result.thresholds[0] == 0.7 and result.dev_f1[0] == pytest.approx(2 / 3)
  check_against_brute_force(labels, np.full([4, 1], 0.7))


def test_threshold_is_the_midpoint_below_the_best_value():
  labels = np.array([[1], [0], [1], [0]])
  result = thresholds.best_f1_thresholds(labels, np.array([[0.9], [0.8], [0.7], [0.1]]), 0.5)
  assert result.thresholds[0] == pytest.approx(0.4) and result.dev_f1[0] == pytest.approx(0.8)


def test_adjacent_floats_keep_the_lower_one_negative():
  below = 0.5
  value = np.nextafter(below, 1.0)
  labels = np.array([[1], [0]])
  result = thresholds.best_f1_thresholds(labels, np.array([[value], [below]]), 0.5)
  assert result.thresholds[0] == value and result.dev_f1[0] == 1.0


def test_float32_probabilities():
  rng = np.random.default_rng(7)
  labels = (rng.random([200, 2]) < 0.3).astype(np.int64)
  probabilities = rng.random([200, 2]).astype(np.float32)
  result = thresholds.best_f1_thresholds(labels, probabilities, 0.5)
  predicted = thresholds.static_predictions(probabilities, result.thresholds)
  for j in range(2):
    assert f1_at(labels[:, j], predicted[:, j], 1) == pytest.approx(result.dev_f1[j], abs=1e-12)


def test_label_without_positives_falls_back():
  labels = np.array([[1, 0], [0, 0], [1, 0]])
  result = thresholds.best_f1_thresholds(labels, np.array([[0.9, 0.8], [0.2, 0.1], [0.6, 0.3]]),
                                         0.35)
  assert list(result.fallback_used) == [False, True]
  assert result.thresholds[1] == 0.35 and result.dev_f1[1] == 0.0


def test_best_f1_thresholds_rejects_bad_input():
  with pytest.raises(ValueError):
    thresholds.best_f1_thresholds(np.zeros([2, 2]), np.zeros([2, 3]), 0.5)
  with pytest.raises(ValueError):
    thresholds.best_f1_thresholds(np.full([2, 2], 3), np.zeros([2, 2]), 0.5)
  with pytest.raises(ValueError):
    thresholds.best_f1_thresholds(np.ones([2, 2]), np.full([2, 2], np.nan), 0.5)


def test_static_predictions_include_the_cut_off():
  probabilities = np.array([[0.5, 0.49999], [1.0, 0.0]], np.float32)
  assert thresholds.static_predictions(probabilities, 0.5).tolist() == [[1, 0], [1, 0]]
  assert thresholds.static_predictions(probabilities, [0.6, 0.0]).tolist() == [[0, 1], [1, 1]]


NAMES = ["fear", "joy", "sadness"]


CHECKPOINT = checkpoints.Identity(prefix="out/model.ckpt-1200", step=1200, digest="ab" * 32)
DEV = "dev-fingerprint"


def saved(tmp_path):
  path = str(tmp_path / thresholds.THRESHOLDS_FILE)
  found = thresholds.F1Thresholds(np.array([0.1 + 0.2, 0.5, 1 / 3]), np.array([0.8, 0.0, 0.25]),
                                  np.array([False, True, False]))
  thresholds.save_thresholds(path, NAMES, found, CHECKPOINT, DEV)
  return path


def test_round_trip(tmp_path):
  path = saved(tmp_path)
  loaded = thresholds.load_thresholds(path, NAMES, CHECKPOINT, DEV)
  assert loaded.tolist() == [0.1 + 0.2, 0.5, 1 / 3]  # Exact, not approximately.
  with open(path, encoding="utf-8") as f:
    content = json.load(f)
  assert content["checkpoint_step"] == 1200
  assert content["checkpoint_digest"] == CHECKPOINT.digest and content["dev_features"] == DEV
  assert content["labels"][1] == {"label": "joy", "threshold": 0.5, "dev_f1": 0.0,
                                  "fallback": True}
  # An export has no dev split: it checks the checkpoint only.
  assert thresholds.load_thresholds(path, NAMES, CHECKPOINT).tolist() == loaded.tolist()


@pytest.mark.parametrize("checkpoint", [
    dataclasses.replace(CHECKPOINT, step=1300),
    dataclasses.replace(CHECKPOINT, digest="cd" * 32),  # Another run, same step.
])
def test_another_checkpoint_is_an_error(tmp_path, checkpoint):
  path = saved(tmp_path)
  with pytest.raises(UserError, match="another checkpoint.*--do_eval"):
    thresholds.load_thresholds(path, NAMES, checkpoint, DEV)


def test_other_dev_features_are_an_error(tmp_path):
  path = saved(tmp_path)
  with pytest.raises(UserError, match="other dev features.*--do_eval"):
    thresholds.load_thresholds(path, NAMES, CHECKPOINT, "another dev file")


def test_a_file_without_digest_does_not_fit(tmp_path):
  path = tmp_path / thresholds.THRESHOLDS_FILE
  path.write_text('{"checkpoint_step": 1200, "labels": [{"label": "fear", "threshold": 0.5}, '
                  '{"label": "joy", "threshold": 0.5}, {"label": "sadness", "threshold": 0.5}]}')
  with pytest.raises(UserError, match="another checkpoint"):
    thresholds.load_thresholds(str(path), NAMES, CHECKPOINT, DEV)


def test_labels_must_match(tmp_path):
  path = saved(tmp_path)
  with pytest.raises(UserError, match="are not the task's"):
    thresholds.load_thresholds(path, ["fear", "sadness", "joy"], CHECKPOINT)
  with pytest.raises(UserError, match="are not the task's"):
    thresholds.load_thresholds(path, NAMES[:2], CHECKPOINT)


def test_missing_file(tmp_path):
  with pytest.raises(UserError, match="thresholds.json: no such file.*--do_eval"):
    thresholds.load_thresholds(str(tmp_path / "thresholds.json"), NAMES, CHECKPOINT)


def test_cross_validated_predictions_use_thresholds_tuned_on_the_other_folds():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, size=(40, 3))
  probabilities = np.clip(labels * 0.3 + rng.random((40, 3)) * 0.7, 0, 1)
  predicted = thresholds.cross_validated_predictions(labels, probabilities, 0.5, num_folds=4,
                                                     seed=3)
  folds = np.random.default_rng(3).permutation(40) % 4
  for fold in range(4):
    held_out = folds == fold
    tuned = thresholds.best_f1_thresholds(labels[~held_out], probabilities[~held_out], 0.5)
    np.testing.assert_array_equal(
        predicted[held_out], thresholds.static_predictions(probabilities[held_out],
                                                           tuned.thresholds))
  # Tuned on the same rows, F1 can only be as high or higher than out of fold.
  in_sample = thresholds.static_predictions(
      probabilities, thresholds.best_f1_thresholds(labels, probabilities, 0.5).thresholds)
  per_label_f1 = lambda p: sk_metrics.f1_score(labels, p, average=None, zero_division=0)
  assert (per_label_f1(in_sample) >= per_label_f1(predicted)).all()
  assert thresholds.cross_validated_predictions(labels[:1], probabilities[:1], 0.5) is None


@pytest.mark.parametrize("content,fragment", [
    ('{"checkpoint_step": 1,\n "labels": [', "line 2: not valid JSON"),
    ("[]", "not a thresholds file"),
    ('{"checkpoint_step": 1}', "not a thresholds file"),
    ('{"checkpoint_step": 1, "labels": [{"label": "fear"}]}', "not a thresholds file"),
    ('{"checkpoint_step": 1, "labels": [{"label": "fear", "threshold": NaN}]}',
     "not a thresholds file"),
    ('{"checkpoint_step": true, "labels": []}', "not a thresholds file"),
])
def test_corrupt_file(tmp_path, content, fragment):
  path = tmp_path / "thresholds.json"
  path.write_text(content, encoding="utf-8")
  with pytest.raises(UserError, match=fragment):
    thresholds.load_thresholds(str(path), NAMES, CHECKPOINT)
  path.write_bytes(b"\xff\xfe")
  with pytest.raises(UserError, match="cannot read it"):
    thresholds.load_thresholds(str(path), NAMES, CHECKPOINT)
