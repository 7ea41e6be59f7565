"""Float32 matrix-product speed of TensorFlow and torch on a BERT's dense-layer shapes.

  python bench/gemm_speed.py                        # MiniLM's shapes, 1,024 and 2,048 rows
  python bench/gemm_speed.py --hidden=768 --intermediate=3072
  # An AVX2-only CPU, approximated on a newer one (oneDNN, MKL and torch's own kernels):
  ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
      python bench/gemm_speed.py

Each dense layer of a BERT multiplies [rows, in] by [in, out]: the attention's four projections
(hidden × hidden) and the feed-forward pair (hidden × intermediate, intermediate × hidden).
TensorFlow runs them through oneDNN, torch through MKL; on AVX2 the two differ (README, Speed).
Each framework runs in a process of its own, because their thread pools would compete for the
cores, and the processes alternate `--rounds` times, because these machines drift. Per shape and
round: the median of `--calls` calls, in GFLOP/s. torch is optional (not in requirements.txt).

Prints one JSON object: {"tensorflow": {"ROWSxINxOUT": [GFLOP/s per round]}, "torch": {...} or a
reason it was not measured, "device": ...}.
"""

import json
import os
import platform
import subprocess
import sys

from absl import app
from absl import flags

import timing  # bench/timing.py, beside this script

FLAGS = flags.FLAGS
flags.DEFINE_list("rows", ["1024", "2048"], "Rows of the left operand (tokens in a batch).")
flags.DEFINE_integer("hidden", 384, "The model's hidden size.")
flags.DEFINE_integer("intermediate", 1536, "The model's feed-forward size.")
flags.DEFINE_integer("calls", 25, "Timed calls per shape and round.")
flags.DEFINE_integer("rounds", 2, "Alternated rounds of the frameworks.")
flags.DEFINE_multi_enum("frameworks", ["tensorflow", "torch"], ["tensorflow", "torch"],
                        "Which frameworks to measure.")
flags.DEFINE_enum("worker", None, ["tensorflow", "torch"],
                  "Internal: measure this framework in this process.")


def shapes():
  """(rows, in, out) of each dense layer's product, for every --rows."""
  hidden, intermediate = FLAGS.hidden, FLAGS.intermediate
  return [(int(rows), k, n) for rows in FLAGS.rows
          for k, n in ((hidden, hidden), (hidden, intermediate), (intermediate, hidden))]


def median_gflops(multiply, rows, k, n):
  timed = timing.time_steps(multiply, batch_size=1, warmup_steps=1, steps=FLAGS.calls)
  return 2 * rows * k * n / (timed["step_time_ms_median"] / 1e3) / 1e9


def measure_tensorflow():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  matmul = tf.function(tf.matmul)
  results = {}
  for rows, k, n in shapes():
    x, w = tf.random.normal([rows, k]), tf.random.normal([k, n])
    results[f"{rows}x{k}x{n}"] = median_gflops(lambda: matmul(x, w).numpy(), rows, k, n)
  return results


def measure_torch():
  import torch  # pylint: disable=g-import-not-at-top
  results = {}
  for rows, k, n in shapes():
    # torch keeps a Linear layer's weight as [out, in].
    x, w = torch.randn(rows, k), torch.randn(n, k)
    results[f"{rows}x{k}x{n}"] = median_gflops(lambda: x @ w.t(), rows, k, n)
  return results


def run_worker(framework):
  """Runs one round of `framework` in a fresh process; returns its results or the error."""
  argv = [sys.executable, os.path.abspath(__file__), f"--worker={framework}",
          f"--rows={','.join(FLAGS.rows)}", f"--hidden={FLAGS.hidden}",
          f"--intermediate={FLAGS.intermediate}", f"--calls={FLAGS.calls}"]
  done = subprocess.run(argv, capture_output=True, text=True, check=False)
  if done.returncode:
    return None, done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"
  return json.loads(done.stdout.strip().splitlines()[-1]), None


def main(argv):
  del argv
  if FLAGS.worker:
    measure = measure_tensorflow if FLAGS.worker == "tensorflow" else measure_torch
    print(json.dumps(measure()))
    return
  results = {framework: {} for framework in FLAGS.frameworks}
  for _ in range(FLAGS.rounds):
    for framework in FLAGS.frameworks:
      if isinstance(results[framework], str):
        continue
      measured, error = run_worker(framework)
      if error:
        results[framework] = f"not measured: {error}"
        continue
      for shape, gflops in measured.items():
        results[framework].setdefault(shape, []).append(gflops)
  results["device"] = (f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} "
                       f"cores; ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}, "
                       f"MKL_ENABLE_INSTRUCTIONS={os.environ.get('MKL_ENABLE_INSTRUCTIONS', 'unset')}")
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  app.run(main)
