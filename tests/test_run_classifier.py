"""End-to-end tests of run_classifier.py: train, evaluate and predict, as a user runs them.

Every run is `python run_classifier.py ...` in a subprocess, on small files in a task's format
(SPEC section 4) and the tiny Google-format model of `conftest.tiny_bert`. A run costs seconds, so
each is made once, in a module-scoped fixture, independent runs two at a time, and several tests
check what one run wrote.
"""

from concurrent import futures
import dataclasses
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
from typing import Optional

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
import tensorflow as tf

import checkpoints
import features
import modeling
import processors
import tokenization
from tests import clitools
from tests import conftest
from tests.conftest import REPO_DIR
from tests.conftest import TINY_WORDS

# The variables of Google's BERT and of the original multi-label head that every checkpoint a
# run writes holds (SPEC section 3), a sample of each kind.
BERT_VARIABLES = ("bert/embeddings/word_embeddings", "bert/embeddings/position_embeddings",
                  "bert/embeddings/LayerNorm/gamma",
                  "bert/encoder/layer_0/attention/self/query/kernel",
                  "bert/encoder/layer_1/output/dense/bias", "bert/pooler/dense/kernel")

# SE0714 labels and the keyword that marks each in the learning corpus.
KEYWORDS = {"fear": "ghost", "joy": "happy", "sadness": "sad"}

# The original README's two commands, verbatim with their two typos (SPEC section 7).
README_TRAIN = """python run_classifier.py --task_name=$TASK \\
--do_train=true \\
--do_predict=false \\
--data_dir=$DATASET_DIR \\
--vocab_file=$BERT_DIR/vocab.txt \\
--bert_config_file=$BERT_DIR/bert_config.json \\
--init_checkpoint=.$BERT_DIR/bert_model.ckpt \\
--max_seq_length=128 \\
--train_batch_size=32 \\
--learning_rate=2e-5 \\
--num_train_epochs=10.0 \\
--output_dir=$OUTPUT_DIR \\
--add_dense=false
"""
README_PREDICT = """python run_classifier.py --task_name=$TASK \\
--do_train=false \\
--do_predict=true \\
--data_dir=$DATASET_DIR \\
--vocab_file=$BERT_DIR/vocab.txt \\
--bert_config_file=$BERT_DIR/bert_config.json \\
--init_checkpoint=.$BERT_DIR/bert_model.ckpt \\
--max_seq_length=128 \\
--output_dir=$OUTPUT_DIR \\
--add_dense=false\\
--cut_off=0.5 \\
--cutoff_type=static
"""


def fix_readme_typos(command):
  """Returns the README command with its stray '.' and its missing space before '\\' fixed."""
  fixed = command.replace(".$BERT_DIR", "$BERT_DIR").replace("false\\\n", "false \\\n")
  assert fixed != command
  return fixed


@dataclasses.dataclass
class TaskRun:
  """A train, eval and predict run of one task, and what its outputs must show.

  Attributes:
    labels: the task's labels in SPEC order.
    output_dir: the run's --output_dir.
    test_ids: the ids of the test examples, in file order.
    test_labels: per test example, its 0/1 labels, or None where the row is not scored.
    cutoff_type: the --cutoff_type, or None when unset.
    cut_off: the --cut_off.
    add_dense: the --add_dense.
    num_train_steps: int(train examples / batch size × epochs).
    has_dev_file: whether the data folder holds the dev file (else dev is a hold-out).
    log: the run's stderr.
  """
  labels: tuple
  output_dir: str
  test_ids: list
  test_labels: list
  cutoff_type: Optional[str]
  cut_off: float
  add_dense: bool
  num_train_steps: int
  has_dev_file: bool
  log: str = ""

  def path(self, name):
    return os.path.join(self.output_dir, name)


def common_flags(task, data_dir, output_dir, model, **flags):
  """The flags of a run: task, data, model, tiny settings, plus `flags` as --name=value."""
  return ([f"--task_name={task}", f"--data_dir={data_dir}", f"--output_dir={output_dir}",
           *clitools.model_flags(model), "--max_seq_length=32"] +
          [f"--{name}={value}" for name, value in flags.items()])


def checkpoint_tensors(prefix):
  """{name: numpy value} of every tensor in a checkpoint."""
  reader = tf.train.load_checkpoint(prefix)
  return {name: reader.get_tensor(name) for name, _ in tf.train.list_variables(prefix)}


def derive_model(tiny_bert, folder, **config_changes):
  """The tiny model with `config_changes` to its bert_config.json, in `folder`.

  More `max_position_embeddings` get position embeddings appended to the checkpoint, so that
  the README's --max_seq_length=128 fits; otherwise the checkpoint stays the tiny model's.

  Returns:
    A model dict like `tiny_bert`'s: `dir`, `vocab_file`, `config_file`, `checkpoint`.
  """
  folder.mkdir()
  model = {"dir": str(folder), "vocab_file": str(folder / "vocab.txt"),
           "config_file": str(folder / "bert_config.json"), "checkpoint": tiny_bert["checkpoint"]}
  shutil.copy(tiny_bert["vocab_file"], model["vocab_file"])
  with open(tiny_bert["config_file"], encoding="utf-8") as f:
    config = json.load(f)
  clitools.write_text(model["config_file"], json.dumps({**config, **config_changes}, indent=2))
  positions = config_changes.get("max_position_embeddings", config["max_position_embeddings"])
  if positions != config["max_position_embeddings"]:
    tensors = checkpoint_tensors(tiny_bert["checkpoint"])
    table = tensors["bert/embeddings/position_embeddings"]
    extra = np.random.default_rng(5).normal(0, 0.02, [positions - len(table), table.shape[1]])
    tensors["bert/embeddings/position_embeddings"] = np.concatenate(
        [table, extra.astype(np.float32)])
    model["checkpoint"] = str(folder / "bert_model.ckpt")
    checkpoints.write(model["checkpoint"], tensors)
  return model


