"""Bad input stops run_classifier.py with one clear line and leaves no results behind.

Issue "Nothing lost, nothing cryptic", item 3: for each mistake a user can make with the data, the
model files or the flags, the command line exits non-zero with one `error:` message on stderr that
names what is wrong and where (file and line, flag or variable), shows no traceback, and writes no
eval results, predictions or checkpoints. Every case is a real run in a subprocess; they run two at
a time, once, in a module-scoped fixture.

Unreadable files: the tests run as root, for whom `chmod 000` does not stop reads, so the
unreadable data file is a folder where the file is expected.
"""

import json
import os
import random
import re
import shutil

import pytest

from tests import clitools


class Workspace:
  """A valid SE0714 run's files in a folder of its own, which a case then breaks.

  Attributes:
    root: pathlib.Path, the folder.
    data_dir: pathlib.Path, the task's data folder, with valid train and test files.
    output_dir: str, the --output_dir (not created).
    model: dict like `tiny_bert`'s.
  """

  def __init__(self, root, tiny_bert):
    self.root = root
    self.data_dir = root / "data"
    self.data_dir.mkdir()
    self.output_dir = str(root / "out")
    self.model = dict(tiny_bert)
    rng = random.Random(0)
    for name, count in (("train", 12), ("test", 4)):
      rows = [(clitools.random_labels(rng, 3), clitools.random_text(rng, 2, 8))
              for _ in range(count)]
      clitools.write_text(self.data_dir / f"{name}_SE0714.txt",
                          clitools.labels_first_lines(rows, "bool"))

  @property
  def train_file(self):
    return str(self.data_dir / "train_SE0714.txt")

  def flags(self, **changes):
    """The flags of a valid train, eval and predict run, with `changes` (None drops a flag)."""
    flags = {"task_name": "se0714", "data_dir": self.data_dir, "output_dir": self.output_dir,
             "vocab_file": self.model["vocab_file"],
             "bert_config_file": self.model["config_file"],
             "init_checkpoint": self.model["checkpoint"], "max_seq_length": 32,
             "do_train": "true", "do_eval": "true", "do_predict": "true",
             "train_batch_size": 4, "num_train_epochs": 1}
    flags.update(changes)
    return [f"--{name}={value}" for name, value in flags.items() if value is not None]

  def replace_train_line(self, line_number, line):
    """Replaces one line of the train file with `line` (str, or bytes written as they are)."""
    with open(self.train_file, "rb") as f:
      lines = f.read().split(b"\n")
    lines[line_number - 1] = line if isinstance(line, bytes) else line.encode("utf-8")
    with open(self.train_file, "wb") as f:
      f.write(b"\n".join(lines))

  def write_config(self, **changes):
    """Writes the tiny model's bert_config.json with `changes` into the workspace; returns it."""
    with open(self.model["config_file"], encoding="utf-8") as f:
      config = json.load(f)
    return clitools.write_text(self.root / "bert_config.json",
                               json.dumps({**config, **changes}, indent=2))

  def write_toxic_files(self, test_label_ids=None):
    """Makes the data folder a valid toxic one; `test_label_ids` overrides test_labels.csv's ids.

    Returns the paths of test.csv and test_labels.csv.
    """
    rng = random.Random(1)
    rows = [(f"t{i}", clitools.random_text(rng, 2, 8), clitools.random_labels(rng, 6))
            for i in range(12)]
    clitools.write_text(self.data_dir / "train.csv", clitools.toxic_labelled_csv(rows))
    test_csv, test_labels_csv = clitools.toxic_test_csvs(rows[:3])
    if test_label_ids:
      lines = test_labels_csv.split("\n")
      lines[1:1 + len(test_label_ids)] = [guid + line[line.index(","):] for guid, line in
                                          zip(test_label_ids, lines[1:])]
      test_labels_csv = "\n".join(lines)
    return (clitools.write_text(self.data_dir / "test.csv", test_csv),
            clitools.write_text(self.data_dir / "test_labels.csv", test_labels_csv))


# Each case breaks a workspace and returns (flags, fragments the error message must hold).


def missing_data_file(ws):
  os.remove(ws.train_file)
  return ws.flags(), [ws.train_file, "no such file"]


