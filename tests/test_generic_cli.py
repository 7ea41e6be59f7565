"""run_classifier.py on a user's own files: --task_name=generic, end to end in subprocesses.

The same tiny data set written as a wide CSV, a JSON Lines file of label names and a TSV of label
ids must give the same features, the same trained checkpoint and the same predictions; an output
folder keeps its label set for later runs; bad files stop the run with one line, exit code 2 and
nothing written. Runs share module-scoped fixtures and run two at a time.
"""

import csv
import hashlib
import io
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

from tests import clitools

LABELS = ("billing", "bug", "urgent")
# A word that marks each label in the synthetic texts.
KEYWORDS = {"billing": "king", "bug": "robot", "urgent": "storm"}
LAYOUTS = ("wide", "names", "ids")
# The files of each layout, the flags it needs, and its test file.
LAYOUT_FILES = {"wide": ("train.csv", "test.csv"), "names": ("train.jsonl", "test.jsonl"),
                "ids": ("train.tsv", "test.tsv")}


def make_rows(rng, count, prefix):
  """Rows (id, text, label names) whose texts hold the keywords of their labels."""
  rows = []
  for i in range(count):
    names = [name for name in LABELS if rng.random() < 0.35]
    words = [KEYWORDS[name] for name in names] + clitools.random_text(rng, 2, 6).split()
    rng.shuffle(words)
    rows.append((f"{prefix}{i}", " ".join(words), names))
  return rows


def layout_text(layout, rows, with_labels=True):
  """A file of `rows` in one layout: wide CSV, JSON Lines of names, or TSV of ids."""
  if layout == "names":
    return "".join(json.dumps({"id": guid, "text": text, **(
        {"labels": names} if with_labels else {})}) + "\n" for guid, text, names in rows)
  out = io.StringIO(newline="")
  writer = csv.writer(out, delimiter="," if layout == "wide" else "\t", lineterminator="\r\n")
  labels_header = (list(LABELS) if layout == "wide" else ["labels"]) if with_labels else []
  writer.writerow(["id", "text"] + labels_header)
  for guid, text, names in rows:
    if not with_labels:
      labels = []
    elif layout == "wide":
      labels = [int(name in names) for name in LABELS]
    else:
      labels = ["|".join(str(LABELS.index(name)) for name in names)]
    writer.writerow([guid, text] + labels)
  return out.getvalue()


def write_layout(folder, layout, train_rows, test_rows):
  folder.mkdir(parents=True)
  train_name, test_name = LAYOUT_FILES[layout]
  clitools.write_text(folder / train_name, layout_text(layout, train_rows))
  clitools.write_text(folder / test_name, layout_text(layout, test_rows))
  if layout == "ids":
    clitools.write_text(folder / "labels.txt", "\n".join(LABELS) + "\n")
  return folder


def run_flags(model, **flags):
  """The flags of a generic train, eval and predict run, with `flags` (None drops one)."""
  values = {"task_name": "generic", "id_column": "id", "max_seq_length": 32, "do_train": "true",
            "do_eval": "true", "do_predict": "true", "train_batch_size": 4,
            "num_train_epochs": 1, "learning_rate": 1e-3, "cutoff_type": "static", "seed": 7}
  values.update(flags)
  return clitools.model_flags(model) + [f"--{name}={value}" for name, value in values.items()
                                        if value is not None]


def file_hash(path):
  with open(path, "rb") as f:
    return hashlib.sha256(f.read()).hexdigest()


def checkpoint_tensors(output_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(str(output_dir)))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


@pytest.fixture(name="layout_runs", scope="module")
def fixture_layout_runs(tiny_bert, tmp_path_factory):
  """{layout: output folder} of a train, eval and predict run on each layout of one data set."""
  root = tmp_path_factory.mktemp("generic_layouts")
  rng = random.Random(3)
  train_rows, test_rows = make_rows(rng, 30, "r"), make_rows(rng, 8, "t")
  calls, outputs = [], {}
  for layout in LAYOUTS:
    data_dir = write_layout(root / layout, layout, train_rows, test_rows)
    outputs[layout] = root / f"out_{layout}"
    calls.append((run_flags(tiny_bert, data_dir=data_dir, output_dir=outputs[layout]),))
  for layout, result in zip(LAYOUTS, clitools.run_parallel(calls)):
    log = clitools.succeeded(result)
    assert "Labels (3, from" in log, layout
  return {"root": root, "outputs": outputs, "test_rows": test_rows}


