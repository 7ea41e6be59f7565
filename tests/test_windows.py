"""Long texts: --truncation, windows (--doc_stride, --max_windows) and --window_pooling."""

import csv
import dataclasses
import io
import json
import os
import random

import numpy as np
import pytest
import tensorflow as tf

import classifier
import feature_cache
import features
import inference
import modeling
import tokenization
import training
import windows
import workflow
from processors.base import InputExample
from tests import clitools
from tests import conftest
from tests.test_features import FakeTokenizer, assert_features_equal, words
from tests.test_inference import spread_logits

TEXT = "the movie was about love and war in space with an alien robots"


# Which tokens a text keeps.


@pytest.mark.parametrize("truncation, kept", [
    ("head", "the movie was about love and war in"),
    ("tail", "war in space with an alien robot ##s"),
    # A quarter of the 8 tokens from the head, the other 6 from the tail.
    ("head_tail", "the movie space with an alien robot ##s"),
])
def test_truncation_keeps_the_right_tokens(tiny_bert, truncation, kept):
  tokenizer = tokenization.FullTokenizer(tiny_bert["vocab_file"], True)
  assert tokenizer.tokenize(TEXT) == (
      "the movie was about love and war in space with an alien robot ##s".split())
  converted = features.convert_examples([InputExample("0", TEXT, labels=(1,))], tokenizer, 10,
                                        long_texts=windows.Options(truncation=truncation))
  assert tokenizer.convert_ids_to_tokens(converted.input_ids[0]) == (
      ["[CLS]"] + kept.split() + ["[SEP]"])
  assert converted.lengths[0] == 10 and converted.num_examples == 1


def test_head_tail_splits_the_budget_as_sun_et_al():
  assert windows.truncate(list(range(600)), 510, "head_tail") == (
      list(range(128)) + list(range(218, 600)))
  # The budget's quarter is rounded up; a text that fits is kept whole.
  assert windows.truncate(list(range(20)), 5, "head_tail") == [0, 1, 17, 18, 19]
  assert windows.truncate(list(range(5)), 5, "tail") == list(range(5))


@pytest.mark.parametrize("long_texts", [
    windows.Options(truncation="tail"), windows.Options(truncation="head_tail", doc_stride=2)])
def test_pairs_and_short_texts_keep_googles_inputs(long_texts):
  examples = [InputExample("p", words(*range(1, 12)), words(*range(12, 20)), labels=(1, 0)),
              InputExample("s", words(1, 2, 3), labels=(0, 1))]
  assert_features_equal(
      features.convert_examples(examples, FakeTokenizer(), 10, long_texts=long_texts),
      features.convert_examples(examples, FakeTokenizer(), 10))


# Windows.


def test_window_boundaries_and_stride():
  assert windows.window_starts(8, 8, 3) == [0]
  assert windows.window_starts(20, 8, 4) == [0, 4, 8, 12]
  # The last window moves back to end with the text.
  assert windows.window_starts(21, 8, 4) == [0, 4, 8, 12, 13]
  assert windows.window_starts(9, 8, 8) == [0, 1]
  with pytest.raises(ValueError, match="skip tokens"):
    windows.window_starts(30, 8, 9)


def test_max_windows_cuts_the_text_by_its_truncation_first():
  ids = list(range(30))
  head = windows.Options(doc_stride=4, max_windows=3)
  assert head.pieces(ids, 8) == [list(range(0, 8)), list(range(4, 12)), list(range(8, 16))]
  tail = windows.Options(truncation="tail", doc_stride=4, max_windows=3)
  assert tail.pieces(ids, 8) == [list(range(14, 22)), list(range(18, 26)), list(range(22, 30))]
  assert windows.Options(doc_stride=4, max_windows=10).pieces(ids, 8)[-1] == list(range(22, 30))
  assert len(windows.Options(doc_stride=4, max_windows=10).pieces(ids, 8)) == 7


def test_num_pieces_counts_the_pieces():
  for options in (windows.Options(), windows.Options(doc_stride=3, max_windows=4),
                  windows.Options(truncation="head_tail", doc_stride=8, max_windows=2)):
    for length in range(40):
      assert options.num_pieces(length, 8) == len(options.pieces(list(range(length)), 8))


