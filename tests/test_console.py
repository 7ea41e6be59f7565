"""The console: TensorFlow's start-up hidden, progress bars on terminals only."""

import io
import json
import os
import random
import re
import shutil
import struct

from absl import logging
import numpy as np
import pytest
import tensorflow as tf

import console
import summaries
from tests import clitools
from tests import test_report

CPP_LOG_LINE = re.compile(r"^[IWEF]\d{4} .*\.cc:\d+\]", re.MULTILINE)


class FakeTerminal(io.StringIO):

  def isatty(self):
    return True


class FakeClock:

  def __init__(self):
    self.now = 100.0

  def __call__(self):
    return self.now


def test_bar_shows_rate_and_eta_on_a_terminal(monkeypatch):
  monkeypatch.setenv("COLUMNS", "200")
  clock, terminal = FakeClock(), FakeTerminal()
  with console.Progress("Training", 100, "step", start=20, stream=terminal,
                        clock=clock) as progress:
    assert progress.enabled
    clock.now += 8.0
    progress.update(60, "loss 0.4321")
    drawn = terminal.getvalue()
    # 40 steps in 8 s: 5 steps/s, 40 steps left: 8 s.
    assert drawn.startswith("\rTraining  60% |############        | 60/100 steps  5 steps/s  "
                            "ETA 0:00:08  loss 0.4321")
    logging.warning("Saved a checkpoint")  # A log line first erases the bar...
    assert terminal.getvalue()[len(drawn):] == "\r\x1b[K"
    progress.update(100)  # ...and the next update draws it again.
  assert terminal.getvalue().endswith("100/100 steps  10 steps/s  ETA 0:00:00\x1b[K\n")


def test_nothing_is_drawn_in_a_log_file():
  log_file = io.StringIO()
  with console.Progress("Predicting", 10, "example", stream=log_file) as progress:
    progress.update(5)
  assert not progress.enabled and log_file.getvalue() == ""


def test_format_duration():
  assert console.format_duration(3725.9) == "1:02:05"
  assert console.format_duration(float("inf")) == "?"


def import_tensorflow_stderr(verbosity, env):
  """The stderr of a process that imports TensorFlow through `console.import_tensorflow`."""
  code = ("import sys, console\n"
          "print('before', file=sys.stderr)\n"
          f"tf = console.import_tensorflow({verbosity})\n"
          "print('after', tf.constant(2).numpy(), file=sys.stderr)\n")
  env = {name: value for name, value in {**os.environ, **env}.items()
         if name != "TF_CPP_MIN_LOG_LEVEL" or "TF_CPP_MIN_LOG_LEVEL" in env}
  return clitools.run_python(code, env=env).stderr


def test_tensorflow_starts_quietly_by_default():
  stderr = import_tensorflow_stderr(0, {})
  assert not CPP_LOG_LINE.search(stderr), stderr
  assert "cuInit" not in stderr and "cudart_stub" not in stderr and "absl::" not in stderr
  assert stderr.startswith("before\n") and stderr.endswith("after 2\n")


def test_verbosity_or_the_users_level_shows_the_cpp_log():
  for verbosity, env in ((1, {}), (0, {"TF_CPP_MIN_LOG_LEVEL": "0"})):
    stderr = import_tensorflow_stderr(verbosity, env)
    assert CPP_LOG_LINE.search(stderr), stderr


# A run of run_classifier.py, as a user starts it from a shell: what its console says, and the
# page and event files that its last lines point to.

TRAIN_TAGS = {"loss", "learning_rate", "gradient_norm", "examples_per_second"}
LOG_STEPS = [2, 4, 6, 8, 10]  # 40 examples, batch 8, 2 epochs; --log_steps=2.


def run_flags(tiny_bert, data_dir, output_dir, *extra):
  return ["--task_name=se0714", f"--data_dir={data_dir}", f"--output_dir={output_dir}",
          *clitools.model_flags(tiny_bert), "--max_seq_length=16", "--do_train=true",
          "--train_batch_size=8", "--num_train_epochs=2", "--log_steps=2",
          "--save_checkpoints_steps=4", "--cutoff_type=dynamic", *extra]


@pytest.fixture(name="run", scope="module")
def fixture_run(tiny_bert, tmp_path_factory):
  """(output_dir, stderr) of a train, eval and predict run with dynamic cut-offs."""
  folder = tmp_path_factory.mktemp("console_run")
  data_dir, output_dir = folder / "data", folder / "out"
  data_dir.mkdir()
  rng = random.Random(4)
  for name, count in (("train", 40), ("dev", 16), ("test", 16)):
    rows = [(clitools.random_labels(rng, 3, rate=0.4), clitools.random_text(rng, 2, 8))
            for _ in range(count)]
    clitools.write_text(data_dir / f"{name}_SE0714.txt", clitools.labels_first_lines(rows, "bool"))
  result = clitools.run_cli(run_flags(tiny_bert, data_dir, output_dir, "--do_eval=true",
                                      "--do_predict=true"))
  return output_dir, clitools.succeeded(result), data_dir


