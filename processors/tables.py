"""Reading a user's CSV, TSV and JSON Lines files one row at a time.

The format comes from the file name: `.csv` (comma-separated), `.tsv` (tab-separated), `.jsonl` or
`.json` (one JSON object per line). CSV and TSV have a header row and follow the CSV quoting rules
that spreadsheets and pandas write: a field in double quotes may hold the separator, line breaks
and doubled quotes. A leading byte-order mark and CRLF line ends are accepted in every format.

Files are read line by line, never whole, so that a big file costs the memory of one row here. Each
row comes with the 1-based line where it starts in the file (a quoted field may span lines), which
is the line an editor shows; every problem is a `UserError` naming the file and that line.
"""

import contextlib
import csv
import json
import os

from errors import file_error
from processors import base

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "jsonl"}
_DELIMITERS = {"csv": ",", "tsv": "\t"}
_BOMS = {b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}


def file_format(path):
  """Returns "csv", "tsv" or "jsonl", from the extension of `path` (any case).

  Raises:
    UserError: another extension.
  """
  extension = os.path.splitext(path)[1].lower()
  if extension not in FORMATS:
    raise file_error(path, None, f"cannot tell the format from the extension {extension!r}: "
                     f"name the file .csv, .tsv, .jsonl or .json (JSON Lines)")
  return FORMATS[extension]


class Rows:
  """The rows of one file, read lazily, in file order.

  Attributes:
    path: str, the file.
    format: "csv", "tsv" or "jsonl".
    columns: tuple of str, the header's names (CSV, TSV; an empty name is kept as ""), or the keys
      of the first object (JSON Lines).
    header_line: int, the line of the header, or of the first object.

  Iterating yields (line_number, row): the line where the row starts, and a dict from column name
  to value. CSV and TSV values are str and every row has every column; JSON values are as parsed,
  and an object may lack keys or have others. Blank lines are skipped. The file is opened again on
  each iteration.
  """

  def __init__(self, path):
    self.path = path
    self.format = file_format(path)
    first = self._first_record()
    if first is None:
      raise file_error(path, None, "is empty: expected a header row and data rows"
                       if self.format != "jsonl" else "is empty: expected one JSON object a line")
    self.header_line, record = first
    if self.format == "jsonl":
      self.columns = tuple(record)
    else:
      self.columns = tuple(name.strip() for name in record)
      repeated = sorted({name for name in self.columns if name and self.columns.count(name) > 1})
      if repeated:
        raise file_error(path, self.header_line,
                         f"the header names column(s) {', '.join(map(repr, repeated))} twice")

  def __iter__(self):
    if self.format == "jsonl":
      yield from _json_objects(self.path)
      return
    records = _csv_records(self.path, _DELIMITERS[self.format])
    next(records)  # The header.
    columns = self.columns
    width = len(columns)
    for line_number, record in records:
      if len(record) != width:
        separator = "comma" if self.format == "csv" else "tab"
        raise file_error(
            self.path, line_number,
            f"expected {width} fields as in the header, got {len(record)} (is a field with a "
            f"{separator}, a quote or a line break not in double quotes?)")
      yield line_number, dict(zip(columns, record))

  def _first_record(self):
    """Returns (line_number, record) of the header or first object, or None in an empty file."""
    records = (_json_objects(self.path) if self.format == "jsonl" else
               _csv_records(self.path, _DELIMITERS[self.format]))
    with contextlib.closing(records):
      return next(records, None)


def _decoded_lines(path):
  """Yields the lines of a UTF-8 file, each with its "\\n" (the last may lack it).

  Lines are split on "\\n" alone, so a CR stays in the line: csv reads "\\r\\n" as a line end and
  keeps a CR inside a quoted field as text. A leading byte-order mark is dropped.

  Raises:
    UserError: the file cannot be opened, or a line is not UTF-8 (naming the line and the byte).
  """
  with base.open_binary(path) as f:
    first = f.readline()
    for bom, encoding in _BOMS.items():
      if first.startswith(bom):
        raise file_error(path, 1, f"the file is {encoding}: save it as UTF-8")
    line = _decode(path, 1, first)
    yield line[1:] if line.startswith("\ufeff") else line
    for line_number, raw in enumerate(f, start=2):
      try:
        yield raw.decode("utf-8")
      except UnicodeDecodeError:
        yield _decode(path, line_number, raw)


def _decode(path, line_number, raw):
  """Returns `raw` decoded; raises `UserError` naming the line and the first bad byte."""
  try:
    return raw.decode("utf-8")
  except UnicodeDecodeError as e:
    raise file_error(path, line_number,
                     f"not valid UTF-8: byte 0x{raw[e.start]:02x} at byte {e.start + 1} of the "
                     "line; save the file as UTF-8") from None


def _json_objects(path):
  """Yields (line_number, dict) of the non-blank lines of a JSON Lines file."""
  for line_number, line in enumerate(_decoded_lines(path), start=1):
    if line.strip():
      yield line_number, _parse_json_line(path, line_number, line)


def _csv_records(path, delimiter):
  """Yields (line_number, fields) of the non-blank records of a CSV or TSV file.

  Args:
    path: str.
    delimiter: "," or "\\t".

  Raises:
    UserError: as `_decoded_lines`; or a quote is not closed, or text follows a closing quote.
  """
  reader = csv.reader(_decoded_lines(path), delimiter=delimiter, strict=True)
  start = 1
  try:
    for record in reader:
      # The record began at `start`; the next one begins after the lines this one took.
      line_number, start = start, reader.line_num + 1
      if len(record) <= 1 and not "".join(record).strip():
        continue
      yield line_number, record
  except csv.Error as e:
    reason = str(e)
    if "end of data" in reason:
      reason = ("a quoted field that starts on this line is never closed (a \" without its "
                "closing \")")
    elif "field larger than field limit" in reason:
      reason = (f"a field longer than {csv.field_size_limit()} characters: is a quote that "
                "starts on this line never closed?")
    elif "new-line character seen in unquoted field" in reason:
      reason = "a line break (CR) inside a field that is not in double quotes"
    elif "expected after" in reason:
      reason = (f"text after a closing quote ({reason}): a field that starts with \" must end "
                "with \", and a \" inside it is written \"\"")
    raise file_error(path, start, f"not valid {'CSV' if delimiter == ',' else 'TSV'}: "
                     f"{reason}") from None


def _parse_json_line(path, line_number, line):
  """Returns the dict of one JSON Lines line; raises `UserError` naming the line and column."""
  try:
    value = json.loads(line)
  except json.JSONDecodeError as e:
    raise file_error(path, line_number, f"not valid JSON: {e.msg} at column {e.colno} (a "
                     "JSON Lines file holds one whole object on each line)") from None
  except RecursionError:
    raise file_error(path, line_number, "not valid JSON: nested too deeply") from None
  if not isinstance(value, dict):
    raise file_error(path, line_number, f"expected a JSON object {{...}} on each line, got "
                     f"{base.quote(line.strip())}")
  return value

