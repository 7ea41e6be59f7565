"""Kaggle's Jigsaw Toxic Comment Classification CSVs.

`train.csv` and `dev.csv` have the header `id,comment_text,toxic,severe_toxic,obscene,threat,
insult,identity_hate`; comments may span lines inside quotes. `test.csv` has `id,comment_text`
and its labels, when the folder has them, are in `test_labels.csv` (`id,toxic,...`), where Kaggle
wrote -1 in every label of a row it did not score: such rows keep labels=None and are still
predicted. Columns beyond the expected ones are ignored. Comments are kept exactly as written.
"""

import csv
import os

from absl import logging

from errors import file_error
from processors import base

_ID = "id"
_TEXT = "comment_text"
# How Kaggle's test_labels.csv marks a label it did not score.
_UNSCORED = ("-1", "-1.0")


def _read_csv(path, columns):
  """Reads a CSV file with a header row.

  Blank lines are skipped. Line numbers are those of the file, so a record whose quoted comment
  spans lines is reported at the line where it starts.

  Args:
    path: str, the file.
    columns: sequence of str, the columns wanted; the header must have them all.

  Returns:
    list of (line_number, values): int, the 1-based line where the record starts; list of str,
      the values of `columns` in that order.

  Raises:
    UserError: the file is unreadable or not UTF-8, is not valid CSV, lacks a wanted column
      (named), or has a record whose field count differs from the header's.
  """
  text = base.read_text_file(path)
  # Lines split on "\n" only, ends kept, so that csv sees a CR inside a quoted comment as text
  # and its line count matches an editor's.
  lines = [line + "\n" for line in text.split("\n")]
  reader = csv.reader(lines, strict=True)
  header = None
  rows = []
  line_number = 1
  try:
    for record in reader:
      # `start`: this record's first line; `line_number`: the next record's, which a csv.Error
      # raised while reading that record names.
      start, line_number = line_number, reader.line_num + 1
      if len(record) <= 1 and not "".join(record).strip():
        continue  # A blank line.
      if header is None:
        header = [name.strip() for name in record]
        missing = [c for c in columns if c not in header]
        if missing:
          raise file_error(path, start, f"the header lacks column(s) {', '.join(missing)}; "
                           f"expected {','.join(columns)}")
        positions = [header.index(c) for c in columns]
      elif len(record) != len(header):
        raise file_error(path, start, f"expected {len(header)} fields as in the header, got "
                         f"{len(record)} (is a comment with a comma or a line break not "
                         "quoted?)")
      else:
        rows.append((start, [record[i] for i in positions]))
  except csv.Error as e:
    raise file_error(path, line_number, f"not valid CSV: {e}") from None
  return rows


def _parse_id(value):
  """Returns a row's id stripped; raises `BadRowError` where the predictions file cannot hold it."""
  guid = base.require_text(value, "id")
  if any(c in guid for c in "\t\r\n"):
    raise base.BadRowError(f"id {base.quote(guid)} holds a tab or a line break")
  return guid


def _parse_test_row(values, line_number):
  """Returns (line_number, id, text) of one `test.csv` row."""
  return line_number, _parse_id(values[0]), base.require_text(values[1], _TEXT)


class ToxicProcessor(base.DataProcessor):
  """Toxic: six kinds of toxicity per Wikipedia comment; ids are Kaggle's ids."""
  name = "toxic"
  labels = ("toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate")
  train_file = "train.csv"
  dev_file = "dev.csv"
  test_file = "test.csv"
  test_labels_file = "test_labels.csv"

  def _read_examples(self, path):
    return base.parse_rows(path, _read_csv(path, (_ID, _TEXT) + self.labels),
                           self._parse_labelled_row)

  def _parse_labelled_row(self, values, line_number):
    del line_number  # Kaggle's ids identify the rows.
    return base.InputExample(guid=_parse_id(values[0]), text_a=base.require_text(values[1], _TEXT),
                             labels=self._parse_labels(values[2:]))

  def _parse_labels(self, values):
    """Returns a tuple of 0/1, one per label, from the label columns of one row."""
    return tuple(base.parse_label_value(v, name) for v, name in zip(values, self.labels))

  def get_test_examples(self, data_dir):
    """Returns the test examples in `test.csv` order, labelled from `test_labels.csv`.

    Without `test_labels.csv` every example has labels=None.

    Raises:
      UserError: a bad row in either file, or ids of the two files that do not match (naming
        the first such id and its line).
    """
    test_path = os.path.join(data_dir, self.test_file)
    labels_path = os.path.join(data_dir, self.test_labels_file)
    texts = base.parse_rows(test_path, _read_csv(test_path, (_ID, _TEXT)), _parse_test_row)
    if not os.path.exists(labels_path):
      logging.info("No %s: the test examples have no labels.", labels_path)
      return [base.InputExample(guid=guid, text_a=text) for _, guid, text in texts]

    labels_by_id = {}
    for line_number, guid, labels in base.parse_rows(
        labels_path, _read_csv(labels_path, (_ID,) + self.labels), self._parse_test_labels_row):
      if guid in labels_by_id:
        raise file_error(labels_path, line_number,
                         f"id {guid!r} is also on line {labels_by_id[guid][0]}")
      labels_by_id[guid] = (line_number, labels)
    for line_number, guid, _ in texts:
      if guid not in labels_by_id:
        raise file_error(test_path, line_number, f"id {guid!r} has no row in {labels_path}")
    test_ids = {guid for _, guid, _ in texts}
    for guid, (line_number, _) in labels_by_id.items():
      if guid not in test_ids:
        raise file_error(labels_path, line_number, f"id {guid!r} is not in {test_path}")

    examples = [base.InputExample(guid=guid, text_a=text, labels=labels_by_id[guid][1])
                for _, guid, text in texts]
    logging.info("%s: %d test examples scored, %d not scored (-1).", labels_path,
                 sum(e.labels is not None for e in examples),
                 sum(e.labels is None for e in examples))
    return examples

  def _parse_test_labels_row(self, values, line_number):
    """Returns (line_number, id, labels) of one `test_labels.csv` row; labels None if unscored."""
    guid = _parse_id(values[0])
    unscored = [v.strip() in _UNSCORED for v in values[1:]]
    if all(unscored):
      return line_number, guid, None
    if any(unscored):
      raise base.BadRowError("mixes -1 (not scored) with 0/1 labels")
    return line_number, guid, self._parse_labels(values[1:])
