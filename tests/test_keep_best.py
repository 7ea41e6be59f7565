"""--eval_every_steps, --keep_best and --early_stopping_patience: dev evaluation during
training, the best checkpoint, early stopping, and a resume that goes on from the record."""

from concurrent import futures
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classifier
import model_selection
import modeling
import summaries
import training
from errors import UserError
from tests import clitools
from tests import conftest
from tests.test_distribution import classifier_command, write_se0714

# 120 rows: a dev hold-out of 12, 108 to train on: 4 epochs of batch 8 are 54 steps.
STEPS = 54
# Every 4 steps, and the last.
EVALUATED = list(range(4, STEPS, 4)) + [STEPS]
# Evaluations every 4 steps straddle the checkpoints of every 10: a run killed after an
# evaluation resumes from a checkpoint before it.
KEEP_BEST_FLAGS = ("--keep_best=mean_auc", "--eval_every_steps=4", "--num_train_epochs=4",
                   "--learning_rate=1e-3", "--save_checkpoints_steps=10",
                   "--keep_checkpoint_max=1", "--log_steps=2", "--cutoff_type=static")
# Patience 1 at learning rate 0, evaluating once an epoch (see `fixture_runs`): 3 epochs of
# 13.5 steps are 40 steps, an epoch's evaluation every ceil(40 / 3) = 14.
STOPPED_FLAGS = ("--keep_best=micro_f1", "--early_stopping_patience=1", "--learning_rate=0",
                 "--num_train_epochs=3", "--save_checkpoints_steps=100")
DEV_LINE = re.compile(r"Dev at step (\d+): mean_auc (\d\.\d+)")


def logged_evaluations(log):
  """[(step, mean AUC)] of the run's 'Dev at step' lines."""
  return [(int(step), float(auc)) for step, auc in DEV_LINE.findall(log)]


def read_record(output_dir):
  with open(os.path.join(output_dir, "best", "best.json"), encoding="utf-8") as f:
    return json.load(f)


def command(tiny_bert, data_dir, output_dir, *extra):
  """A run_classifier.py command line (without the interpreter) on the tiny model."""
  return classifier_command(tiny_bert, data_dir, output_dir, *extra)[2:]


@pytest.fixture(name="data_dir", scope="module")
def fixture_data_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("keep_best_data")
  write_se0714(folder, n_train=120)
  return folder


def run_and_kill(args, output_dir, log_path):
  """Runs `args` and kills it (SIGKILL) once its record lists an evaluation after step 10, its
  first checkpoint; returns the record then."""
  with open(log_path, "wb") as stderr:
    process = subprocess.Popen([sys.executable, "run_classifier.py", *args],
                               cwd=conftest.REPO_DIR, stdout=subprocess.DEVNULL, stderr=stderr)
    try:
      deadline = time.time() + 240
      while not (output_dir / "best" / "best.json").exists() or not any(
          step > 10 for step, _ in read_record(output_dir)["evaluations"]):
        assert process.poll() is None and time.time() < deadline, (
            log_path.read_text(errors="replace")[-3000:])
        time.sleep(0.01)
    finally:  # The kill under test, or the end of a run that failed the test.
      process.send_signal(signal.SIGKILL)
      process.wait()
  return read_record(output_dir)


@pytest.fixture(name="runs", scope="module")
def fixture_runs(tiny_bert, data_dir, tmp_path_factory):
  """Every run of the module, in two rounds of three side by side (a run is mostly TensorFlow's
  start-up and tracing, on one core):

    1. `best`: --keep_best, then eval and predict. `stopped`: early stopping; it trains at
       learning rate 0, so that every evaluation scores the same, none improves on the first,
       and patience 1 stops at the second. `killed`: the command of `best`, killed after an
       evaluation that its checkpoints had not reached.
    2. `predicted`: predict only, with --keep_best, on a copy of `best`. `stopped` and `killed`
       run again.

  Returns:
    {name: folder}, {name: log} (round 2's runs of a folder as `NAME_again`), and
    `killed_record` and `stopped_files`: the killed run's record and the stopped run's files
    before round 2.
  """
  folder = tmp_path_factory.mktemp("keep_best_runs")
  dirs = {name: folder / name for name in ("best", "stopped", "killed", "predicted")}
  best_args = command(tiny_bert, data_dir, dirs["best"], *KEEP_BEST_FLAGS, "--do_eval=true",
                      "--do_predict=true")
  killed_args = command(tiny_bert, data_dir, dirs["killed"], *KEEP_BEST_FLAGS,
                        "--do_eval=true", "--do_predict=true")
  stopped_args = command(tiny_bert, data_dir, dirs["stopped"], *STOPPED_FLAGS)
  with futures.ThreadPoolExecutor(max_workers=3) as pool:
    first = [pool.submit(clitools.run_cli, args) for args in (best_args, stopped_args)]
    killed_record = pool.submit(run_and_kill, killed_args, dirs["killed"],
                                folder / "killed.log").result()
    logs = {"best": clitools.succeeded(first[0].result()),
            "stopped": clitools.succeeded(first[1].result())}
    stopped_files = sorted(os.listdir(dirs["stopped"]))
    shutil.copytree(dirs["best"], dirs["predicted"])
    os.remove(dirs["predicted"] / "test_results.tsv")
    second = {
        "predicted": pool.submit(clitools.run_cli, command(
            tiny_bert, data_dir, dirs["predicted"], "--do_train=false", "--do_predict=true",
            "--keep_best=mean_auc", "--cutoff_type=static")),
        "stopped_again": pool.submit(clitools.run_cli, stopped_args),
        "killed_again": pool.submit(clitools.run_cli, killed_args)}
    logs.update({name: clitools.succeeded(run.result()) for name, run in second.items()})
  return {"dirs": dirs, "logs": logs, "killed_record": killed_record,
          "stopped_files": stopped_files}


