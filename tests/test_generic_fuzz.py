"""Fuzz tests of the generic task's readers: any file gives examples or a `UserError`, nothing else.

Where the generated files are well formed, the examples must give back what was written, in each
layout and format.
"""

import csv
import io
import json
import os
import re
import tempfile

from hypothesis import given, settings, strategies as st

from errors import UserError
from processors import base
from processors import generic

FUZZ = settings(max_examples=150, deadline=None)

# Characters that matter to the readers, mixed into arbitrary text.
_TRICKY = st.sampled_from(["\t", "\n", "\r", "\r\n", '"', "'", "[", "]", ",", "|", " ", "0", "1",
                           "true", "\ufeff", "\x00", "\u2028", "\x85", "{", "}", ":", "\\"])
_TEXT = st.lists(st.one_of(_TRICKY, st.text(max_size=4)), max_size=10).map("".join)
_NAME = st.text(st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc"),
                              blacklist_characters="|[]"), min_size=1, max_size=6)
_OPTIONS = st.fixed_dictionaries({}, optional={
    "id_column": st.sampled_from(["id", "text", "x"]),
    "text_b_column": st.sampled_from(["b", "labels"]),
    "labels_column": st.sampled_from(["labels", "a"]),
    "label_columns": st.sampled_from([("a",), ("a", "b")]),
    "ignore_columns": st.sampled_from([("x",), ("a",)]),
    "label_separator": st.sampled_from(["|", ",", ";"]),
})


def _read(files, **options):
  """Writes `files` ({name: bytes}) to a fresh folder; returns (labels, {split: examples}).

  Returns None where the processor raised `UserError`; any other exception fails the test.
  """
  with tempfile.TemporaryDirectory() as folder:
    for name, content in files.items():
      with open(os.path.join(folder, name), "wb") as f:
        f.write(content)
    try:
      processor = generic.GenericProcessor(generic.Options(data_dir=folder, **options))
      labels = processor.get_labels()
      examples = {split: list(getattr(processor, f"get_{split}_examples")(folder))
                  for split in ("train", "dev", "test")
                  if any(name.startswith(split + ".") for name in files)}
    except UserError as e:
      assert "\n" not in str(e)
      return None
  for split_examples in examples.values():
    for example in split_examples:
      assert isinstance(example, base.InputExample)
      assert example.guid and example.text_a == example.text_a.strip() and example.text_a
      if example.labels is not None:
        assert len(example.labels) == len(labels) and set(example.labels) <= {0, 1}
  return labels, examples


def _mutated(content, data):
  """Returns `content` (bytes), sometimes with arbitrary bytes spliced in."""
  if data.draw(st.booleans()):
    at = data.draw(st.integers(0, len(content)))
    content = content[:at] + data.draw(st.binary(max_size=8)) + content[at:]
  return content


@FUZZ
@given(st.sampled_from(["train.csv", "train.tsv", "train.jsonl"]),
       st.lists(st.one_of(st.binary(max_size=40), _TEXT.map(str.encode)), max_size=6), _OPTIONS,
       st.booleans())
def test_arbitrary_files_give_examples_or_a_user_error(name, lines, options, with_test):
  content = b"\n".join(lines)
  files = {name: content}
  if with_test:
    files["test" + name[len("train"):]] = content
  try:
    _read(files, **options)
  except UserError:
    pass  # Contradicting options.


def _table(header, rows, delimiter, line_end, bom):
  """The bytes of a CSV or TSV as the csv module quotes it."""
  out = io.StringIO(newline="")
  writer = csv.writer(out, delimiter=delimiter, lineterminator=line_end)
  writer.writerow(header)
  writer.writerows(rows)
  return (("\ufeff" if bom else "") + out.getvalue()).encode("utf-8")


_ROWS = st.lists(st.tuples(_TEXT, st.lists(_NAME, max_size=3, unique=True)), min_size=1,
                 max_size=5)


@FUZZ
@given(_ROWS, st.sampled_from(["wide-csv", "names-tsv", "names-jsonl", "ids-jsonl", "ids-csv"]),
       st.sampled_from(["\n", "\r\n"]), st.booleans(), st.data())
def test_well_formed_files_read_back(rows, layout, line_end, bom, data):
  names = sorted({name for _, row_names in rows for name in row_names})
  ids = [str(i) for i in range(len(rows))]
  files = {}
  if layout == "wide-csv":
    files["test.csv"] = _table(["id", "text", *names],
                               [[i, text, *(int(n in row) for n in names)]
                                for i, (text, row) in zip(ids, rows)], ",", line_end, bom)
  elif layout == "names-tsv":
    files["test.tsv"] = _table(["id", "text", "labels"],
                               [[i, text, "|".join(row)] for i, (text, row) in zip(ids, rows)],
                               "\t", line_end, bom)
  else:
    as_ids = layout.startswith("ids")
    labels = [[names.index(n) for n in row] if as_ids else row for _, row in rows]
    if layout == "ids-csv":
      files["test.csv"] = _table(["id", "text", "labels"],
                                 [[i, text, "|".join(map(str, row))]
                                  for i, (text, _), row in zip(ids, rows, labels)], ",",
                                 line_end, bom)
    else:
      files["test.jsonl"] = (("\ufeff" if bom else "") + "".join(
          json.dumps({"id": i, "text": text, "labels": row}) + line_end
          for i, (text, _), row in zip(ids, rows, labels))).encode("utf-8")
  files["labels.txt"] = "".join(n + "\n" for n in names).encode("utf-8")
  if not names:
    del files["labels.txt"]
  (name, content), = [(n, c) for n, c in files.items() if n.startswith("test")]
  mutated = _mutated(content, data)
  result = _read({**files, name: mutated}, id_column="id")
  # With "\n" line ends, csv.writer leaves a field with a lone CR unquoted, which no reader can
  # tell from a line end.
  unquoted_cr = line_end == "\n" and not name.endswith(".jsonl") and any(
      "\r" in text for text, _ in rows)
  # In a CSV cell, a token that is a label name is that name, not an id.
  ids_as_names = layout == "ids-csv" and any(re.fullmatch(r"\d+", n, re.ASCII) for n in names)
  # A wide label column named like another column repeats it, and one named "labels" makes the
  # file a list layout (processors/generic.py): that file is not the wide file it was meant to be.
  label_column_clash = layout == "wide-csv" and bool({"id", "text", "labels"} & set(names))
  well_formed = (mutated == content and names and all(text.strip() for text, _ in rows) and
                 not unquoted_cr and not ids_as_names and not label_column_clash)
  if well_formed:
    assert result is not None
    labels, examples = result
    assert labels == names
    assert [(e.guid, e.text_a, {labels[j] for j, v in enumerate(e.labels) if v})
            for e in examples["test"]] == [
                (i, text.strip(), set(row)) for i, (text, row) in zip(ids, rows)]
