"""Tests of the export: in-graph tokenization against Google's, and the SavedModel of a run.

Tokenization: `text_graph.TextEncoder` against `tokenization.FullTokenizer` plus
`features.convert_examples`, id for id, on the test corpora and on texts made to break it.
Export: the SavedModels of `export_runs` against run_classifier.py's own predictions of the
same checkpoints, in this process, in a fresh one without the project, and in saved_model_cli.
"""

from concurrent import futures
import json
import os
import random
import shutil
import subprocess
import sys
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

import char_tables
import features
import modeling
from processors import base
import serving
import text_graph
import thresholds
import tokenization
from errors import UserError
from tests import clitools
from tests import export_runs
from tests.conftest import assert_close
from tests.conftest import tiny_vocab

# Texts made to find where a reimplementation of Google's tokenizer goes wrong.
ADVERSARIAL_TEXTS = (
    "", " ", "\t\n\r", "Hello, World!", "naïve café résumé Ångström", "Straße STRASSE ß ẞ",
    "ﬁ ﬂ ﬀ ligatures", "ＦＵＬＬ ｗｉｄｔｈ １２３", "中文字符 和 日本語 한국어", "emoji 😀 🇫🇷 👍🏽",
    "nul\x00byte", "bell\x07 and \x1f and \x7f and \x85", "soft\u00adhyphen zero\u200bwidth",
    "bad\ufffdchar", "non\u00a0breaking ideographic\u3000space", "line\u2028para\u2029sep",
    "ΟΔΥΣΣΕΥΣ ΣΑΣ. ΑΣ'Β Σ ΣΣ aΣ\u0301 ΑΣ\x00Β", "İstanbul ǅ ǈ", "ＡＢＣ！？",
    "x" * 199 + " " + "y" * 200 + " " + "z" * 201, "é" * 201, "a" + "\u0301" * 300,
    "[CLS] [SEP] [UNK] ##a", "don't stop-believing (1999) $100 #1 @home ~tilde `q`",
    "e\u0301 vs é", "\ufeffbom", "a" * 500, "the " * 100,
)


def corpus_texts(seed=0, count=60):
  """Texts like the tests' data files: TINY_WORDS, with case, punctuation, tabs and quotes."""
  rng = random.Random(seed)
  texts = []
  for _ in range(count):
    words = clitools.random_text(rng, 0, 40).split()
    words = [w.capitalize() if rng.random() < 0.2 else w for w in words]
    texts.append(rng.choice(["", '"', "(", "'"]) + " ".join(words) +
                 rng.choice(["", ".", "!", "?\t", ' "quoted"', "\tand tab"]))
  return texts


@pytest.fixture(name="vocab_file", scope="module")
def fixture_vocab_file(tmp_path_factory):
  """The tiny vocab plus every character the texts normalise to, alone and with '##'.

  With only the tiny vocab, nearly every unusual word is one [UNK]; with these pieces a
  character normalised wrongly changes the ids.
  """
  chars = set()
  for do_lower_case in (True, False):
    basic = tokenization.BasicTokenizer(do_lower_case)
    for text in ADVERSARIAL_TEXTS:
      for word in basic.tokenize(text):
        chars.update(word)
  tokens = tiny_vocab() + sorted(chars) + ["##" + c for c in sorted(chars)]
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(dict.fromkeys(tokens)) + "\n", encoding="utf-8")
  return str(path)


def encode(encoder, texts_a, texts_b=None):
  """The encoder's inputs as numpy, padded to max_seq_length as `Features` are."""
  inputs = encoder(tf.constant(texts_a, tf.string),
                   None if texts_b is None else tf.constant(texts_b, tf.string))
  padded = {}
  for name, value in inputs.items():
    value = value.numpy()
    padded[name] = np.pad(value, [(0, 0), (0, encoder.max_seq_length - value.shape[1])])
  return padded


