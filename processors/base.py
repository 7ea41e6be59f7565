"""The record every task's processor produces, the interface it implements, and the reading
machinery the tasks share.

Every problem with a data file becomes a `UserError` naming the file, the 1-based line and the
reason, raised before any training starts. Row parsers raise `BadRowError` with the reason only;
the loop that knows the file and the line turns it into the `UserError`.

Dev split: the task's dev file when `data_dir` has one; otherwise a seeded hold-out of
`HOLDOUT_FRACTION` of the train file, which then leaves the training examples. The hold-out
depends only on the number of train examples and `HOLDOUT_SEED`, so every run (and every process,
whatever its hash seed) draws the same rows.
"""

import dataclasses
import os
import re
from typing import Optional, Sequence

from absl import logging
import numpy as np

from errors import file_error

HOLDOUT_FRACTION = 0.1
HOLDOUT_SEED = 12345

# ASCII digits only: float() also accepts other scripts' digits, which no label file means.
_NUMBER = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", re.ASCII)
# How much of a bad field an error message quotes.
_QUOTE_CHARS = 40


@dataclasses.dataclass(frozen=True)
class InputExample:
  """One document to classify.

  Attributes:
    guid: the id written to the predictions file (movie id, Kaggle id or line number).
    text_a: the text, or the first of a sentence pair.
    text_b: the second text of a pair (MovieLens' summary), else None.
    labels: one 0/1 int per label in the task's label order, or None where the split has no
      labels (an unscored Kaggle test row, say).
  """
  guid: str
  text_a: str
  text_b: Optional[str] = None
  labels: Optional[Sequence[int]] = None


class BadRowError(Exception):
  """Why one row of a data file is unusable; the reader adds the file and the line."""


def quote(field):
  """Returns `field` quoted for an error message, shortened when long."""
  if len(field) > _QUOTE_CHARS:
    field = field[:_QUOTE_CHARS] + "..."
  return repr(field)


def open_binary(path):
  """Opens `path` for reading bytes; raises `UserError` where it cannot."""
  try:
    return open(path, "rb")
  except FileNotFoundError:
    raise file_error(path, None, "no such file") from None
  except IsADirectoryError:
    raise file_error(path, None, "is a folder, not a file") from None
  except OSError as e:
    raise file_error(path, None, f"cannot read it: {e.strerror}") from None


def read_text_file(path):
  """Returns the content of a UTF-8 file as one string, without a leading byte-order mark.

  Args:
    path: str, the file to read.

  Returns:
    str, the whole file; line breaks are left as they are.

  Raises:
    UserError: the file is missing, unreadable, or not valid UTF-8 (naming the line and column
      of the first bad byte).
  """
  with open_binary(path) as f:
    raw = f.read()
  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    line_start = raw.rfind(b"\n", 0, e.start) + 1
    raise file_error(
        path, raw.count(b"\n", 0, e.start) + 1,
        f"not valid UTF-8: byte 0x{raw[e.start]:02x} at byte {e.start - line_start + 1} of the "
        "line; save the file as UTF-8") from None
  return text[1:] if text.startswith("\ufeff") else text


def parse_rows(path, rows, parse):
  """Parses the rows of one file, stopping at the first bad one.

  Args:
    path: str, the file, for error messages.
    rows: iterable of (line_number, row): the 1-based line where each row starts, and the row.
    parse: callable(row, line_number) returning the parsed row or raising `BadRowError`.

  Returns:
    list, `parse`'s results in row order; never empty.

  Raises:
    UserError: naming `path`, the line and the reason of the first bad row, or saying that the
      file holds no rows.
  """
  parsed = []
  for line_number, row in rows:
    try:
      parsed.append(parse(row, line_number))
    except BadRowError as e:
      raise file_error(path, line_number, str(e)) from None
  if not parsed:
    raise file_error(path, None, "holds no examples")
  return parsed


def require_text(text, what):
  """Returns `text` stripped; raises `BadRowError` naming `what` when nothing is left."""
  text = text.strip()
  if not text:
    raise BadRowError(f"empty {what}")
  return text


def parse_label_value(token, label_name):
  """Parses one label value: 0, 1, 0.0, 1.0 or True, False (any case).

  Args:
    token: str, the value as written, surrounding spaces allowed.
    label_name: str, named in the error message.

  Returns:
    int, 0 or 1.

  Raises:
    BadRowError: the token is not a number or a boolean, or a number other than 0 and 1.
  """
  token = token.strip()
  if token.lower() in ("true", "false"):
    return int(token.lower() == "true")
  if not _NUMBER.fullmatch(token):
    raise BadRowError(f"label {label_name!r} is {quote(token)}: not 0/1 or True/False")
  value = float(token)
  if value not in (0.0, 1.0):
    raise BadRowError(f"label {label_name!r} is {token}: not 0 or 1")
  return int(value)


def parse_label_vector(field, label_names):
  """Parses a bracketed label vector such as `[0, 1, 0]`, `[0.0, 1.0]` or `[False, True]`.

  Values are separated by commas, or by spaces when there is no comma (numpy's `[0. 1. 0.]`).

  Args:
    field: str, the field holding the vector, surrounding spaces allowed.
    label_names: sequence of str, the task's labels in order; the vector must have one value each.

  Returns:
    tuple of int, one 0/1 per label.

  Raises:
    BadRowError: the field is not bracketed, a value is unparsable or not 0/1, or the number of
      values differs from the number of labels.
  """
  field = field.strip()
  if not (field.startswith("[") and field.endswith("]")):
    raise BadRowError(f"expected a label vector such as [0, 1, 0], got {quote(field)}")
  inner = field[1:-1]
  tokens = inner.split(",") if "," in inner else inner.split()
  if len(tokens) != len(label_names):
    raise BadRowError(f"expected {len(label_names)} labels ({', '.join(label_names)}), "
                      f"got {len(tokens)} in {quote(field)}")
  return tuple(parse_label_value(token, name) for token, name in zip(tokens, label_names))


