"""The generic task: a user's own CSV, TSV or JSON Lines files, read with no code to write.

Files: `train.*`, `dev.*` (optional: else the seeded hold-out of train that every task uses) and
`test.*` (labels optional) in `data_dir`, where `*` is csv, tsv, jsonl or json (see `tables`); or
files anywhere, named by `Options.train_file`, `dev_file`, `test_file`.

Columns: the text (`text_column`), an optional second segment (`text_b_column`), an optional id
(`id_column`; else, and in a test file without that column, the id is the line where the row
starts), and the labels in one of three layouts:
  wide: one column per label holding 0/1 or true/false (`label_columns`; Kaggle's Jigsaw CSV);
  names: one column (`labels_column`) holding a list of label names: a JSON list, or a string split
    on `label_separator` ("a|b"; a bracketed "['a', 'b']" as pandas writes lists works too);
  ids: the same column holding 0-based label ids, the names being those of a labels file.
Where no label flag is given, a column named `labels` means a list layout; otherwise every column
that is not the text, text b, id or an ignored one is a label column (the log lists them). A token
of a list that is a label name is that label; otherwise a whole number is an id.

The label set and its order, the first of: `label_columns`; the labels file (`labels_file`, else
`labels.txt` in `data_dir`: one name a line); the label set of the output folder (see `label_set`);
the label columns of the first file there is (train, dev, test) in the wide layout; the sorted
union of the train file's names. Every file is checked against it: a wide file needs exactly its
columns, a list may name only its labels. A label with no positive example in train is a warning.

Memory: a file is read one row at a time, and its rows are kept column by column (texts as str,
labels as a uint8 matrix, ids as line numbers unless an id column is given), not as an object
per row; `ExampleTable` makes `InputExample`s of them as they are read.
"""

import array
import ast
import collections.abc
import dataclasses
import json
import operator
import os
import re
from typing import Optional, Tuple

from absl import logging
import numpy as np

from errors import UserError
from errors import file_error
from processors import base
from processors import tables

LABELS_FILE = "labels.txt"
_SPLITS = ("train", "dev", "test")
# The column that means the list layout where no label flag is given.
_DEFAULT_LABELS_COLUMN = "labels"
# Label values as they are usually spelt, looked up before the general parser. The numbers also
# match JSON's true, false, 1.0 and 0.0, which are equal to them.
_BINARY = {0: 0, 1: 1, "0": 0, "1": 1, "0.0": 0, "1.0": 1, "true": 1, "false": 0, "True": 1,
           "False": 0, "TRUE": 1, "FALSE": 0}
_WHOLE_NUMBER = re.compile(r"\d+", re.ASCII)
# Rows an `ExampleTable` iteration converts at a time.
_ITER_CHUNK = 4096


@dataclasses.dataclass(frozen=True)
class Options:
  """Where the generic task's files are and how to read them; each field is the flag --FIELD.

  Attributes:
    data_dir: str, the folder searched for train.*, dev.*, test.* and labels.txt, or None.
    train_file, dev_file, test_file: str paths that replace the search in `data_dir`, or None.
    text_column: str, the text's column.
    text_b_column: str, the column of an optional second text (a sentence pair), or None.
    id_column: str, the column of the ids written to the predictions, or None for line numbers.
    label_columns: tuple of str, the label columns of the wide layout, or () to infer the layout.
    labels_column: str, the column of the list layouts, or None to infer the layout.
    ignore_columns: tuple of str, columns that are neither text, id nor label.
    label_separator: str, what separates label names or ids in a CSV or TSV cell.
    labels_file: str, the label names one a line (the ids' names), or None for
      `data_dir`/labels.txt when there is one.
  """
  data_dir: Optional[str] = None
  train_file: Optional[str] = None
  dev_file: Optional[str] = None
  test_file: Optional[str] = None
  text_column: str = "text"
  text_b_column: Optional[str] = None
  id_column: Optional[str] = None
  label_columns: Tuple[str, ...] = ()
  labels_column: Optional[str] = None
  ignore_columns: Tuple[str, ...] = ()
  label_separator: str = "|"
  labels_file: Optional[str] = None

  @classmethod
  def from_flags(cls, flag_values):
    """Returns the options that the flags of the same names hold (absl's lists become tuples)."""
    values = {}
    for field in dataclasses.fields(cls):
      value = getattr(flag_values, field.name)
      values[field.name] = tuple(value or ()) if isinstance(field.default, tuple) else value
    return cls(**values)

  def changed_flags(self):
    """Returns the --flags set to other than their defaults, `data_dir` aside."""
    return [f"--{field.name}" for field in dataclasses.fields(self)
            if field.name != "data_dir" and getattr(self, field.name) != field.default]


