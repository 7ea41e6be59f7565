"""Float32 matrix-product speed of TensorFlow and torch on a BERT's dense-layer shapes.

  python bench/gemm_speed.py                        # MiniLM's shapes, 1,024 and 2,048 rows
  python bench/gemm_speed.py --hidden=768 --intermediate=3072
  # An AVX2-only CPU, approximated on a newer one (oneDNN, MKL and torch's own kernels):
  ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 \\
      python bench/gemm_speed.py

Each dense layer of a BERT multiplies [rows, in] by [in, out]: the attention's four projections
(hidden x hidden) and the feed-forward pair (hidden x intermediate, then intermediate x hidden).
TensorFlow runs them through oneDNN, torch through MKL; README, Speed, compares the two on AVX2.
A timed call runs `CHAIN` products back to back, each reading the one before, as a model's layers
do: a call of one product alone also timed TensorFlow's dispatch and the threads' wake-up, and
made its products look up to twice as slow as they run inside a model. Each framework runs in a
process of its own, because their thread pools would compete for the cores, and the processes
alternate `--rounds` times, because these machines drift. Per chain and round: the median of
`--calls` calls, in GFLOP/s. torch is optional (not in requirements.txt).

Prints one JSON object: {"tensorflow": {CHAIN_NAME: [GFLOP/s per round]}, "torch": {...} or a
reason it was not measured, "device": ...}. CHAIN_NAME is ROWSxHIDDENxHIDDEN for the attention's
projections and ROWSxHIDDENxINTERMEDIATExHIDDEN for the feed-forward pair.
"""

import json
import os
import subprocess
import sys

from absl import app
from absl import flags

import timing  # bench/timing.py, beside this script

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import onednn  # pylint: disable=g-import-not-at-top,wrong-import-position

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


# Products per timed call: enough that a call's fixed cost is a few percent of it.
CHAIN = 8


def chains():
  """[(name, rows, [(in, out), ...])]: each chain's cycle of products, for every --rows."""
  hidden, intermediate = FLAGS.hidden, FLAGS.intermediate
  return [chain for rows in map(int, FLAGS.rows) for chain in (
      (f"{rows}x{hidden}x{hidden}", rows, [(hidden, hidden)]),
      (f"{rows}x{hidden}x{intermediate}x{hidden}", rows,
       [(hidden, intermediate), (intermediate, hidden)]))]


def chain_flops(rows, cycle):
  return sum(2 * rows * k * n for k, n in (cycle[j % len(cycle)] for j in range(CHAIN)))


def median_gflops(run_chain, rows, cycle):
  timed = timing.time_steps(run_chain, batch_size=1, warmup_steps=1, steps=FLAGS.calls)
  return chain_flops(rows, cycle) / (timed["step_time_ms_median"] / 1e3) / 1e9


def measure_tensorflow():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  results = {}
  for name, rows, cycle in chains():
    # Scaled so that the values neither grow nor vanish along the chain.
    weights = [tf.random.normal([k, n]) / k**0.5 for k, n in cycle]

    @tf.function
    def run_chain(x, weights=weights):
      for j in range(CHAIN):
        x = tf.matmul(x, weights[j % len(weights)])
      return x[0, 0]

    x = tf.random.normal([rows, cycle[0][0]])
    results[name] = median_gflops(lambda: run_chain(x).numpy(), rows, cycle)
  return results


def measure_torch():
  import torch  # pylint: disable=g-import-not-at-top
  results = {}
  for name, rows, cycle in chains():
    # torch keeps a Linear layer's weight as [out, in].
    weights = [torch.randn(n, k) / k**0.5 for k, n in cycle]
    x = torch.randn(rows, cycle[0][0])

    def run_chain(x=x, weights=weights):
      for j in range(CHAIN):
        x = x @ weights[j % len(weights)].t()
      return float(x[0, 0])

    results[name] = median_gflops(run_chain, rows, cycle)
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
  onednn.enable()  # The product's kernels, in the workers too: oneDNN's MatMul on AVX2 CPUs.
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
  results["device"] = (f"{timing.cpu_description()}; "
                       f"TF_ENABLE_ONEDNN_OPTS={os.environ.get('TF_ENABLE_ONEDNN_OPTS', 'unset')}, "
                       f"ONEDNN_MAX_CPU_ISA={os.environ.get('ONEDNN_MAX_CPU_ISA', 'unset')}, "
                       f"MKL_ENABLE_INSTRUCTIONS={os.environ.get('MKL_ENABLE_INSTRUCTIONS', 'unset')}")
  print(json.dumps(results, indent=2))


if __name__ == "__main__":
  app.run(main)
