"""Tests of the task processors: formats, dev hold-out, and the errors of bad files."""

import os

import numpy as np
import pytest

from errors import UserError
import processors
from processors import base
from tests import clitools

BOM = "\ufeff"


def write(folder, name, content):
  """Writes `content` (str as UTF-8, or bytes) to `folder/name` and returns the path."""
  path = os.path.join(folder, name)
  with open(path, "wb") as f:
    f.write(content.encode("utf-8") if isinstance(content, str) else content)
  return path


def assert_user_error(get_examples, data_dir, name, line_number, *fragments):
  """Asserts that `get_examples(data_dir)` raises a UserError naming file `name`, the line
  and `fragments`."""
  with pytest.raises(UserError) as info:
    get_examples(data_dir)
  message = str(info.value)
  assert name in message, message
  if line_number is not None:
    assert f"line {line_number}:" in message, message
  for fragment in fragments:
    assert fragment in message, message


# Registry.


def test_get_processor_is_case_insensitive():
  assert isinstance(processors.get_processor("SE0714"), processors.Se0714Processor)
  assert isinstance(processors.get_processor("MovieLens"), processors.MovieLensProcessor)
  assert sorted(processors.PROCESSORS) == ["generic", "movielens", "psychexp", "se0714", "toxic"]


def test_unknown_task_lists_the_known_ones():
  with pytest.raises(UserError, match="movielens, psychexp, se0714, toxic"):
    processors.get_processor("cola")