def _check_options(options):
  """Raises `UserError` naming the flags that contradict each other."""
  if options.label_columns and options.labels_column:
    raise UserError("give --label_columns (one column per label) or --labels_column (a column "
                    "of label lists), not both")
  if not options.text_column:
    raise UserError("--text_column must name a column")
  if not options.label_separator.strip():
    raise UserError("--label_separator must not be empty or blank")
  roles = [("--text_column", options.text_column), ("--text_b_column", options.text_b_column),
           ("--id_column", options.id_column), ("--labels_column", options.labels_column)]
  roles += [("--label_columns", column) for column in options.label_columns]
  roles += [("--ignore_columns", column) for column in options.ignore_columns]
  seen = {}
  for flag, column in roles:
    if column is None:
      continue
    if column in seen and (seen[column] != flag or flag == "--label_columns"):
      raise UserError(f"column {column!r} is given to both {seen[column]} and {flag}")
    seen[column] = flag


def read_label_names(path):
  """Reads a labels file: one label name a line, in label order; line i (from 0) names id i.

  Returns:
    list of str.

  Raises:
    UserError: the file is unreadable or empty, or a line is blank (it would shift the ids),
      repeats a name or holds a tab.
  """
  lines = base.read_text_file(path).split("\n")
  while lines and not lines[-1].strip():
    lines.pop()
  if not lines:
    raise file_error(path, None, "holds no label names: expected one name a line")
  names = {}
  for line_number, line in enumerate(lines, start=1):
    name = line.strip()
    if not name:
      raise file_error(path, line_number, "a blank line: every line names a label, and line "
                       "i (from 0) is label id i")
    if "\t" in name:
      raise file_error(path, line_number, f"label name {base.quote(name)} holds a tab")
    if name in names:
      raise file_error(path, line_number, f"label {name!r} is also on line {names[name]}")
    names[name] = line_number
  return list(names)


def _sorted_names(names):
  """Sorts label names, numerically where all are whole numbers (so that 2 comes before 10)."""
  if all(_WHOLE_NUMBER.fullmatch(name) for name in names):
    return sorted(names, key=int)
  return sorted(names)


class _CellError(Exception):
  """What is wrong with one cell; the reader adds the file and the line."""

  def __init__(self, column, reason):
    super().__init__(f"column {column!r}: {reason}")


@dataclasses.dataclass(frozen=True)
class _Layout:
  """How one file holds its labels.

  Attributes:
    kind: "wide", "list", or None where the file has no labels.
    columns: wide: the label columns, in file order; list: the one column of lists.
    inferred: whether the wide columns are every remaining column (a bad value hints
      --ignore_columns).
  """
  kind: Optional[str]
  columns: Tuple[str, ...] = ()
  inferred: bool = False