def test_the_log_has_no_startup_noise_and_ends_with_where_things_are(run):
  output_dir, stderr, _ = run
  assert "cuInit" not in stderr and "cudart_stub" not in stderr
  assert not CPP_LOG_LINE.search(stderr), stderr[:3000]
  assert "\r" not in stderr  # No progress bar in a log.
  last = [line.split("] ", 1)[1] for line in stderr.splitlines()[-4:]]
  assert last == [f"Checkpoint: {output_dir}/model.ckpt-10",
                  f"Results in {output_dir}: eval_results.json, eval_results.txt, "
                  "test_eval_results.json, test_eval_results.txt, test_results.tsv, "
                  "test_results_classes.tsv, thresholds.json",
                  f"Report: {output_dir}/report.html",
                  f"TensorBoard: tensorboard --logdir={output_dir}"]


def test_the_report_shows_the_eval_results(run):
  output_dir, _, _ = run
  parser = test_report.parse_page(output_dir / "report.html")
  test_report.check_self_contained(parser)
  with open(output_dir / "thresholds.json", encoding="utf-8") as f:
    tuned = [entry["threshold"] for entry in json.load(f)["labels"]]
  for split, prefix in (("dev", ""), ("test", "test_")):
    with open(output_dir / f"{prefix}eval_results.json", encoding="utf-8") as f:
      test_report.check_table_matches(parser, split, json.load(f), tuned)
  pngs = sorted(p.name for p in output_dir.glob("report_*.png"))
  assert pngs == ["report_f1_threshold_dev.png", "report_label_frequency_dev.png",
                  "report_label_frequency_test.png", "report_pr_curves_dev.png",
                  "report_pr_curves_test.png", "report_training_loss.png"]
  for name in pngs:
    test_report.check_png(output_dir / name)


def scalar_steps(logdir):
  """{tag: [step, ...]} in the order the event files hold them, each file read in turn."""
  steps = {}
  for name in sorted(os.listdir(logdir)):
    for event in tf.compat.v1.train.summary_iterator(os.path.join(logdir, name)):
      for value in event.summary.value:
        steps.setdefault(value.tag, []).append(event.step)
  return steps


def test_event_files_hold_training_and_evaluation(run):
  output_dir, _, _ = run
  train = scalar_steps(output_dir / "train")
  assert set(train) == TRAIN_TAGS and all(train[tag] == LOG_STEPS for tag in TRAIN_TAGS)
  scalars = summaries.read_scalars(str(output_dir / "train"))
  assert np.all(scalars["gradient_norm"][1] > 0) and np.all(np.isfinite(scalars["loss"][1]))
  # The rate after step s is the schedule's: 5e-5 decayed linearly to 0 at step 10.
  np.testing.assert_allclose(scalars["learning_rate"][1], 5e-5 * (1 - np.array(LOG_STEPS) / 10),
                             rtol=1e-5, atol=1e-12)
  for folder, prefix in (("eval", ""), ("test", "test_")):
    steps = scalar_steps(output_dir / folder)
    with open(output_dir / f"{prefix}eval_results.json", encoding="utf-8") as f:
      expected = summaries.metric_scalars(json.load(f))
    assert {"mean_auc", "f1/micro", "hamming_loss", "auc/joy"} <= set(expected)
    assert set(steps) == set(expected) | {f"{label}/pr_curves" for label in clitools.SE0714_LABELS}
    assert all(tag_steps == [10] for tag_steps in steps.values())
    read = summaries.read_scalars(str(output_dir / folder))
    for tag, value in expected.items():
      assert read[tag][1][0] == pytest.approx(value, rel=1e-6)


def tfrecords(data):
  """(start, end, payload) of each record of a TFRecord file's bytes."""
  start = 0
  while start < len(data):
    (length,) = struct.unpack("<Q", data[start:start + 8])
    yield start, start + 16 + length, data[start + 12:start + 12 + length]
    start += 16 + length


def test_a_resumed_run_writes_each_step_once(run, tiny_bert, tmp_path):
  source, _, data_dir = run
  output_dir = tmp_path / "out"
  shutil.copytree(source, output_dir)
  # As a run killed after logging step 6, its newest checkpoint at step 4, would leave it.
  for path in output_dir.glob("model.ckpt-*"):
    if not path.name.startswith("model.ckpt-4."):
      path.unlink()
  clitools.write_text(output_dir / "checkpoint", 'model_checkpoint_path: "model.ckpt-4"\n'
                      'all_model_checkpoint_paths: "model.ckpt-4"\n')
  (events_file,) = (output_dir / "train").iterdir()
  data = events_file.read_bytes()
  kept = max(end for _, end, payload in tfrecords(data)
             if tf.compat.v1.Event.FromString(payload).step <= 6)
  events_file.write_bytes(data[:kept])
  assert scalar_steps(output_dir / "train")["loss"] == [2, 4, 6]

  result = clitools.run_cli(run_flags(tiny_bert, data_dir, output_dir))
  assert "Resuming from" in clitools.succeeded(result)
  steps = scalar_steps(output_dir / "train")
  assert set(steps) == TRAIN_TAGS and all(steps[tag] == LOG_STEPS for tag in TRAIN_TAGS)
  assert len(os.listdir(output_dir / "train")) == 2