def assert_google_inputs(encoder, tokenizer, texts_a, texts_b=None):
  examples = [base.InputExample(str(i), a, None if texts_b is None else texts_b[i])
              for i, a in enumerate(texts_a)]
  expected = features.convert_examples(examples, tokenizer, encoder.max_seq_length, 0)
  got = encode(encoder, texts_a, texts_b)
  for i, text in enumerate(texts_a):
    np.testing.assert_array_equal(got["input_ids"][i], expected.input_ids[i], err_msg=repr(text))
    np.testing.assert_array_equal(got["segment_ids"][i], expected.segment_ids[i],
                                  err_msg=repr(text))
    np.testing.assert_array_equal(got["input_mask"][i], expected.input_mask[i],
                                  err_msg=repr(text))


@pytest.mark.parametrize("do_lower_case", [True, False])
@pytest.mark.parametrize("max_seq_length", [8, 64])
def test_ids_equal_google_features(vocab_file, do_lower_case, max_seq_length):
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
  encoder = text_graph.TextEncoder(tokenizer, max_seq_length)
  texts = list(ADVERSARIAL_TEXTS) + corpus_texts()
  assert_google_inputs(encoder, tokenizer, texts)
  # Pairs: every text with another, both segments long and short, b empty.
  assert_google_inputs(encoder, tokenizer, texts, texts[7:] + texts[:7])


def test_truncation_of_pairs_is_googles(vocab_file):
  tokenizer = tokenization.FullTokenizer(vocab_file, True)
  lengths = [(a, b) for a in range(8) for b in range(8)]
  texts_a = [" ".join(["a"] * a) for a, _ in lengths]
  texts_b = [" ".join(["b"] * b) for _, b in lengths]
  for max_seq_length in range(3, 12):
    assert_google_inputs(text_graph.TextEncoder(tokenizer, max_seq_length), tokenizer, texts_a,
                         texts_b)


def mixed_texts(seed, count):
  """Random strings of characters that interact: cased letters and final sigmas, marks, case-
  ignorable punctuation, deleted and whitespace characters, CJK, and random code points."""
  rng = random.Random(seed)
  pool = list("aAzZ Σσς'.:-_,!?éÉüÜßẞİıﬁＡａ中文한\u0301\u0308\u0345\u02b0\u00ad\u200b\u200d"
              "\u2028\u00a0\u3000\t\n\r\x00\x01\x7f\ufffd\u01c5\u1fbc\u0390\u2126\u212a\u00b5"
              "\u0149\u1f88\uf900\U0002f800😀\u0e33\u0f73\u0340\u3099ｶﾞ")
  pool += [c for c in map(chr, rng.sample(range(0x30000), 300))
           if unicodedata.category(c) != "Cs"]
  # Marks that canonical reordering may swap are char_tables' documented exception.
  pool = [c for c in pool if not (unicodedata.combining(c) and unicodedata.category(c) != "Mn")]
  return ["".join(rng.choice(pool) for _ in range(rng.randint(0, 30))) for _ in range(count)]


def assert_words_are_googles(encoder, tokenizer, texts):
  got = encoder.words(tf.constant(texts, tf.string)).to_list()
  for text, words in zip(texts, got):
    assert [w.decode("utf-8") for w in words] == tokenizer.basic_tokenizer.tokenize(text), (
        repr(text))


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_words_equal_google_on_mixed_characters(vocab_file, do_lower_case):
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
  encoder = text_graph.TextEncoder(tokenizer, 16)
  assert_words_are_googles(encoder, tokenizer, mixed_texts(do_lower_case, 1500))


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_words_equal_google_on_a_sample_of_all_code_points(vocab_file, do_lower_case):
  """Every 53rd code point (all 1.1 million agree, checked once; too slow for the suite), in
  a word, ending one and alone; the offset moves with the casing."""
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
  encoder = text_graph.TextEncoder(tokenizer, 16)
  chars = [chr(cp) for cp in range(int(do_lower_case), 0x110000, 53)
           if not 0xD800 <= cp <= 0xDFFF]
  assert_words_are_googles(encoder, tokenizer, [f"a{c}b a{c} {c}" for c in chars])


