"""This project and Hugging Face, predicting or training in alternating passes.

  # A task's test split, files to probabilities:
  python bench/paired.py --mode=predict --model_dir=models/all-MiniLM-L6-v2 --data_dir=D
  # A task's train split, one epoch (each side's own bucketed or length-grouped batches):
  python bench/paired.py --mode=train --model_dir=models/all-MiniLM-L6-v2 --data_dir=D
  # Fixed-shape training, 32 x 128, random ids:
  python bench/paired.py --mode=train --model_dir=models/all-MiniLM-L6-v2

Runs bench/throughput.py (this project) and bench/hf_throughput.py (Hugging Face at its best)
as two resident processes, and lets one pass run at a time: both cold passes first, then one
warm pass each per round, the order alternating (ABBA) so that a steady drift of the machine
favours neither side. Side by side in separate processes minutes apart, the same Hugging Face
pass moved by 30%; a round's ratio compares passes seconds apart.

A prediction pass is the whole test split, ours at --batch_size=8 (run_classifier's default
--predict_batch_size), Hugging Face's sorted and padded per batch at --hf_batch_size; --rounds
warm passes follow the cold one. A training pass is a chunk of --chunk_steps steps; the cold
pass is the first step (tracing included). On a task's train split each side runs its own
batches of the same epoch, so one round's chunks differ in width: the ratio that counts is
`total_ratio`, both sides' warm seconds summed over the epoch. At a fixed shape every chunk is
the same work, and `median_ratio` is the steadiest figure.

The cold passes are not alike: on the development VM the one that comes second runs slower
than it does alone. With Hugging Face's process resident after its first training step, ours
took 5.8-6.3 s against 4.6-4.7 s alone or first: as many page faults (316k), 2.8 s of system
time instead of 0.5. Put second, Hugging Face's took 4.7 s against 2.8-3.3 s. Warm passes fault
little and ran about as fast as alone (psychexp's epoch, one run alone each against three
alternated: ours 84.8 against 83.9-85.6 examples/s, Hugging Face's 66.7 against 63.9-66.2).
bench/side_by_side.sh therefore also times each side's first training step in a process alone.

Prints one JSON object: each side's seconds per pass, the ratio of each round (Hugging Face's
seconds over ours: above 1 means we are faster), their median, the ratio of the summed warm
passes, of the best warm passes and of the cold passes, each side's examples/s over its warm
passes and in its cold pass; then both scripts' own JSON results, under "ours" and "hf". The
environment passes through to both (e.g. ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
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
flags.DEFINE_enum("mode", "predict", ["predict", "train"], "What to alternate.")
flags.DEFINE_string("model_dir", None, "Our side's Google-format folder (bert_config.json, "
                    "vocab.txt), e.g. models/all-MiniLM-L6-v2 as `python "
                    "convert_hf_checkpoint.py` writes it: the model Hugging Face's side loads "
                    "by default.")
flags.DEFINE_string("data_dir", None, "The task's data folder; required to predict. Training "
                    "without it runs at a fixed shape, --batch_size x --max_seq_length.")
flags.DEFINE_string("task_name", "psychexp", "The task.")
flags.DEFINE_integer("rounds", 6, "Prediction: warm rounds after the cold passes.")
flags.DEFINE_integer("steps", None, "Training: steps after the first (fixed shape, default "
                     "40), or in all (a task's split, default one epoch).")
flags.DEFINE_integer("chunk_steps", None, "Training: steps per warm pass (default 4 at a fixed "
                     "shape, 10 on a task's split).")
flags.DEFINE_integer("max_seq_length", 128, "The cap on tokens per example, both sides.")
flags.DEFINE_integer("batch_size", None, "Our batch size (default: 8 to predict, as "
                     "run_classifier's --predict_batch_size; 32 to train).")
flags.DEFINE_integer("hf_batch_size", 32, "Hugging Face's batch size.")
flags.DEFINE_string("hf_model_dir", None, "Hugging Face's model folder (default: the packaged "
                    "all-MiniLM-L6-v2).")
flags.mark_flag_as_required("model_dir")


def _common_arguments():
  """The flags both sides get, and our batch size."""
  arguments = [f"--mode={FLAGS.mode}", "--paced", f"--max_seq_length={FLAGS.max_seq_length}"]
  if FLAGS.data_dir:
    arguments += [f"--task_name={FLAGS.task_name}", f"--data_dir={FLAGS.data_dir}"]
  if FLAGS.mode == "predict":
    return arguments + [f"--passes={FLAGS.rounds}"], FLAGS.batch_size or 8
  fixed = not FLAGS.data_dir
  arguments.append(f"--chunk_steps={FLAGS.chunk_steps or (4 if fixed else 10)}")
  if FLAGS.steps or fixed:
    arguments.append(f"--steps={FLAGS.steps or 40}")
  return arguments, FLAGS.batch_size or 32


def _start(script, arguments):
  command = [sys.executable, os.path.join(BENCH_DIR, script), *arguments]
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


def _result(process):
  """The JSON object a side prints after its last pass.

  Read through the same buffered stream as its "pass" lines: the result can arrive in the same
  read as the last of them, and then sits in that buffer, where `communicate()`, which reads
  the pipe itself, would never see it (2 of 8 side-by-side runs failed so).
  """
  process.stdin.close()
  output = process.stdout.read()
  if process.wait():
    raise _failed(process, f"failed with exit status {process.returncode}")
  return json.loads(output)


def main(argv):
  del argv
  if FLAGS.mode == "predict" and not FLAGS.data_dir:
    raise app.UsageError("--mode=predict needs --data_dir")
  common, batch_size = _common_arguments()
  ours = _start("throughput.py", common + [
      f"--bert_config_file={FLAGS.model_dir}/bert_config.json",
      f"--vocab_file={FLAGS.model_dir}/vocab.txt", f"--batch_size={batch_size}"])
  hf = _start("hf_throughput.py", common + [f"--batch_size={FLAGS.hf_batch_size}"] +
              ([f"--hf_model_dir={FLAGS.hf_model_dir}"] if FLAGS.hf_model_dir else []))
  sides = {"ours": ours, "hf": hf}
  passes = {name: int(_read_until(process, "ready").split()[1])
            for name, process in sides.items()}
  if passes["ours"] != passes["hf"]:
    raise RuntimeError(f"the two sides make different numbers of warm passes: {passes}")
  seconds = {name: [] for name in sides}
  for round_index in range(1 + passes["ours"]):
    order = ["hf", "ours"] if round_index % 2 == 0 else ["ours", "hf"]
    for name in order:
      seconds[name].append(_one_pass(sides[name]))
  results = {name: _result(process) for name, process in sides.items()}
  if FLAGS.mode == "predict":
    examples = {name: [results["ours"]["examples"]] * len(s) for name, s in seconds.items()}
  else:
    examples = {name: [n * results[name]["batch_size"] for n in results[name]["chunk_steps"]]
                for name in sides}
  ratios = [h / o for h, o in zip(seconds["hf"][1:], seconds["ours"][1:])]
  print(json.dumps({
      "mode": FLAGS.mode, "task": FLAGS.task_name if FLAGS.data_dir else None,
      "seconds": seconds, "round_ratios": ratios, "median_ratio": float(np.median(ratios)),
      "total_ratio": sum(seconds["hf"][1:]) / sum(seconds["ours"][1:]),
      "best_ratio": min(seconds["hf"][1:]) / min(seconds["ours"][1:]),
      "cold_ratio": seconds["hf"][0] / seconds["ours"][0],
      "warm_examples_per_sec": {name: sum(examples[name][1:]) / sum(s[1:])
                                for name, s in seconds.items()},
      "cold_examples_per_sec": {name: examples[name][0] / s[0] for name, s in seconds.items()},
      **results}, indent=2))


if __name__ == "__main__":
  app.run(main)