def empty_data_file(ws):
  clitools.write_text(ws.train_file, "")
  return ws.flags(), [ws.train_file, "no examples"]


def unreadable_data_file(ws):
  os.remove(ws.train_file)
  os.mkdir(ws.train_file)
  return ws.flags(), [ws.train_file, "folder"]


def wrong_number_of_labels(ws):
  ws.replace_train_line(3, "[True, False]\ta headline")
  return ws.flags(), [f"{ws.train_file}, line 3", "expected 3 labels"]


def unparsable_label_vector(ws):
  ws.replace_train_line(2, "[True, maybe, False]\ta headline")
  return ws.flags(), [f"{ws.train_file}, line 2", "'maybe'"]


def non_utf8_bytes(ws):
  ws.replace_train_line(4, b"[True, False, False]\tcaf\xe9 news")
  return ws.flags(), [f"{ws.train_file}, line 4", "UTF-8"]


def empty_text(ws):
  ws.replace_train_line(5, "[True, False, False]\t   ")
  return ws.flags(), [f"{ws.train_file}, line 5", "empty text"]


def csv_without_expected_columns(ws):
  ws.write_toxic_files()
  train = ws.data_dir / "train.csv"
  text = train.read_text(encoding="utf-8").replace("comment_text", "comment", 1)
  clitools.write_text(train, text)
  return ws.flags(task_name="toxic"), [f"{train}, line 1", "comment_text"]


def mismatched_test_label_ids(ws):
  test_csv, test_labels_csv = ws.write_toxic_files(test_label_ids=["t0", "t1", "t9"])
  return ws.flags(task_name="toxic"), [f"{test_csv}, line 4", "'t2'", test_labels_csv]


def unknown_task(ws):
  return ws.flags(task_name="imdb"), ["imdb", "movielens", "psychexp", "se0714", "toxic"]


def max_seq_length_beyond_positions(ws):
  return ws.flags(max_seq_length=65), ["--max_seq_length", "65", "64"]


def max_seq_length_below_three(ws):
  return ws.flags(max_seq_length=2), ["--max_seq_length", "2"]


def train_batch_size_zero(ws):
  return ws.flags(train_batch_size=0), ["--train_batch_size", "0"]


def eval_batch_size_negative(ws):
  return ws.flags(eval_batch_size=-8), ["--eval_batch_size", "-8"]


def predict_batch_size_zero(ws):
  return ws.flags(predict_batch_size=0), ["--predict_batch_size", "0"]


def epochs_zero(ws):
  return ws.flags(num_train_epochs=0), ["--num_train_epochs", "0"]


def cut_off_above_one(ws):
  return ws.flags(cut_off=1.5, cutoff_type="static"), ["--cut_off", "1.5"]


def cut_off_negative(ws):
  return ws.flags(cut_off=-0.1, cutoff_type="static"), ["--cut_off", "-0.1"]


def unknown_cutoff_type(ws):
  return ws.flags(cutoff_type="adaptive"), ["--cutoff_type", "adaptive", "static", "dynamic"]


def readme_cut_off_spelling(ws):
  return ws.flags() + ["--cut-off=0.5"], ["--cut-off", "--cut_off"]


def no_do_flag(ws):
  return (ws.flags(do_train=None, do_eval=None, do_predict=None),
          ["--do_train", "--do_eval", "--do_predict"])


def missing_bert_config(ws):
  path = str(ws.root / "nowhere" / "bert_config.json")
  return ws.flags(bert_config_file=path), [path]


def malformed_bert_config(ws):
  path = clitools.write_text(ws.root / "bert_config.json",
                             '{"vocab_size": 203,\n  "hidden_size": }')
  return ws.flags(bert_config_file=path), [path, "line 2", "JSON"]


def missing_vocab(ws):
  path = str(ws.root / "nowhere" / "vocab.txt")
  return ws.flags(vocab_file=path), [path]


def vocab_without_unk(ws):
  with open(ws.model["vocab_file"], encoding="utf-8") as f:
    tokens = [token for token in f.read().split("\n") if token != "[UNK]"]
  path = clitools.write_text(ws.root / "vocab.txt", "\n".join(tokens))
  return ws.flags(vocab_file=path), [path, "[UNK]"]