def test_invalid_utf8_is_dropped_as_google_drops_it(vocab_file):
  tokenizer = tokenization.FullTokenizer(vocab_file, True)
  encoder = text_graph.TextEncoder(tokenizer, 16)
  rng = random.Random(3)
  texts = [b"caf\xc3\xa9 \xff\xfe bad", b"\xe2\x82 half", b"\xed\xa0\x80 surrogate"]
  texts += [bytes(rng.randrange(256) for _ in range(12)) for _ in range(300)]
  got = encoder.token_ids(tf.constant(texts)).to_list()
  for text, ids in zip(texts, got):
    assert ids == tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)), text


def test_reorderable_marks_only_matter_when_the_vocab_has_them(vocab_file):
  """A word with musical stems out of canonical order: the words differ (char_tables' exception)
  but the ids agree while no vocab token holds such a mark."""
  tokenizer = tokenization.FullTokenizer(vocab_file, True)
  assert not char_tables.reorderable_marks_in(tokenizer.vocab)
  text = "a\U0001d16d\U0001d165 love"
  encoder = text_graph.TextEncoder(tokenizer, 16)
  assert encoder.token_ids(tf.constant([text])).to_list()[0] == (
      tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)))
  assert char_tables.reorderable_marks_in(["a", "\u302e", "##x\U0001d165"]) == [
      "##x\U0001d165", "\u302e"]


def test_unprobed_code_points_stay_as_they_are():
  """Unassigned and private-use code points outside Google's CJK ranges are left out of the
  probes (char_tables); BasicTokenizer indeed leaves them alone."""
  rng = random.Random(5)
  skipped = [c for c in map(chr, rng.sample(range(0x110000), 20000))
             if unicodedata.category(c) in ("Cn", "Co") and
             not tokenization._is_chinese_char(ord(c))]  # pylint: disable=protected-access
  assert len(skipped) > 10000
  for do_lower_case in (True, False):
    basic = tokenization.BasicTokenizer(do_lower_case)
    for c in skipped[:3000]:
      assert basic.tokenize(f"a{c}b") == [f"a{c}b"], hex(ord(c))


def test_an_empty_batch_has_the_width_of_cls_and_sep(vocab_file):
  encoder = text_graph.TextEncoder(tokenization.FullTokenizer(vocab_file, True), 8)
  inputs = encoder(tf.constant([], tf.string), tf.constant([], tf.string))
  assert {name: tuple(value.shape) for name, value in inputs.items()} == {
      "input_ids": (0, 2), "input_mask": (0, 2), "segment_ids": (0, 2)}


# The exported SavedModel.


@pytest.fixture(name="run", scope="module")
def fixture_run(tiny_bert, tmp_path_factory):
  return export_runs.exported_run(tiny_bert, tmp_path_factory)


def text_inputs(run, count=None):
  """The serving signature's inputs: the run's test split, or its first `count` pairs."""
  return {"text": tf.constant(run.test_texts[:count], tf.string),
          "text_b": tf.constant(run.test_texts_b[:count], tf.string)}


def test_export_gives_run_classifiers_probabilities_and_predictions(run):
  outputs = tf.saved_model.load(run.export_dir).signatures["serving_default"](**text_inputs(run))
  header, ids, probabilities = clitools.read_tsv(run.path("test_results.tsv"))
  assert ids == run.test_ids
  assert_close(outputs["probabilities"].numpy(), probabilities, rtol=1e-5, atol=1e-5)
  _, _, classes = clitools.read_tsv(run.path("test_results_classes.tsv"))
  np.testing.assert_array_equal(outputs["predictions"].numpy(), classes)
  assert outputs["labels"].numpy().tolist() == [[n.encode() for n in header[1:]]] * len(ids)


