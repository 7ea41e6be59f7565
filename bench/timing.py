"""What bench/throughput.py and bench/hf_throughput.py measure alike: step times and memory."""

import resource
import sys
import time

import numpy as np


def peak_rss_mb():
  """The process's peak resident memory so far, in MiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_steps(step, batch_size, warmup_steps, steps):
  """Runs `step()` `warmup_steps` times untimed, then `steps` times timed.

  `step` must return only once its work is done (fetch a result to the host).

  Returns:
    {examples_per_sec (from the median step), step_time_ms_median, step_time_ms_min, steps}.
  """
  for _ in range(warmup_steps):
    step()
  times = []
  for _ in range(steps):
    started = time.perf_counter()
    step()
    times.append(time.perf_counter() - started)
  median = float(np.median(times))
  return {"examples_per_sec": batch_size / median, "step_time_ms_median": median * 1e3,
          "step_time_ms_min": min(times) * 1e3, "steps": steps}


def time_passes(one_pass, passes, paced=False):
  """Runs `one_pass()` 1 + `passes` times: a cold pass, then warm ones.

  With `paced`, the process prints "ready" once, then waits for a line on stdin before each
  pass and prints "pass SECONDS" after it, so that bench/paired_predict.py can alternate the
  passes of two processes: each pass then runs alone, and the machine's drift (up to 30% here
  between minutes) hits both sides of a round alike.

  Returns:
    (seconds of each pass, the first one cold; what the last pass returned).
  """
  if paced:
    print("ready", flush=True)
  seconds, result = [], None
  for _ in range(1 + passes):
    if paced and not sys.stdin.readline():
      raise SystemExit("paced: stdin closed before the last pass")
    started = time.perf_counter()
    result = one_pass()
    seconds.append(time.perf_counter() - started)
    if paced:
      print(f"pass {seconds[-1]}", flush=True)
  return seconds, result
