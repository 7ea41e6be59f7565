"""Writes real data sets as a user's own files, for runs of --task_name=generic.

  kaggle_insults/: Kaggle's "Detecting Insults in Social Commentary" as DeepMoji published it
    (`deepmoji/kaggle-insults_raw.pickle`), with its fixed splits, as train.csv, dev.csv and
    test.csv: columns id, text, insult (the wide layout, one label). Not one of the four tasks.
  psychexp_wide/, psychexp_names/, psychexp_ids/: the psychexp task's own train and test files,
    with the examples that `--task_name=psychexp` reads, written in the three layouts: a wide CSV,
    JSON Lines of label names, a TSV of label ids. Ids are the built-in task's (line numbers) and
    the label order its own (labels.txt; the wide header), so that a run on each must give the
    built-in task's features, checkpoint and predictions. No dev file: the same seeded hold-out.

  python bench/write_own_data.py --shared_data=../shared/data --output_dir=/tmp/own_data
"""

import csv
import json
import os
import pickle
import sys

from absl import app
from absl import flags

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import processors  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("shared_data", "../shared/data", "The shared data folder (see its README).")
flags.DEFINE_string("output_dir", None, "Where to write the data folders.")
flags.mark_flag_as_required("output_dir")


def write_table(path, header, rows, delimiter):
  """Writes a CSV ("," delimiter) or a TSV ("\\t") quoted as pandas and spreadsheets quote."""
  with open(path, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, delimiter=delimiter, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)


def write_kaggle_insults(folder):
  """Writes kaggle_insults/{train,dev,test}.csv from DeepMoji's pickle and splits."""
  with open(os.path.join(FLAGS.shared_data, "deepmoji", "kaggle-insults_raw.pickle"), "rb") as f:
    data = pickle.load(f, encoding="latin1")
  os.makedirs(folder, exist_ok=True)
  counts = {}
  for split, key in (("train", "train_ind"), ("dev", "val_ind"), ("test", "test_ind")):
    rows = [(f"k{i}", data["texts"][i], data["info"][i]["label"]) for i in data[key]]
    write_table(os.path.join(folder, f"{split}.csv"), ["id", "text", "insult"], rows, ",")
    counts[split] = (len(rows), sum(label for _, _, label in rows))
  return counts


def write_psychexp(output_dir):
  """Writes psychexp_{wide,names,ids}/ from the psychexp task's train and test files."""
  psychexp = processors.get_processor("psychexp")
  labels = psychexp.get_labels()
  counts = {}
  for split in ("train", "test"):
    path = os.path.join(FLAGS.shared_data, "psychexp", f"{split}_psychexp.txt")
    # The built-in reader, so that the examples are exactly those of --task_name=psychexp.
    examples = psychexp._read_examples(path)  # pylint: disable=protected-access
    counts[split] = len(examples)
    named = [(e.guid, e.text_a, [n for n, v in zip(labels, e.labels) if v]) for e in examples]
    for layout in ("wide", "names", "ids"):
      os.makedirs(os.path.join(output_dir, f"psychexp_{layout}"), exist_ok=True)
    write_table(os.path.join(output_dir, "psychexp_wide", f"{split}.csv"),
                ["id", "text", *labels], [(e.guid, e.text_a, *e.labels) for e in examples], ",")
    with open(os.path.join(output_dir, "psychexp_names", f"{split}.jsonl"), "w",
              encoding="utf-8") as f:
      for guid, text, names in named:
        f.write(json.dumps({"id": guid, "text": text, "labels": names}, ensure_ascii=False) + "\n")
    write_table(os.path.join(output_dir, "psychexp_ids", f"{split}.tsv"), ["id", "text", "labels"],
                [(guid, text, "|".join(str(labels.index(n)) for n in names))
                 for guid, text, names in named], "\t")
  for layout in ("names", "ids"):
    with open(os.path.join(output_dir, f"psychexp_{layout}", "labels.txt"), "w",
              encoding="utf-8") as f:
      f.write("".join(name + "\n" for name in labels))
  return counts


def main(argv):
  del argv
  print(json.dumps({
      "kaggle_insults (rows, positives)": write_kaggle_insults(
          os.path.join(FLAGS.output_dir, "kaggle_insults")),
      "psychexp (rows)": write_psychexp(FLAGS.output_dir)}, indent=2))


if __name__ == "__main__":
  app.run(main)
