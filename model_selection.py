"""Dev evaluation during training: the best checkpoint by a dev metric, and early stopping.

Every `--eval_every_steps` steps (by default once an epoch) and at the last step, the training
loop hands the model to an `Evaluator`, which scores the dev split, logs one line and writes the
metrics to TensorBoard's eval/ folder at that step. With `--keep_best=METRIC` the weights of the
best evaluation so far are saved in `OUTPUT_DIR/best/`, apart from the rolling checkpoints so
that `--keep_checkpoint_max` never deletes them, beside a record `best/best.json`:

  {"metric", "value", "step", "evaluations_without_improvement", "stopped_early",
   "evaluations": [[step, value], ...]}

The record names the best checkpoint; it is written after that checkpoint and before the older
one is removed, so it always names a complete checkpoint. It is also what a resumed run goes on
from: it compares against the best so far, counts patience on, and does not evaluate again the
steps it lists (a resume repeats the steps since the last rolling checkpoint, with the same data
order and dropout, to the same weights).

F1 is measured at the static `--cut_off`, not at thresholds tuned on dev: a checkpoint chosen by
F1 at thresholds tuned on the same split that scores them would be tuned on dev twice.
"""

import dataclasses
import json
import os
import shutil

from absl import logging
import numpy as np

import checkpoints
import distribution
from errors import UserError
import fileio
import inference
import metrics
import summaries
import thresholds

BEST_DIR = "best"
RECORD_FILE = "best.json"

# --keep_best's metrics, all higher-is-better, from a split's `metrics.EvalMetrics`.
METRICS = {"mean_auc": lambda result: result.mean_auc,
           "micro_f1": lambda result: result.f1_averages["micro"],
           "macro_f1": lambda result: result.f1_averages["macro"],
           "weighted_f1": lambda result: result.f1_averages["weighted"]}


@dataclasses.dataclass(frozen=True)
class Record:
  """The best evaluation so far and the early-stopping count (see the module docstring).

  Attributes:
    metric: str, a key of `METRICS`.
    value: float, the best dev score.
    step: int, the step of the best checkpoint, `best/model.ckpt-STEP`.
    evaluations_without_improvement: int, evaluations since the best one.
    stopped_early: bool, whether training stopped for lack of improvement.
    evaluations: tuple of (step, value), every evaluation so far, in order.
  """
  metric: str
  value: float
  step: int
  evaluations_without_improvement: int
  stopped_early: bool
  evaluations: tuple


def updated(record, metric, step, value, patience):
  """The record after an evaluation at `step` that scored `value`.

  A tie is no improvement: the earlier checkpoint stays. `patience` (0: off) is the number of
  evaluations without improvement after which training stops.

  Returns:
    (the new `Record`, whether `value` is the new best).
  """
  evaluations = (record.evaluations if record else ()) + ((step, value),)
  if record is None or value > record.value:
    return Record(metric, value, step, 0, False, evaluations), True
  waited = record.evaluations_without_improvement + 1
  return dataclasses.replace(record, evaluations_without_improvement=waited,
                             stopped_early=bool(patience) and waited >= patience,
                             evaluations=evaluations), False


def best_dir(output_dir):
  return os.path.join(output_dir, BEST_DIR)


def best_prefix(output_dir, record):
  """The prefix of the record's best checkpoint."""
  return os.path.join(best_dir(output_dir), f"model.ckpt-{record.step}")


def read_record(output_dir, metric):
  """Returns `output_dir`'s `Record`, or None when there is none.

  Raises:
    UserError: the record is unreadable, or was kept for another metric than `metric`.
  """
  path = os.path.join(best_dir(output_dir), RECORD_FILE)
  if not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      content = json.load(f)
    record = Record(**dict(content, evaluations=tuple(
        (int(step), float(value)) for step, value in content["evaluations"])))
  except (OSError, ValueError, TypeError, KeyError) as e:
    raise UserError(f"{path} is unreadable ({e}); remove the folder {best_dir(output_dir)} to "
                    "start the record afresh") from None
  if record.metric != metric:
    raise UserError(f"{path} keeps the best checkpoint by {record.metric}, not by {metric}: "
                    f"use --keep_best={record.metric}")
  return record


def write_record(output_dir, record):
  os.makedirs(best_dir(output_dir), exist_ok=True)
  fileio.atomic_write_text(os.path.join(best_dir(output_dir), RECORD_FILE),
                           json.dumps(dataclasses.asdict(record), indent=2) + "\n")


def save_best(variables, output_dir, record):
  """Writes {name: variable} as the record's best checkpoint, then the record; drops the older.

  Only the model's weights and step are kept: the best checkpoint is for eval and predict, and
  training resumes from the rolling checkpoints.
  """
  prefix = best_prefix(output_dir, record)
  checkpoints.write(prefix, variables)
  write_record(output_dir, record)
  checkpoints.record(best_dir(output_dir), prefix, keep=1)


def forget(output_dir):
  """Removes the best checkpoint and its record: a run that starts at step 0 keeps its own."""
  if os.path.isdir(best_dir(output_dir)):
    logging.info("Removing %s, kept by an earlier run that this one starts over",
                 best_dir(output_dir))
    shutil.rmtree(best_dir(output_dir))


