"""Tests of the generic task's reader and processor: a user's own CSV, TSV and JSON Lines files."""

import json
import logging
import os

import numpy as np
import pytest

from errors import UserError
import processors
from processors import base
from processors import generic
from processors import label_set
from processors import tables

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SAMPLE = os.path.join(ROOT, "sample_data", "generic")
BOM = "\ufeff"
LABELS = ["billing", "bug", "urgent"]
# (id, text, labels) of a tiny data set, written below in every layout and format.
ROWS = [("a1", "charged twice, please refund", ["billing"]),
        ("a2", 'the "export" button crashes', ["bug"]),
        ("a3", "site down\nfix it now", ["bug", "urgent"]),
        ("a4", "thanks for the help", [])]


def write(folder, name, content):
  """Writes `content` (str as UTF-8, or bytes) to `folder/name`; returns the path."""
  path = os.path.join(folder, name)
  with open(path, "wb") as f:
    f.write(content.encode("utf-8") if isinstance(content, str) else content)
  return path


def csv_field(text, separator=","):
  """A CSV field quoted where it needs to be, as spreadsheets write it."""
  if any(c in text for c in (separator, '"', "\n", "\r")):
    return '"' + text.replace('"', '""') + '"'
  return text


def wide_csv(rows, separator=",", labels=LABELS):
  lines = [separator.join(["id", "text", *labels])]
  lines += [separator.join([guid, csv_field(text, separator)] +
                           [str(int(name in names)) for name in labels])
            for guid, text, names in rows]
  return "\n".join(lines) + "\n"


def names_jsonl(rows):
  return "".join(json.dumps({"id": guid, "text": text, "labels": names}) + "\n"
                 for guid, text, names in rows)


def ids_tsv(rows, labels=LABELS):
  lines = ["id\ttext\tlabels"] + [
      f"{guid}\t{csv_field(text, chr(9))}\t{'|'.join(str(labels.index(n)) for n in names)}"
      for guid, text, names in rows]
  return "\n".join(lines) + "\n"


def processor(folder, **options):
  return generic.GenericProcessor(generic.Options(data_dir=str(folder), **options))


def read_all(folder, **options):
  """(labels, train, dev, test) of a data folder, the examples as lists."""
  p = processor(folder, **options)
  return (p.get_labels(), list(p.get_train_examples(str(folder))),
          list(p.get_dev_examples(str(folder))), list(p.get_test_examples(str(folder))))


def expected_examples(rows, labels=LABELS):
  return [base.InputExample(guid, text.strip(), None,
                            tuple(int(name in names) for name in labels))
          for guid, text, names in rows]


def assert_error(call, *fragments):
  """Asserts that `call()` raises a one-line UserError holding every fragment."""
  with pytest.raises(UserError) as info:
    call()
  message = str(info.value)
  assert "\n" not in message, message
  for fragment in fragments:
    assert fragment in message, message
  return message


# The three layouts.


@pytest.mark.parametrize("files", [
    {"train.csv": wide_csv(ROWS), "test.csv": wide_csv(ROWS)},
    {"train.tsv": wide_csv(ROWS, "\t"), "test.tsv": wide_csv(ROWS, "\t")},
    {"train.jsonl": names_jsonl(ROWS), "test.json": names_jsonl(ROWS)},
    {"train.tsv": ids_tsv(ROWS), "test.tsv": ids_tsv(ROWS), "labels.txt": "\n".join(LABELS)},
    {"train.jsonl": "".join(
        json.dumps({"id": g, "text": t, "labels": [LABELS.index(n) for n in ns]}) + "\n"
        for g, t, ns in ROWS),
     "test.jsonl": names_jsonl(ROWS), "labels.txt": "\n".join(LABELS) + "\n"},
    {"train.csv": "id,text,labels\n" + "".join(
        f"{g},{csv_field(t)},\"{ns!r}\"\n" for g, t, ns in ROWS),
     "test.csv": "id,text,labels\n" + "".join(
         f"{g},{csv_field(t)},{'|'.join(ns)}\n" for g, t, ns in ROWS)},
], ids=["wide-csv", "wide-tsv", "names-jsonl", "ids-tsv", "ids-jsonl", "python-lists-csv"])
def test_every_layout_and_format_reads_the_same_examples(tmp_path, files):
  for name, content in files.items():
    write(tmp_path, name, content)
  labels, train, dev, test = read_all(tmp_path, id_column="id")
  assert labels == LABELS
  expected = expected_examples(ROWS)
  assert test == expected
  assert sorted(train + dev, key=lambda e: e.guid) == expected
  assert len(dev) == 1  # The seeded 10% hold-out, at least one.


