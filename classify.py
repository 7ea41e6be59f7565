"""Classifies new texts with an exported model: a file or standard input in, TSV or JSONL out.

  python classify.py --export_dir=EXPORT --input=new.txt --output=labels.tsv
  cat new.txt | python classify.py --export_dir=EXPORT > labels.tsv
  python classify.py --export_dir=EXPORT --input=new.csv --text_column=comment --output=out.jsonl

Input: a `.csv`, `.tsv`, `.jsonl` or `.json` (JSON Lines) file, read by its header or keys as the
generic task reads its files (`--text_column`, and `--text_b_column` for a sentence-pair model,
`--id_column`); any other file, and standard input by default, holds one text a line, every line
a text. Output, one row per input row in input order: the id (the id column, else the line
number), each label's probability, and with the run's cut-offs each label's 0/1 prediction.
TSV: `id`, the label names (probabilities) and `predicted_LABEL` (0/1). JSONL: one object a line,
{"id": ..., "probabilities": {label: p}, "predictions": {label: 0/1}}.

The numbers are those of `export_saved_model.py`'s SavedModel, which gives `run_classifier.py`'s
probabilities for the same checkpoint.
"""

import contextlib
import json
import os
import shutil
import sys
import tempfile

from absl import flags
from absl import logging
import numpy as np

import cli
from errors import UserError
from errors import file_error
import fileio
from processors import base
from processors import tables

FLAGS = flags.FLAGS

flags.DEFINE_string("export_dir", None, "The SavedModel that export_saved_model.py wrote.")
flags.DEFINE_string("input", "-", "The texts: a .csv, .tsv, .jsonl or .json file, any other file "
                    "with one text a line, or - for standard input.")
flags.DEFINE_enum("input_format", "txt", ["txt", "csv", "tsv", "jsonl"],
                  "The format of standard input (files go by their extension).")
flags.DEFINE_string("text_column", "text", "The column (key) of the text in a table.")
flags.DEFINE_string("text_b_column", None, "The column (key) of the second text, for a model "
                    "of sentence pairs; without it, inputs are single texts.")
flags.DEFINE_string("id_column", None, "The column (key) of the ids written out; default: the "
                    "line where the row starts.")
flags.DEFINE_string("output", "-", "Where to write: a .jsonl or .json file for JSON Lines, any "
                    "other for TSV, - for standard output (TSV unless --output_format).")
flags.DEFINE_enum("output_format", None, ["tsv", "jsonl"],
                  "The output format; default: from --output's extension.")
flags.DEFINE_integer("batch_size", 32, "Texts per model call.", lower_bound=1)
flags.mark_flag_as_required("export_dir")

_STDIN = "<stdin>"


def input_format(path):
  """Returns "txt", "csv", "tsv" or "jsonl" for a file, from its extension."""
  return tables.FORMATS.get(os.path.splitext(path)[1].lower(), "txt")


def read_lines(path):
  """Returns [(line number, text)] of a text file, every line a text (a last empty one aside)."""
  lines = base.read_text_file(path).split("\n")
  if not lines[-1]:
    lines.pop()
  return [(number, line.removesuffix("\r")) for number, line in enumerate(lines, start=1)]


def read_table(path, text_column, text_b_column, id_column):
  """Returns [(id, text, text b or None)] of a CSV, TSV or JSON Lines file, in file order.

  Raises:
    UserError: a column is missing, or a text is not a string (ids may be any JSON value);
      naming the file and the line.
  """
  rows = tables.Rows(path)
  wanted = [c for c in (text_column, text_b_column, id_column) if c is not None]
  if rows.format != "jsonl":
    missing = [c for c in wanted if c not in rows.columns]
    if missing:
      raise file_error(path, rows.header_line,
                       f"no column {', '.join(map(repr, missing))} in the header (columns: "
                       f"{', '.join(rows.columns)})")

  def value(row, column, line_number):
    if column not in row:
      raise file_error(path, line_number, f"no {column!r} key")
    return row[column]

  def text(row, column, line_number):
    found = value(row, column, line_number)
    if not isinstance(found, str):
      raise file_error(path, line_number, f"{column!r} is not a string: {found!r}")
    return found

  records = []
  for line_number, row in rows:
    guid = str(line_number if id_column is None else value(row, id_column, line_number))
    records.append((guid, text(row, text_column, line_number),
                    None if text_b_column is None else text(row, text_b_column, line_number)))
  return records


@contextlib.contextmanager
def standard_input_as_file(format_name):
  """Yields the path of a temporary copy of standard input, named for `format_name`.

  The readers take a path (a table is read twice: its header, then its rows), so standard input
  is copied first; a `UserError` about the copy names `<stdin>` instead of its path.
  """
  folder = tempfile.mkdtemp()
  path = os.path.join(folder, "stdin." + format_name)
  try:
    with open(path, "wb") as f:
      shutil.copyfileobj(sys.stdin.buffer, f)
    try:
      yield path
    except UserError as e:
      raise UserError(str(e).replace(path, _STDIN)) from None
  finally:
    shutil.rmtree(folder, ignore_errors=True)


