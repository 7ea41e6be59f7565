"""What bench/throughput.py and bench/hf_throughput.py measure alike: steps, memory, the CPU."""

import os
import platform
import resource
import sys
import time

import numpy as np


# The vector extensions that choose the kernels: TensorFlow turns oneDNN on by itself only with
# one of the last four (see onednn.py).
_CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile")


def cpu_description():
  """"CPU: <model name>, <n> cores, <extensions>", from /proc/cpuinfo where there is one."""
  model, flags = platform.processor() or platform.machine(), set()
  try:
    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
      for line in cpuinfo:
        key, _, value = line.partition(":")
        if key.strip() == "model name":
          model = value.strip()
        elif key.strip() == "flags":
          flags = set(value.split())
          break
  except OSError:
    pass
  extensions = " ".join(flag for flag in _CPU_FLAGS if flag in flags) or "unknown extensions"
  return f"CPU: {model}, {os.cpu_count()} cores, {extensions}"


def peak_rss_mb():
  """The process's peak resident memory so far, in MiB."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seconds_since_process_start():
  """Seconds since this process started, to 10 ms (Linux's /proc); None where there is no /proc.

  A user's run is one process: interpreter start, imports, model loading, then the work.
  """
  try:
    with open("/proc/self/stat", encoding="ascii") as stat:
      start_ticks = int(stat.read().rsplit(")", 1)[1].split()[19])  # Field 22, starttime.
    with open("/proc/uptime", encoding="ascii") as uptime:
      return float(uptime.read().split()[0]) - start_ticks / os.sysconf("SC_CLK_TCK")
  except (OSError, ValueError, IndexError):
    return None


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

  With `paced`, the process prints "ready PASSES" once, then waits for a line on stdin before
  each pass and prints "pass SECONDS" after it, so that bench/paired.py can alternate the
  passes of two processes: each pass then runs alone, and the machine's drift (up to 30% here
  between minutes) hits both sides of a round alike.

  Returns:
    (seconds of each pass, the first one cold; what the last pass returned; the process's age
    when the first pass ended (`seconds_since_process_start`), None when paced, as the first
    pass waited for bench/paired.py, or where it is unknown).
  """
  if paced:
    print(f"ready {passes}", flush=True)
  seconds, result, process_seconds = [], None, None
  for _ in range(1 + passes):
    if paced and not sys.stdin.readline():
      raise SystemExit("paced: stdin closed before the last pass")
    started = time.perf_counter()
    result = one_pass()
    seconds.append(time.perf_counter() - started)
    if paced:
      print(f"pass {seconds[-1]}", flush=True)
    elif len(seconds) == 1:
      process_seconds = seconds_since_process_start()
  return seconds, result, process_seconds


def chunk_sizes(steps, chunk_steps):
  """Training steps as timed: the first alone (tracing included), the rest in chunks.

  Returns:
    [1, chunk_steps, ..., the remainder]: `steps` in all.
  """
  return [1] + [min(chunk_steps, steps - first) for first in range(1, steps, chunk_steps)]


def time_chunks(run_steps, steps, chunk_steps, paced=False):
  """Runs `steps` training steps through `run_steps(n)`, one chunk per pass of `time_passes`.

  The first step is the cold pass; each chunk of `chunk_steps` after it is a warm pass, so
  that paced, two processes' training alternates chunk by chunk.

  Returns:
    (the steps of each pass, the seconds of each pass, the process's age at the end of the first
    step as `time_passes` gives it).
  """
  sizes = chunk_sizes(steps, chunk_steps)
  pending = iter(sizes)
  seconds, _, process_seconds = time_passes(lambda: run_steps(next(pending)), len(sizes) - 1,
                                            paced)
  return sizes, seconds, process_seconds


def paced_fixed_training(run_steps, batch_size, steps, chunk_steps):
  """Fixed-shape training paced by bench/paired.py: a first step, then `steps` in chunks.

  Returns:
    {examples_per_sec and step_time_ms_median (from the median chunk's seconds per step),
    cold_step_ms (the first step), chunk_steps, chunk_seconds, steps}.
  """
  sizes, seconds, _ = time_chunks(run_steps, 1 + steps, chunk_steps, paced=True)
  median = float(np.median([s / n for s, n in zip(seconds[1:], sizes[1:])]))
  return {"examples_per_sec": batch_size / median, "step_time_ms_median": median * 1e3,
          "cold_step_ms": seconds[0] * 1e3, "chunk_steps": sizes, "chunk_seconds": seconds,
          "steps": steps}