def test_sample_data_layouts_give_the_same_examples():
  results = [read_all(os.path.join(SAMPLE, layout), id_column="id")
             for layout in ("wide", "names", "ids")]
  assert results[0] == results[1] == results[2]
  labels, train, dev, test = results[0]
  assert labels == ["account", "billing", "bug", "feature", "urgent"]
  assert (len(train), len(dev), len(test)) == (36, 4, 12)
  assert test[9].labels == (0, 1, 1, 0, 1)


def test_ids_are_line_numbers_where_rows_start_without_an_id_column(tmp_path):
  write(tmp_path, "train.csv", BOM + "text,x\r\n\"two\r\nlines, quoted\",1\r\n\r\nthird,0\r\n")
  write(tmp_path, "dev.csv", "text,x\nd,1\n")
  examples = list(processor(tmp_path).get_train_examples(str(tmp_path)))
  assert examples == [base.InputExample("2", "two\r\nlines, quoted", None, (1,)),
                      base.InputExample("5", "third", None, (0,))]


def test_text_b_pairs_and_an_empty_text_b(tmp_path):
  write(tmp_path, "train.tsv", "title\tsummary\tlabels\nT1\tS1\tx\nT2\t \tx|y\n")
  write(tmp_path, "dev.tsv", "title\tsummary\tlabels\nT3\tS3\ty\n")
  p = processor(tmp_path, text_column="title", text_b_column="summary")
  assert p.has_pairs and not processor(tmp_path).has_pairs
  assert list(p.get_train_examples(str(tmp_path))) == [
      base.InputExample("2", "T1", "S1", (1, 0)), base.InputExample("3", "T2", None, (1, 1))]


# Files.


def test_files_named_anywhere_and_a_test_file_without_labels(tmp_path):
  train = write(tmp_path, "my-train.CSV", wide_csv(ROWS))
  unlabelled = write(tmp_path, "new.jsonl",
                     '{"id": "n1", "text": "hello"}\n{"id": 7, "text": "x"}\n')
  p = generic.GenericProcessor(generic.Options(train_file=train, test_file=unlabelled,
                                               id_column="id"))
  assert p.get_labels() == LABELS
  assert list(p.get_test_examples(None)) == [base.InputExample("n1", "hello"),
                                             base.InputExample("7", "x")]


def test_a_test_file_without_the_id_column_is_numbered_by_line(tmp_path):
  write(tmp_path, "train.csv", wide_csv(ROWS))
  write(tmp_path, "test.jsonl", '{"text": "new one"}\n\n{"text": "another"}\n')
  p = processor(tmp_path, id_column="id")
  assert list(p.get_test_examples(str(tmp_path))) == [base.InputExample("1", "new one"),
                                                      base.InputExample("3", "another")]
  write(tmp_path, "dev.jsonl", '{"text": "x", "labels": ["bug"]}\n')
  assert_error(lambda: p.get_dev_examples(str(tmp_path)), "dev.jsonl, line 1",
               "no column 'id' (--id_column)")


def test_dev_file_is_the_dev_split_and_train_keeps_every_row(tmp_path):
  write(tmp_path, "train.csv", wide_csv(ROWS))
  write(tmp_path, "dev.jsonl", names_jsonl(ROWS[:1]))
  p = processor(tmp_path, id_column="id")
  assert len(p.get_train_examples(str(tmp_path))) == 4
  assert list(p.get_dev_examples(str(tmp_path))) == expected_examples(ROWS[:1])
  assert "dev.jsonl" in p.describe_dev_source(str(tmp_path))


