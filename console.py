"""What a run shows on its console: no TensorFlow start-up noise, and progress bars on a terminal.

TensorFlow's C++ libraries log as they load and as they look for a GPU (oneDNN notices,
`cudart_stub.cc ... Could not find cuda drivers`, `E... failed call to cuInit` on every CPU
machine). Some of these lines are written while the libraries load, before TensorFlow reads
`TF_CPP_MIN_LOG_LEVEL`, so that variable alone cannot hide them: `import_tensorflow` also
sends the C++ log lines of the start-up to a temporary file and passes on all else.
"""

import contextlib
import logging
import math
import os
import re
import shutil
import sys
import tempfile
import time

import garbage_collection
import onednn

# absl's C++ log prefix: severity, date, time (before absl is initialised, "00:00:" and the
# seconds since 1970), thread id, file:line. Fatal (F) lines are kept.
_CPP_LOG_LINE = re.compile(r"[IWE]\d{4} [\d:.]+ +\d+ [^ \]]+:\d+\] ")
_ABSL_NOTICE = "WARNING: All log messages before absl::InitializeLog() is called are written"


def _is_startup_noise(line):
  return bool(_CPP_LOG_LINE.match(line)) or line.startswith(_ABSL_NOTICE)


@contextlib.contextmanager
def _startup_noise_hidden():
  """Sends file descriptor 2 to a temporary file; on exit, writes back all but the noise.

  C++ code writes to the descriptor, not to `sys.stderr`, so that is what is redirected. If the
  process dies inside, what was captured is lost: `--verbosity=1` captures nothing.
  """
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = [line for line in captured.read().decode("utf-8", "replace").splitlines(True)
              if not _is_startup_noise(line)]
      sys.stderr.write("".join(kept))
      sys.stderr.flush()


def import_tensorflow(verbosity):
  """Imports TensorFlow and Keras and finds the devices, with the C++ start-up log hidden by
  default.

  `TF_CPP_MIN_LOG_LEVEL`, when the user set it, is left alone and nothing is hidden. Otherwise
  absl's `--verbosity` decides: 1 (debug) or more shows every C++ log line; below, the C++ info
  and warning lines are hidden for the whole run (level 2) and those of the start-up, errors
  included, are dropped (the missing GPU of a CPU machine is reported as an error).

  Before the import, `onednn.enable` chooses oneDNN's kernels on every x86 CPU. The first import
  in a process runs with the collector paused and freezes what it leaves
  (`garbage_collection`): no later collection walks those objects again.

  Args:
    verbosity: int, `absl.logging.get_verbosity()`.

  Returns:
    The `tensorflow` module.
  """
  onednn.enable()
  show_cpp_log = "TF_CPP_MIN_LOG_LEVEL" in os.environ or verbosity >= 1
  if show_cpp_log:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0")
  else:
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
  first_import = "tensorflow" not in sys.modules
  with contextlib.ExitStack() as stack:
    if first_import:
      stack.enter_context(garbage_collection.paused_then_frozen())
    if not show_cpp_log:
      stack.enter_context(_startup_noise_hidden())
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    import keras  # pylint: disable=g-import-not-at-top,unused-import
    if not show_cpp_log:
      tf.config.list_physical_devices()  # The GPU probe: where cuInit fails on a CPU machine.
  return tf


def format_duration(seconds):
  """`H:MM:SS` of a number of seconds; "?" when it is not finite (no rate measured yet)."""
  if not math.isfinite(seconds):
    return "?"
  minutes, seconds = divmod(int(seconds), 60)
  hours, minutes = divmod(minutes, 60)
  return f"{hours}:{minutes:02d}:{seconds:02d}"


class Progress:
  """A one-line progress bar with rate and ETA, drawn on stderr only when it is a terminal.

  In a log file the run's log lines already say how far it got, so nothing is drawn there and
  every method does nothing. On a terminal the bar is the last line: a log record erases it
  and the next `update` draws it again below. Use it as a context manager, or call `close`.
  """

  def __init__(self, description, total, unit, start=0, stream=None, clock=time.monotonic):
    """Prepares the bar; nothing is drawn before the first `update`.

    Args:
      description: str, what is being done, e.g. "Training".
      total: int, the amount of work, in `unit`s.
      unit: str, e.g. "step" or "example".
      start: int, the work already done before (a resumed run); not counted in the rate.
      stream: the text stream to draw on; default `sys.stderr`.
      clock: a function returning seconds, for tests.
    """
    self._stream = sys.stderr if stream is None else stream
    self._description = description
    self._total = total
    self._unit = unit
    self._start = start
    self._clock = clock
    self._started = clock()
    self._shown = False
    isatty = getattr(self._stream, "isatty", None)
    self.enabled = bool(isatty and isatty())
    # On the handlers, not the root logger: a logger's filters miss propagated records.
    self._handlers = list(logging.getLogger().handlers) if self.enabled else []
    for handler in self._handlers:
      handler.addFilter(self._clear_before_log)

  def _clear_before_log(self, record):
    """A logging filter that lets every record through, erasing the bar before it."""
    del record
    self.clear()
    return True

  def _line(self, done, note=""):
    """The bar's text after `done` units, fitted to the terminal's width."""
    fraction = min(max(done / self._total, 0.0), 1.0) if self._total else 1.0
    width = 20
    filled = int(fraction * width)
    elapsed = self._clock() - self._started
    rate = (done - self._start) / elapsed if elapsed > 0 else math.nan
    remaining = (self._total - done) / rate if rate > 0 else math.inf
    text = (f"{self._description} {fraction:4.0%} |{'#' * filled}{' ' * (width - filled)}| "
            f"{done}/{self._total} {self._unit}s  "
            f"{'?' if math.isnan(rate) else f'{rate:.3g}'} {self._unit}s/s  "
            f"ETA {format_duration(remaining)}")
    if note:
      text += "  " + note
    columns = shutil.get_terminal_size().columns
    return text[:max(columns - 1, 10)]

  def update(self, done, note=""):
    """Draws the bar after `done` units (absolute, not an increment), with a short `note`."""
    if not self.enabled:
      return
    self._stream.write("\r" + self._line(done, note) + "\x1b[K")
    self._stream.flush()
    self._shown = True

  def clear(self):
    """Erases the bar from its line, if it is there."""
    if self._shown:
      self._stream.write("\r\x1b[K")
      self._stream.flush()
      self._shown = False

  def close(self):
    """Leaves the last bar drawn on its own line and stops watching the log."""
    if self._shown:
      self._stream.write("\n")
      self._stream.flush()
      self._shown = False
    for handler in self._handlers:
      handler.removeFilter(self._clear_before_log)
    self._handlers = []

  def __enter__(self):
    return self

  def __exit__(self, *exc_info):
    self.close()