def cached_features(output_dir):
  """{cache file: (its sidecar, its records as dicts)} of every feature cache in a folder.

  Records are compared parsed: protobuf writes a map's entries in no fixed order.
  """
  caches = {}
  for name in sorted(os.listdir(output_dir)):
    if name.endswith(".tf_record"):
      records = [{key: list(getattr(feature, feature.WhichOneof("kind")).value)
                  for key, feature in tf.train.Example.FromString(record).features.feature.items()}
                 for record in tf.data.TFRecordDataset(str(output_dir / name)).as_numpy_iterator()]
      with open(output_dir / (name + ".json"), encoding="utf-8") as f:
        caches[name] = (json.load(f), records)
  return caches


def test_three_layouts_give_the_same_features(layout_runs):
  caches = {layout: cached_features(layout_runs["outputs"][layout]) for layout in LAYOUTS}
  assert len(caches["wide"]) == 3  # Train, dev and test.
  assert caches["names"] == caches["wide"]
  assert caches["ids"] == caches["wide"]


def test_three_layouts_give_the_same_checkpoint(layout_runs, tiny_bert):
  tensors = {layout: checkpoint_tensors(layout_runs["outputs"][layout]) for layout in LAYOUTS}
  assert "loss/output_weights" in tensors["wide"]
  initial = tf.train.load_checkpoint(tiny_bert["checkpoint"])
  assert not np.array_equal(tensors["wide"]["bert/pooler/dense/kernel"],
                            initial.get_tensor("bert/pooler/dense/kernel"))
  for layout in ("names", "ids"):
    assert tensors[layout].keys() == tensors["wide"].keys()
    for name, value in tensors["wide"].items():
      np.testing.assert_allclose(tensors[layout][name], value, rtol=1e-6, atol=1e-7,
                                 err_msg=f"{layout}: {name}")


def test_three_layouts_give_the_same_predictions(layout_runs):
  results = {layout: clitools.read_tsv(layout_runs["outputs"][layout] / "test_results.tsv")
             for layout in LAYOUTS}
  header, ids, probabilities = results["wide"]
  assert header == ["id", *LABELS]
  assert ids == [guid for guid, _, _ in layout_runs["test_rows"]]
  for layout in ("names", "ids"):
    assert results[layout][:2] == (header, ids)
    np.testing.assert_allclose(results[layout][2], probabilities, rtol=1e-5, atol=1e-6)
  for layout in LAYOUTS:
    folder = layout_runs["outputs"][layout]
    assert (folder / "labels.txt").read_text(encoding="utf-8") == "billing\nbug\nurgent\n"
    assert (folder / "test_eval_results.txt").exists()


@pytest.fixture(name="later_runs", scope="module")
def fixture_later_runs(layout_runs, tiny_bert):
  """Predict-only runs on the wide run's output folder: unlabelled test file, other labels."""
  root, outputs = layout_runs["root"], layout_runs["outputs"]
  rng = random.Random(5)
  rows = make_rows(rng, 4, "n")
  # A copy of the output folder for each run, so that the two do not write in the same place.
  folders = {}
  for name in ("predict_only", "other_labels"):
    folders[name] = root / name
    folders[name].mkdir()
    for entry in os.listdir(outputs["wide"]):
      if not os.path.isdir(outputs["wide"] / entry):
        with open(outputs["wide"] / entry, "rb") as src, open(folders[name] / entry, "wb") as dst:
          dst.write(src.read())
  unlabelled = clitools.write_text(root / "new_tickets.jsonl",
                                   layout_text("names", rows, with_labels=False))
  other = root / "other"
  other.mkdir()
  clitools.write_text(other / "test.csv", "id,text,billing,bug,refund\nx,king robot,1,1,0\n")
  before = file_hash(folders["other_labels"] / "test_results.tsv")
  calls = [
      (run_flags(tiny_bert, output_dir=folders["predict_only"], test_file=unlabelled,
                 do_train=None, do_eval=None),),
      (run_flags(tiny_bert, data_dir=other, output_dir=folders["other_labels"], do_train=None,
                 do_eval=None),),
  ]
  predict_only, other_labels = clitools.run_parallel(calls)
  return {"folders": folders, "rows": rows, "predict_only": predict_only,
          "other_labels": other_labels, "hash_before": before}