def test_holdout_matches_the_built_in_tasks(tmp_path):
  lines = [f"[{i % 2}, 0, 1]\theadline {i}" for i in range(40)]
  write(tmp_path, "train_SE0714.txt", "\n".join(lines) + "\n")
  write(tmp_path, "train.tsv", "s\ttext\tlabels\n" + "".join(
      f"{line.split(chr(9))[0]}\t{line.split(chr(9))[1]}\t"
      f"{'|'.join(n for n, v in zip(['fear', 'joy', 'sadness'], [i % 2, 0, 1]) if v)}\n"
      for i, line in enumerate(lines)))
  builtin = processors.get_processor("se0714")
  own = processor(tmp_path, ignore_columns=("s",), labels_file=write(
      tmp_path, "l.txt", "fear\njoy\nsadness\n"))
  for split in ("train", "dev"):
    ours = getattr(own, f"get_{split}_examples")(str(tmp_path))
    theirs = getattr(builtin, f"get_{split}_examples")(str(tmp_path))
    assert [(e.text_a, e.labels) for e in ours] == [(e.text_a, e.labels) for e in theirs]
    # Their ids are line numbers of a file without a header: ours are one more.
    assert [int(e.guid) for e in ours] == [int(e.guid) + 1 for e in theirs]


@pytest.mark.parametrize("names,fragments", [
    ([], ["no train.csv, train.tsv, train.jsonl or train.json in", "--train_file"]),
    (["train.csv", "train.jsonl"], ["train.csv and train.jsonl", "--train_file"]),
])
def test_train_file_missing_or_ambiguous(tmp_path, names, fragments):
  for name in names:
    write(tmp_path, name, wide_csv(ROWS))
  assert_error(lambda: processor(tmp_path).get_train_examples(str(tmp_path)), *fragments)


def test_unknown_extension(tmp_path):
  path = write(tmp_path, "train.txt", wide_csv(ROWS))
  assert_error(lambda: generic.GenericProcessor(generic.Options(train_file=path)).get_labels(),
               "train.txt", "'.txt'", ".csv, .tsv, .jsonl or .json")


def test_missing_test_file(tmp_path):
  write(tmp_path, "train.csv", wide_csv(ROWS))
  assert_error(lambda: processor(tmp_path).get_test_examples(str(tmp_path)), "no test.csv",
               "--test_file")


# The label set.


def test_label_set_from_the_sorted_union_numeric_names_sorted_as_numbers(tmp_path):
  write(tmp_path, "train.jsonl", '{"text": "a", "labels": ["10", "2"]}\n'
        '{"text": "b", "labels": "9"}\n')
  assert processor(tmp_path).get_labels() == ["2", "9", "10"]


def test_label_set_from_the_header_and_logged(tmp_path, caplog):
  write(tmp_path, "train.csv", "text,zeta,alpha,id,note\nx,1,0,1,hi\n")
  # On absl's logger: a test before may have left its verbosity above INFO.
  with caplog.at_level(logging.INFO, logger="absl"):
    labels = processor(tmp_path, id_column="id", ignore_columns=("note",)).get_labels()
  assert labels == ["zeta", "alpha"]
  assert "label columns" in caplog.text and "zeta, alpha" in caplog.text


def test_labels_file_and_label_columns_fix_the_order(tmp_path):
  write(tmp_path, "train.csv", wide_csv(ROWS))
  write(tmp_path, "test.csv", wide_csv(ROWS))
  write(tmp_path, "labels.txt", "urgent\r\nbilling\r\nbug\r\n\r\n")
  p = processor(tmp_path, id_column="id")
  assert p.get_labels() == ["urgent", "billing", "bug"]
  assert p.get_test_examples(str(tmp_path))[2].labels == (1, 0, 1)
  p = processor(tmp_path, id_column="id", label_columns=("bug", "billing"))
  assert p.get_labels() == ["bug", "billing"]
  assert [e.labels for e in p.get_test_examples(str(tmp_path))] == [(0, 1), (1, 0), (1, 0), (0, 0)]


def test_unnamed_index_column_is_ignored(tmp_path):
  write(tmp_path, "train.csv", ",text,a\n0,x,1\n1,y,0\n")
  p = processor(tmp_path)
  assert p.get_labels() == ["a"]
  assert [e.labels for e in p.get_train_examples(str(tmp_path))] in ([(1,)], [(0,)])