def test_the_record_keeps_the_first_best_and_counts_patience():
  record = None
  for step, value in ((10, 0.5), (20, 0.7), (30, 0.6), (40, 0.7), (50, 0.65)):
    record, improved = model_selection.updated(record, "mean_auc", step, value, patience=3)
    assert improved == (step in (10, 20))
  assert (record.step, record.value) == (20, 0.7)  # A tie does not replace the earlier best.
  assert record.evaluations_without_improvement == 3 and record.stopped_early
  assert record.evaluations == ((10, 0.5), (20, 0.7), (30, 0.6), (40, 0.7), (50, 0.65))
  record, improved = model_selection.updated(record, "mean_auc", 60, 0.8, patience=3)
  assert improved and record.evaluations_without_improvement == 0 and not record.stopped_early


def test_the_record_reads_back_and_names_its_metric(tmp_path):
  record, _ = model_selection.updated(None, "macro_f1", 4, 0.25, patience=0)
  model_selection.write_record(str(tmp_path), record)
  assert model_selection.read_record(str(tmp_path), "macro_f1") == record
  with pytest.raises(UserError, match="by macro_f1, not by mean_auc: use --keep_best=macro_f1"):
    model_selection.read_record(str(tmp_path), "mean_auc")
  (tmp_path / "best" / "best.json").write_text("{", encoding="utf-8")
  with pytest.raises(UserError, match="is unreadable"):
    model_selection.read_record(str(tmp_path), "macro_f1")


def test_the_training_loop_evaluates_at_its_interval_and_stops_when_told(tiny_bert, tmp_path):
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  model = classifier.MultiLabelClassifier(config, 3)
  optimizer = training.make_optimizer(model, 1e-3, 10, 0)
  rng = np.random.default_rng(0)
  inputs = {"input_ids": tf.constant(rng.integers(1, config.vocab_size, (4, 8)), tf.int32),
            "input_mask": tf.ones((4, 8), tf.int32), "segment_ids": tf.zeros((4, 8), tf.int32)}
  dataset = tf.data.Dataset.from_tensors(
      (inputs, tf.constant(rng.integers(0, 2, (4, 3)), tf.float32))).repeat()
  evaluated = []

  def on_evaluate(step):
    evaluated.append(step)
    return step == 6

  # Device loops of 4 steps and checkpoints every 100 do not hide the evaluations every 3.
  training.run(model, optimizer, tf.distribute.get_strategy(), dataset, 0,
               training.LoopSettings(10, 4, 100, 4, 5, eval_every_steps=3), str(tmp_path),
               on_evaluate=on_evaluate)
  assert evaluated == [3, 6]
  assert training.global_step(optimizer) == 6
  # A stop saves a checkpoint where it stopped.
  assert checkpoints.latest(str(tmp_path)).endswith("model.ckpt-6")
  evaluated.clear()
  training.run(model, optimizer, tf.distribute.get_strategy(), dataset, 6,
               training.LoopSettings(10, 4, 100, 4, 5, eval_every_steps=3), str(tmp_path),
               on_evaluate=lambda step: evaluated.append(step) is not None)
  assert evaluated == [9, 10]  # The last step is evaluated too.


def test_predicting_with_keep_best_needs_a_best_checkpoint(tmp_path):
  with pytest.raises(UserError, match="holds no best checkpoint; train with --keep_best"):
    model_selection.load_best(None, tf.distribute.get_strategy(), str(tmp_path), "mean_auc")


