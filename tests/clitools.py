"""Helpers for the tests that run `run_classifier.py` as a user does: in a subprocess.

They write small data files in each task's format (SPEC section 4), run the command line, and read
back what it wrote: the prediction TSVs, the eval results and the one-line error of a failed run.
"""

from concurrent import futures
import json
import os
import re
import subprocess
import sys

import numpy as np

from tests.conftest import REPO_DIR
from tests.conftest import TINY_WORDS

SE0714_LABELS = ("fear", "joy", "sadness")
PSYCHEXP_LABELS = ("joy", "fear", "anger", "sadness", "disgust", "shame", "guilt")
MOVIELENS_LABELS = ("Adventure", "Animation", "Children", "Comedy", "Fantasy", "Romance", "Drama",
                    "Action", "Crime", "Thriller", "Horror", "Mystery", "Sci-Fi", "War",
                    "Musical", "Documentary", "Western")
TOXIC_LABELS = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")

# The files a run writes only when it got far enough to train, evaluate or predict.
RESULT_FILES = ("eval_results.txt", "eval_results.json", "test_eval_results.txt",
                "test_eval_results.json",
                "test_results.tsv", "test_results_classes.tsv", "thresholds.json", "checkpoint")


def run_cli(args, env=None, timeout=300):
  """Runs `python run_classifier.py ARGS` in the repository; returns the CompletedProcess."""
  return subprocess.run([sys.executable, "run_classifier.py", *args], cwd=REPO_DIR,
                        capture_output=True, text=True, check=False, timeout=timeout,
                        env=None if env is None else {**os.environ, **env})


def run_python(code, *args, cwd=REPO_DIR, env=None, timeout=120):
  """Runs `python -c CODE ARGS...` in a fresh interpreter (in the repository unless `cwd` says
  where), with `env` as its whole environment when given; asserts it exited 0 and returns the
  CompletedProcess."""
  result = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True,
                          text=True, check=False, timeout=timeout, env=env)
  assert result.returncode == 0, result.stderr[-3000:]
  return result


def printed_json(result):
  """The JSON value that a process printed on its last line of stdout."""
  return json.loads(result.stdout.strip().splitlines()[-1])


def run_parallel(calls, workers=2):
  """Runs `run_cli(*call)` for each call, `workers` at a time; returns the results in order.

  The machine's cores are few and TensorFlow's start-up is mostly single-threaded, so two runs
  side by side take little longer than one.
  """
  with futures.ThreadPoolExecutor(max_workers=workers) as pool:
    return list(pool.map(lambda call: run_cli(*call), calls))


def succeeded(result):
  """Asserts that a run exited 0 and returns its stderr (the absl log)."""
  assert result.returncode == 0, result.stderr[-5000:]
  return result.stderr


def model_flags(model, init_checkpoint=True):
  """The flags naming a tiny model folder's vocab, config and (optionally) checkpoint."""
  flags = [f"--vocab_file={model['vocab_file']}", f"--bert_config_file={model['config_file']}"]
  if init_checkpoint:
    flags.append(f"--init_checkpoint={model['checkpoint']}")
  return flags


def error_message(stderr):
  """Returns what follows the `error: ` that the command line prints, up to the end of stderr.

  Asserts there is exactly one such line, so that a run that failed for another reason (or
  printed several errors) shows its whole stderr.
  """
  starts = [m.start() for m in re.finditer(r"^error: ", stderr, flags=re.MULTILINE)]
  assert len(starts) == 1, stderr[-5000:]
  return stderr[starts[0] + len("error: "):].rstrip("\n")


def write_text(path, text):
  """Writes `text` as UTF-8 to `path` (a pathlib.Path or str) and returns the path as str."""
  with open(path, "w", encoding="utf-8", newline="") as f:
    f.write(text)
  return str(path)


def random_text(rng, min_words, max_words, words=TINY_WORDS):
  """A text of `min_words` to `max_words` words drawn by `rng` (a `random.Random`)."""
  return " ".join(rng.choice(words) for _ in range(rng.randint(min_words, max_words)))


def random_labels(rng, num_labels, rate=0.3):
  """A tuple of `num_labels` 0/1 values, each 1 with probability `rate`."""
  return tuple(int(rng.random() < rate) for _ in range(num_labels))


def label_vector(labels, style):
  """Formats 0/1 labels as a task's files write them.

  Style "bool" writes `[False, True]` (SE0714), "float" `[0.0, 1.0]` (PsychExp) and "int"
  `[0, 1]` (MovieLens).
  """
  formats = {"bool": lambda v: str(bool(v)), "float": lambda v: f"{float(v):.1f}",
             "int": lambda v: str(int(v))}
  return "[" + ", ".join(formats[style](v) for v in labels) + "]"


def labels_first_lines(rows, style):
  """The lines `[labels]<TAB>text` of SE0714 ("bool") and PsychExp ("float") files."""
  return "".join(f"{label_vector(labels, style)}\t{text}\n" for labels, text in rows)


def movielens_lines(rows):
  """The lines `movieId<TAB>title<TAB>summary<TAB>[labels]` of rows (id, title, summary, labels)."""
  return "".join(f"{movie_id}\t{title}\t{summary}\t{label_vector(labels, 'int')}\n"
                 for movie_id, title, summary, labels in rows)