def test_windows_are_rows_with_their_documents_labels():
  examples = [InputExample("a", words(1, 2), labels=(1, 0)),
              InputExample("b", words(*range(1, 11)), labels=(0, 1)),
              InputExample("c", words(5), labels=None)]
  converted = features.convert_examples(examples, FakeTokenizer(), 6, 2,
                                        windows.Options(doc_stride=3))
  # b's 10 tokens in windows of 4, every 3: 0-3, 3-6, 6-9.
  np.testing.assert_array_equal(converted.document_index, [0, 1, 1, 1, 2])
  assert converted.guids == ("a", "b", "b", "b", "c")
  vocab = FakeTokenizer().vocab
  for row, first in zip((1, 2, 3), (1, 4, 7)):
    np.testing.assert_array_equal(
        converted.input_ids[row],
        [2] + [vocab[f"w{i}"] for i in range(first, first + 4)] + [3])
  np.testing.assert_array_equal(converted.labels, [[1, 0], [0, 1], [0, 1], [0, 1], [0, 0]])
  np.testing.assert_array_equal(converted.has_labels, [True, True, True, True, False])
  documents = converted.per_document()
  assert documents.guids == ("a", "b", "c") and documents.num_examples == 3
  np.testing.assert_array_equal(documents.labels, [[1, 0], [0, 1], [0, 0]])
  np.testing.assert_array_equal(documents.has_labels, [True, True, False])
  unwindowed = features.convert_examples(examples, FakeTokenizer(), 6, 2)
  assert unwindowed.per_document() is unwindowed


def test_pool_of_rows():
  probabilities = np.array([[0.1, 0.9], [0.2, 0.3], [0.6, 0.1], [0.4, 0.2], [0.7, 0.8]],
                           np.float32)
  document_index = [0, 1, 1, 1, 2]
  np.testing.assert_array_equal(windows.pool(probabilities, document_index, "max"),
                                np.array([[0.1, 0.9], [0.6, 0.3], [0.7, 0.8]], np.float32))
  mean = windows.pool(probabilities, document_index, "mean")
  assert mean.dtype == np.float32
  conftest.assert_close(mean, [[0.1, 0.9], [0.4, 0.2], [0.7, 0.8]], rtol=1e-6)
  assert windows.pool(probabilities, np.arange(5), "mean") is probabilities
  with pytest.raises(ValueError, match="grouped"):
    windows.pool(probabilities, [0, 1, 0, 1, 2], "max")


@pytest.fixture(name="window_model", scope="module")
def fixture_window_model(tiny_bert):
  """A tiny classifier whose head spreads its probabilities, and a tokenizer."""
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  model = classifier.MultiLabelClassifier(config, 3)
  modeling.load_checkpoint(model.bert, tiny_bert["checkpoint"])
  tokenizer = tokenization.FullTokenizer(tiny_bert["vocab_file"], True)
  rng = np.random.default_rng(1)
  spread_logits(model, features.convert_examples(
      [InputExample(str(i), " ".join(rng.choice(conftest.TINY_WORDS, 12))) for i in range(40)],
      tokenizer, 16, 3))
  return model, tokenizer


def alone(model, converted):
  """Each row predicted alone, at the full width: the same arithmetic whatever the other rows."""
  return inference.predict_probabilities(model, tf.distribute.get_strategy(), converted, 1,
                                         bucket_by_length=False, pad_to_max=True)


@pytest.mark.parametrize("pooling", windows.POOLINGS)
def test_document_of_three_windows_gets_the_pool_of_its_windows(window_model, pooling):
  model, tokenizer = window_model
  rng = np.random.default_rng(2)
  # Every word is one token: 26 tokens in windows of 14 every 7 start at 0, 7 and 12.
  long_words = list(rng.choice(conftest.TINY_WORDS, 26))
  examples = [InputExample("short", "the robot sings of love"),
              InputExample("long", " ".join(long_words)),
              InputExample("short2", "a ghost in the city")]
  long_texts = windows.Options(doc_stride=7, pooling=pooling)
  converted = features.convert_examples(examples, tokenizer, 16, 3, long_texts)
  np.testing.assert_array_equal(converted.document_index, [0, 1, 1, 1, 2])
  pooled = windows.pool(alone(model, converted), converted.document_index, pooling)
  assert pooled.shape == (3, 3)

  # The windows as texts of their own, predicted separately.
  window_texts = [" ".join(long_words[start:start + 14]) for start in (0, 7, 12)]
  separate = alone(model, features.convert_examples(
      [InputExample(str(i), text) for i, text in enumerate(window_texts)], tokenizer, 16, 3))
  # The windows disagree, so that max, mean and any one window differ.
  assert np.ptp(separate, axis=0).min() > 0.01
  expected = separate.max(axis=0) if pooling == "max" else separate.astype(np.float64).mean(0)
  conftest.assert_close(pooled[1], expected, rtol=1e-6)

  # The short texts give exactly what they give without windows.
  unwindowed = features.convert_examples(examples, tokenizer, 16, 3)
  for name in ("input_ids", "segment_ids", "lengths"):
    np.testing.assert_array_equal(getattr(converted, name)[[0, 4]],
                                  getattr(unwindowed, name)[[0, 2]])
  np.testing.assert_array_equal(pooled[[0, 2]], alone(model, unwindowed)[[0, 2]])


