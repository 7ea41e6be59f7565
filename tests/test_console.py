"""The console: TensorFlow's start-up hidden, progress bars on terminals only."""

import io
import os
import re
import subprocess
import sys

from absl import logging

import console
from tests.conftest import REPO_DIR

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
  logging.warning("after the bar")  # The bar no longer watches the log.
  assert terminal.getvalue().endswith("\n")


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
  result = subprocess.run([sys.executable, "-c", code], cwd=REPO_DIR, capture_output=True,
                          text=True, check=False, timeout=120, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  return result.stderr


def test_tensorflow_starts_quietly_by_default():
  stderr = import_tensorflow_stderr(0, {})
  assert not CPP_LOG_LINE.search(stderr), stderr
  assert "cuInit" not in stderr and "cudart_stub" not in stderr and "absl::" not in stderr
  assert stderr.startswith("before\n") and stderr.endswith("after 2\n")


def test_verbosity_or_the_users_level_shows_the_cpp_log():
  for verbosity, env in ((1, {}), (0, {"TF_CPP_MIN_LOG_LEVEL": "0"})):
    stderr = import_tensorflow_stderr(verbosity, env)
    assert CPP_LOG_LINE.search(stderr), stderr