def csv_field(text):
  """Quotes a CSV field as Kaggle's files do: in double quotes, inner quotes doubled."""
  return '"' + text.replace('"', '""') + '"'


def toxic_labelled_csv(rows):
  """A Kaggle `train.csv`/`dev.csv` of rows (id, comment, labels)."""
  header = ",".join(("id", "comment_text") + TOXIC_LABELS)
  return header + "\n" + "".join(
      f"{guid},{csv_field(text)},{','.join(str(v) for v in labels)}\n"
      for guid, text, labels in rows)


def toxic_test_csvs(rows):
  """Kaggle's `test.csv` and `test_labels.csv` of rows (id, comment, labels or None).

  A row with labels None is written with -1 in every label, as Kaggle marked unscored rows.
  """
  test = "id,comment_text\n" + "".join(f"{guid},{csv_field(text)}\n" for guid, text, _ in rows)
  labels = ",".join(("id",) + TOXIC_LABELS) + "\n" + "".join(
      f"{guid},{','.join(str(v) for v in (labels if labels is not None else [-1] * 6))}\n"
      for guid, _, labels in rows)
  return test, labels


def read_tsv(path):
  """Reads a prediction TSV; returns (header list, ids list, float64 values [n, k])."""
  with open(path, encoding="utf-8") as f:
    lines = f.read().split("\n")
  assert lines[-1] == "", f"{path} does not end with a line break"
  header = lines[0].split("\t")
  rows = [line.split("\t") for line in lines[1:-1]]
  assert all(len(row) == len(header) for row in rows), f"{path} has ragged rows"
  values = np.array([[float(v) for v in row[1:]] for row in rows], dtype=np.float64)
  return header, [row[0] for row in rows], values.reshape(len(rows), len(header) - 1)


def parse_eval_results(text, label_names):
  """Parses `eval_results.txt`, checking the original script's layout line by line.

  Returns:
    dict with `auc` ({label: float or None}), `mean_auc`, and when the F1 part is there
    `hamming_loss`, `f1` ({label: float}), `support` ({label: int}), `mean_f1`; after
    thresholds tuned on this split also `cross_validated` ({"hamming_loss", "mean_f1"}); floats
    are read from the 5-decimal text, "undefined" as None.
  """
  number = r"(\d+\.\d{5}|undefined)"

  def value(text):
    return None if text == "undefined" else float(text)

  lines = text.split("\n")
  assert lines[-1] == "", "eval results do not end with a line break"
  lines = lines[:-1]
  k = len(label_names)
  assert lines[0] == "AUC:", lines
  parsed = {"auc": {}}
  for name, line in zip(label_names, lines[1:1 + k]):
    match = re.fullmatch(re.escape(name) + "\t" + number, line)
    assert match, f"{line!r} is not '{name}<TAB>auc'"
    parsed["auc"][name] = value(match.group(1))
  match = re.fullmatch("Mean AUC: " + number, lines[1 + k])
  assert match, lines[1 + k]
  parsed["mean_auc"] = value(match.group(1))
  rest = lines[2 + k:]
  if not rest:
    return parsed
  honest = rest[k + 3:]
  rest = rest[:k + 3]
  if honest:
    assert len(honest) == 3 and "tuned on this same split" in honest[0], honest
    parsed["cross_validated"] = {}
    for key, line, label in (("hamming_loss", honest[1], "Hamming Loss"),
                             ("mean_f1", honest[2], "Mean F1-score")):
      match = re.fullmatch(f"Cross-validated {label}: " + number, line)
      assert match, line
      parsed["cross_validated"][key] = value(match.group(1))
  assert len(rest) == k + 3, rest
  match = re.fullmatch("Hamming Loss: " + number, rest[0])
  assert match, rest[0]
  parsed["hamming_loss"] = value(match.group(1))
  assert rest[1] == "F1 score:", rest[1]
  parsed["f1"], parsed["support"] = {}, {}
  for name, line in zip(label_names, rest[2:2 + k]):
    match = re.fullmatch(re.escape(name) + "\t" + number + r"\t(\d+)", line)
    assert match, f"{line!r} is not '{name}<TAB>f1<TAB>support'"
    parsed["f1"][name] = value(match.group(1))
    parsed["support"][name] = int(match.group(2))
  match = re.fullmatch("Mean F1-score: " + number, rest[k + 2])
  assert match, rest[-1]
  parsed["mean_f1"] = value(match.group(1))
  return parsed


def result_files(output_dir):
  """The result and checkpoint files in `output_dir` (none when it does not exist)."""
  if not os.path.isdir(output_dir):
    return []
  return sorted(name for name in os.listdir(output_dir)
                if name in RESULT_FILES or name.startswith("model.ckpt-"))


def latest_checkpoint_step(output_dir):
  """The STEP of the `model.ckpt-STEP` that `output_dir`'s `checkpoint` file names as latest."""
  with open(os.path.join(output_dir, "checkpoint"), encoding="utf-8") as f:
    first = f.readline()
  match = re.fullmatch(r'model_checkpoint_path: "model\.ckpt-(\d+)"\n', first)
  assert match, first
  return int(match.group(1))