def test_predict_only_run_uses_the_output_folders_label_set(later_runs):
  clitools.succeeded(later_runs["predict_only"])
  header, ids, probabilities = clitools.read_tsv(
      later_runs["folders"]["predict_only"] / "test_results.tsv")
  assert header == ["id", *LABELS]
  assert ids == [guid for guid, _, _ in later_runs["rows"]]
  assert probabilities.shape == (4, 3) and ((probabilities > 0) & (probabilities < 1)).all()


def test_predict_only_run_with_another_label_set_fails_cleanly(later_runs):
  result = later_runs["other_labels"]
  assert result.returncode == 2 and "Traceback" not in result.stderr
  message = clitools.error_message(result.stderr)
  assert "test.csv, line 1" in message and "'refund' are not in it" in message, message
  assert "lacks column(s) 'urgent'" in message, message
  folder = later_runs["folders"]["other_labels"]
  assert file_hash(folder / "test_results.tsv") == later_runs["hash_before"]
  assert (folder / "labels.txt").read_text(encoding="utf-8") == "billing\nbug\nurgent\n"


# Bad input: each case writes a data folder and returns (flag changes, message fragments).

GOOD_WIDE = "id,text,billing,bug,urgent\nr1,king,1,0,0\nr2,robot,0,1,0\nr3,storm,0,0,1\n"


def label_value_two(folder):
  clitools.write_text(folder / "train.csv", GOOD_WIDE + "r4,king robot,1,2,0\n")
  return {}, ["train.csv, line 5", "column 'bug'", "'2' is not a label value",
              "--ignore_columns=bug"]


def header_only_test_file(folder):
  clitools.write_text(folder / "train.csv", GOOD_WIDE)
  clitools.write_text(folder / "test.csv", "id,text\n")
  return {}, ["test.csv", "has a header but no rows"]


def own_data_flag_with_a_built_in_task(folder):
  clitools.write_text(folder / "train.csv", GOOD_WIDE)
  return {"task_name": "psychexp", "id_column": None, "text_column": "body"}, [
      "--text_column apply to --task_name=generic only"]


def no_data_dir_nor_files(folder):
  del folder
  return {"data_dir": None}, ["--data_dir", "--train_file or --test_file"]


# Every kind of bad file is tested on the processor (test_generic.py); these show the way from the
# processor's error to the command line's, before and after a split's features were built.
CASES = (label_value_two, header_only_test_file, own_data_flag_with_a_built_in_task,
         no_data_dir_nor_files)


@pytest.fixture(name="bad_runs", scope="module")
def fixture_bad_runs(tiny_bert, tmp_path_factory):
  """{case: (result, output folder, fragments, the sentinel's hash)}, every case run once."""
  prepared = {}
  for case in CASES:
    root = tmp_path_factory.mktemp(case.__name__)
    (root / "data").mkdir()
    (root / "out").mkdir()
    changes, fragments = case(root / "data")
    # A result of an earlier run, which a failed run must leave as it is.
    sentinel = clitools.write_text(root / "out" / "test_results.tsv", "id\tx\n1\t0.5\n")
    changes = {"data_dir": root / "data", **changes}
    prepared[case.__name__] = (run_flags(tiny_bert, output_dir=root / "out", **changes),
                               root / "out", fragments, file_hash(sentinel))
  results = clitools.run_parallel([(flags,) for flags, _, _, _ in prepared.values()])
  return {name: (result, *rest[1:]) for (name, rest), result in zip(prepared.items(), results)}


@pytest.mark.parametrize("case", [case.__name__ for case in CASES])
def test_bad_file_is_one_clear_error_and_nothing_written(bad_runs, case):
  result, output_dir, fragments, sentinel_hash = bad_runs[case]
  assert result.returncode == 2, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  message = clitools.error_message(result.stderr)
  for fragment in fragments:
    assert fragment in message, message
  # Feature caches of the splits read before the bad one may be there; nothing else is.
  written = [name for name in os.listdir(output_dir)
             if not name.endswith((".tf_record", ".tf_record.json"))]
  assert written == ["test_results.tsv"]
  assert file_hash(output_dir / "test_results.tsv") == sentinel_hash