@dataclasses.dataclass
class _RawTable:
  """One file's rows, read before the label set is known (see `_read_rows`).

  Attributes:
    path: str.
    layout: `_Layout`.
    header_line: int, the line of the header (or first object).
    lines: int64 [n], the line where each row starts.
    guids: list of n str from the id column, or None (the ids are `lines`).
    texts_a, texts_b: lists of n str; texts_b None without a text b column (an item is None where
      the row's text b is empty).
    wide_labels: uint8 [n, len(layout.columns)], the wide layout's 0/1 in file column order, or
      None.
    tokens: dict from each label token of a list layout (str, or int for a JSON id) to its
      number, in order of first appearance.
    token_lines: list of int, the first line of each token.
    positive_rows, positive_tokens: int64 arrays of the same length: row i has token t.
  """
  path: str
  layout: _Layout
  header_line: int
  lines: np.ndarray
  guids: Optional[list]
  texts_a: list
  texts_b: Optional[list]
  wide_labels: Optional[np.ndarray]
  tokens: dict
  token_lines: list
  positive_rows: np.ndarray
  positive_tokens: np.ndarray


def _read_rows(rows, layout, options):
  """Reads every row of a file into a `_RawTable`, with fast paths for well-formed cells.

  Args:
    rows: `tables.Rows`.
    layout: `_Layout` of the file.
    options: `Options`.

  Raises:
    UserError: naming the file, the line and the column of the first bad cell.
  """
  id_column, text_column, text_b_column = (options.id_column, options.text_column,
                                           options.text_b_column)
  # JSON objects may differ in their keys. Where the first object's keys made the label
  # columns, a key that it lacks may be a label that it does not name: an error, not ignored.
  known_keys = None
  if rows.format == "jsonl" and layout.inferred:
    known_keys = set(rows.columns) | set(options.ignore_columns) | {
        text_column, text_b_column, id_column}
  lines = array.array("q")
  guids = [] if id_column else None
  first_line_of_id = {}
  texts_a = []
  texts_b = [] if text_b_column else None
  wide = bytearray() if layout.kind == "wide" else None
  if wide is not None:
    wide_columns = layout.columns
    get_wide = (operator.itemgetter(*wide_columns) if len(wide_columns) > 1 else
                lambda row: (row[wide_columns[0]],))
  list_column = layout.columns[0] if layout.kind == "list" else None
  tokens, token_lines = {}, []
  positive_rows, positive_tokens = array.array("q"), array.array("q")
  binary = _BINARY.get
  line_number = rows.header_line
  try:
    for line_number, row in rows:
      try:
        if known_keys is not None and not known_keys.issuperset(row):
          _raise_for_new_key(row, known_keys, layout.columns)
        if id_column is not None:
          value = row[id_column]
          guid = value.strip() if isinstance(value, str) else ""
          if not guid or "\t" in guid or "\n" in guid or "\r" in guid:
            guid = _id_value(value, id_column)
          if guid in first_line_of_id:
            raise _CellError(id_column, f"id {guid!r} is also on line {first_line_of_id[guid]}")
          first_line_of_id[guid] = line_number
          guids.append(guid)
        value = row[text_column]
        text = value.strip() if isinstance(value, str) else ""
        texts_a.append(text or _text_value(value, text_column, required=True))
        if texts_b is not None:
          texts_b.append(_text_value(row[text_b_column], text_b_column, required=False))
        if wide is not None:
          values = get_wide(row)
          try:
            bits = list(map(binary, values))
          except TypeError:  # A JSON list or object, which cannot be a dict key.
            bits = [None]
          if None in bits:
            bits = [_binary_value(v, c, layout.inferred) for v, c in zip(values, wide_columns)]
          wide.extend(bits)
        elif list_column is not None:
          row_number = len(lines)
          for item in _list_tokens(row[list_column], list_column, options.label_separator):
            token = tokens.get(item)
            if token is None:
              token = tokens[item] = len(tokens)
              token_lines.append(line_number)
            positive_rows.append(row_number)
            positive_tokens.append(token)
      except KeyError as e:
        raise _CellError(e.args[0], f"missing; the row has {', '.join(map(repr, row)) or 'none'}"
                         ) from None
      lines.append(line_number)
  except _CellError as e:
    raise file_error(rows.path, line_number, str(e)) from None
  if not lines:
    raise file_error(rows.path, None, "has a header but no rows" if rows.format != "jsonl"
                     else "holds no rows")
  n = len(lines)
  return _RawTable(
      rows.path, layout, rows.header_line, np.frombuffer(lines, dtype=np.int64), guids, texts_a,
      texts_b, None if wide is None else np.frombuffer(wide, dtype=np.uint8).reshape(n, -1),
      tokens, token_lines, np.frombuffer(positive_rows, dtype=np.int64),
      np.frombuffer(positive_tokens, dtype=np.int64))