def test_columns_a_labels_column_leaves_unread_are_a_warning(tmp_path, caplog):
  # A wide file whose label is called "labels": the list layout wins, and the log says what it
  # leaves out and how to read the file as wide instead.
  write(tmp_path, "train.csv", "id,text,spam,labels,note\n1,x,1,0,hi\n")
  with caplog.at_level(logging.WARNING):
    p = processor(tmp_path, id_column="id", ignore_columns=("note",))
    p.get_labels()
  assert "'spam' are not read" in caplog.text and "--label_columns" in caplog.text
  assert "'note'" not in caplog.text and "'id'" not in caplog.text
  caplog.clear()
  with caplog.at_level(logging.WARNING):
    p = processor(tmp_path, id_column="id", label_columns=("spam", "labels"))
    assert p.get_labels() == ["spam", "labels"]
    assert [e.labels for e in p.get_train_examples(str(tmp_path))] in ([(1, 0)], [])
  assert "not read" not in caplog.text


def test_label_without_positive_in_train_is_a_warning(tmp_path, caplog):
  write(tmp_path, "train.csv", "text,a,b\n" + "".join(f"t{i},1,0\n" for i in range(12)))
  with caplog.at_level(logging.WARNING):
    examples = processor(tmp_path).get_train_examples(str(tmp_path))
  assert len(examples) == 11
  assert "b: the model cannot learn them and their AUC is undefined" in caplog.text


# The output folder's label set.