# The feature cache and the training plan.


class FakeProcessor:
  """A processor whose every split is `examples`."""
  name = "fake"

  def __init__(self, examples):
    self.examples = examples

  def get_train_examples(self, data_dir):
    del data_dir
    return self.examples

  get_dev_examples = get_test_examples = get_train_examples


def test_cache_is_rebuilt_when_a_long_text_setting_changes(tmp_path):
  vocab_file = clitools.write_text(tmp_path / "vocab.txt", "x\n")
  processor = FakeProcessor([InputExample(f"e{i}", words(*range(1, 3 + 4 * i)), labels=(i % 2,))
                             for i in range(5)])
  tokenizer = FakeTokenizer()

  def load(long_texts):
    calls = tokenizer.calls
    split = workflow.load_splits(processor, [workflow.TRAIN], None, tokenizer, vocab_file, True,
                                 8, str(tmp_path), 1, long_texts)[workflow.TRAIN]
    return split, tokenizer.calls > calls

  google, built = load(windows.Options())
  assert built
  # Google's defaults add nothing to the fingerprint: older caches and runs keep theirs.
  examples = [[e.guid, e.text_a, e.text_b, list(e.labels)] for e in processor.examples]
  assert google.fingerprint == feature_cache.fingerprint(
      "fake", workflow.TRAIN, feature_cache.hash_file(vocab_file), True, 8, examples)
  assert not load(windows.Options())[1]
  # Pooling changes no feature; it changes which thresholds fit the probabilities.
  fingerprints = {google.fingerprint}
  for long_texts in (windows.Options(truncation="tail"), windows.Options(doc_stride=3),
                     windows.Options(doc_stride=3, max_windows=2),
                     windows.Options(truncation="head_tail", doc_stride=3, max_windows=2)):
    split, built = load(long_texts)
    assert built, long_texts
    assert split.fingerprint not in fingerprints
    fingerprints.add(split.fingerprint)
    mean, built = load(dataclasses.replace(long_texts, pooling="mean"))
    assert not built and mean.fingerprint == split.fingerprint
    assert_features_equal(mean.features, split.features)
    if long_texts.doc_stride:
      assert split.features.num_examples > 5 and split.documents.num_examples == 5
      assert mean.probabilities_key != split.probabilities_key
    else:
      assert mean.probabilities_key == split.probabilities_key == split.fingerprint
  assert load(windows.Options())[0].fingerprint == google.fingerprint


# End to end.


def generic_csv(rows):
  out = io.StringIO(newline="")
  writer = csv.writer(out, lineterminator="\n")
  writer.writerow(["id", "text", "king", "robot"])
  for row in rows:
    writer.writerow(row)
  return out.getvalue()


def long_rows(rng, count, prefix, max_words=40):
  """Rows (id, text, king, robot): texts of 3 to `max_words` words (tokens), plus a keyword
  anywhere for each positive label."""
  filler = [w for w in conftest.TINY_WORDS if w not in ("king", "robot")]
  rows = []
  for i in range(count):
    labels = [int(rng.random() < 0.4), int(rng.random() < 0.4)]
    text = [rng.choice(filler) for _ in range(rng.randint(3, max_words))]
    for keyword, positive in zip(("king", "robot"), labels):
      if positive:
        text.insert(rng.randint(0, len(text)), keyword)
    rows.append((f"{prefix}{i}", " ".join(text), *labels))
  return rows


