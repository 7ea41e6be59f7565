"""A training run killed with SIGKILL resumes where its last checkpoint left off."""

import os
import re
import signal
import subprocess
import time

import numpy as np
import tensorflow as tf

from tests import conftest
from tests.test_distribution import classifier_command, write_se0714


def checkpoint_files(output_dir):
  """{file name: modification time} of the checkpoint files in `output_dir`."""
  return {name: os.stat(os.path.join(output_dir, name)).st_mtime_ns
          for name in os.listdir(output_dir) if name.startswith("model.ckpt-")}


def test_sigkill_then_rerun_finishes_without_rewriting_checkpoints(tiny_bert, tmp_path):
  data_dir, output_dir = tmp_path / "data", tmp_path / "out"
  write_se0714(data_dir, n_train=400)
  # 360 training examples (after the 10% hold-out), 10 epochs of batch 8: 450 steps.
  command = classifier_command(tiny_bert, data_dir, output_dir, "--num_train_epochs=10",
                               "--save_checkpoints_steps=5", "--keep_checkpoint_max=1000",
                               "--log_steps=5")
  log = tmp_path / "killed_run.log"
  with open(log, "wb") as stderr:
    process = subprocess.Popen(command, cwd=conftest.REPO_DIR, stdout=subprocess.DEVNULL,
                               stderr=stderr)
    try:
      deadline = time.time() + 240
      while not (output_dir / "model.ckpt-10.index").exists():
        assert process.poll() is None and time.time() < deadline, (
            "no step-10 checkpoint:\n" + log.read_text(errors="replace")[-3000:])
        time.sleep(0.02)
    finally:  # The kill under test, or the end of a run that failed the test.
      process.send_signal(signal.SIGKILL)
      process.wait()
  before_rerun = checkpoint_files(output_dir)
  last_step = max(int(name.split("-")[1].split(".")[0]) for name in before_rerun)
  assert last_step < 450, "the run finished before it could be killed"

  result = subprocess.run(command, cwd=conftest.REPO_DIR, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "Resuming from" in result.stderr
  after = checkpoint_files(output_dir)
  # Nothing up to the kill was written again; training went on to the same last step.
  for name, mtime in before_rerun.items():
    if name.endswith(".index"):
      assert after[name] == mtime, f"{name} was rewritten"
  final = tf.train.latest_checkpoint(str(output_dir))
  assert final.endswith("model.ckpt-450")
  assert int(tf.train.load_checkpoint(final).get_tensor("global_step")) == 450
  resumed_steps = [int(line.split("step ")[1].split("/")[0])
                   for line in result.stderr.splitlines() if "  loss " in line]
  assert resumed_steps and min(resumed_steps) > last_step

  rerun = subprocess.run(command, cwd=conftest.REPO_DIR, capture_output=True, text=True,
                         timeout=300, check=False)
  assert rerun.returncode == 0, rerun.stderr[-3000:]
  assert "training is already complete" in rerun.stderr, rerun.stderr[-3000:]
  assert checkpoint_files(output_dir) == after


def test_same_seed_same_final_checkpoint(tiny_bert, tmp_path):
  data_dir = tmp_path / "data"
  write_se0714(data_dir)
  finals = []
  # Deterministic kernels and fixed thread pools make equal bits a guarantee, not luck; so a
  # difference in the last bit is a bug (state that the seed does not fix), as it should be.
  env = {**os.environ, **conftest.DETERMINISTIC_ENV}
  for run in ("a", "b"):
    output_dir = tmp_path / run
    result = subprocess.run(classifier_command(tiny_bert, data_dir, output_dir,
                                               "--num_train_epochs=2"),
                            cwd=conftest.REPO_DIR, env=env, capture_output=True, text=True,
                            timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(output_dir)))
    finals.append({name: reader.get_tensor(name)
                   for name in reader.get_variable_to_shape_map()})
  assert finals[0].keys() == finals[1].keys()
  for name in finals[0]:
    np.testing.assert_array_equal(finals[0][name], finals[1][name], err_msg=name)
  initial = tf.train.load_checkpoint(tiny_bert["checkpoint"])
  assert not np.array_equal(finals[0]["bert/pooler/dense/kernel"],
                            initial.get_tensor("bert/pooler/dense/kernel"))


def test_divergence_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_bert, tmp_path):
  data_dir, output_dir = tmp_path / "data", tmp_path / "out"
  write_se0714(data_dir)
  good = subprocess.run(classifier_command(tiny_bert, data_dir, output_dir,
                                           "--num_train_epochs=1", "--save_checkpoints_steps=2"),
                        cwd=conftest.REPO_DIR, capture_output=True, text=True, timeout=300,
                        check=False)
  assert good.returncode == 0, good.stderr[-3000:]
  before = checkpoint_files(output_dir)
  # Resuming with an absurd learning rate for more epochs blows the weights up. Such a resume
  # changes the training plan, which is refused while the folder records the plan: without the
  # record (a folder of the original script's) it goes ahead.
  os.remove(output_dir / "training_plan.json")
  result = subprocess.run(classifier_command(tiny_bert, data_dir, output_dir,
                                             "--num_train_epochs=4", "--save_checkpoints_steps=2",
                                             "--learning_rate=1e30"),
                          cwd=conftest.REPO_DIR, capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 2
  message = result.stderr.strip().splitlines()[-1]
  assert "Traceback" not in result.stderr
  assert "NaN or infinite" in message or "the loss became" in message
  failed_step = int(re.search(r"step (\d+)", message).group(1))
  named = re.search(r"checkpoint is (\S+)\.", message).group(1)
  assert named == tf.train.latest_checkpoint(str(output_dir))
  reader = tf.train.load_checkpoint(named)
  assert all(np.isfinite(reader.get_tensor(n)).all() for n in reader.get_variable_to_shape_map())
  saved = checkpoint_files(output_dir)
  assert before.items() <= saved.items()  # Nothing from the first run was touched.
  assert all(int(name.split("-")[1].split(".")[0]) < failed_step for name in saved)
