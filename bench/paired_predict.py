"""Prediction of a task's test split by this project and by Hugging Face, in alternating passes.

  python bench/paired_predict.py --model_dir=models/all-MiniLM-L6-v2 --data_dir=D [--rounds=6]

Runs bench/throughput.py (this project, --batch_size=8 as run_classifier's default
--predict_batch_size) and bench/hf_throughput.py (Hugging Face at its best: sorted, padded per
batch, --hf_batch_size) as two resident processes, and lets one pass run at a time: both cold
passes first, then --rounds rounds of one warm pass each, the order alternating (ABBA) so that a
steady drift of the machine favours neither side. Side by side in separate processes minutes
apart, the same Hugging Face pass moved by 30%; a round's ratio compares passes seconds apart.

Prints one JSON object: each side's seconds per pass, the ratio of each round (Hugging Face's
seconds over ours: above 1 means we are faster) and their median, the ratio of the two sides'
best warm passes, the cold ratio, each side's examples/s at its median warm pass and in its
cold pass; then both scripts' own JSON results, under "ours" and "hf". The environment passes
through to both (e.g. ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
MKL_ENABLE_INSTRUCTIONS=AVX2 for AVX2 kernels).
"""

import json
import os
import subprocess
import sys

from absl import app
from absl import flags
import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Our side's Google-format folder (bert_config.json, "
                    "vocab.txt), e.g. models/all-MiniLM-L6-v2 as `python "
                    "convert_hf_checkpoint.py` writes it: the model Hugging Face's side loads "
                    "by default.")
flags.DEFINE_string("data_dir", None, "The task's data folder.")
flags.DEFINE_string("task_name", "psychexp", "The task.")
flags.DEFINE_integer("rounds", 6, "Warm rounds after the cold passes.")
flags.DEFINE_integer("max_seq_length", 128, "The cap on tokens per example, both sides.")
flags.DEFINE_integer("batch_size", 8, "Our --predict_batch_size.")
flags.DEFINE_integer("hf_batch_size", 32, "Hugging Face's batch size.")
flags.DEFINE_string("hf_model_dir", None, "Hugging Face's model folder (default: the packaged "
                    "all-MiniLM-L6-v2).")
flags.mark_flags_as_required(["model_dir", "data_dir"])


def _start(script, arguments):
  command = [sys.executable, os.path.join(BENCH_DIR, script), "--mode=predict", "--paced",
             f"--passes={FLAGS.rounds}", f"--task_name={FLAGS.task_name}",
             f"--data_dir={FLAGS.data_dir}", f"--max_seq_length={FLAGS.max_seq_length}",
             *arguments]
  return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          stderr=subprocess.DEVNULL, text=True)


def _failed(process, what):
  """The error for a side that `what`: its command, to rerun alone for its own error message."""
  return RuntimeError(f"{' '.join(process.args[1:])} {what}; run that command alone to see "
                      "its error")


def _read_until(process, prefix):
  """The first line of `process`'s stdout that starts with `prefix` (others are skipped)."""
  for line in process.stdout:
    if line.startswith(prefix):
      return line
  raise _failed(process, f"ended before printing {prefix!r}")


def _one_pass(process):
  process.stdin.write("\n")
  process.stdin.flush()
  return float(_read_until(process, "pass ").split()[1])


def main(argv):
  del argv
  ours = _start("throughput.py", [f"--bert_config_file={FLAGS.model_dir}/bert_config.json",
                                  f"--vocab_file={FLAGS.model_dir}/vocab.txt",
                                  f"--batch_size={FLAGS.batch_size}"])
  hf = _start("hf_throughput.py", [f"--batch_size={FLAGS.hf_batch_size}"] +
              ([f"--hf_model_dir={FLAGS.hf_model_dir}"] if FLAGS.hf_model_dir else []))
  sides = {"ours": ours, "hf": hf}
  for process in sides.values():
    _read_until(process, "ready")
  seconds = {name: [] for name in sides}
  for round_index in range(1 + FLAGS.rounds):
    order = ["hf", "ours"] if round_index % 2 == 0 else ["ours", "hf"]
    for name in order:
      seconds[name].append(_one_pass(sides[name]))
  results = {}
  for name, process in sides.items():
    output, _ = process.communicate()
    if process.returncode:
      raise _failed(process, f"failed with exit status {process.returncode}")
    results[name] = json.loads(output)
  examples = results["ours"]["examples"]
  ratios = [h / o for h, o in zip(seconds["hf"][1:], seconds["ours"][1:])]
  print(json.dumps({
      "task": FLAGS.task_name, "examples": examples, "seconds": seconds,
      "round_ratios": ratios, "median_ratio": float(np.median(ratios)),
      "best_ratio": min(seconds["hf"][1:]) / min(seconds["ours"][1:]),
      "cold_ratio": seconds["hf"][0] / seconds["ours"][0],
      "median_examples_per_sec": {name: examples / float(np.median(s[1:]))
                                  for name, s in seconds.items()},
      "cold_examples_per_sec": {name: examples / s[0] for name, s in seconds.items()},
      **results}, indent=2))


if __name__ == "__main__":
  app.run(main)