def _raise_for_new_key(row, known_keys, label_columns):
  extra = next(key for key in row if key not in known_keys)
  raise _CellError(extra, f"a key that the first row lacks, whose other keys made the label "
                   f"columns ({', '.join(map(repr, label_columns))}); leave it out with "
                   f"--ignore_columns={extra}, or name the label columns with --label_columns")


@dataclasses.dataclass(frozen=True)
class _LabelSet:
  """The label names in order, where they come from, and whether list tokens may be ids."""
  names: Tuple[str, ...]
  source: str
  ids_allowed: bool


class ExampleTable(collections.abc.Sequence):
  """A sequence of `InputExample`s kept column by column, made one by one as they are read.

  A million short rows took 130 MB less memory kept so (lists of texts and ids, a uint8 label
  matrix) than as a list of `InputExample`s (bench/generic_big_csv.py).
  """

  def __init__(self, ids, texts_a, texts_b, labels):
    """Args:
      ids: int64 [n] line numbers, or a list of n str.
      texts_a: list of n str.
      texts_b: list of n (str or None), or None.
      labels: uint8 [n, num_labels], or None where the examples have no labels.
    """
    self._ids = ids
    self._texts_a = texts_a
    self._texts_b = texts_b
    self._labels = labels

  @property
  def label_matrix(self):
    """uint8 [n, num_labels], or None."""
    return self._labels

  def __len__(self):
    return len(self._texts_a)

  def __getitem__(self, i):
    if isinstance(i, slice):
      raise TypeError("use select() for several examples")
    if not -len(self) <= i < len(self):
      raise IndexError(i)
    return base.InputExample(
        guid=str(self._ids[i]), text_a=self._texts_a[i],
        text_b=None if self._texts_b is None else self._texts_b[i],
        labels=None if self._labels is None else tuple(self._labels[i].tolist()))

  def __iter__(self):
    # Column slices a chunk at a time: faster than indexing row by row, and no list of every row.
    n = len(self)
    for start in range(0, n, _ITER_CHUNK):
      stop = min(start + _ITER_CHUNK, n)
      ids = self._ids[start:stop]
      labels = (self._labels[start:stop].tolist() if self._labels is not None else
                [None] * (stop - start))
      texts_b = (self._texts_b[start:stop] if self._texts_b is not None else
                 [None] * (stop - start))
      for guid, text_a, text_b, row_labels in zip(
          ids.tolist() if isinstance(ids, np.ndarray) else ids, self._texts_a[start:stop],
          texts_b, labels):
        yield base.InputExample(guid=str(guid), text_a=text_a, text_b=text_b,
                                labels=None if row_labels is None else tuple(row_labels))

  def select(self, indices):
    """Returns the examples at `indices` (int array), in that order, as an `ExampleTable`."""
    pick = lambda items: None if items is None else [items[i] for i in indices]
    ids = self._ids[indices] if isinstance(self._ids, np.ndarray) else pick(self._ids)
    return ExampleTable(ids, pick(self._texts_a), pick(self._texts_b),
                        None if self._labels is None else self._labels[indices])


def _text_value(value, column, required):
  """Returns a text cell stripped, or None where it is empty and not `required`."""
  if value is None:
    value = ""
  if not isinstance(value, str):
    raise _CellError(column, f"{json.dumps(value)[:40]} is not a text (a string)")
  value = value.strip()
  if not value:
    if required:
      raise _CellError(column, "empty text")
    return None
  return value


