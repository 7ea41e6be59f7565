"""Test-set quality of run_classifier.py over several seeds, as mean ± sd.

  python bench/quality.py --task_name=se0714 --data_dir=DIR --model_dir=models/all-MiniLM-L6-v2 \
      --output_dir=out/quality/se0714 --seeds=42,43,44 -- \
      --max_seq_length=64 --learning_rate=1e-4 --num_train_epochs=10 --pooling=mean

Each seed runs `run_classifier.py --do_train --do_eval --do_predict --cutoff_type=dynamic` with
the flags after `--`, in a fresh folder `OUTPUT_DIR/seed_N`: the thresholds are tuned on the dev
split (the processor's seeded hold-out of train when the task has no dev file) and the test
metrics are read from `test_eval_results.json`. bench/hf_quality.py measures Hugging Face
transformers on the same rows and prints the same lines.

Prints one JSON line per seed (test mean AUC, weighted and micro F1 and Hamming loss at the
dev-tuned thresholds, wall seconds of the whole run), then one JSON line with the mean and the
sample standard deviation of each over the seeds.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from absl import app
from absl import flags

import scores  # bench/scores.py

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

FLAGS = flags.FLAGS
flags.DEFINE_string("task_name", None, "The task: se0714, psychexp, movielens or toxic.")
flags.DEFINE_string("data_dir", None, "The task's data folder.")
flags.DEFINE_string("model_dir", "models/all-MiniLM-L6-v2",
                    "A Google-format model folder: bert_config.json, vocab.txt, bert_model.ckpt.")
flags.DEFINE_string("output_dir", None, "Each seed's run goes to OUTPUT_DIR/seed_N, emptied first.")
flags.DEFINE_list("seeds", ["42", "43", "44"], "The seeds, one run each.")
flags.DEFINE_string("name", "ours", "What to call this configuration in the printed lines.")


def main(argv):
  extra_flags = argv[1:]
  records = []
  for seed in FLAGS.seeds:
    output_dir = os.path.join(FLAGS.output_dir, f"seed_{seed}")
    shutil.rmtree(output_dir, ignore_errors=True)
    command = [
        sys.executable, os.path.join(REPO_DIR, "run_classifier.py"),
        f"--task_name={FLAGS.task_name}", f"--data_dir={FLAGS.data_dir}",
        f"--vocab_file={FLAGS.model_dir}/vocab.txt",
        f"--bert_config_file={FLAGS.model_dir}/bert_config.json",
        f"--init_checkpoint={FLAGS.model_dir}/bert_model.ckpt", f"--output_dir={output_dir}",
        "--do_train", "--do_eval", "--do_predict", "--cutoff_type=dynamic", f"--seed={seed}",
        *extra_flags]
    started = time.time()
    process = subprocess.run(command, capture_output=True, text=True, check=False)
    wall_s = round(time.time() - started, 1)
    if process.returncode:
      sys.exit(f"seed {seed} failed:\n{process.stderr[-3000:]}")
    with open(os.path.join(output_dir, "test_eval_results.json"), encoding="utf-8") as f:
      records.append(scores.record(int(seed), json.load(f), wall_s))
    scores.print_line({"name": FLAGS.name, **records[-1]})
  scores.print_line(scores.summary(FLAGS.name, records))


if __name__ == "__main__":
  flags.mark_flags_as_required(["task_name", "data_dir", "output_dir"])
  app.run(main)
