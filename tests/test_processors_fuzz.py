"""Fuzz tests of the processors: any file content parses or raises `UserError`, nothing else.

Where the generated rows are well formed, the parsed examples must also give back what was
written.
"""

import csv
import io
import os
import tempfile

from hypothesis import given, settings, strategies as st

from errors import UserError
import processors
from processors import base

FUZZ = settings(max_examples=200, deadline=None)

# Characters that matter to the parsers, mixed into arbitrary text.
_TRICKY = st.sampled_from(["\t", "\n", "\r", '"', "'", "[", "]", ",", " ", "0", "1", "1.0",
                           "True", "false", "\ufeff", "\x00", "\u2028", "\x85", "-1"])
_TEXT = st.lists(st.one_of(_TRICKY, st.text(max_size=5)), max_size=12).map("".join)
_LINE_TEXT = _TEXT.map(lambda text: text.replace("\n", " "))
_VALUE_WORDS = {"0": ("0", "0.0", "False", "false"), "1": ("1", "1.0", "True", "TRUE")}


def _label_vectors(num_labels):
  """Strategy for (labels, bracketed field) pairs, spelt 0, 0.0, False or false and so on."""
  def vector(bits, spelling):
    labels = tuple((bits >> i) & 1 for i in range(num_labels))
    return labels, "[" + ", ".join(_VALUE_WORDS[str(v)][spelling] for v in labels) + "]"
  return st.builds(vector, st.integers(0, 2**num_labels - 1), st.integers(0, 3))


def _read(task, files, method="get_test_examples"):
  """Writes `files` ({name: bytes}) to a fresh folder and returns the processor's examples.

  Returns None where the processor raised `UserError`; any other exception fails the test.
  """
  processor = processors.get_processor(task)
  with tempfile.TemporaryDirectory() as folder:
    for name, content in files.items():
      with open(os.path.join(folder, name), "wb") as f:
        f.write(content)
    try:
      examples = getattr(processor, method)(folder)
    except UserError:
      return None
  for example in examples:
    assert isinstance(example, base.InputExample)
    assert example.guid and example.text_a == example.text_a.strip() and example.text_a
    if example.labels is not None:
      assert len(example.labels) == len(processor.labels)
      assert set(example.labels) <= {0, 1}
  return examples


def _mutated(content, data):
  """Returns `content` (bytes), sometimes with arbitrary bytes spliced in."""
  if data.draw(st.booleans()):
    at = data.draw(st.integers(0, len(content)))
    content = content[:at] + data.draw(st.binary(max_size=8)) + content[at:]
  return content


@FUZZ
@given(st.lists(st.one_of(st.binary(max_size=60), _LINE_TEXT.map(str.encode)), max_size=6))
def test_arbitrary_lines_parse_or_raise_user_error(lines):
  content = b"\n".join(lines)
  for task, name in [("se0714", "test_SE0714.txt"), ("psychexp", "test_psychexp.txt"),
                     ("movielens", "test_movies.txt"), ("toxic", "test.csv")]:
    _read(task, {name: content})


@FUZZ
@given(st.lists(st.tuples(_label_vectors(3), _LINE_TEXT), min_size=1, max_size=5), st.data())
def test_se0714_rows_read_back(rows, data):
  content = "".join(f"{field}\t{text}\n" for (_, field), text in rows).encode()
  mutated = _mutated(content, data)
  examples = _read("se0714", {"test_SE0714.txt": mutated})
  if mutated == content and all(text.strip() for _, text in rows):
    assert [(e.labels, e.text_a) for e in examples] == [
        (labels, text.strip()) for (labels, _), text in rows]


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**6), _LINE_TEXT, _LINE_TEXT, _label_vectors(17)),
                min_size=1, max_size=4), st.data())
def test_movielens_rows_read_back(rows, data):
  rows = [(movie_id, title.replace("\t", " "), summary, labels)
          for movie_id, title, summary, labels in rows]
  content = "".join(f"{movie_id}\t{title}\t{summary}\t{field}\n"
                    for movie_id, title, summary, (_, field) in rows).encode()
  mutated = _mutated(content, data)
  examples = _read("movielens", {"test_movies.txt": mutated})
  if mutated == content and all(title.strip() and summary.strip() for _, title, summary, _ in rows):
    assert [(e.guid, e.text_a, e.text_b, e.labels) for e in examples] == [
        (str(movie_id), title.strip(), summary.strip(), labels)
        for movie_id, title, summary, (labels, _) in rows]


def _csv(header, rows):
  """Returns the bytes of a CSV with `header` and `rows` as the csv module quotes them."""
  out = io.StringIO(newline="")
  writer = csv.writer(out)
  writer.writerow(header)
  writer.writerows(rows)
  return out.getvalue().encode()


@FUZZ
@given(st.lists(st.tuples(st.text(min_size=1, max_size=6), _TEXT,
                          st.lists(st.integers(-1, 1), min_size=6, max_size=6)),
                min_size=1, max_size=5), st.data())
def test_toxic_rows_read_back(rows, data):
  toxic = processors.get_processor("toxic")
  test_csv = _csv(["id", "comment_text"], [(guid, text) for guid, text, _ in rows])
  labels_csv = _csv(["id", *toxic.labels], [(guid, *values) for guid, _, values in rows])
  train_csv = _csv(["id", "comment_text", *toxic.labels],
                   [(guid, text, *(abs(v) for v in values)) for guid, text, values in rows])
  mutated = _mutated(test_csv, data)
  examples = _read("toxic", {"test.csv": mutated, "test_labels.csv": labels_csv})
  _read("toxic", {"train.csv": _mutated(train_csv, data)}, "get_train_examples")
  guids = [guid.strip() for guid, _, _ in rows]
  well_formed = (mutated == test_csv and len(set(guids)) == len(guids) and
                 all(guid.strip() and not set(guid) & set("\t\r\n") and text.strip()
                     and (len(set(values)) == 1 or -1 not in values)
                     for guid, text, values in rows))
  if well_formed:
    assert [(e.guid, e.text_a, e.labels) for e in examples] == [
        (guid.strip(), text.strip(), None if -1 in values else tuple(values))
        for guid, text, values in rows]