# Train, evaluate and predict: one run per task.


def keyword_rows(rng, count):
  """SE0714 rows (labels, text) whose labels the texts' keywords imply.

  A text is up to 3 filler words plus, for each positive label, its keyword at a random place.
  """
  filler = [w for w in TINY_WORDS if w not in KEYWORDS.values()]
  rows = []
  for _ in range(count):
    labels = clitools.random_labels(rng, len(KEYWORDS), rate=0.5)
    words = clitools.random_text(rng, 0 if any(labels) else 1, 3, filler).split()
    for keyword, positive in zip(KEYWORDS.values(), labels):
      if positive:
        words.insert(rng.randint(0, len(words)), keyword)
    rows.append((labels, " ".join(words)))
  return rows


def se0714_task(tmp, tiny_bert):
  """SE0714 with a dev file, keyword texts that a model can learn, and dynamic cut-offs.

  The tiny model learns the keywords at a high learning rate with a long warm-up, once its
  dropout is off: with 32 hidden units, dropout often leaves a label's pooled features saturated
  for good, whatever the optimizer.
  """
  rng = random.Random(0)
  data_dir = tmp / "data"
  data_dir.mkdir()
  train, dev, test = keyword_rows(rng, 300), keyword_rows(rng, 40), keyword_rows(rng, 40)
  for name, rows in (("train", train), ("dev", dev), ("test", test)):
    clitools.write_text(data_dir / f"{name}_SE0714.txt",
                        clitools.labels_first_lines(rows, "bool"))
  model = derive_model(tiny_bert, tmp / "bert", hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
  run = TaskRun(clitools.SE0714_LABELS, str(tmp / "out"),
                [str(i) for i in range(1, 41)], [labels for labels, _ in test], "dynamic", 0.5,
                False, int(300 / 32 * 80), True)
  flags = common_flags(
      "se0714", data_dir, run.output_dir, model, do_train="true", do_eval="true",
      do_predict="true", train_batch_size=32, learning_rate=1e-3, warmup_proportion=0.5,
      num_train_epochs=80, save_checkpoints_steps=300, cutoff_type="dynamic")
  return run, flags


def movielens_task(tmp, tiny_bert):
  """MovieLens pairs with a dev file, --add_dense and a static cut-off of 0.3."""
  rng = random.Random(1)
  data_dir = tmp / "data"
  data_dir.mkdir()
  # Movie ids out of order, so that the predictions' order shows it is the file's.
  ids = rng.sample(range(1, 200000), 60)

  def rows(first, count):
    result = []
    for movie_id in ids[first:first + count]:
      title = f"{clitools.random_text(rng, 1, 3)} ({rng.randint(1950, 2020)})"
      result.append((movie_id, title, clitools.random_text(rng, 4, 20),
                     clitools.random_labels(rng, 17, rate=0.2)))
    return result

  train, dev, test = rows(0, 40), rows(40, 10), rows(50, 10)
  # A title with brackets and a summary with a tab inside, as real MovieLens lines have.
  train[0] = (train[0][0], "[REC] (2007)", "a news report\tabout a city at night", train[0][3])
  for name, split in (("train", train), ("dev", dev), ("test", test)):
    clitools.write_text(data_dir / f"{name}_movies.txt", clitools.movielens_lines(split))
  run = TaskRun(clitools.MOVIELENS_LABELS, str(tmp / "out"),
                [str(row[0]) for row in test], [row[3] for row in test], "static", 0.3, True,
                int(40 / 8 * 1), True)
  flags = common_flags(
      "movielens", data_dir, run.output_dir, tiny_bert, do_train="true", do_eval="true",
      do_predict="true", train_batch_size=8, num_train_epochs=1, save_checkpoints_steps=2,
      iterations_per_loop=3, add_dense="true", cut_off=0.3, cutoff_type="static")
  return run, flags


def psychexp_task(tmp, tiny_bert):
  """PsychExp without a dev file (dev is a hold-out of train), with dynamic cut-offs."""
  rng = random.Random(2)
  data_dir = tmp / "data"
  data_dir.mkdir()
  train = [(clitools.random_labels(rng, 7), clitools.random_text(rng, 3, 15))
           for _ in range(40)]
  test = [(clitools.random_labels(rng, 7), clitools.random_text(rng, 3, 15)) for _ in range(10)]
  clitools.write_text(data_dir / "train_psychexp.txt", clitools.labels_first_lines(train, "float"))
  clitools.write_text(data_dir / "test_psychexp.txt", clitools.labels_first_lines(test, "float"))
  # 40 train lines, 4 of them held out as dev: 36 train examples, 4 steps of 8.
  run = TaskRun(clitools.PSYCHEXP_LABELS, str(tmp / "out"),
                [str(i) for i in range(1, 11)], [labels for labels, _ in test], "dynamic", 0.5,
                False, int(36 / 8 * 1), False)
  # The model folder as --init_checkpoint: its `checkpoint` file names the checkpoint.
  flags = common_flags(
      "psychexp", data_dir, run.output_dir, dict(tiny_bert, checkpoint=tiny_bert["dir"]),
      do_train="true", do_eval="true", do_predict="true", train_batch_size=8,
      num_train_epochs=1, save_checkpoints_steps=3, cutoff_type="dynamic")
  return run, flags


def toxic_task(tmp, tiny_bert):
  """Kaggle's toxic CSVs, test_labels.csv with unscored (-1) rows, no cut-off, 1.5 epochs."""
  rng = random.Random(3)
  data_dir = tmp / "data"
  data_dir.mkdir()

  def comment():
    # Commas, quotes and line breaks inside quoted comments, as Kaggle's files have.
    return rng.choice(["", "well, ", 'he said "no" and ', "first line\nsecond line "]) + (
        clitools.random_text(rng, 3, 15))

  train = [(f"{rng.getrandbits(64):016x}", comment(), clitools.random_labels(rng, 6))
           for _ in range(40)]
  test = [(f"{rng.getrandbits(64):016x}", comment(),
           None if i % 3 == 1 else clitools.random_labels(rng, 6, rate=0.5)) for i in range(10)]
  clitools.write_text(data_dir / "train.csv", clitools.toxic_labelled_csv(train))
  test_csv, test_labels_csv = clitools.toxic_test_csvs(test)
  clitools.write_text(data_dir / "test.csv", test_csv)
  clitools.write_text(data_dir / "test_labels.csv", test_labels_csv)
  run = TaskRun(clitools.TOXIC_LABELS, str(tmp / "out"), [row[0] for row in test],
                [row[2] for row in test], None, 0.5, False, int(36 / 8 * 1.5), False)
  flags = common_flags(
      "toxic", data_dir, run.output_dir, tiny_bert, do_train="true", do_eval="true",
      do_predict="true", train_batch_size=8, num_train_epochs=1.5, save_checkpoints_steps=2)
  return run, flags


TASKS = {"se0714": se0714_task, "movielens": movielens_task, "psychexp": psychexp_task,
         "toxic": toxic_task}


@pytest.fixture(name="task_runs", scope="module")
def fixture_task_runs(tiny_bert, tmp_path_factory):
  """{task name: TaskRun}: one train, eval and predict run per task, two at a time."""
  prepared = {name: make(tmp_path_factory.mktemp(name), tiny_bert)
              for name, make in TASKS.items()}
  results = clitools.run_parallel([(flags,) for _, flags in prepared.values()])
  runs = {}
  for (name, (run, _)), result in zip(prepared.items(), results):
    run.log = clitools.succeeded(result)
    runs[name] = run
  return runs


@pytest.fixture(name="task_run", scope="module", params=sorted(TASKS))
def fixture_task_run(request, task_runs):
  return task_runs[request.param]


def test_eval_results_have_the_original_layout(task_run):
  for prefix in ("", "test_"):
    with open(task_run.path(f"{prefix}eval_results.txt"), encoding="utf-8") as f:
      text_results = clitools.parse_eval_results(f.read(), task_run.labels)
    with open(task_run.path(f"{prefix}eval_results.json"), encoding="utf-8") as f:
      json_results = json.load(f)
    # The F1 part is there exactly when a cut-off applies.
    assert ("mean_f1" in text_results) == (task_run.cutoff_type is not None)
    per_label = json_results["per_label"]
    assert [m["label"] for m in per_label] == list(task_run.labels)
    assert set(json_results["auc_averages"]) == {"micro", "macro", "weighted"}
    assert 0 <= json_results["label_ranking_average_precision"] <= 1
    for m in per_label:
      assert text_results["auc"][m["label"]] == (None if m["auc"] is None
                                                  else round(m["auc"], 5))
    assert text_results["mean_auc"] == pytest.approx(json_results["mean_auc"], abs=5e-6)
    if task_run.cutoff_type is None:
      assert json_results["f1_averages"] is None
      assert json_results["hamming_loss"] is None
      continue
    assert set(json_results["f1_averages"]) == {"micro", "macro", "weighted", "samples"}
    assert 0 <= json_results["subset_accuracy"] <= 1
    assert text_results["hamming_loss"] == pytest.approx(json_results["hamming_loss"], abs=5e-6)
    assert text_results["mean_f1"] == pytest.approx(json_results["mean_f1"], abs=5e-6)
    for m in per_label:
      assert 0 <= m["precision"] <= 1 and 0 <= m["recall"] <= 1
      assert text_results["f1"][m["label"]] == pytest.approx(m["f1"], abs=5e-6)
      assert text_results["support"][m["label"]] == m["support"]


def test_predictions_are_one_row_per_test_example_in_input_order(task_run):
  header, ids, probabilities = clitools.read_tsv(task_run.path("test_results.tsv"))
  assert header == ["id", *task_run.labels]
  assert ids == task_run.test_ids
  assert np.all((probabilities >= 0) & (probabilities <= 1))
  has_classes = os.path.exists(task_run.path("test_results_classes.tsv"))
  assert has_classes == (task_run.cutoff_type is not None)
  assert os.path.exists(task_run.path("thresholds.json")) == (task_run.cutoff_type == "dynamic")
  if has_classes:
    header, ids, classes = clitools.read_tsv(task_run.path("test_results_classes.tsv"))
    assert header == ["id", *task_run.labels]
    assert ids == task_run.test_ids
    assert set(np.unique(classes)) <= {0.0, 1.0}


def test_test_metrics_are_those_of_the_scored_predictions(task_run):
  """test_eval_results.json recomputed with scikit-learn from the TSVs and the known labels."""
  _, _, probabilities = clitools.read_tsv(task_run.path("test_results.tsv"))
  scored = np.array([labels is not None for labels in task_run.test_labels])
  labels = np.array([labels for labels in task_run.test_labels if labels is not None])
  probabilities = probabilities[scored]
  with open(task_run.path("test_eval_results.json"), encoding="utf-8") as f:
    results = json.load(f)
  assert results["num_examples"] == scored.sum()
  aucs = [sk_metrics.roc_auc_score(labels[:, j], probabilities[:, j])
          if 0 < labels[:, j].sum() < len(labels) else None for j in range(labels.shape[1])]
  assert [m["auc"] for m in results["per_label"]] == pytest.approx(aucs)
  assert results["mean_auc"] == pytest.approx(np.mean([a for a in aucs if a is not None]))
  if task_run.cutoff_type is not None:
    _, _, classes = clitools.read_tsv(task_run.path("test_results_classes.tsv"))
    classes = classes[scored]
    assert results["hamming_loss"] == pytest.approx(sk_metrics.hamming_loss(labels, classes))
    assert results["mean_f1"] == pytest.approx(
        sk_metrics.f1_score(labels, classes, average="weighted", zero_division=0))


def test_dev_split_source_is_logged(task_run):
  assert ("hold-out" in task_run.log) == (not task_run.has_dev_file)


def test_checkpoints_have_google_names(task_run, tiny_bert):
  step = clitools.latest_checkpoint_step(task_run.output_dir)
  assert step == task_run.num_train_steps
  prefix = task_run.path(f"model.ckpt-{step}")
  assert os.path.exists(prefix + ".index")
  assert os.path.exists(prefix + ".data-00000-of-00001")
  shapes = dict(tf.train.list_variables(prefix))
  pretrained = dict(tf.train.list_variables(tiny_bert["checkpoint"]))
  for name in BERT_VARIABLES:
    assert shapes[name] == pretrained[name], name
  assert {n for n in pretrained if n.startswith("bert/")} <= set(shapes)
  k = len(task_run.labels)
  head = {"loss/output_weights": [k, 32], "loss/output_bias": [k]}
  if task_run.add_dense:
    head.update({"loss/dense/kernel": [k, k], "loss/dense/bias": [k]})
  assert {n: s for n, s in shapes.items() if n.startswith("loss/") and "/adam_" not in n} == head
  assert shapes["loss/output_weights/adam_m"] == [k, 32]
  assert tf.train.load_checkpoint(prefix).get_tensor("global_step") == step


def test_init_checkpoint_may_be_a_folder(task_runs, tiny_bert):
  assert f"Initialized from {tiny_bert['checkpoint']}:" in task_runs["psychexp"].log


def test_keywords_are_learned(task_runs):
  with open(task_runs["se0714"].path("test_eval_results.json"), encoding="utf-8") as f:
    assert json.load(f)["mean_auc"] > 0.95


def test_static_cut_off_applies_to_probabilities(task_runs):
  run = task_runs["movielens"]
  _, _, probabilities = clitools.read_tsv(run.path("test_results.tsv"))
  _, _, classes = clitools.read_tsv(run.path("test_results_classes.tsv"))
  np.testing.assert_array_equal(classes, probabilities >= run.cut_off)
  # Probabilities in [cut_off, sigmoid(cut_off)) tell the two apart: a cut-off on logits says 0.
  assert np.any((probabilities >= run.cut_off) &
                (probabilities < 1 / (1 + np.exp(-run.cut_off))))


@pytest.mark.parametrize("task", ["se0714", "psychexp"])
def test_dynamic_thresholds_are_saved_and_applied(task_runs, task):
  run = task_runs[task]
  with open(run.path("thresholds.json"), encoding="utf-8") as f:
    saved = json.load(f)
  assert saved["checkpoint_step"] == run.num_train_steps
  assert [entry["label"] for entry in saved["labels"]] == list(run.labels)
  thresholds = np.array([entry["threshold"] for entry in saved["labels"]])
  assert np.all((thresholds >= 0) & (thresholds <= 1))
  assert all(0 <= entry["dev_f1"] <= 1 for entry in saved["labels"])
  _, _, probabilities = clitools.read_tsv(run.path("test_results.tsv"))
  _, _, classes = clitools.read_tsv(run.path("test_results_classes.tsv"))
  np.testing.assert_array_equal(classes, probabilities >= thresholds)


@pytest.mark.parametrize("task", ["se0714", "psychexp"])
def test_dev_f1_of_dynamic_thresholds_is_labelled_and_cross_validated(task_runs, task):
  run = task_runs[task]
  with open(run.path("eval_results.json"), encoding="utf-8") as f:
    dev = json.load(f)
  with open(run.path("eval_results.txt"), encoding="utf-8") as f:
    text = clitools.parse_eval_results(f.read(), run.labels)
  assert dev["thresholds_tuned_here"] is True
  honest = dev["cross_validated"]
  assert set(honest) == {"hamming_loss", "mean_f1", "f1_averages"}
  assert text["cross_validated"] == pytest.approx(
      {"hamming_loss": honest["hamming_loss"], "mean_f1": honest["mean_f1"]}, abs=5e-6)
  # The test split is not what the thresholds were tuned on.
  with open(run.path("test_eval_results.json"), encoding="utf-8") as f:
    test = json.load(f)
  assert test["thresholds_tuned_here"] is False and test["cross_validated"] is None


# Resuming.


@pytest.fixture(name="resume_runs", scope="module")
def fixture_resume_runs(tiny_bert, tmp_path_factory):
  """Training runs: uninterrupted, interrupted after step 2 and run again, and rerun when done.

  Returns a dict: `full` and `resumed` (output dirs), `resume_log`, `rerun` (the rerun's
  CompletedProcess), `before_rerun` (hashes of `full`'s files before the rerun) and `flags`
  (output dir -> the runs' flags).
  """
  tmp = tmp_path_factory.mktemp("resume")
  data_dir = tmp / "data"
  data_dir.mkdir()
  rng = random.Random(4)
  for name, count in (("train", 48), ("dev", 8)):
    rows = [(clitools.random_labels(rng, 3), clitools.random_text(rng, 3, 20))
            for _ in range(count)]
    clitools.write_text(data_dir / f"{name}_SE0714.txt", clitools.labels_first_lines(rows, "bool"))

  def flags(output_dir):
    # 48 examples, batch 8, 1 epoch: 6 steps, checkpoints at 2, 4 and 6.
    # The task name in capitals: --task_name is case-insensitive.
    return common_flags("SE0714", data_dir, output_dir, tiny_bert, do_train="true",
                        train_batch_size=8, num_train_epochs=1, save_checkpoints_steps=2,
                        learning_rate=1e-3)

  # Deterministic kernels and fixed thread pools make two runs on this machine compute the same
  # bits, so resumed weights can be compared bit for bit: a resume bug shows as a tiny
  # difference that a tolerance would hide.
  cpu_only = conftest.DETERMINISTIC_ENV
  full, resumed = str(tmp / "full"), str(tmp / "resumed")
  clitools.succeeded(clitools.run_cli(flags(full), cpu_only))
  # An interruption after the first checkpoint: only model.ckpt-2 was written and listed.
  shutil.copytree(full, resumed)
  for step in (4, 6):
    for path in (f"model.ckpt-{step}.index", f"model.ckpt-{step}.data-00000-of-00001"):
      os.remove(os.path.join(resumed, path))
  clitools.write_text(os.path.join(resumed, "checkpoint"),
                      'model_checkpoint_path: "model.ckpt-2"\n'
                      'all_model_checkpoint_paths: "model.ckpt-2"\n')
  before_rerun = file_hashes(full)
  resume, rerun = clitools.run_parallel([(flags(resumed), cpu_only), (flags(full), cpu_only)])
  return {"full": full, "resumed": resumed, "resume_log": clitools.succeeded(resume),
          "rerun": rerun, "before_rerun": before_rerun, "flags": flags}


def file_hashes(folder):
  """{file name: SHA-256 of its bytes} of every file in `folder`."""
  hashes = {}
  for name in sorted(os.listdir(folder)):
    if os.path.isdir(os.path.join(folder, name)):
      continue
    with open(os.path.join(folder, name), "rb") as f:
      hashes[name] = hashlib.sha256(f.read()).hexdigest()
  return hashes


def test_resumed_run_continues_from_its_checkpoint(resume_runs):
  log = resume_runs["resume_log"]
  assert "Resuming from" in log and "model.ckpt-2 at step 2" in log
  assert "Training steps 2 to 6" in log
  assert clitools.latest_checkpoint_step(resume_runs["resumed"]) == 6


def test_resumed_run_ends_with_the_uninterrupted_weights(resume_runs):
  for step in (4, 6):
    full = checkpoint_tensors(os.path.join(resume_runs["full"], f"model.ckpt-{step}"))
    resumed = checkpoint_tensors(os.path.join(resume_runs["resumed"], f"model.ckpt-{step}"))
    assert set(resumed) == set(full)
    # Weights, Adam slots and the step: the data order and the optimizer state were resumed.
    assert any(name.endswith("/adam_v") for name in full)
    for name, value in full.items():
      np.testing.assert_array_equal(resumed[name], value, err_msg=f"step {step}: {name}")


def test_rerun_of_a_finished_run_trains_nothing(resume_runs):
  rerun = resume_runs["rerun"]
  log = clitools.succeeded(rerun)
  assert "training is already complete" in log
  assert checkpoint_files(file_hashes(resume_runs["full"])) == checkpoint_files(
      resume_runs["before_rerun"])


def checkpoint_files(hashes):
  """The entries of `file_hashes` that are checkpoints or the checkpoint index."""
  return {n: h for n, h in hashes.items() if n.startswith("model.ckpt-") or n == "checkpoint"}


@pytest.fixture(name="changed_plan_runs", scope="module")
def fixture_changed_plan_runs(resume_runs, tmp_path_factory):
  """Reruns of the finished `full` training with changed flags, in a folder named with '--'.

  Before the first, the folder gets the temporary files a killed run leaves behind.
  """
  output_dir = str(tmp_path_factory.mktemp("plan") / "runs--a")
  shutil.copytree(resume_runs["full"], output_dir)
  before = file_hashes(output_dir)
  leftovers = [".test_results.tsv.x1y2.tmp", "model.ckpt-8.data-00000-of-00001.tempstate123",
               "model.ckpt-8.index.tempstate123"]
  for name in leftovers:
    clitools.write_text(os.path.join(output_dir, name), "half")
  flags = resume_runs["flags"](output_dir)
  batch, seed = clitools.run_parallel([(flags + ["--train_batch_size=4"],),
                                      (flags + ["--seed=7", "--bucket_by_length=false"],)])
  return {"output_dir": output_dir, "leftovers": leftovers, "before": before, "batch": batch,
          "seed": seed}


def test_resume_with_another_plan_is_refused_naming_the_flag(changed_plan_runs):
  assert_one_line_error(changed_plan_runs["batch"], "--train_batch_size was 8, now 4",
                        "new --output_dir")
  assert_one_line_error(changed_plan_runs["seed"], "--seed was 42, now 7",
                        "--bucket_by_length was true, now false")
  assert checkpoint_files(file_hashes(changed_plan_runs["output_dir"])) == checkpoint_files(
      changed_plan_runs["before"])


def test_output_dir_may_hold_a_double_dash(changed_plan_runs):
  """`runs--a` is a folder name, not two flags glued together."""
  assert "glued" not in changed_plan_runs["batch"].stderr


def test_files_a_killed_run_left_half_written_are_removed(changed_plan_runs):
  remaining = os.listdir(changed_plan_runs["output_dir"])
  assert not set(changed_plan_runs["leftovers"]) & set(remaining)
  assert "Removing" in changed_plan_runs["batch"].stderr + changed_plan_runs["seed"].stderr


# The original README's commands, and which checkpoint predictions come from.


def run_script(script, variables):
  """Runs a bash script in the repository with `variables` set; returns the CompletedProcess.

  `python` in the script is this interpreter.
  """
  prelude = 'python() { "$PYTHON" "$@"; }\n'
  return subprocess.run(
      ["bash", "-c", prelude + script], cwd=REPO_DIR, capture_output=True, text=True,
      check=False, timeout=300, env={**os.environ, **variables, "PYTHON": sys.executable})


@pytest.fixture(name="readme_runs", scope="module")
def fixture_readme_runs(tiny_bert, tmp_path_factory):
  """The README's commands as a user pastes them, fixed and verbatim, and two more predictions.

  The commands run on SE0714 files. The two more predictions are the fine-tuned model's without
  --init_checkpoint (with dynamic cut-offs) and the pre-trained model's in an empty folder.

  Returns a dict of CompletedProcess (`train`, `predict`, `train_verbatim`, `predict_verbatim`,
  `no_init`, `pretrained`), the output dirs (`output_dir`, `no_init_dir`, `pretrained_dir`,
  `verbatim_dir`), the `data_dir` and the `model`.
  """
  tmp = tmp_path_factory.mktemp("readme")
  model = derive_model(tiny_bert, tmp / "bert", max_position_embeddings=128)
  data_dir = tmp / "data"
  data_dir.mkdir()
  rng = random.Random(6)
  for name, count in (("train", 40), ("test", 10)):
    rows = [(clitools.random_labels(rng, 3, rate=0.5), clitools.random_text(rng, 3, 20))
            for _ in range(count)]
    clitools.write_text(data_dir / f"{name}_SE0714.txt", clitools.labels_first_lines(rows, "bool"))
  dirs = {name: str(tmp / name) for name in ("output_dir", "no_init_dir", "pretrained_dir",
                                              "verbatim_dir")}

  def variables(output_dir):
    return {"TASK": "se0714", "DATASET_DIR": str(data_dir), "BERT_DIR": model["dir"],
            "OUTPUT_DIR": output_dir}

  pretrained_flags = [
      "--task_name=se0714", f"--data_dir={data_dir}", f"--output_dir={dirs['pretrained_dir']}",
      *clitools.model_flags(model), "--max_seq_length=128", "--do_predict=true"]
  with futures.ThreadPoolExecutor(max_workers=2) as pool:
    train = pool.submit(run_script, fix_readme_typos(README_TRAIN),
                        variables(dirs["output_dir"]))
    train_verbatim = pool.submit(run_script, README_TRAIN, variables(dirs["verbatim_dir"]))
    predict_verbatim = pool.submit(run_script, README_PREDICT, variables(dirs["verbatim_dir"]))
    pretrained = pool.submit(clitools.run_cli, pretrained_flags)
    clitools.succeeded(train.result())
    shutil.copytree(dirs["output_dir"], dirs["no_init_dir"])
    no_init_flags = [
        "--task_name=se0714", f"--data_dir={data_dir}", f"--output_dir={dirs['no_init_dir']}",
        *clitools.model_flags(model, init_checkpoint=False), "--max_seq_length=128",
        "--do_predict=true", "--cutoff_type=dynamic"]
    no_init = pool.submit(clitools.run_cli, no_init_flags)
    predict = pool.submit(run_script, fix_readme_typos(README_PREDICT),
                          variables(dirs["output_dir"]))
    runs = {"train": train, "predict": predict, "train_verbatim": train_verbatim,
            "predict_verbatim": predict_verbatim, "no_init": no_init, "pretrained": pretrained}
    return {**{name: run.result() for name, run in runs.items()}, **dirs,
            "data_dir": str(data_dir), "model": model}


def test_readme_commands_run_unchanged_once_their_typos_are_fixed(readme_runs):
  clitools.succeeded(readme_runs["train"])
  log = clitools.succeeded(readme_runs["predict"])
  output_dir = readme_runs["output_dir"]
  # 40 lines, 4 held out as dev: int(36 / 32 × 10) = 11 steps.
  assert clitools.latest_checkpoint_step(output_dir) == 11
  assert "model.ckpt-11" in log
  _, ids, _ = clitools.read_tsv(os.path.join(output_dir, "test_results.tsv"))
  _, class_ids, _ = clitools.read_tsv(os.path.join(output_dir, "test_results_classes.tsv"))
  assert ids == class_ids == [str(i) for i in range(1, 11)]


def test_only_a_run_that_trains_nothing_shares_the_cores_between_batches(readme_runs):
  """On one CPU, a prediction run sizes TensorFlow's threads for its batches in flight."""
  assert "batches at once" in clitools.succeeded(readme_runs["predict"])
  assert "batches at once" not in clitools.succeeded(readme_runs["train"])


def assert_one_line_error(result, *fragments):
  """Asserts a run failed with one `error:` line holding `fragments`, and no traceback."""
  assert result.returncode != 0
  assert "Traceback" not in result.stderr
  message = clitools.error_message(result.stderr)
  assert "\n" not in message, message
  for fragment in fragments:
    assert fragment in message, message


def test_readme_stray_dot_is_answered_in_one_line(readme_runs):
  assert_one_line_error(readme_runs["train_verbatim"], "stray '.'", "$BERT_DIR")
  assert not clitools.result_files(readme_runs["verbatim_dir"])


def test_readme_glued_flags_are_answered_in_one_line(readme_runs):
  assert_one_line_error(readme_runs["predict_verbatim"], "glued", "--add_dense=false--cut_off=0.5")


def test_checkpoint_in_output_dir_beats_init_checkpoint(readme_runs):
  _, _, with_init = clitools.read_tsv(os.path.join(readme_runs["output_dir"], "test_results.tsv"))
  assert "model.ckpt-11" in clitools.succeeded(readme_runs["no_init"])
  _, _, without_init = clitools.read_tsv(
      os.path.join(readme_runs["no_init_dir"], "test_results.tsv"))
  # Two processes predicting with the same checkpoint, their thread pools sized alike or not.
  conftest.assert_close(without_init, with_init, rtol=1e-5)
  clitools.succeeded(readme_runs["pretrained"])
  _, _, pretrained = clitools.read_tsv(
      os.path.join(readme_runs["pretrained_dir"], "test_results.tsv"))
  assert np.abs(pretrained - with_init).max() > 1e-3


def test_training_without_a_checkpoint_starts_from_drawn_weights(readme_runs, tmp_path):
  """Every other run loads all of BERT's weights and skips drawing them (see
  `workflow.uses_random_weights`): this one must draw them, as Google's initializer does."""
  log = clitools.succeeded(clitools.run_cli([
      "--task_name=se0714", f"--data_dir={readme_runs['data_dir']}", f"--output_dir={tmp_path}",
      *clitools.model_flags(readme_runs["model"], init_checkpoint=False),
      "--max_seq_length=128", "--do_train=true", "--train_batch_size=40"]))
  assert "training BERT from random weights" in log
  reader = tf.train.load_checkpoint(checkpoints.latest(str(tmp_path)))
  # Three epochs of one step at a learning rate of 5e-5 leave them close to where they began:
  # a standard deviation near 0.02 (Google's truncated normal), where zeros would stay near 0.
  for name in ("bert/embeddings/word_embeddings", "bert/encoder/layer_1/output/dense/kernel",
               "bert/pooler/dense/kernel"):
    assert 0.015 < reader.get_tensor(name).std() < 0.02, name


def test_predict_only_run_tunes_dynamic_thresholds_on_dev(readme_runs):
  """The training run had no --do_eval, so no thresholds.json: the predict run makes it."""
  assert not os.path.exists(os.path.join(readme_runs["output_dir"], "thresholds.json"))
  no_init_dir = readme_runs["no_init_dir"]
  with open(os.path.join(no_init_dir, "thresholds.json"), encoding="utf-8") as f:
    saved = json.load(f)
  assert saved["checkpoint_step"] == 11
  assert [entry["label"] for entry in saved["labels"]] == list(clitools.SE0714_LABELS)
  _, _, probabilities = clitools.read_tsv(os.path.join(no_init_dir, "test_results.tsv"))
  _, _, classes = clitools.read_tsv(os.path.join(no_init_dir, "test_results_classes.tsv"))
  thresholds = np.array([entry["threshold"] for entry in saved["labels"]])
  np.testing.assert_array_equal(classes, probabilities >= thresholds)


def test_thresholds_of_another_checkpoint_at_the_same_step_are_not_reused(readme_runs,
                                                                           tmp_path):
  """Another model trained to the same step: its thresholds.json names another digest."""
  output_dir = str(tmp_path / "out")
  shutil.copytree(readme_runs["no_init_dir"], output_dir)
  path = os.path.join(output_dir, "thresholds.json")
  with open(path, encoding="utf-8") as f:
    saved = json.load(f)
  clitools.write_text(path, json.dumps(dict(saved, checkpoint_digest="0" * 64)))
  flags = [f"--{name}={value}" for name, value in (
      ("task_name", "se0714"), ("data_dir", readme_runs["data_dir"]),
      ("output_dir", output_dir), ("vocab_file", readme_runs["model"]["vocab_file"]),
      ("bert_config_file", readme_runs["model"]["config_file"]), ("max_seq_length", 128),
      ("do_predict", "true"), ("cutoff_type", "dynamic"))]
  log = clitools.succeeded(clitools.run_cli(flags))
  assert "Tuning dynamic thresholds on the dev split now" in log and "another checkpoint" in log
  with open(path, encoding="utf-8") as f:
    tuned = json.load(f)
  # Tuned again on the same checkpoint and dev: the same thresholds, now with the right digest.
  assert tuned["checkpoint_digest"] == saved["checkpoint_digest"]
  assert tuned["dev_features"] == saved["dev_features"]
  conftest.assert_close([e["threshold"] for e in tuned["labels"]],
                        [e["threshold"] for e in saved["labels"]], rtol=1e-5)


# Checkpoints of the original TF1 script.


@pytest.fixture(name="original_checkpoint_run", scope="module")
def fixture_original_checkpoint_run(tiny_bert, tmp_path_factory):
  """Predictions with a checkpoint laid out as the original TF1 script's, with --add_dense.

  Returns a dict: `prefix` (the checkpoint), `data_dir`, `output_dir`, `log`.
  """
  tmp = tmp_path_factory.mktemp("original")
  rng = np.random.default_rng(7)
  tensors = checkpoint_tensors(tiny_bert["checkpoint"])
  k, hidden = len(clitools.PSYCHEXP_LABELS), 32
  # Head values large enough to spread the probabilities over (0, 1).
  tensors.update({
      "loss/output_weights": rng.normal(0, 1.0, [k, hidden]).astype(np.float32),
      "loss/output_bias": rng.normal(0, 0.5, [k]).astype(np.float32),
      "loss/dense/kernel": rng.normal(0, 0.7, [k, k]).astype(np.float32),
      "loss/dense/bias": rng.normal(0, 0.5, [k]).astype(np.float32),
  })
  for name in list(tensors):
    tensors[f"{name}/adam_m"] = rng.normal(0, 1e-3, tensors[name].shape).astype(np.float32)
    tensors[f"{name}/adam_v"] = rng.uniform(0, 1e-6, tensors[name].shape).astype(np.float32)
  tensors["global_step"] = np.int64(1234)
  prefix = str(tmp / "fine_tuned" / "model.ckpt-1234")
  checkpoints.write(prefix, tensors)
  data_dir = tmp / "data"
  data_dir.mkdir()
  py_rng = random.Random(8)
  rows = [(clitools.random_labels(py_rng, k), clitools.random_text(py_rng, 2, 30))
          for _ in range(10)]
  clitools.write_text(data_dir / "test_psychexp.txt", clitools.labels_first_lines(rows, "float"))
  output_dir = str(tmp / "out")
  model = dict(tiny_bert, checkpoint=prefix)
  log = clitools.succeeded(clitools.run_cli(common_flags(
      "psychexp", data_dir, output_dir, model, do_predict="true", add_dense="true",
      precision="fp32")))
  return {"prefix": prefix, "data_dir": str(data_dir), "output_dir": output_dir, "log": log}


def test_original_checkpoint_predicts_with_its_head(original_checkpoint_run, tiny_bert):
  run = original_checkpoint_run
  assert "no classifier head" not in run["log"]
  processor = processors.get_processor("psychexp")
  examples = processor.get_test_examples(run["data_dir"])
  tokenizer = tokenization.FullTokenizer(tiny_bert["vocab_file"], do_lower_case=True)
  inputs = features.convert_examples(examples, tokenizer, 32, len(clitools.PSYCHEXP_LABELS))
  bert = modeling.BertModel(modeling.BertConfig.from_json_file(tiny_bert["config_file"]))
  modeling.load_checkpoint(bert, run["prefix"])
  _, pooled = bert(input_ids=inputs.input_ids, input_mask=inputs.input_mask,
                   token_type_ids=inputs.segment_ids, training=False)
  weights = checkpoint_tensors(run["prefix"])
  logits = np.asarray(pooled, np.float64) @ weights["loss/output_weights"].T.astype(np.float64)
  logits += weights["loss/output_bias"]
  logits = logits @ weights["loss/dense/kernel"] + weights["loss/dense/bias"]
  expected = 1 / (1 + np.exp(-logits))
  _, ids, probabilities = clitools.read_tsv(os.path.join(run["output_dir"], "test_results.tsv"))
  assert ids == [str(i) for i in range(1, 11)]
  assert expected.std() > 0.1  # The comparison covers the whole range, not just 0.5.
  # The head's weights (std 1.0 and 0.7 over 32 inputs) magnify the pooled output's rounding,
  # another process's kernels, by up to ~25x; a wrong head is off by more than 0.01.
  np.testing.assert_allclose(probabilities, expected, atol=5e-5)


def test_help_lists_the_original_and_multi_label_flags():
  result = subprocess.run([sys.executable, "run_classifier.py", "--helpfull"],
                          cwd=clitools.REPO_DIR,
                          capture_output=True, text=True, timeout=120, check=False)
  for flag in ("--[no]do_train:", "--init_checkpoint:", "--iterations_per_loop:",
               "--cutoff_type:", "--[no]add_dense:", "--head_learning_rate:"):
    assert flag in result.stdout, flag
