"""What bench/throughput.py and bench/hf_throughput.py measure alike: step times and memory."""

import resource
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
