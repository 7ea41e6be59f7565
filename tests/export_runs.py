"""A trained run and its export, shared by test_export.py and test_classify.py.

A tiny MovieLens run of `run_classifier.py` (train, eval, predict: sentence pairs, --add_dense,
dynamic thresholds tuned on the dev file), exported by `export_saved_model.py`, both in
subprocesses as a user runs them. Building it costs tens of seconds, so the first test module
to ask builds it and later ones in the same pytest session reuse it.
"""

import dataclasses
import os
import random
import subprocess
import sys

from tests import clitools
from tests.conftest import REPO_DIR

# Texts that exercise the in-graph normalisation even with the tiny vocab: case, accents,
# punctuation, CJK, controls, whitespace variants and a word over Google's 200-character limit.
UNUSUAL_TEXTS = ("The Movie was FUNNY!!", "naïve café, Ünïcödé ﬁlm", "中文 story ａｂｃ",
                 "ghost\u00a0and\u3000dragon\x01\u200b", "x" * 230 + " love", "ΣΑΣ love")
MAX_SEQ_LENGTH = 24

_CACHE = {}


@dataclasses.dataclass
class ExportedRun:
  """A trained run and its export.

  Attributes:
    labels: the label names.
    output_dir, export_dir, data_dir: str.
    test_ids, test_texts, test_texts_b: the test split's movie ids, titles and summaries.
    model_flags: the flags of both commands besides the folders (task, model, settings).
  """
  labels: tuple
  output_dir: str
  export_dir: str
  data_dir: str
  test_ids: list
  test_texts: list
  test_texts_b: list
  model_flags: list

  def path(self, name):
    return os.path.join(self.output_dir, name)


def run_export(args, timeout=300):
  """Runs `python export_saved_model.py ARGS`; returns the CompletedProcess."""
  return subprocess.run([sys.executable, "export_saved_model.py", *args], cwd=REPO_DIR,
                        capture_output=True, text=True, check=False, timeout=timeout)


def _write_data(data_dir):
  """Writes train, dev and test files; returns the test rows (id, title, summary, labels)."""
  rng = random.Random(11)
  ids = rng.sample(range(1, 200000), 50)

  def rows(movie_ids):
    return [(movie_id, clitools.random_text(rng, 1, 4), clitools.random_text(rng, 4, 30),
             clitools.random_labels(rng, 17, rate=0.2)) for movie_id in movie_ids]

  train, dev, test = rows(ids[:30]), rows(ids[30:40]), rows(ids[40:])
  for i, text in enumerate(UNUSUAL_TEXTS):
    movie_id, title, summary, labels = test[i]
    test[i] = (movie_id, text, summary, labels) if i % 2 else (movie_id, title, text, labels)
  # A long pair, truncated longest first.
  test[-1] = (test[-1][0], "a long title " * 5, "a long story " * 20, test[-1][3])
  for name, split in (("train", train), ("dev", dev), ("test", test)):
    clitools.write_text(data_dir / f"{name}_movies.txt", clitools.movielens_lines(split))
  return test


def exported_run(tiny_bert, tmp_path_factory):
  """Returns the `ExportedRun`, trained and exported once per pytest session."""
  if not _CACHE:
    tmp = tmp_path_factory.mktemp("exported_run")
    data_dir = tmp / "data"
    data_dir.mkdir()
    test = _write_data(data_dir)
    model_flags = ["--task_name=movielens", *clitools.model_flags(tiny_bert, False),
                   f"--max_seq_length={MAX_SEQ_LENGTH}", "--add_dense=true",
                   "--cutoff_type=dynamic"]
    run = ExportedRun(clitools.MOVIELENS_LABELS, str(tmp / "out"), str(tmp / "export"),
                      str(data_dir), [str(row[0]) for row in test], [row[1] for row in test],
                      [row[2] for row in test], model_flags)
    clitools.succeeded(clitools.run_cli(
        [*model_flags, f"--data_dir={data_dir}", f"--output_dir={run.output_dir}",
         f"--init_checkpoint={tiny_bert['checkpoint']}", "--do_train=true", "--do_eval=true",
         "--do_predict=true", "--train_batch_size=8", "--num_train_epochs=1",
         "--learning_rate=1e-3"]))
    clitools.succeeded(run_export(
        [*model_flags, f"--output_dir={run.output_dir}", f"--export_dir={run.export_dir}"]))
    _CACHE["run"] = run
  return _CACHE["run"]