def test_signatures_agree_with_each_other_and_with_google_features(run, tiny_bert):
  loaded = tf.saved_model.load(run.export_dir)
  inputs = loaded.signatures["tokenize"](**text_inputs(run))
  from_ids = loaded.signatures["token_ids"](**inputs)
  from_text = loaded.signatures["serving_default"](**text_inputs(run))
  for name in ("probabilities", "predictions", "labels"):
    np.testing.assert_array_equal(from_ids[name].numpy(), from_text[name].numpy())
  tokenizer = tokenization.FullTokenizer(tiny_bert["vocab_file"], True)
  examples = [base.InputExample(*row) for row in zip(run.test_ids, run.test_texts,
                                                      run.test_texts_b)]
  expected = features.convert_examples(examples, tokenizer, export_runs.MAX_SEQ_LENGTH, 0)
  width = inputs["input_ids"].shape[1]
  np.testing.assert_array_equal(inputs["input_ids"].numpy(), expected.input_ids[:, :width])
  np.testing.assert_array_equal(inputs["token_type_ids"].numpy(),
                                expected.segment_ids[:, :width])
  np.testing.assert_array_equal(inputs["input_mask"].numpy().sum(axis=1), expected.lengths)


def test_metadata_says_where_the_cut_offs_come_from(run):
  assets = os.path.join(run.export_dir, "assets")
  with open(os.path.join(assets, serving.METADATA_FILE), encoding="utf-8") as f:
    metadata = json.load(f)
  with open(run.path(thresholds.THRESHOLDS_FILE), encoding="utf-8") as f:
    saved = json.load(f)
  assert metadata["labels"] == list(run.labels)
  assert metadata["inputs"] == ["text", "text_b"]
  assert metadata["checkpoint"] == os.path.basename(tf.train.latest_checkpoint(run.output_dir))
  assert metadata["global_step"] == saved["checkpoint_step"]
  assert metadata["cutoff_type"] == "dynamic"
  assert metadata["cut_offs"] == [entry["threshold"] for entry in saved["labels"]]
  assert metadata["add_dense"] is True and metadata["max_seq_length"] == 24
  assert os.path.exists(os.path.join(assets, "vocab.txt"))


# A process that cannot import the project, only TensorFlow: it loads the export, runs it, and
# then runs saved_model_cli's `run` on it with a string input, as the README shows.
FRESH_PROCESS = """
import json, os, sys
import tensorflow as tf
from tensorflow.python.tools import saved_model_cli
export_dir, repo_dir, texts = sys.argv[1:]
assert not any(os.path.isdir(p) and os.path.samefile(p, repo_dir) for p in sys.path), sys.path
texts = json.loads(texts)
outputs = tf.saved_model.load(export_dir).signatures["serving_default"](
    **{k: tf.constant(v) for k, v in texts.items()})
print(json.dumps({k: v.numpy().tolist() for k, v in outputs.items() if k != "labels"}))
sys.stdout.flush()
sys.argv = ["saved_model_cli", "run", "--dir", export_dir, "--tag_set", "serve",
            "--signature_def", "serving_default",
            "--input_exprs", ";".join(f"{k}={json.dumps(v)}" for k, v in texts.items())]
saved_model_cli.main()
"""


def test_export_runs_in_a_fresh_process_and_in_saved_model_cli(run, tmp_path):
  copy = tmp_path / "copied_export"
  shutil.copytree(run.export_dir, copy)
  texts = {"text": run.test_texts[:3], "text_b": run.test_texts_b[:3]}
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  result = clitools.run_python(FRESH_PROCESS, str(copy), clitools.REPO_DIR, json.dumps(texts),
                               cwd=tmp_path, env=env, timeout=300)
  loaded, cli_output = result.stdout.split("\n", 1)
  fresh = json.loads(loaded)
  here = tf.saved_model.load(run.export_dir).signatures["serving_default"](
      **text_inputs(run, 3))
  np.testing.assert_array_equal(np.array(fresh["probabilities"], np.float32),
                                here["probabilities"].numpy())
  np.testing.assert_array_equal(fresh["predictions"], here["predictions"].numpy())
  printed = cli_output.split("Result for output key probabilities:\n")[1].split("Result")[0]
  from_cli = np.array(printed.replace("[", " ").replace("]", " ").split(), np.float32)
  assert_close(from_cli.reshape(3, -1), here["probabilities"].numpy(), rtol=1e-5, atol=1e-5)
  assert "Result for output key labels:\n[[b'Adventure' b'Animation'" in cli_output