def holdout_indices(num_examples):
  """Returns the sorted indices of the train examples held out as the dev split.

  `HOLDOUT_FRACTION` of them, rounded, at least one when there are two or more and never all;
  drawn by a `np.random.RandomState` seeded with `HOLDOUT_SEED`, whose stream numpy keeps
  stable across versions.

  Args:
    num_examples: int, the number of train examples.

  Returns:
    np.ndarray of int, ascending.
  """
  if num_examples < 2:
    return np.zeros([0], dtype=np.int64)
  num_dev = min(max(1, round(num_examples * HOLDOUT_FRACTION)), num_examples - 1)
  permutation = np.random.RandomState(HOLDOUT_SEED).permutation(num_examples)
  return np.sort(permutation[:num_dev])


class DataProcessor:
  """A task's files, labels and splits.

  Subclasses set the class attributes and implement `_read_examples`.

  Attributes:
    name: str, the task name as `--task_name` spells it.
    labels: tuple of str, the label names in the order of the label vectors.
    train_file, dev_file, test_file: str, file names inside `data_dir`.
    has_pairs: bool, whether examples are sentence pairs (a text_b besides text_a).
  """
  name = None
  labels = ()
  has_pairs = False
  train_file = None
  dev_file = None
  test_file = None

  def get_labels(self):
    """Returns the label names, a list of str, in the order of the label vectors."""
    return list(self.labels)

  def get_train_examples(self, data_dir):
    """Returns the training examples, a list of `InputExample`, in file order.

    Without a dev file the held-out dev rows are left out.
    """
    train = self._read_examples(os.path.join(data_dir, self.train_file))
    if self.has_dev_file(data_dir):
      return train
    return self._hold_out(train, data_dir)[0]

  def get_dev_examples(self, data_dir):
    """Returns the dev examples, a list of `InputExample`: the dev file, or the hold-out.

    Raises:
      UserError: as the readers do, or there is no dev file and too few train examples to hold
        any out.
    """
    if self.has_dev_file(data_dir):
      logging.info("%s", self.describe_dev_source(data_dir))
      return self._read_examples(os.path.join(data_dir, self.dev_file))
    train_path = os.path.join(data_dir, self.train_file)
    dev = self._hold_out(self._read_examples(train_path), data_dir)[1]
    if not dev:
      raise file_error(train_path, None, "has a single example, too few to hold out a dev "
                       f"split; add a {self.dev_file}")
    return dev

  def get_test_examples(self, data_dir):
    """Returns the test examples, a list of `InputExample` in file order."""
    return self._read_examples(os.path.join(data_dir, self.test_file))

  def has_dev_file(self, data_dir):
    """Returns whether `data_dir` holds the task's dev file (else dev is a hold-out of train)."""
    return os.path.exists(os.path.join(data_dir, self.dev_file))

  def describe_dev_source(self, data_dir):
    """Returns one line saying where the dev split comes from, for logs and the CLI."""
    if self.has_dev_file(data_dir):
      return f"dev split: {os.path.join(data_dir, self.dev_file)}"
    return (f"dev split: no {self.dev_file} in {data_dir}, so a {HOLDOUT_FRACTION:.0%} "
            f"hold-out of {os.path.join(data_dir, self.train_file)} (seed {HOLDOUT_SEED}), "
            "left out of training")

  def _hold_out(self, train, data_dir):
    """Splits the train file's examples into (train, dev), two lists of `InputExample`."""
    held_out = holdout_indices(len(train))
    logging.info("%s: %d of %d examples", self.describe_dev_source(data_dir), held_out.size,
                 len(train))
    is_dev = np.zeros(len(train), dtype=bool)
    is_dev[held_out] = True
    return ([e for e, held in zip(train, is_dev) if not held],
            [e for e, held in zip(train, is_dev) if held])

  def _read_examples(self, path):
    """Reads one labelled file of the task. Returns a non-empty list of `InputExample`."""
    raise NotImplementedError


class TextLineProcessor(DataProcessor):
  """A task whose files hold one example per line, fields separated by tabs.

  Trailing whitespace (a Windows CR included) is stripped from every line, and lines left empty
  are skipped wherever they are: they hold no example, and the line numbers (the ids of
  line-numbered tasks) still count them, so an id stays the line an editor shows.
  """

  def _read_examples(self, path):
    lines = enumerate(read_text_file(path).split("\n"), start=1)
    return parse_rows(path, ((n, line.rstrip()) for n, line in lines if line.strip()),
                      self._parse_line)

  def _parse_line(self, line, line_number):
    """Returns the `InputExample` of one non-blank line; raises `BadRowError`."""
    raise NotImplementedError


class LabelsFirstProcessor(TextLineProcessor):
  """Lines `[label vector]<TAB>text`; the id is the line number.

  The text is everything after the first tab, so tabs inside a text are kept.
  """

  def _parse_line(self, line, line_number):
    label_field, _, text = line.partition("\t")
    labels = parse_label_vector(label_field, self.labels)
    return InputExample(guid=str(line_number), text_a=require_text(text, "text"), labels=labels)