def test_keep_best_keeps_the_checkpoint_of_the_best_dev_score(runs):
  output_dir, log = runs["dirs"]["best"], runs["logs"]["best"]
  evaluations = logged_evaluations(log)
  assert [step for step, _ in evaluations] == EVALUATED
  aucs = [auc for _, auc in evaluations]
  record = read_record(output_dir)
  assert [step for step, _ in record["evaluations"]] == EVALUATED
  values = [value for _, value in record["evaluations"]]
  np.testing.assert_allclose(values, aucs, atol=6e-6)  # The log has 5 decimals.
  best = int(np.argmax(values))  # The first of equal maxima, as the record keeps it.
  assert record["metric"] == "mean_auc" and record["step"] == EVALUATED[best]
  assert record["value"] == values[best]
  # The tiny model overfits the random labels: dev peaks early, and the best is not the last.
  assert record["step"] < STEPS and max(values) > values[-1] + 0.05
  # The best checkpoint is the only one in best/, whatever --keep_checkpoint_max dropped.
  prefix = os.path.join(output_dir, "best", f"model.ckpt-{record['step']}")
  assert tf.train.latest_checkpoint(os.path.join(output_dir, "best")) == prefix
  assert sorted(os.listdir(output_dir / "best")) == sorted(
      ["best.json", "checkpoint", f"model.ckpt-{record['step']}.index",
       f"model.ckpt-{record['step']}.data-00000-of-00001"])
  assert tf.train.latest_checkpoint(str(output_dir)).endswith(f"model.ckpt-{STEPS}")
  # Every evaluation is in TensorBoard's eval/ folder at its step.
  steps, values = summaries.read_scalars(str(output_dir / "eval"))["mean_auc"]
  np.testing.assert_array_equal(steps, EVALUATED)
  np.testing.assert_allclose(values, aucs, atol=6e-6)
  # Eval scored the best checkpoint: the dev mean AUC it wrote is the recorded one.
  assert f"The best checkpoint by dev mean_auc: {prefix}" in log
  assert f"Predicting with {prefix}" in log
  with open(output_dir / "eval_results.json", encoding="utf-8") as f:
    assert json.load(f)["mean_auc"] == pytest.approx(record["value"], rel=1e-5)


def test_predict_after_training_uses_the_best_weights(runs):
  trained, again = runs["dirs"]["best"], runs["dirs"]["predicted"]
  assert "Predicting with " + os.path.join(trained.parent, "predicted", "best", "model.ckpt-") in (
      runs["logs"]["predicted"])
  _, ids, expected = clitools.read_tsv(trained / "test_results.tsv")
  _, again_ids, predicted = clitools.read_tsv(again / "test_results.tsv")
  assert again_ids == ids
  conftest.assert_close(predicted, expected, rtol=1e-5)


def test_a_killed_run_resumes_with_its_record(runs):
  output_dir, log = runs["dirs"]["killed"], runs["logs"]["killed_again"]
  last_evaluated = runs["killed_record"]["evaluations"][-1][0]
  assert last_evaluated < STEPS, "the run finished before it could be killed"
  assert "Resuming from" in log
  # The steps evaluated before the kill are not evaluated again, nor counted twice; the
  # record goes on as that of the uninterrupted run.
  assert min(step for step, _ in logged_evaluations(log)) > last_evaluated
  resumed, reference = read_record(output_dir), read_record(runs["dirs"]["best"])
  assert [step for step, _ in resumed["evaluations"]] == EVALUATED
  np.testing.assert_allclose([v for _, v in resumed["evaluations"]],
                             [v for _, v in reference["evaluations"]], rtol=1e-4)
  assert resumed["step"] == reference["step"]
  assert resumed["evaluations_without_improvement"] == reference[
      "evaluations_without_improvement"]
  # And eval and predict use the same best weights.
  _, _, expected = clitools.read_tsv(runs["dirs"]["best"] / "test_results.tsv")
  _, _, predicted = clitools.read_tsv(output_dir / "test_results.tsv")
  conftest.assert_close(predicted, expected, rtol=1e-4)


def test_early_stopping_stops_and_a_rerun_trains_no_further(runs):
  output_dir = runs["dirs"]["stopped"]
  assert [step for step, _ in logged_evaluations(runs["logs"]["stopped"])] == [14, 28]
  record = read_record(output_dir)
  assert record["step"] == 14 and record["stopped_early"]
  assert record["evaluations_without_improvement"] == 1
  # The stop saved a checkpoint where it stopped, short of the 40 steps.
  assert tf.train.latest_checkpoint(str(output_dir)).endswith("model.ckpt-28")
  rerun = runs["logs"]["stopped_again"]
  assert "training is complete" in rerun and "Dev at step" not in rerun
  assert sorted(os.listdir(output_dir)) == runs["stopped_files"]
  assert tf.train.latest_checkpoint(str(output_dir)).endswith("model.ckpt-28")
  assert read_record(output_dir) == record


@pytest.mark.parametrize("flags, message", [
    (("--early_stopping_patience=2",), "set --keep_best too"),
    (("--do_train=false", "--do_predict=true", "--eval_every_steps=5"), "they need --do_train"),
    (("--keep_best=auc",), "--keep_best"),
    (("--eval_every_steps=-1",), "--eval_every_steps"),
])
def test_bad_flag_combinations_give_one_line(tiny_bert, data_dir, tmp_path, flags, message):
  result = clitools.run_cli(command(tiny_bert, data_dir, tmp_path / "out", *flags))
  assert result.returncode == 2
  error = clitools.error_message(result.stderr)
  assert message in error and "\n" not in error