# Settings and bad input.


def settings_of(run, **changes):
  """The `RunSettings` of the run's export, with `changes`."""
  flags = dict(arg[2:].split("=", 1) for arg in run.model_flags)
  values = {"output_dir": run.output_dir, "task_name": flags["task_name"],
            "bert_config_file": flags["bert_config_file"], "vocab_file": flags["vocab_file"],
            "do_lower_case": True, "max_seq_length": export_runs.MAX_SEQ_LENGTH,
            "add_dense": True, "cutoff_type": "dynamic", "cut_off": 0.5}
  return serving.RunSettings(**{**values, **changes})


def test_static_cut_off(run):
  module, metadata = serving.build(settings_of(run, cutoff_type="static", cut_off=0.25))
  outputs = module.classify_text(**text_inputs(run))
  assert metadata["cut_offs"] == [0.25] * 17 and metadata["cut_offs_source"] == "--cut_off=0.25"
  np.testing.assert_array_equal(outputs["predictions"].numpy(),
                                outputs["probabilities"].numpy() >= 0.25)


def test_without_a_cut_off_or_a_text_b(run):
  """No cut-off: no predictions. For tasks without pairs the signature takes `text` alone;
  Google makes an empty b a single text, so both give the same numbers."""
  settings = settings_of(run)
  model, pooling = serving.restore_model(
      settings, modeling.BertConfig.from_json_file(settings.bert_config_file), 17,
      tf.train.latest_checkpoint(run.output_dir))
  assert pooling == "cls"
  encoder = text_graph.TextEncoder(tokenization.FullTokenizer(settings.vocab_file, True), 24)
  single = serving.ServingModule(model, encoder, run.labels, None, has_pairs=False)
  pairs = serving.ServingModule(model, encoder, run.labels, None, has_pairs=True)
  assert [spec.name for spec in single.classify_text.input_signature] == ["text"]
  texts = tf.constant(run.test_texts, tf.string)
  from_single = single.classify_text(text=texts)
  assert set(from_single) == {"probabilities", "labels"}
  np.testing.assert_array_equal(
      from_single["probabilities"].numpy(),
      pairs.classify_text(text=texts, text_b=tf.fill(tf.shape(texts), ""))[
          "probabilities"].numpy())


def test_add_dense_and_thresholds_must_be_the_checkpoints(run, tmp_path):
  with pytest.raises(UserError, match="has the --add_dense layer.*pass --add_dense=true"):
    serving.build(settings_of(run, add_dense=False))
  other_step = tmp_path / "other_step"
  shutil.copytree(run.output_dir, other_step)
  with open(other_step / thresholds.THRESHOLDS_FILE, encoding="utf-8") as f:
    saved = json.load(f)
  saved["checkpoint_step"] += 1  # As if tuned on another checkpoint of the run.
  clitools.write_text(other_step / thresholds.THRESHOLDS_FILE, json.dumps(saved))
  with pytest.raises(UserError, match="tuned on another checkpoint"):
    serving.build(settings_of(run, output_dir=str(other_step)))


def test_generic_runs_take_text_b_when_given_its_column(run):
  _, metadata = serving.build(settings_of(run, task_name="generic", text_b_column="summary"))
  assert metadata["inputs"] == ["text", "text_b"] and metadata["labels"] == list(run.labels)
  with pytest.raises(UserError, match="apply to --task_name=generic only"):
    serving.build(settings_of(run, text_b_column="summary"))


class TinyModule(tf.Module):
  """Stands in for a `ServingModule` where only saving is tested."""

  def __init__(self, value):
    super().__init__()
    self.value = tf.Variable(value)
    self.serve = tf.function(lambda text: {"value": self.value + 0 * tf.size(text)},
                             input_signature=[tf.TensorSpec([None], tf.string, name="text")])

  def signatures(self):
    return {"serving_default": self.serve}