def _id_value(value, column):
  """Returns an id cell as str; ids must be non-empty and fit a line of a TSV."""
  if isinstance(value, int) and not isinstance(value, bool):
    return str(value)
  if not isinstance(value, str):
    raise _CellError(column, f"{json.dumps(value)[:40]} is not an id (a string or a whole number)")
  value = value.strip()
  if not value:
    raise _CellError(column, "empty id")
  if any(c in value for c in "\t\r\n"):
    raise _CellError(column, f"id {base.quote(value)} holds a tab or a line break")
  return value


def _binary_value(value, column, inferred):
  """Returns 0 or 1 from a wide layout's label cell: 0, 1, 0.0, 1.0, true, false."""
  if isinstance(value, str):
    fast = _BINARY.get(value)
    if fast is not None:
      return fast
    try:
      return base.parse_label_value(value, column)
    except base.BadRowError:
      pass
  elif isinstance(value, (bool, int, float)) and value in (0, 1):
    return int(value)
  shown = base.quote(value) if isinstance(value, str) else json.dumps(value)[:40]
  hint = (f"; if {column!r} is not a label, leave it out with --ignore_columns={column}"
          if inferred else "")
  raise _CellError(column, f"{shown} is not a label value: expected 0/1 or true/false{hint}")


def _list_tokens(value, column, separator):
  """Returns the label tokens of a list cell: names (str, stripped, non-empty) and ids (int)."""
  if isinstance(value, str):
    text = value.strip()
    items = None
    if text.startswith("[") and text.endswith("]"):
      items = _parse_bracketed(text)
    if items is None:
      items = text.split(separator)
  elif isinstance(value, list):
    items = value
  else:
    raise _CellError(column, f"{json.dumps(value)[:40]} is not a list of labels")
  tokens = []
  for item in items:
    if isinstance(item, str):
      item = item.strip()
      if item:
        tokens.append(item)
    elif isinstance(item, int) and not isinstance(item, bool):
      tokens.append(item)
    else:
      raise _CellError(column, f"{json.dumps(item)[:40]} is not a label name or id")
  return tokens


def _parse_bracketed(text):
  """Returns the list a cell like `["a", "b"]` or `['a', 'b']` holds, or None if it is not one."""
  try:
    items = json.loads(text)
  except (ValueError, RecursionError):
    try:
      items = ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
      return None
  return items if isinstance(items, list) else None


def _check_label_names(names, source):
  """Raises `UserError` when a label name could not head a TSV column."""
  for name in names:
    if not name or any(c in name for c in "\t\r\n"):
      raise UserError(f"{source}: label name {base.quote(name)} is empty or holds a tab or a "
                      "line break")


def _ids_need_names(path, line, column, token):
  """The `UserError` for a label id where no labels file names the labels."""
  return file_error(path, line, f"column {column!r}: label id {token} needs the label names: "
                    f"write them one a line in {LABELS_FILE} in the data folder, or give "
                    "--labels_file")