def read_inputs(path, format_name):
  """Returns [(id, text, text b or None)] of the input file, by the flags."""
  if format_name == "txt":
    if FLAGS.text_b_column or FLAGS.id_column:
      raise UserError("--text_b_column and --id_column apply to .csv, .tsv and .jsonl input; "
                      f"{_STDIN if FLAGS.input == '-' else path} is one text a line")
    return [(str(number), text, None) for number, text in read_lines(path)]
  return read_table(path, FLAGS.text_column, FLAGS.text_b_column, FLAGS.id_column)


class ExportedModel:
  """A SavedModel of export_saved_model.py, loaded.

  Attributes:
    labels: list of str, the label names.
    has_pairs: bool, whether it takes `text_b`.
    has_predictions: bool, whether it outputs 0/1 predictions (the run had cut-offs).
  """

  def __init__(self, export_dir):
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    self._tf = tf
    try:
      loaded = tf.saved_model.load(export_dir)
    except (OSError, ValueError, tf.errors.OpError) as e:
      raise UserError(f"--export_dir {export_dir}: cannot load a SavedModel there ({e})"
                      .split("\n")[0]) from None
    if not hasattr(loaded, "metadata_file"):
      raise UserError(f"--export_dir {export_dir}: not a model of export_saved_model.py (it has "
                      "no export_metadata.json)")
    with open(loaded.metadata_file.asset_path.numpy().decode("utf-8"), encoding="utf-8") as f:
      metadata = json.load(f)
    self._loaded = loaded  # The signature needs its object alive.
    self._classify = loaded.signatures["serving_default"]
    self.labels = metadata["labels"]
    self.has_pairs = "text_b" in metadata["inputs"]
    self.has_predictions = metadata["cutoff_type"] is not None

  def classify(self, texts, texts_b, batch_size):
    """Returns (probabilities float32 [n, k], predictions int32 [n, k] or None), input order.

    Texts go through the model longest first, so that each batch pads little.

    Args:
      texts: list of n str.
      texts_b: list of n str, or None.
      batch_size: int.
    """
    tf = self._tf
    texts_b = texts_b or [""] * len(texts)
    order = np.argsort([-len(a) - len(b) for a, b in zip(texts, texts_b)], kind="stable")
    k = len(self.labels)
    probabilities = np.zeros([len(texts), k], np.float32)
    predictions = np.zeros([len(texts), k], np.int32) if self.has_predictions else None
    for start in range(0, len(texts), batch_size):
      rows = order[start:start + batch_size]
      inputs = {"text": tf.constant([texts[i] for i in rows], tf.string)}
      if self.has_pairs:
        inputs["text_b"] = tf.constant([texts_b[i] for i in rows], tf.string)
      outputs = self._classify(**inputs)
      probabilities[rows] = outputs["probabilities"].numpy()
      if predictions is not None:
        predictions[rows] = outputs["predictions"].numpy()
    return probabilities, predictions


def write_tsv(f, labels, ids, probabilities, predictions):
  """TSV: `id`, one probability column per label, then `predicted_LABEL` 0/1 columns."""
  header = ["id", *labels]
  if predictions is not None:
    header += [f"predicted_{label}" for label in labels]
  f.write("\t".join(header) + "\n")
  for i, guid in enumerate(ids):
    # str of a numpy float32 is the shortest text that reads back as the same number.
    fields = [guid, *map(str, probabilities[i])]
    if predictions is not None:
      fields += map(str, predictions[i])
    f.write("\t".join(fields) + "\n")


def write_jsonl(f, labels, ids, probabilities, predictions):
  """JSON Lines: {"id", "probabilities": {label: p}, "predictions": {label: 0/1}} per row."""
  for i, guid in enumerate(ids):
    # float(str(p)): the shortest decimal of the float32, not the float64 it widens to.
    row = {"id": guid,
           "probabilities": {l: float(str(p)) for l, p in zip(labels, probabilities[i])}}
    if predictions is not None:
      row["predictions"] = {l: int(y) for l, y in zip(labels, predictions[i])}
    f.write(json.dumps(row, ensure_ascii=False) + "\n")


def output_format():
  if FLAGS.output_format:
    return FLAGS.output_format
  return "jsonl" if input_format(FLAGS.output) == "jsonl" else "tsv"


def main(argv):
  del argv
  writer = write_jsonl if output_format() == "jsonl" else write_tsv
  # The input is read first: a mistake in it is answered before TensorFlow loads.
  if FLAGS.input == "-":
    with standard_input_as_file(FLAGS.input_format) as path:
      records = read_inputs(path, FLAGS.input_format)
  else:
    records = read_inputs(FLAGS.input, input_format(FLAGS.input))
  cli.import_tensorflow()
  model = ExportedModel(FLAGS.export_dir)
  if FLAGS.text_b_column and not model.has_pairs:
    raise UserError(f"--text_b_column: the model in {FLAGS.export_dir} takes single texts")
  ids = [guid for guid, _, _ in records]
  texts_b = [b for _, _, b in records] if FLAGS.text_b_column else None
  probabilities, predictions = model.classify([a for _, a, _ in records], texts_b,
                                              FLAGS.batch_size)
  logging.info("Classified %d texts", len(ids))
  if FLAGS.output == "-":
    writer(sys.stdout, model.labels, ids, probabilities, predictions)
    return
  try:
    with fileio.atomic_open(FLAGS.output) as f:
      writer(f, model.labels, ids, probabilities, predictions)
  except OSError as e:
    raise UserError(f"cannot write --output {FLAGS.output}: {e.strerror or e}") from None


if __name__ == "__main__":
  cli.run(main)
