"""Long texts: which tokens a single text keeps, its windows, and their pooled probabilities.

Google's `convert_single_example` keeps the first `max_seq_length - 2` tokens of a text. Here
`--truncation` may keep the last ones, or the head and the tail (Sun et al. 2019, "How to
Fine-Tune BERT for Text Classification?", found 128 + 382 of 510 tokens best on IMDb); and
`--doc_stride` may split the text into overlapping windows instead, each a row of the features
(with its document's labels for training), whose probabilities `pool` combines per document at
eval and predict. Text pairs keep Google's longest-first truncation: a window of text a beside
the whole text b has no meaning of its own.
"""

import dataclasses

import numpy as np

TRUNCATIONS = ("head", "tail", "head_tail")
POOLINGS = ("max", "mean")
# Bounds the rows of one document, so that a few huge texts cannot multiply the cost of an
# epoch or of a prediction: 8 windows at a stride of half the window cover 4.5 windows' worth
# of tokens (574 of --max_seq_length=128, 2,302 of 512, more than most reviews and articles).
DEFAULT_MAX_WINDOWS = 8


@dataclasses.dataclass(frozen=True)
class Options:
  """How a single text longer than `max_seq_length - 2` tokens becomes rows, and is scored.

  Attributes:
    truncation: "head" (Google's), "tail" or "head_tail": which tokens a text keeps of a budget
      (see `truncate`).
    doc_stride: int, 0 for one row per text; else the tokens between the starts of its windows.
    max_windows: int >= 1, the most windows of one text; a longer text is first cut, by
      `truncation`, to the tokens that many windows span.
    pooling: "max" or "mean", how a document's probabilities are made of its windows' (`pool`).
  """
  truncation: str = "head"
  doc_stride: int = 0
  max_windows: int = DEFAULT_MAX_WINDOWS
  pooling: str = "max"

  def identity(self):
    """{flag name: value} of the settings that change the features or the training rows.

    Empty for Google's behaviour (head, no windows), so that feature caches and training runs
    recorded before these flags existed keep their fingerprint. Pooling changes neither.
    """
    changed = {}
    if self.truncation != "head":
      changed["truncation"] = self.truncation
    if self.doc_stride:
      changed.update(doc_stride=self.doc_stride, max_windows=self.max_windows)
    return changed

  def plan_inputs(self):
    """{flag name: value} of `identity()`'s flags for the training plan, None for Google's.

    None is also what a plan recorded before these flags existed gives, so such a run resumes;
    a run that goes back to Google's behaviour is refused, naming the flag.
    """
    changed = self.identity()
    return {name: changed.get(name) for name in ("truncation", "doc_stride", "max_windows")}

  def pieces(self, ids, budget):
    """Returns the token ids of each row of a single text.

    Args:
      ids: list of int, the text's word-piece ids.
      budget: int >= 0, the tokens a row holds besides [CLS] and [SEP].

    Returns:
      list of lists of int: one row, or with `doc_stride` up to `max_windows` windows in text
      order.
    """
    if not self.doc_stride:
      return [truncate(ids, budget, self.truncation)]
    kept = truncate(ids, self._span(budget), self.truncation)
    return [kept[start:start + budget]
            for start in window_starts(len(kept), budget, self.doc_stride)]

  def num_pieces(self, length, budget):
    """Returns `len(pieces(ids, budget))` for a text of `length` tokens, without making them."""
    if not self.doc_stride:
      return 1
    return len(window_starts(min(length, self._span(budget)), budget, self.doc_stride))

  def _span(self, budget):
    """The most tokens of a text that its windows hold."""
    return budget + (self.max_windows - 1) * self.doc_stride


def truncate(ids, budget, truncation):
  """Returns the ids a text keeps of `budget` tokens.

  head keeps the first `budget`, tail the last `budget`; head_tail the first quarter of the
  budget, rounded up, and the rest from the end: 128 + 382 of 510, Sun et al.'s split.

  Args:
    ids: list of int.
    budget: int >= 0.
    truncation: one of `TRUNCATIONS`.

  Returns:
    list of int, `ids` itself when it fits.
  """
  if len(ids) <= budget:
    return ids
  if truncation == "head":
    return ids[:budget]
  if truncation == "tail":
    return ids[len(ids) - budget:]
  if truncation == "head_tail":
    head = -(-budget // 4)
    return ids[:head] + ids[len(ids) - (budget - head):]
  raise ValueError(f"unknown truncation {truncation!r}, not one of {TRUNCATIONS}")


def window_starts(length, budget, doc_stride):
  """Returns where each window of `budget` tokens starts in a text of `length` tokens.

  Windows start every `doc_stride` tokens; the last one is moved back to end with the text, so
  every window is full and no window holds only the end of the one before it.

  Raises:
    ValueError: `doc_stride` is not in [1, budget]: windows would skip tokens.
  """
  if not 1 <= doc_stride <= budget:
    raise ValueError(f"doc_stride {doc_stride} must be in [1, {budget}]: windows of {budget} "
                     "tokens would skip tokens")
  if length <= budget:
    return [0]
  return list(range(0, length - budget, doc_stride)) + [length - budget]


def first_rows(document_index):
  """Returns int [num_documents], the first row of each document (input example).

  Args:
    document_index: int [rows], the document of each row: 0, ..., 0, 1, ..., 1, ..., each
      document from 0 on with at least one row (as `features.convert_examples` makes them).

  Raises:
    ValueError: `document_index` is not of that form.
  """
  steps = np.diff(np.asarray(document_index), prepend=-1)
  if np.any((steps != 0) & (steps != 1)):
    raise ValueError("rows are not grouped by document in document order")
  return np.flatnonzero(steps)


def pool(probabilities, document_index, pooling):
  """Combines the probabilities of each document's rows (windows) per label.

  A document of one row keeps its probabilities bit for bit, with either pooling.

  Args:
    probabilities: float32 [rows, k], row r's probabilities.
    document_index: int [rows], as for `first_rows`.
    pooling: "max" or "mean".

  Returns:
    float32 [num_documents, k], in document order.
  """
  starts = first_rows(document_index)
  if len(starts) == len(document_index):
    return probabilities
  if pooling == "max":
    return np.maximum.reduceat(probabilities, starts, axis=0)
  if pooling == "mean":
    counts = np.diff(np.append(starts, len(document_index)))
    sums = np.add.reduceat(np.asarray(probabilities, np.float64), starts, axis=0)
    return (sums / counts[:, None]).astype(np.float32)
  raise ValueError(f"unknown pooling {pooling!r}, not one of {POOLINGS}")