class GenericProcessor(base.DataProcessor):
  """A user's own CSV, TSV or JSON Lines files; see the module docstring.

  The label set comes from the files of `options.data_dir` and `options`; pass that folder as
  `data_dir` to the get_*_examples methods too (the command line passes --data_dir to both).
  Files are read once and kept, column by column, for the next call.
  """
  name = "generic"

  def __init__(self, options=None):
    self.options = options or Options()
    _check_options(self.options)
    self._known = None
    self._label_set = None
    self._raw_tables = {}

  @property
  def has_pairs(self):
    """Whether the examples are sentence pairs: whether a text b column is given."""
    return self.options.text_b_column is not None

  # Label set.

  def use_output_labels(self, names, source):
    """Makes `names` the label set where neither `label_columns` nor a labels file gives one.

    Args:
      names: list of str, the label set an output folder was used with.
      source: str, where they are written, for messages.
    """
    if self._label_set is not None:
      raise ValueError("the label set is already settled")
    self._known = _LabelSet(tuple(names), source, ids_allowed=True)

  def get_labels(self):
    """Returns the label names in order (see the module docstring for where they come from).

    Raises:
      UserError: the files do not tell the label set, or a bad row in a file read to find it.
    """
    if self._label_set is None:
      self._label_set = self._settle_labels()
      logging.info("Labels (%d, from %s): %s", len(self._label_set.names), self._label_set.source,
                   ", ".join(self._label_set.names))
    return list(self._label_set.names)

  def _settle_labels(self):
    options = self.options
    if options.label_columns:
      return _LabelSet(tuple(options.label_columns), "--label_columns", ids_allowed=True)
    labels_file = options.labels_file
    if labels_file is None and options.data_dir:
      default = os.path.join(options.data_dir, LABELS_FILE)
      labels_file = default if os.path.exists(default) else None
    if labels_file is not None:
      return _LabelSet(tuple(read_label_names(labels_file)), labels_file, ids_allowed=True)
    if self._known is not None:
      return self._known
    return self._labels_from_data()

  def _labels_from_data(self):
    """The label columns of the first file there is, or the sorted union of train's names."""
    present = [(split, path) for split, path in
               ((split, self._find_file(split, self.options.data_dir)) for split in _SPLITS)
               if path is not None]
    if not present:
      raise UserError(self._no_file_message("train"))
    split, path = present[0]
    raw = self._read(path, split)
    if raw.layout.kind == "wide":
      source = f"the label columns of {path}"
      names = raw.layout.columns
    elif raw.layout.kind == "list" and split == "train":
      for token, line in zip(raw.tokens, raw.token_lines):
        if isinstance(token, int):
          raise _ids_need_names(path, line, raw.layout.columns[0], token)
      source = f"the sorted label names of {path}"
      names = tuple(_sorted_names(raw.tokens))
      if not names:
        raise file_error(path, None, f"no row has a label in column {raw.layout.columns[0]!r}")
    else:
      reason = ("the label names are those of the train file, and there is none" if raw.layout.kind
                else f"{path} has no labels")
      raise UserError(f"cannot tell the label set: {reason}; give --labels_file, or run on the "
                      "--output_dir of the training run")
    _check_label_names(names, source)
    return _LabelSet(names, source, ids_allowed=raw.layout.kind == "wide")

  # Files.

  def _find_file(self, split, data_dir):
    """Returns the path of `split`'s file: the option's, else the one in `data_dir`, else None."""
    given = getattr(self.options, f"{split}_file")
    if given is not None:
      return given
    if not data_dir:
      return None
    found = [os.path.join(data_dir, split + extension) for extension in tables.FORMATS
             if os.path.exists(os.path.join(data_dir, split + extension))]
    if len(found) > 1:
      raise UserError(f"{data_dir} holds {' and '.join(os.path.basename(p) for p in found)}: "
                      f"keep one {split} file, or name it with --{split}_file")
    return found[0] if found else None

  def _no_file_message(self, split):
    where = (f"no {split}.csv, {split}.tsv, {split}.jsonl or {split}.json in "
             f"{self.options.data_dir}" if self.options.data_dir else f"no {split} file")
    return f"{where}: add one, or name it with --{split}_file"

  def _require_file(self, split, data_dir):
    path = self._find_file(split, data_dir)
    if path is None:
      raise UserError(self._no_file_message(split))
    return path

  def has_dev_file(self, data_dir):
    return self._find_file("dev", data_dir) is not None

  def describe_dev_source(self, data_dir):
    if self.has_dev_file(data_dir):
      return f"dev split: {self._find_file('dev', data_dir)}"
    return (f"dev split: no dev file, so a {base.HOLDOUT_FRACTION:.0%} hold-out of "
            f"{self._require_file('train', data_dir)} (seed {base.HOLDOUT_SEED}), left out of "
            "training")

  # Examples.

  def get_train_examples(self, data_dir):
    """Returns the training examples, an `ExampleTable`; without a dev file, less the hold-out.

    Labels without a positive example are logged as a warning.
    """
    examples = self._examples(self._require_file("train", data_dir), "train")
    if not self.has_dev_file(data_dir):
      held_out = base.holdout_indices(len(examples))
      examples = examples.select(np.setdiff1d(np.arange(len(examples)), held_out))
    counts = examples.label_matrix.sum(axis=0, dtype=np.int64)
    absent = [name for name, count in zip(self.get_labels(), counts) if count == 0]
    if absent:
      logging.warning("No training example has label(s) %s: the model cannot learn them and "
                      "their AUC is undefined.", ", ".join(absent))
    return examples

  def get_dev_examples(self, data_dir):
    """Returns the dev examples: the dev file's, or the hold-out of train."""
    logging.info("%s", self.describe_dev_source(data_dir))
    if self.has_dev_file(data_dir):
      return self._examples(self._find_file("dev", data_dir), "dev")
    train_path = self._require_file("train", data_dir)
    train = self._examples(train_path, "train")
    held_out = base.holdout_indices(len(train))
    if not held_out.size:
      raise file_error(train_path, None, "has a single example, too few to hold out a dev "
                       "split; add a dev file")
    return train.select(held_out)

  def get_test_examples(self, data_dir):
    """Returns the test examples; labels None where the test file has no label column."""
    return self._examples(self._require_file("test", data_dir), "test")

  def _examples(self, path, split):
    """Returns the `ExampleTable` of one file, labelled in the label set's order."""
    raw = self._read(path, split)
    ids = raw.lines if raw.guids is None else raw.guids
    if raw.layout.kind is None:
      return ExampleTable(ids, raw.texts_a, raw.texts_b, None)
    names = self.get_labels()
    if raw.layout.kind == "wide":
      labels = raw.wide_labels[:, self._wide_order(raw)]
    else:
      labels = np.zeros([len(raw.texts_a), len(names)], dtype=np.uint8)
      labels[raw.positive_rows, self._token_numbers(raw)[raw.positive_tokens]] = 1
    return ExampleTable(ids, raw.texts_a, raw.texts_b, labels)

  def _wide_order(self, raw):
    """Returns, per label in order, its column in `raw.wide_labels`; the columns must be the set."""
    label_set = self._label_set
    position = {column: i for i, column in enumerate(raw.layout.columns)}
    extra = [column for column in raw.layout.columns if column not in label_set.names]
    missing = [name for name in label_set.names if name not in position]
    if extra or missing:
      problems = []
      if extra:
        problems.append(f"its label column(s) {', '.join(map(repr, extra))} are not in it")
      if missing:
        problems.append(f"it lacks column(s) {', '.join(map(repr, missing))}")
      hint = ("; a column that is not a label goes in --ignore_columns"
              if extra and raw.layout.inferred else "")
      raise file_error(raw.path, raw.header_line, (
          f"the label set is {', '.join(label_set.names)} (from {label_set.source}), but "
          + " and ".join(problems) + hint))
    return [position[name] for name in label_set.names]

  def _token_numbers(self, raw):
    """Returns int64 [len(raw.tokens)], each list token's label number.

    Raises:
      UserError: a token is not a label name, nor an id where ids are allowed; naming the first
        line where it appears.
    """
    label_set = self._label_set
    index = {name: i for i, name in enumerate(label_set.names)}
    numbers = []
    for token, line in zip(raw.tokens, raw.token_lines):
      number = index.get(token) if isinstance(token, str) else None
      if number is None:
        number = self._label_id(token, raw.path, line, raw.layout.columns[0])
      numbers.append(number)
    return np.array(numbers, dtype=np.int64)

  def _label_id(self, token, path, line, column):
    """Returns the number of a token that is no label name: an id, if ids are allowed."""
    label_set = self._label_set
    is_id = isinstance(token, int) or _WHOLE_NUMBER.fullmatch(token)
    if is_id and label_set.ids_allowed:
      number = int(token)
      if 0 <= number < len(label_set.names):
        return number
      raise file_error(path, line, f"column {column!r}: label id {number} is out of range: "
                       f"{label_set.source} names {len(label_set.names)} labels (ids 0 to "
                       f"{len(label_set.names) - 1})")
    if isinstance(token, int):
      raise _ids_need_names(path, line, column, token)
    raise file_error(path, line, f"column {column!r}: label {base.quote(token)} is not in the "
                     f"label set ({', '.join(label_set.names)}, from {label_set.source})")

  # Reading.

  def _read(self, path, split):
    """Returns the `_RawTable` of one file, reading it on the first call."""
    key = (path, split)
    if key not in self._raw_tables:
      self._raw_tables[key] = self._read_file(path, split)
    return self._raw_tables[key]

  def _layout(self, rows, split):
    """Returns how the file of `rows` holds its labels; raises where a needed column is missing."""
    options = self.options
    columns = set(rows.columns)
    labelled = split != "test"
    if options.labels_column or options.label_columns:
      wanted = ((options.labels_column,) if options.labels_column else options.label_columns)
      flag = "--labels_column" if options.labels_column else "--label_columns"
      present = [c for c in wanted if c in columns]
      if not present and not labelled:
        return _Layout(None)
      self._require_columns(rows, [(c, flag) for c in wanted], split)
      return _Layout("list" if options.labels_column else "wide", tuple(wanted))
    taken = {options.text_column, options.text_b_column, options.id_column, ""}
    taken.update(options.ignore_columns)
    inferred = tuple(c for c in rows.columns if c not in taken)
    if _DEFAULT_LABELS_COLUMN in columns:
      unread = [c for c in inferred if c != _DEFAULT_LABELS_COLUMN]
      if unread:
        # A wide file with a label called "labels" reads as a list layout: say what is left out.
        logging.warning(
            "%s: column %r holds the labels (a list layout), so column(s) %s are not read; "
            "name the label columns with --label_columns to read a wide file, or list the "
            "others in --ignore_columns", rows.path, _DEFAULT_LABELS_COLUMN,
            ", ".join(map(repr, unread)))
      return _Layout("list", (_DEFAULT_LABELS_COLUMN,))
    if inferred:
      logging.info("%s: wide layout; label columns (the columns that are not text, id or "
                   "--ignore_columns): %s", rows.path, ", ".join(inferred))
      return _Layout("wide", inferred, inferred=True)
    if labelled:
      raise file_error(rows.path, rows.header_line, (
          f"the {split} file has no labels: no {_DEFAULT_LABELS_COLUMN!r} column and no column "
          f"besides the text and id; its columns are {', '.join(map(repr, rows.columns))}"))
    return _Layout(None)

  def _require_columns(self, rows, wanted, split):
    """Raises `UserError` at the header when `rows` lack a column of `wanted` ((column, flag))."""
    missing = [(column, flag) for column, flag in wanted if column not in rows.columns]
    if missing:
      raise file_error(rows.path, rows.header_line, (
          f"the {split} file has no column " +
          ", ".join(f"{column!r} ({flag})" for column, flag in missing) +
          f"; its columns are {', '.join(map(repr, rows.columns)) or 'none'}"))

  def _read_file(self, path, split):
    """Reads one file into a `_RawTable`, checking its columns against the options first.

    A test file without the id column (new texts to predict, say) is numbered by line.
    """
    options = self.options
    rows = tables.Rows(path)
    if split == "test" and options.id_column not in rows.columns + (None,):
      logging.info("%s has no column %r (--id_column): its ids are line numbers", path,
                   options.id_column)
      options = dataclasses.replace(options, id_column=None)
    self._require_columns(
        rows, [(column, f"--{flag}") for flag, column in
               (("text_column", options.text_column), ("text_b_column", options.text_b_column),
                ("id_column", options.id_column)) if column is not None], split)
    return _read_rows(rows, self._layout(rows, split), options)
