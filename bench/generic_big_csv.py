"""Peak memory and speed of the generic task on a big CSV: a million short rows by default.

Writes a CSV of short texts with five 0/1 label columns (the wide layout) and an id column, then
measures, each stage in a fresh process so that its peak resident memory is its own:
  read:       the generic processor reads the file (`get_train_examples`, a dev file given, so
              every row is a training example);
  as_objects: the same, then the rows as a list of `InputExample`s, as the built-in tasks hold
              them: what the column-wise `ExampleTable` saves;
  convert:    read, then `features.convert_examples` on all rows at once, as run_classifier.py
              does today;
  convert_chunked: the same, `CHUNK` rows at a time: what converting in chunks would save;
  features:   what run_classifier.py does with the train split: read, fingerprint, convert to
              features with the model's vocabulary, and write the feature cache
              (`workflow.load_splits`).
Prints one JSON object: per stage, the seconds, rows per second (wall and CPU), and the peak
resident memory (`resource.getrusage`); stage `imports` is the baseline of `features`: its imports
(TensorFlow among them) and the tokenizer, and nothing read.

  python bench/generic_big_csv.py --vocab_file=models/all-MiniLM-L6-v2/vocab.txt --rows=1000000
"""

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLAGS = flags.FLAGS
flags.DEFINE_string("vocab_file", "models/all-MiniLM-L6-v2/vocab.txt",
                    "Vocabulary for the features stage.")
flags.DEFINE_integer("rows", 1_000_000, "Rows in the CSV.")
flags.DEFINE_integer("max_seq_length", 64, "Padded length of the features.")
flags.DEFINE_string("work_dir", None, "Where to write the CSV and the cache (default: a temp dir).")
STAGES = ("imports", "read", "as_objects", "convert", "convert_chunked", "features")
flags.DEFINE_list("stages", list(STAGES), "The stages to run, in this order.")
flags.DEFINE_string("stage", None, "Internal: run one stage in this process.")
# Rows converted at a time by the convert_chunked stage.
CHUNK = 65536

LABELS = ("billing", "bug", "account", "feature", "urgent")
WORDS = ("the app crashes when i open my invoice page please fix it now we were charged twice "
         "for one seat and the refund never came can you add dark mode to the editor my password "
         "reset email does not arrive export to csv fails with an error since the update").split()


def write_csv(path, rows):
  """Writes `rows` rows: id, a text of 4 to 16 words, five 0/1 labels; short, as tickets are."""
  rng = random.Random(0)
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write("id,text," + ",".join(LABELS) + "\n")
    for i in range(rows):
      text = " ".join(rng.choices(WORDS, k=rng.randint(4, 16)))
      labels = ",".join("1" if rng.random() < 0.2 else "0" for _ in LABELS)
      f.write(f"r{i},{text},{labels}\n")


def run_stage(stage, csv_path, work_dir):
  """Runs one stage here; returns its measurements."""
  from processors import generic  # pylint: disable=g-import-not-at-top
  extra = {}
  if stage in ("imports", "convert", "convert_chunked", "features"):
    import numpy as np  # pylint: disable=g-import-not-at-top
    import features  # pylint: disable=g-import-not-at-top
    import tokenization  # pylint: disable=g-import-not-at-top
    import workflow  # pylint: disable=g-import-not-at-top
    tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, do_lower_case=True)
    tokenizer.tokenize_batch(["the rust tokenizer is built on first use"])
  start, cpu_start = time.perf_counter(), time.process_time()
  if stage != "imports":
    processor = generic.GenericProcessor(generic.Options(train_file=csv_path, dev_file=csv_path,
                                                         id_column="id"))
    labels = processor.get_labels()
    if stage in ("read", "as_objects"):
      examples = processor.get_train_examples(None)
      if stage == "as_objects":
        examples = list(examples)
      extra["examples"] = len(examples)
    elif stage in ("convert", "convert_chunked"):
      examples = processor.get_train_examples(None)
      step = CHUNK if stage == "convert_chunked" else len(examples)
      chunks = [features.convert_examples(
          examples.select(np.arange(start, min(start + step, len(examples)))), tokenizer,
          FLAGS.max_seq_length, len(labels)).input_ids for start in range(0, len(examples), step)]
      extra["examples"] = len(np.concatenate(chunks))
    else:
      for name in os.listdir(work_dir):
        if ".tf_record" in name:  # Convert, rather than reuse an earlier run's cache.
          os.remove(os.path.join(work_dir, name))
      splits = workflow.load_splits(processor, [workflow.TRAIN], None, tokenizer,
                                    FLAGS.vocab_file, True, FLAGS.max_seq_length, work_dir,
                                    len(labels))
      extra["examples"] = splits[workflow.TRAIN].features.num_examples
  seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
  peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
  result = {"stage": stage, "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib": round(peak_mib), **extra}
  if stage != "imports":
    result["rows_per_second"] = round(FLAGS.rows / seconds)
    result["rows_per_cpu_second"] = round(FLAGS.rows / cpu)
  return result


def main(argv):
  del argv
  if FLAGS.stage:
    print(json.dumps(run_stage(FLAGS.stage, os.path.join(FLAGS.work_dir, "train.csv"),
                               FLAGS.work_dir)))
    return
  work_dir = FLAGS.work_dir or tempfile.mkdtemp(prefix="generic_big_csv_")
  os.makedirs(work_dir, exist_ok=True)
  csv_path = os.path.join(work_dir, "train.csv")
  start = time.perf_counter()
  write_csv(csv_path, FLAGS.rows)
  report = {"rows": FLAGS.rows, "csv_mib": round(os.path.getsize(csv_path) / 2**20, 1),
            "write_seconds": round(time.perf_counter() - start, 1),
            "max_seq_length": FLAGS.max_seq_length, "stages": []}
  for stage in FLAGS.stages:
    output = subprocess.run(
        [sys.executable, os.path.abspath(__file__), f"--stage={stage}", f"--work_dir={work_dir}",
         f"--rows={FLAGS.rows}", f"--vocab_file={FLAGS.vocab_file}",
         f"--max_seq_length={FLAGS.max_seq_length}"],
        check=True, capture_output=True, text=True).stdout
    report["stages"].append(json.loads(output.strip().split("\n")[-1]))
    print(json.dumps(report["stages"][-1]), file=sys.stderr)
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  app.run(main)