def saved_value(export_dir):
  loaded = tf.saved_model.load(str(export_dir))  # Alive while its function runs.
  return int(loaded.serve(tf.constant(["x"]))["value"].numpy())


def test_save_replaces_only_with_overwrite_and_leaves_nothing_when_it_fails(tmp_path,
                                                                           monkeypatch):
  vocab_file = clitools.write_text(tmp_path / "vocab.txt", "[UNK]\n")
  export_dir = tmp_path / "exports" / "export"
  serving.save(TinyModule(1), {"n": 1}, vocab_file, str(export_dir))
  with open(export_dir / "assets" / serving.METADATA_FILE, encoding="utf-8") as f:
    assert json.load(f) == {"n": 1}
  assert (export_dir / "assets" / "vocab.txt").read_text() == "[UNK]\n"
  with pytest.raises(UserError, match="is not empty: pass --overwrite"):
    serving.save(TinyModule(2), {}, vocab_file, str(export_dir))

  def fail(*args, **kwargs):
    raise OSError("disk full")

  monkeypatch.setattr(tf.saved_model, "save", fail)
  with pytest.raises(OSError):
    serving.save(TinyModule(3), {}, vocab_file, str(export_dir), overwrite=True)
  monkeypatch.undo()
  assert os.listdir(tmp_path / "exports") == ["export"]
  assert saved_value(export_dir) == 1
  serving.save(TinyModule(4), {}, vocab_file, str(export_dir), overwrite=True)
  assert os.listdir(tmp_path / "exports") == ["export"]
  assert saved_value(export_dir) == 4


def hidden_entries(folder):
  return sorted(name for name in os.listdir(folder) if name.startswith("."))


def test_bad_exports_fail_with_one_line_and_write_nothing(run, tmp_path):
  untrained = tmp_path / "untrained"
  untrained.mkdir()
  taken = tmp_path / "taken"
  taken.mkdir()
  clitools.write_text(taken / "keep.txt", "mine")
  cases = [(untrained, tmp_path / "export", "has no checkpoint to export"),
           (run.output_dir, taken, "is not empty: pass --overwrite")]
  with futures.ThreadPoolExecutor(max_workers=2) as pool:
    results = list(pool.map(export_runs.run_export, [
        [*run.model_flags, f"--output_dir={output_dir}", f"--export_dir={export_dir}"]
        for output_dir, export_dir, _ in cases]))
  for (_, _, reason), result in zip(cases, results):
    assert result.returncode == 2, result.stderr[-3000:]
    assert reason in clitools.error_message(result.stderr)
    assert "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "export")
  assert os.listdir(taken) == ["keep.txt"]
  assert hidden_entries(tmp_path) == []


def test_latency_bench_compares_like_with_like(run):
  """bench/export_latency.py on the tiny export: it runs, and its two paths agree."""
  flags = dict(arg[2:].split("=", 1) for arg in run.model_flags)
  result = subprocess.run(
      [sys.executable, "bench/export_latency.py", f"--export_dir={run.export_dir}",
       "--task_name=movielens", f"--data_dir={run.data_dir}", f"--output_dir={run.output_dir}",
       f"--vocab_file={flags['vocab_file']}", f"--bert_config_file={flags['bert_config_file']}",
       f"--max_seq_length={export_runs.MAX_SEQ_LENGTH}", "--add_dense=true", "--calls=3",
       "--warmup_calls=1", "--repeats=1", "--batch_size=4"],
      cwd=clitools.REPO_DIR, capture_output=True, text=True, check=False, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  measured = json.loads(result.stdout)
  assert measured["examples"] == len(run.test_ids) and measured["latency_calls"] == 3
  assert measured["ids_equal_to_features"] is True
  assert measured["max_abs_probability_difference"] < 1e-5
  assert measured["latency_ms_median"] <= measured["latency_ms_p99"]