def test_output_folder_label_set_is_written_once_and_reused(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  write(tmp_path, "train.jsonl", names_jsonl(ROWS))
  write(tmp_path, "test.jsonl", names_jsonl(ROWS))
  assert label_set.resolve(processor(tmp_path), str(out)) == LABELS
  assert not os.listdir(out)  # resolve writes nothing.
  label_set.save(str(out), LABELS)
  assert (out / "labels.txt").read_text(encoding="utf-8") == "billing\nbug\nurgent\n"
  # A predict-only run needs no train file: the folder's set is used.
  os.remove(tmp_path / "train.jsonl")
  p = processor(tmp_path)
  assert label_set.resolve(p, str(out)) == LABELS
  assert list(p.get_test_examples(str(tmp_path))) == [
      base.InputExample(str(i), e.text_a, None, e.labels)
      for i, e in enumerate(expected_examples(ROWS), start=1)]


def test_output_folder_order_wins_over_a_wide_header(tmp_path):
  out = tmp_path / "out"
  out.mkdir()
  write(out, "labels.txt", "urgent\nbug\nbilling\n")
  write(tmp_path, "test.csv", wide_csv(ROWS))
  p = processor(tmp_path, id_column="id")
  assert label_set.resolve(p, str(out)) == ["urgent", "bug", "billing"]
  assert [e.labels for e in p.get_test_examples(str(tmp_path))][2] == (1, 1, 0)


@pytest.mark.parametrize("files,fragments", [
    ({"train.csv": wide_csv(ROWS, labels=["billing", "bug"])},
     ["train.csv, line 1", "it lacks column(s) 'urgent'"]),
    ({"train.csv": wide_csv(ROWS, labels=["billing", "bug", "urgent", "spam"])},
     ["train.csv, line 1", "'spam' are not in it", "--ignore_columns"]),
    ({"train.jsonl": names_jsonl(ROWS[:1] + [("x", "y", ["spam"])])},
     ["train.jsonl, line 2", "column 'labels'", "label 'spam' is not in the label set"]),
    ({"train.csv": wide_csv(ROWS), "labels.txt": "bug\nbilling\nurgent\n"},
     ["out/labels.txt", "the same labels in another order", "--output_dir"]),
    ({"train.csv": wide_csv(ROWS, labels=["billing", "bug"]), "labels.txt": "billing\nbug\n"},
     ["this output folder was used with the labels billing, bug, urgent",
      "not in this run's: urgent"]),
])
def test_a_different_label_set_in_the_output_folder_is_an_error(tmp_path, files, fragments):
  out = tmp_path / "out"
  out.mkdir()
  write(out, "labels.txt", "billing\nbug\nurgent\n")
  for name, content in files.items():
    write(tmp_path, name, content)

  def run():
    p = processor(tmp_path, id_column="id")
    label_set.resolve(p, str(out))
    p.get_train_examples(str(tmp_path))

  assert_error(run, *fragments)
  assert (out / "labels.txt").read_text(encoding="utf-8") == "billing\nbug\nurgent\n"


def test_built_in_task_on_a_folder_of_other_labels(tmp_path):
  write(tmp_path, "labels.txt", "joy\nfear\n")
  assert_error(lambda: label_set.resolve(processors.get_processor("se0714"), str(tmp_path)),
               "labels.txt", "joy, fear", "fear, joy, sadness", "new in this run: sadness")
  assert label_set.resolve(processors.get_processor("se0714"), str(tmp_path / "new")) == [
      "fear", "joy", "sadness"]


# Bad input: one line naming the file, the line, the column and the reason.

HEADER = "id,text,billing,bug,urgent\n"
ID = {"id_column": "id"}


@pytest.mark.parametrize("name,content,options,fragments", [
    ("train.csv", HEADER + "a,x,0,2,0\n", ID,
     ["train.csv, line 2", "column 'bug'", "'2' is not a label value",
      "--ignore_columns=bug"]),
    ("train.csv", HEADER + "a,x,0,yes,0\n", {**ID, "label_columns": ("billing", "bug", "urgent")},
     ["line 2", "column 'bug'", "'yes'"]),
    ("train.csv", "id,body,billing\na,x,1\n", {},
     ["train.csv, line 1", "no column 'text' (--text_column)", "'id', 'body', 'billing'"]),
    ("train.csv", HEADER + "a,x,0,0,0\n", {**ID, "label_columns": ("billing", "spam")},
     ["line 1", "'spam' (--label_columns)"]),
    ("train.csv", HEADER + "a,x,0,0,0\n", {**ID, "labels_column": "tags"},
     ["line 1", "'tags' (--labels_column)"]),
    ("train.csv", HEADER + "a,x,0,0,0\nb,  ,1,0,0\n", ID,
     ["line 3", "column 'text'", "empty text"]),
    ("train.jsonl", '{"text": "a", "labels": ["x"]}\n{"text": "b", "labels": ["x"],}\n', {},
     ["train.jsonl, line 2", "not valid JSON", "column 31"]),
    ("train.jsonl", '{"text": "a", "labels": ["x"]}\n["b"]\n', {},
     ["line 2", "expected a JSON object"]),
    ("train.jsonl", '{"text": "a", "labels": ["x"]}\n{"labels": ["x"]}\n', {},
     ["line 2", "column 'text': missing", "'labels'"]),
    ("train.jsonl", '{"text": "a", "x": 1}\n{"text": "b", "x": 0, "y": 1}\n', {},
     ["line 2", "column 'y'", "--ignore_columns=y"]),
    ("train.jsonl", '{"text": 5, "labels": ["x"]}\n', {}, ["line 1", "5 is not a text"]),
    ("train.jsonl", '{"text": "a", "labels": [1.5]}\n', {}, ["line 1", "1.5 is not a label"]),
    ("train.jsonl", '{"text": "a", "labels": 3}\n', {}, ["line 1", "not a list of labels"]),
    ("train.jsonl", '{"text": "a", "labels": [3]}\n', {},
     ["line 1", "label id 3 needs the label names", "labels.txt"]),
    ("train.csv", HEADER + 'a,x,0,0,0\nb,"never closed,0,0,0\nc,y,0,0,0\n', ID,
     ["train.csv, line 3", "not valid CSV", "never closed"]),
    ("train.csv", HEADER + 'a,"closed" then,0,0,0\n', ID, ["line 2", "text after a closing"]),
    ("train.tsv", "text\tlabels\na\tx\nb\tx\textra\n", {},
     ["train.tsv, line 3", "expected 2 fields as in the header, got 3", "tab"]),
    ("train.csv", HEADER, ID, ["train.csv", "has a header but no rows"]),
    ("train.csv", "\n\n", {}, ["train.csv", "is empty"]),
    ("train.jsonl", "", {}, ["train.jsonl", "is empty"]),
    ("train.csv", HEADER + "a,x,0,0,0\nb,y,0,0,0\na,z,1,0,0\n", ID,
     ["line 4", "column 'id'", "id 'a' is also on line 2"]),
    ("train.csv", HEADER.encode() + b"a,x,0,0,0\nb,caf\xe9,0,0,0\n", ID,
     ["train.csv, line 3", "not valid UTF-8", "0xe9 at byte 6"]),
    ("train.csv", "text,a\nx,1\n".encode("utf-16"), {}, ["line 1", "UTF-16", "UTF-8"]),
    ("train.csv", "text,a,a\nx,1,0\n", {}, ["line 1", "'a' twice"]),
    ("train.csv", "text,id\nx,1\n", {"id_column": "id"}, ["line 1", "has no labels"]),
])
def test_bad_train_file(tmp_path, name, content, options, fragments):
  write(tmp_path, name, content)
  assert_error(lambda: processor(tmp_path, **options).get_train_examples(str(tmp_path)),
               *fragments)


@pytest.mark.parametrize("split,content,fragments", [
    ("dev", '{"id": "d", "text": "x", "labels": ["spam"]}\n',
     ["dev.jsonl, line 1", "label 'spam' is not in the label set (billing, bug, urgent, from "]),
    ("test", '{"id": "d", "text": "x", "labels": "bug|spam"}\n',
     ["test.jsonl, line 1", "'spam'"]),
    ("test", '{"id": "d", "text": "x", "labels": [7]}\n',
     ["test.jsonl, line 1", "label id 7 is out of range", "ids 0 to 2"]),
    ("test", '{"id": "d", "text": "x", "labels": [-1]}\n', ["label id -1 is out of range"]),
])
def test_label_not_in_the_set_in_dev_or_test(tmp_path, split, content, fragments):
  write(tmp_path, "train.csv", wide_csv(ROWS))
  write(tmp_path, f"{split}.jsonl", content)
  p = processor(tmp_path, id_column="id")
  assert_error(lambda: getattr(p, f"get_{split}_examples")(str(tmp_path)), *fragments)


@pytest.mark.parametrize("content,fragments", [
    ("a\n\nb\n", ["labels.txt, line 2", "blank line"]),
    ("a\nb\na\n", ["line 3", "'a' is also on line 1"]),
    ("\n", ["holds no label names"]),
    ("a\tb\n", ["line 1", "holds a tab"]),
])
def test_bad_labels_file(tmp_path, content, fragments):
  write(tmp_path, "train.jsonl", names_jsonl(ROWS))
  write(tmp_path, "labels.txt", content)
  assert_error(lambda: processor(tmp_path).get_labels(), *fragments)


@pytest.mark.parametrize("options,fragments", [
    ({"label_columns": ("a",), "labels_column": "b"}, ["--label_columns", "--labels_column"]),
    ({"id_column": "text"}, ["'text'", "--text_column", "--id_column"]),
    ({"ignore_columns": ("text",)}, ["--ignore_columns"]),
    ({"label_separator": " "}, ["--label_separator"]),
])
def test_contradicting_options(options, fragments):
  assert_error(lambda: generic.GenericProcessor(generic.Options(**options)), *fragments)


def test_own_data_flags_with_a_built_in_task():
  assert_error(lambda: processors.get_processor(
      "psychexp", generic.Options(data_dir="d", text_column="body", train_file="t.csv")),
      "--train_file, --text_column apply to --task_name=generic only", "psychexp")
  assert isinstance(processors.get_processor("psychexp", generic.Options(data_dir="d")),
                    processors.PsychExpProcessor)
  assert isinstance(processors.get_processor("Generic"), generic.GenericProcessor)


@pytest.mark.parametrize("content,reason", [
    ("text\nhello\n", "test.csv has no labels"),
    ("text,labels\nhello,a|b\n", "the label names are those of the train file"),
])
def test_cannot_tell_the_label_set_from_a_test_file_alone(tmp_path, content, reason):
  write(tmp_path, "test.csv", content)
  assert_error(lambda: processor(tmp_path).get_labels(), "cannot tell the label set", reason,
               "--labels_file", "--output_dir")


# The example table.


def test_example_table_is_a_sequence_of_input_examples():
  table = generic.ExampleTable(np.array([3, 5, 9]), ["a", "b", "c"], ["x", None, "z"],
                               np.array([[1, 0], [0, 0], [1, 1]], dtype=np.uint8))
  assert len(table) == 3
  assert table[-1] == base.InputExample("9", "c", "z", (1, 1))
  assert list(table.select(np.array([2, 0]))) == [table[2], table[0]]
  assert [e.guid for e in table] == ["3", "5", "9"]
  with pytest.raises(IndexError):
    table[3]  # pylint: disable=pointless-statement


def test_rows_reader_reports_columns_and_header_line(tmp_path):
  path = write(tmp_path, "x.jsonl", '\n\n{"b": 1, "a": "t"}\n{"a": "u"}\n')
  rows = tables.Rows(path)
  assert rows.columns == ("b", "a") and rows.header_line == 3
  assert list(rows) == [(3, {"b": 1, "a": "t"}), (4, {"a": "u"})]