def window_flags(model, data_dir, output_dir, **flags):
  values = {"task_name": "generic", "data_dir": data_dir, "output_dir": output_dir,
            "id_column": "id", "max_seq_length": 16, "doc_stride": 7, "max_windows": 4,
            "do_train": "true", "do_eval": "true", "do_predict": "true",
            "train_batch_size": 8, "num_train_epochs": 1, "learning_rate": 1e-3,
            "cutoff_type": "dynamic", "seed": 3}
  values.update(flags)
  return clitools.model_flags(model) + [f"--{name}={value}" for name, value in values.items()
                                        if value is not None]


@pytest.fixture(name="window_runs", scope="module")
def fixture_window_runs(tiny_bert, tmp_path_factory):
  """Two train, eval and predict runs on windows, pooled by max and by mean."""
  root = tmp_path_factory.mktemp("windows")
  rng = random.Random(4)
  # Short texts (one window) and long ones.
  test_rows = long_rows(rng, 4, "s", max_words=12) + long_rows(rng, 5, "t")
  data_dir = root / "data"
  data_dir.mkdir()
  clitools.write_text(data_dir / "train.csv", generic_csv(long_rows(rng, 32, "r")))
  clitools.write_text(data_dir / "test.csv", generic_csv(test_rows))
  runs = {pooling: root / pooling for pooling in windows.POOLINGS}
  results = clitools.run_parallel([
      (window_flags(tiny_bert, data_dir, output_dir, window_pooling=pooling),
       conftest.DETERMINISTIC_ENV) for pooling, output_dir in runs.items()])
  logs = {pooling: clitools.succeeded(result) for pooling, result in zip(runs, results)}
  return {"runs": runs, "logs": logs, "test_rows": test_rows}


def test_windows_train_and_predict_one_row_per_document(window_runs):
  assert "Training examples are windows:" in window_runs["logs"]["max"]
  ids = [row[0] for row in window_runs["test_rows"]]
  for name in ("test_results.tsv", "test_results_classes.tsv"):
    header, found, values = clitools.read_tsv(window_runs["runs"]["max"] / name)
    assert header == ["id", "king", "robot"]
    assert found == ids and values.shape == (9, 2)


def test_window_pooling_combines_the_same_windows(window_runs):
  _, _, max_pooled = clitools.read_tsv(window_runs["runs"]["max"] / "test_results.tsv")
  _, _, mean = clitools.read_tsv(window_runs["runs"]["mean"] / "test_results.tsv")
  # Pooling changes no training step: documents of one window agree; the others' max is at
  # least their mean, and above it where the windows disagree.
  one_window = np.array([len(text.split()) <= 14 for _, text, _, _ in window_runs["test_rows"]])
  assert one_window.any() and not one_window.all()
  conftest.assert_close(mean[one_window], max_pooled[one_window], rtol=1e-5)
  assert np.all(max_pooled >= mean - 1e-6) and np.any(max_pooled > mean + 1e-6)


def test_resume_with_other_window_settings_is_refused(window_runs):
  output_dir = str(window_runs["runs"]["max"])
  with open(os.path.join(output_dir, training.PLAN_FILE), encoding="utf-8") as f:
    plan = json.load(f)
  assert plan["doc_stride"] == 7 and plan["max_windows"] == 4 and plan["truncation"] is None
  assert training.plan_mismatch(output_dir, plan) is None
  for changed, message in (
      (windows.Options(doc_stride=5, max_windows=4), "--doc_stride was 7, now 5"),
      (windows.Options(), "--doc_stride was 7, now null; --max_windows was 4, now null"),
      (windows.Options(truncation="tail", doc_stride=7, max_windows=4),
       "--truncation was null, now \"tail\"")):
    assert message in training.plan_mismatch(output_dir, {**plan, **changed.plan_inputs()})
  # A plan recorded before the long-text flags existed has none of them: Google's fits it.
  assert windows.Options().plan_inputs() == {"truncation": None, "doc_stride": None,
                                             "max_windows": None}


def test_stride_longer_than_a_window_is_refused_in_one_line(tiny_bert, tmp_path):
  result = clitools.run_cli(window_flags(tiny_bert, tmp_path, tmp_path / "out", doc_stride=15))
  assert result.returncode == 2
  assert "--doc_stride must be at most --max_seq_length - 2" in clitools.error_message(
      result.stderr)
