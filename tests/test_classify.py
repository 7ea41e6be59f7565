"""End-to-end tests of classify.py on the export of `export_runs`: files and standard input in,
TSV and JSON Lines out, the numbers of the SavedModel and of run_classifier.py."""

from concurrent import futures
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import serving
from tests import clitools
from tests import export_runs
from tests.conftest import REPO_DIR
from tests.conftest import assert_close


def run_classify(args, stdin=None, timeout=300):
  return subprocess.run([sys.executable, "classify.py", *args], cwd=REPO_DIR, input=stdin,
                        capture_output=True, text=True, check=False, timeout=timeout)


@pytest.fixture(name="run", scope="module")
def fixture_run(tiny_bert, tmp_path_factory):
  return export_runs.exported_run(tiny_bert, tmp_path_factory)


@pytest.fixture(name="results", scope="module")
def fixture_results(run, tmp_path_factory):
  """{case: (CompletedProcess, output file or None, the texts)}: classify.py runs, two at a time."""
  tmp = tmp_path_factory.mktemp("classify")
  lines = ["A Funny movie about a robot", "", "naïve café ﬁlm 中文", "\tghost\u00a0story  ",
           "the " * 60]
  txt = clitools.write_text(tmp / "new.txt", "\n".join(lines) + "\n")
  csv = "movie,title,summary\n" + "".join(
      f"{movie_id},{clitools.csv_field(a)},{clitools.csv_field(b)}\n"
      for movie_id, a, b in zip(run.test_ids, run.test_texts, run.test_texts_b))
  export = f"--export_dir={run.export_dir}"
  cases = {
      "txt": ([export, f"--input={txt}", f"--output={tmp / 'out.tsv'}", "--batch_size=2"],
              None, tmp / "out.tsv", lines),
      "stdin_csv": ([export, "--input_format=csv", "--text_column=title",
                     "--text_b_column=summary", "--id_column=movie", "--output_format=jsonl"],
                    csv, None, None),
      "missing_column": ([export, "--input_format=csv"], csv, None, None),
      "not_an_export": ([f"--export_dir={run.output_dir}", f"--input={txt}"], None, None, None),
      "text_b_of_txt": ([export, f"--input={txt}", "--text_b_column=b"], None, None, None),
  }
  with futures.ThreadPoolExecutor(max_workers=2) as pool:
    completed = list(pool.map(lambda case: run_classify(case[0], case[1]), cases.values()))
  return {name: (result, case[2], case[3])
          for (name, case), result in zip(cases.items(), completed)}


def read_output(result, path):
  """The output's text: the file, else what was printed."""
  clitools.succeeded(result)
  if path is None:
    return result.stdout
  with open(path, encoding="utf-8") as f:
    return f.read()


def jsonl_rows(text, labels):
  """(ids, probabilities [n, k], predictions [n, k]) of JSON Lines output, checking its keys."""
  rows = [json.loads(line) for line in text.splitlines()]
  for row in rows:
    assert list(row) == ["id", "probabilities", "predictions"]
    assert list(row["probabilities"]) == list(labels) == list(row["predictions"])
  return ([row["id"] for row in rows],
          np.array([list(row["probabilities"].values()) for row in rows]),
          np.array([list(row["predictions"].values()) for row in rows]))


def cut_offs(run):
  with open(os.path.join(run.export_dir, "assets", serving.METADATA_FILE), encoding="utf-8") as f:
    return np.array(json.load(f)["cut_offs"])


def test_a_table_on_standard_input_gives_run_classifiers_numbers(results, run):
  result, path, _ = results["stdin_csv"]
  ids, probabilities, predictions = jsonl_rows(read_output(result, path), run.labels)
  assert ids == run.test_ids
  _, _, expected = clitools.read_tsv(run.path("test_results.tsv"))
  assert_close(probabilities, expected, rtol=1e-5, atol=1e-5)
  _, _, classes = clitools.read_tsv(run.path("test_results_classes.tsv"))
  np.testing.assert_array_equal(predictions, classes)


def test_text_file_gives_the_export_numbers_in_input_order(results, run):
  result, path, lines = results["txt"]
  text = read_output(result, path)
  rows = [line.split("\t") for line in text.splitlines()]
  k = len(run.labels)
  assert rows[0] == ["id", *run.labels, *[f"predicted_{label}" for label in run.labels]]
  assert [row[0] for row in rows[1:]] == [str(i) for i in range(1, len(lines) + 1)]
  probabilities = np.array([row[1:1 + k] for row in rows[1:]], np.float32)
  predictions = np.array([row[1 + k:] for row in rows[1:]], np.int64)
  loaded = tf.saved_model.load(run.export_dir)
  outputs = loaded.signatures["serving_default"](text=tf.constant(lines),
                                                 text_b=tf.constant([""] * len(lines)))
  assert_close(probabilities, outputs["probabilities"].numpy(), rtol=1e-5, atol=1e-6)
  # The 0/1 columns are the printed probabilities against the run's thresholds.
  np.testing.assert_array_equal(predictions,
                                probabilities.astype(np.float64) >= cut_offs(run))


@pytest.mark.parametrize("case, reason", [
    ("missing_column",
     "<stdin>, line 1: no column 'text' in the header (columns: movie, title, summary)"),
    ("not_an_export", "cannot load a SavedModel there"),
    ("text_b_of_txt", "apply to .csv, .tsv and .jsonl input"),
])
def test_bad_input_is_one_line(results, case, reason):
  result, path, _ = results[case]
  assert result.returncode == 2, result.stderr[-3000:]
  assert reason in clitools.error_message(result.stderr)
  assert path is None or not os.path.exists(path)