def test_label_orders_follow_the_spec():
  assert processors.get_processor("se0714").get_labels() == ["fear", "joy", "sadness"]
  assert processors.get_processor("psychexp").get_labels() == [
      "joy", "fear", "anger", "sadness", "disgust", "shame", "guilt"]
  assert processors.get_processor("toxic").get_labels() == [
      "toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
  movielens = processors.get_processor("movielens").get_labels()
  assert len(movielens) == 17 and movielens[0] == "Adventure" and movielens[-1] == "Western"


# Text formats.


def test_se0714_reads_tabs_quotes_crlf_bom_and_blank_lines(tmp_path):
  write(tmp_path, "test_SE0714.txt",
        BOM + "[False, True, False]\tSun 'shines' \"again\"  \n"
        "[True, False, True]\tGlobal National\tMajor bust\r\n"
        "\n"
        "[false, FALSE, true]\tlast\n\n\n")
  examples = processors.get_processor("se0714").get_test_examples(tmp_path)
  assert examples == [
      base.InputExample("1", "Sun 'shines' \"again\"", None, (0, 1, 0)),
      base.InputExample("2", "Global National\tMajor bust", None, (1, 0, 1)),
      base.InputExample("4", "last", None, (0, 0, 1)),
  ]


def test_psychexp_reads_float_and_numpy_style_vectors(tmp_path):
  write(tmp_path, "test_psychexp.txt",
        "[0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]\tWhen I was walking alone.  \n"
        "[1. 0. 0. 0. 0. 0. 1.]\tTwo\tparts\n"
        "[0, 0, 0, 1, 0, 0, 0]\t  integers\n")
  examples = processors.get_processor("psychexp").get_test_examples(tmp_path)
  assert [e.labels for e in examples] == [
      (0, 1, 0, 0, 0, 0, 0), (1, 0, 0, 0, 0, 0, 1), (0, 0, 0, 1, 0, 0, 0)]
  assert [e.text_a for e in examples] == ["When I was walking alone.", "Two\tparts", "integers"]
  assert [e.guid for e in examples] == ["1", "2", "3"]


def test_movielens_reads_pairs_with_brackets_in_titles_and_tabs_in_summaries(tmp_path):
  zeros = ", ".join(["0"] * 16)
  write(tmp_path, "test_movies.txt",
        BOM + f"57274\t[REC] (2007)\tA reporter \"follows\" workers.\t[1, {zeros}]\r\n"
        f"93805\tIron Sky (2012)\tNazis\ton the moon.\t[{zeros}, 1]\n")
  examples = processors.get_processor("movielens").get_test_examples(tmp_path)
  assert examples == [
      base.InputExample("57274", "[REC] (2007)", "A reporter \"follows\" workers.",
                        (1,) + (0,) * 16),
      base.InputExample("93805", "Iron Sky (2012)", "Nazis\ton the moon.", (0,) * 16 + (1,)),
  ]


SE_BAD_ROWS = [
    ("[False, True]\ttext", "expected 3 labels (fear, joy, sadness), got 2"),
    ("[False, True, False, True]\ttext", "got 4"),
    ("[]\ttext", "got 0"),
    ("[maybe, True, False]\ttext", "'maybe': not 0/1 or True/False"),
    ("[False, , True]\ttext", "label 'joy' is ''"),
    ("[2, 0, 0]\ttext", "label 'fear' is 2: not 0 or 1"),
    ("[0.5, 0, 0]\ttext", "not 0 or 1"),
    ("[nan, 0, 0]\ttext", "not 0/1"),
    ("[0, 0, 0]\t   ", "empty text"),
    ("[0, 0, 0]", "empty text"),
    ("0, 0, 0\ttext", "expected a label vector"),
    ("[0, 0, 0] text without a tab", "expected a label vector"),
    ("text\t[0, 0, 0]", "expected a label vector"),
]


@pytest.mark.parametrize("row,reason", SE_BAD_ROWS)
def test_text_bad_rows_name_file_line_and_reason(tmp_path, row, reason):
  write(tmp_path, "train_SE0714.txt", f"[0, 1, 0]\tfine\n\n{row}\n[0, 1, 0]\tfine\n")
  assert_user_error(processors.get_processor("se0714").get_train_examples, tmp_path,
                    "train_SE0714.txt", 3, reason)


MOVIELENS_BAD_ROWS = [
    ("1\tTitle\tSummary", "got 3 field(s)"),
    ("1\tTitle\tSummary\t[0, 1]", "expected 17 labels"),
    ("\tTitle\tSummary\t[{zeros}]", "empty movie id"),
    ("1\t \tSummary\t[{zeros}]", "empty title"),
    ("1\tTitle\t\t[{zeros}]", "empty summary"),
    ("1\tTitle\tSummary\t[{zeros}]\tmore", "expected a label vector"),
]


@pytest.mark.parametrize("row,reason", MOVIELENS_BAD_ROWS)
def test_movielens_bad_rows(tmp_path, row, reason):
  zeros = ", ".join(["0"] * 17)
  write(tmp_path, "dev_movies.txt", f"7\tT\tS\t[{zeros}]\n" + row.format(zeros=zeros) + "\n")
  assert_user_error(processors.get_processor("movielens").get_dev_examples, tmp_path,
                    "dev_movies.txt", 2, reason)


def test_non_utf8_bytes_name_the_line(tmp_path):
  write(tmp_path, "test_psychexp.txt",
        "[1, 0, 0, 0, 0, 0, 0]\tfine\n".encode() * 2 + b"[1, 0, 0, 0, 0, 0, 0]\tcaf\xe9\n")
  assert_user_error(processors.get_processor("psychexp").get_test_examples, tmp_path,
                    "test_psychexp.txt", 3, "not valid UTF-8", "0xe9 at byte 26 of the line")


@pytest.mark.parametrize("task,name", [("se0714", "test_SE0714.txt"),
                                       ("movielens", "test_movies.txt"),
                                       ("toxic", "test.csv")])
def test_missing_empty_and_folder_files(tmp_path, task, name):
  processor = processors.get_processor(task)
  assert_user_error(processor.get_test_examples, tmp_path, name, None, "no such file")
  write(tmp_path, name, "\n \n")
  assert_user_error(processor.get_test_examples, tmp_path, name, None, "no examples")
  os.remove(os.path.join(tmp_path, name))
  os.mkdir(os.path.join(tmp_path, name))
  assert_user_error(processor.get_test_examples, tmp_path, name, None, "is a folder")


# Dev split.


def se0714_train(folder, num_lines):
  """Writes a train_SE0714.txt of `num_lines` distinct rows."""
  write(folder, "train_SE0714.txt",
        "".join(f"[{i % 2}, 0, 1]\theadline {i}\n" for i in range(num_lines)))


def test_holdout_is_deterministic_disjoint_and_ten_percent(tmp_path):
  se0714_train(tmp_path, 95)
  processor = processors.get_processor("se0714")
  train = processor.get_train_examples(tmp_path)
  dev = processor.get_dev_examples(tmp_path)
  assert len(dev) == 10 and len(train) == 85
  assert not {e.guid for e in train} & {e.guid for e in dev}
  assert sorted(int(e.guid) for e in train + dev) == list(range(1, 96))
  # File order within each split.
  assert [int(e.guid) for e in dev] == sorted(int(e.guid) for e in dev)
  assert processors.get_processor("se0714").get_dev_examples(tmp_path) == dev
  assert "hold-out" in processor.describe_dev_source(tmp_path)


# The rows (line numbers) held out of a 50-row train file: fixed by HOLDOUT_SEED for good, since
# a resumed or repeated run must hold out what the first one did.
HOLDOUT_OF_50 = ["9", "23", "31", "39", "43"]


def test_holdout_is_the_same_rows_in_every_process(tmp_path):
  se0714_train(tmp_path, 50)
  assert [e.guid for e in processors.get_processor("se0714").get_dev_examples(tmp_path)] == (
      HOLDOUT_OF_50)
  # Other processes, with other string hashes (a split drawn through hash() would move).
  script = ("import sys; from processors import get_processor; "
            "print(' '.join(e.guid for e in get_processor('se0714').get_dev_examples(sys.argv[1])))")
  for seed in ("1", "2"):
    result = clitools.run_python(script, str(tmp_path),
                                 env={**os.environ, "PYTHONHASHSEED": seed})
    assert result.stdout.split() == HOLDOUT_OF_50, f"PYTHONHASHSEED={seed}"


@pytest.mark.parametrize("num_examples, num_held_out", [(0, 0), (1, 0), (2, 1), (3, 1), (19, 2),
                                                        (1000, 100)])
def test_holdout_sizes(num_examples, num_held_out):
  held_out = base.holdout_indices(num_examples)
  assert held_out.size == num_held_out
  assert np.all(np.diff(held_out) > 0)  # Ascending, each once.
  assert np.all((held_out >= 0) & (held_out < num_examples))


def test_holdout_is_drawn_from_the_whole_file():
  held_out = base.holdout_indices(1000)
  assert held_out[0] < 100 and held_out[-1] >= 900


def test_dev_file_takes_precedence_and_train_keeps_every_row(tmp_path):
  se0714_train(tmp_path, 20)
  write(tmp_path, "dev_SE0714.txt", "[1, 1, 1]\tthe dev row\n")
  processor = processors.get_processor("se0714")
  assert len(processor.get_train_examples(tmp_path)) == 20
  assert processor.get_dev_examples(tmp_path) == [
      base.InputExample("1", "the dev row", None, (1, 1, 1))]
  assert "dev_SE0714.txt" in processor.describe_dev_source(tmp_path)
  assert "hold-out" not in processor.describe_dev_source(tmp_path)


def test_single_train_example_cannot_give_a_dev_split(tmp_path):
  se0714_train(tmp_path, 1)
  processor = processors.get_processor("se0714")
  assert len(processor.get_train_examples(tmp_path)) == 1
  assert_user_error(processor.get_dev_examples, tmp_path, "train_SE0714.txt", None,
                    "dev_SE0714.txt")


# Toxic.

TOXIC_HEADER = "id,comment_text,toxic,severe_toxic,obscene,threat,insult,identity_hate"
LABELS_HEADER = "id,toxic,severe_toxic,obscene,threat,insult,identity_hate"


def test_toxic_reads_multiline_quoted_comments(tmp_path):
  write(tmp_path, "train.csv",
        BOM + TOXIC_HEADER + "\r\n"
        'a1,"Line one,\r\nline ""two""\tand a tab",1,0,1,0,0,0\r\n'
        "\r\n"
        "b2,plain,0,0,0,0,0,1\r\n")
  write(tmp_path, "dev.csv", TOXIC_HEADER + "\nc3,dev comment,0,1,0,0,0,0\n")
  processor = processors.get_processor("toxic")
  assert processor.get_train_examples(tmp_path) == [
      base.InputExample("a1", 'Line one,\r\nline "two"\tand a tab', None, (1, 0, 1, 0, 0, 0)),
      base.InputExample("b2", "plain", None, (0, 0, 0, 0, 0, 1)),
  ]
  assert processor.get_dev_examples(tmp_path)[0].labels == (0, 1, 0, 0, 0, 0)


def test_toxic_columns_may_come_in_any_order_with_extras(tmp_path):
  write(tmp_path, "train.csv",
        "extra,identity_hate,insult,threat,obscene,severe_toxic,toxic,comment_text,id\n"
        "x,1,0,0,0,0,0,text,id1\n")
  write(tmp_path, "dev.csv", TOXIC_HEADER + "\nc3,dev comment,0,1,0,0,0,0\n")
  assert processors.get_processor("toxic").get_train_examples(tmp_path) == [
      base.InputExample("id1", "text", None, (0, 0, 0, 0, 0, 1))]


def toxic_test_files(folder, labels_rows):
  write(folder, "test.csv", 'id,comment_text\nt1,"first\nof two lines"\nt2,second\nt3,third\n')
  if labels_rows is not None:
    write(folder, "test_labels.csv", LABELS_HEADER + "\n" + "".join(r + "\n" for r in labels_rows))


def test_toxic_test_labels_with_unscored_rows(tmp_path):
  toxic_test_files(tmp_path, ["t3,0,0,0,0,0,1", "t1,-1,-1,-1,-1,-1,-1", "t2,1,0,0,0,0,0"])
  examples = processors.get_processor("toxic").get_test_examples(tmp_path)
  assert examples == [
      base.InputExample("t1", "first\nof two lines"),
      base.InputExample("t2", "second", None, (1, 0, 0, 0, 0, 0)),
      base.InputExample("t3", "third", None, (0, 0, 0, 0, 0, 1)),
  ]


def test_toxic_test_without_labels_file(tmp_path):
  toxic_test_files(tmp_path, None)
  examples = processors.get_processor("toxic").get_test_examples(tmp_path)
  assert [(e.guid, e.labels) for e in examples] == [("t1", None), ("t2", None), ("t3", None)]


@pytest.mark.parametrize("rows,name,line_number,reason", [
    (["t1,0,0,0,0,0,0", "t2,0,0,0,0,0,0"], "test.csv", 5, "id 't3' has no row in"),
    (["t1,0,0,0,0,0,0", "t2,0,0,0,0,0,0", "t3,0,0,0,0,0,0", "t9,0,0,0,0,0,0"],
     "test_labels.csv", 5, "id 't9' is not in"),
    (["t1,0,0,0,0,0,0", "t2,0,0,0,0,0,0", "t1,0,0,0,0,0,0", "t3,0,0,0,0,0,0"],
     "test_labels.csv", 4, "id 't1' is also on line 2"),
    (["t1,-1,0,0,0,0,0"], "test_labels.csv", 2, "mixes -1"),
    (["t1,0,0,0,0,0,3"], "test_labels.csv", 2, "label 'identity_hate' is 3"),
])
def test_toxic_test_labels_errors(tmp_path, rows, name, line_number, reason):
  toxic_test_files(tmp_path, rows)
  assert_user_error(processors.get_processor("toxic").get_test_examples, tmp_path, name,
                    line_number, reason)


@pytest.mark.parametrize("content,line_number,reason", [
    ("id,comment_text,toxic\n", 1,
     "lacks column(s) severe_toxic, obscene, threat, insult, identity_hate"),
    (TOXIC_HEADER + '\na,"two\nlines",0,0,0,0,0,0\nb,short,0\n', 4,
     "expected 8 fields as in the header, got 3"),
    (TOXIC_HEADER + '\na,fine,0,0,0,0,0,0\n\nb,"never closed,0,0,0,0,0,0\nc,x,0,0,0,0,0,0\n', 4,
     "not valid CSV"),
    (TOXIC_HEADER + '\na,"closed" then text,0,0,0,0,0,0\n', 2, "not valid CSV"),
    (TOXIC_HEADER + "\na,  ,0,0,0,0,0,0\n", 2, "empty comment_text"),
    (TOXIC_HEADER + "\n ,text,0,0,0,0,0,0\n", 2, "empty id"),
    (TOXIC_HEADER + '\n"a\tb",text,0,0,0,0,0,0\n', 2, "a tab or a line break"),
    (TOXIC_HEADER + "\na,text,0,0,yes,0,0,0\n", 2, "label 'obscene' is 'yes'"),
    (TOXIC_HEADER.encode() + b"\na,text,0,0,0,0,0,0\nb,\xff\xfe,0,0,0,0,0,0\n", 3,
     "not valid UTF-8"),
])
def test_toxic_train_errors(tmp_path, content, line_number, reason):
  write(tmp_path, "train.csv", content)
  write(tmp_path, "dev.csv", TOXIC_HEADER + "\nd,dev,0,0,0,0,0,0\n")
  assert_user_error(processors.get_processor("toxic").get_train_examples, tmp_path,
                    "train.csv", line_number, reason)


def test_toxic_test_csv_needs_its_columns(tmp_path):
  write(tmp_path, "test.csv", "id,text\n1,hello\n")
  assert_user_error(processors.get_processor("toxic").get_test_examples, tmp_path,
                    "test.csv", 1, "lacks column(s) comment_text")


def test_label_values():
  for token, value in [("0", 0), ("1", 1), (" 1.0 ", 1), ("0.", 0), ("True", 1), ("false", 0),
                       ("1e0", 1)]:
    assert base.parse_label_value(token, "x") == value
  for token in ["2", "-1", "0.5", "", "yes", "\u0661", "inf", "1_0"]:
    with pytest.raises(base.BadRowError):
      base.parse_label_value(token, "x")