def vocab_size_differs_from_config(ws):
  path = ws.write_config(vocab_size=30522)
  return ws.flags(bert_config_file=path), [ws.model["vocab_file"], path, "30522"]


def do_lower_case_contradicts_cased_checkpoint(ws):
  folder = ws.root / "cased_L-12_H-768_A-12"
  folder.mkdir()
  for name in os.listdir(ws.model["dir"]):
    if name.startswith("bert_model.ckpt"):
      shutil.copy(os.path.join(ws.model["dir"], name), folder)
  return (ws.flags(init_checkpoint=folder / "bert_model.ckpt", do_lower_case="true"),
          ["--do_lower_case", "cased_L-12_H-768_A-12"])


def missing_init_checkpoint(ws):
  path = str(ws.root / "nowhere" / "bert_model.ckpt")
  return ws.flags(init_checkpoint=path), ["--init_checkpoint", path, "no such checkpoint"]


def checkpoint_shapes_differ_from_config(ws):
  path = ws.write_config(intermediate_size=128)
  return (ws.flags(bert_config_file=path),
          ["bert/encoder/layer_0/intermediate/dense/kernel", "[32, 64]", "[32, 128]"])


def output_dir_under_a_file(ws):
  blocker = clitools.write_text(ws.root / "blocker", "a file, not a folder\n")
  ws.output_dir = os.path.join(blocker, "out")
  return ws.flags(), ["--output_dir", ws.output_dir]


def missing_required_flag(ws):
  return ws.flags(vocab_file=None), ["--vocab_file"]


CASES = (missing_data_file, empty_data_file, unreadable_data_file, wrong_number_of_labels,
         unparsable_label_vector, non_utf8_bytes, empty_text, csv_without_expected_columns,
         mismatched_test_label_ids, unknown_task, max_seq_length_beyond_positions,
         max_seq_length_below_three, train_batch_size_zero, eval_batch_size_negative,
         predict_batch_size_zero, epochs_zero, cut_off_above_one, cut_off_negative,
         unknown_cutoff_type, readme_cut_off_spelling, no_do_flag, missing_bert_config,
         malformed_bert_config, missing_vocab, vocab_without_unk, vocab_size_differs_from_config,
         do_lower_case_contradicts_cased_checkpoint, missing_init_checkpoint,
         checkpoint_shapes_differ_from_config, output_dir_under_a_file, missing_required_flag)


@pytest.fixture(name="bad_runs", scope="module")
def fixture_bad_runs(tiny_bert, tmp_path_factory):
  """{case name: (CompletedProcess, the run's --output_dir, the fragments)}, every case run."""
  prepared = {}
  for case in CASES:
    ws = Workspace(tmp_path_factory.mktemp(case.__name__), tiny_bert)
    flags, fragments = case(ws)
    prepared[case.__name__] = (flags, ws.output_dir, [str(f) for f in fragments])
  results = clitools.run_parallel([(flags,) for flags, _, _ in prepared.values()])
  return {name: (result, output_dir, fragments)
          for (name, (_, output_dir, fragments)), result in zip(prepared.items(), results)}


@pytest.mark.parametrize("case", [case.__name__ for case in CASES])
def test_bad_input_is_one_clear_error_and_no_results(bad_runs, case):
  result, output_dir, fragments = bad_runs[case]
  assert result.returncode != 0, result.stderr[-3000:]
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  message = clitools.error_message(result.stderr)
  for fragment in fragments:
    assert fragment in message, message
  assert not clitools.result_files(output_dir)


def test_flag_mistakes_are_answered_before_tensorflow_is_imported(tiny_bert, tmp_path):
  """A wrong flag value is answered at once, not after the seconds TensorFlow takes to import."""
  ws = Workspace(tmp_path, tiny_bert)
  result = clitools.run_cli(ws.flags(train_batch_size=0), env={"PYTHONPROFILEIMPORTTIME": "1"})
  assert "--train_batch_size" in clitools.error_message(result.stderr)
  imported = re.findall(r"^import time:.*\|\s*(\S+)$", result.stderr, flags=re.MULTILINE)
  assert "absl.flags" in imported  # The import profile is on.
  assert "tensorflow" not in imported