def load_best(model, strategy, output_dir, metric):
  """Loads the best checkpoint's weights into `model` (see `inference.load`).

  Returns:
    Its `checkpoints.Identity` on the chief; None on other workers.

  Raises:
    UserError: `output_dir` holds no best checkpoint by `metric`.
  """
  prefix = None
  if distribution.is_chief(strategy):
    record = read_record(output_dir, metric)
    if record is None:
      raise UserError(f"--keep_best={metric}: {best_dir(output_dir)} holds no best checkpoint; "
                      "train with --keep_best, or leave the flag out to use the latest "
                      "checkpoint")
    prefix = best_prefix(output_dir, record)
    logging.info("The best checkpoint by dev %s: %s (step %d, %.5f)", metric, prefix,
                 record.step, record.value)
  return inference.load(model, strategy, output_dir, None, checkpoint=prefix)


def check_dev_labels(labels, has_labels, metric):
  """Checks that dev can score `metric` (None: any metric) before training starts.

  Raises:
    UserError: dev has no labelled example, or mean AUC would be undefined throughout.
  """
  if not has_labels.any():
    raise UserError("evaluating during training needs a dev split with labels, and it has none")
  scored = labels[has_labels]
  if metric == "mean_auc" and not any(0 < column.sum() < column.size for column in scored.T):
    raise UserError("--keep_best=mean_auc: no label of the dev split has both positive and "
                    "negative examples, so its AUC is undefined; choose an F1 metric")


class Evaluator:
  """The training loop's `on_evaluate` (see `training.run`): scores dev, keeps the best, and
  decides whether to stop.

  Every worker computes the probabilities (their replicas predict together); the chief scores
  them, writes, and decides; every worker gets its decision.
  """

  def __init__(self, model, strategy, output_dir, probabilities, dev_labels, has_labels,
               label_names, cut_off, metric, patience, fresh_start):
    """Reads the record on the chief (forgets it where training starts at step 0).

    Args:
      model: the `classifier.MultiLabelClassifier` being trained.
      strategy: the `tf.distribute.Strategy`.
      output_dir: str.
      probabilities: a function of no argument returning the model's dev probabilities,
        float32 [n, k], in input order.
      dev_labels: int [n, k] of 0/1, the dev split's labels.
      has_labels: bool [n], which dev examples are scored.
      label_names: sequence of k str.
      cut_off: float, the static cut-off of the F1 scores.
      metric: a key of `METRICS`, or None to evaluate and log only.
      patience: int, evaluations without improvement before stopping; 0: never.
      fresh_start: bool, whether training starts at step 0 (no checkpoint to resume).
    """
    check_dev_labels(dev_labels, has_labels, metric)
    self._model = model
    self._strategy = strategy
    self._output_dir = output_dir
    self._probabilities = probabilities
    self._labels = dev_labels[has_labels]
    self._has_labels = has_labels
    self._label_names = list(label_names)
    self._cut_off = cut_off
    self._metric = metric
    self._patience = patience
    self._is_chief = distribution.is_chief(strategy)
    self.record = None
    if self._is_chief and metric:
      if fresh_start:
        forget(output_dir)
      self.record = read_record(output_dir, metric)
    last_step = self.record.evaluations[-1][0] if self.record else -1
    self._evaluated_up_to, stopped = distribution.chief_values(
        strategy, [last_step, bool(self.record and self.record.stopped_early)])
    self.stopped_early = bool(stopped)
    self._events = (summaries.EventWriter(os.path.join(output_dir, summaries.EVAL_DIR))
                    if self._is_chief else None)

  def __call__(self, step):
    """Evaluates the model at `step`; returns whether training should stop there."""
    if step <= self._evaluated_up_to:
      return False  # The record counted this step before the run was interrupted.
    probabilities = self._probabilities()[self._has_labels]
    stop = False
    if self._is_chief:
      result = metrics.compute_metrics(
          self._labels, probabilities, self._label_names,
          thresholds.static_predictions(probabilities, self._cut_off))
      self._events.write_scalars(step, summaries.metric_scalars(dataclasses.asdict(result)))
      line = f"Dev at step {step}: " + ", ".join(
          f"{name} {_number(score(result))}" for name, score in METRICS.items())
      if self._metric:
        stop = self._keep(step, METRICS[self._metric](result))
        line += (f"; best {self._metric} {self.record.value:.5f} at step {self.record.step}, "
                 f"{self.record.evaluations_without_improvement} evaluation(s) without "
                 "improvement")
      logging.info("%s", line)
    [stop] = distribution.chief_values(self._strategy, [stop])
    return bool(stop)

  def _keep(self, step, value):
    """Updates the record with `value` at `step`, saving a new best; returns whether to stop."""
    self.record, improved = updated(self.record, self._metric, step, value, self._patience)
    if improved:
      variables = dict(self._model.checkpoint_variables())
      variables[checkpoints.GLOBAL_STEP] = np.int64(step)
      save_best(variables, self._output_dir, self.record)
    else:
      write_record(self._output_dir, self.record)
    if self.record.stopped_early:
      logging.info("No improvement of dev %s in %d evaluations: the best checkpoint stays "
                   "that of step %d", self._metric, self._patience, self.record.step)
    return self.record.stopped_early

  def close(self):
    if self._events:
      self._events.close()


def _number(value):
  return "undefined" if value is None else f"{value:.5f}"
