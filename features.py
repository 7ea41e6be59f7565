"""Examples to model inputs: Google's `convert_single_example`, on whole splits at once.

Data flows one way: a processor's `InputExample`s become `Features` here (numpy arrays, no
TensorFlow); `feature_cache` keeps them in `--output_dir` between runs, and `input_pipeline`
feeds them to the model through tf.data.
"""

import dataclasses
from typing import Sequence

import numpy as np

from errors import UserError
import windows

@dataclasses.dataclass(frozen=True, eq=False)
class Features:
  """Model inputs of n rows, as numpy arrays: one per input example, or with windows (see
  `windows.Options`) one per window of it. The model's "examples" are these rows; the input
  example a row comes from is its document, whose rows are consecutive, in document order.

  Attributes:
    guids: tuple of n str, the ids of the rows' documents.
    input_ids: int32 [n, max_seq_length], `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]` word-piece
      ids, zero-padded.
    segment_ids: int32 [n, max_seq_length], 0 on `[CLS] a [SEP]`, 1 on `b [SEP]`, 0 on padding.
    lengths: int32 [n], the number of real tokens; the input mask is `position < length`.
    labels: float32 [n, num_labels], 0/1 targets; all zeros where `has_labels` is False.
    has_labels: bool [n], False for unscored rows (an unlabelled test row, say).
    document_index: int32 [n], the document of each row; by default `arange(n)`, a row each.
  """
  guids: Sequence[str]
  input_ids: np.ndarray
  segment_ids: np.ndarray
  lengths: np.ndarray
  labels: np.ndarray
  has_labels: np.ndarray
  document_index: np.ndarray = None

  def __post_init__(self):
    if self.document_index is None:
      object.__setattr__(self, "document_index", np.arange(self.num_examples, dtype=np.int32))

  @property
  def num_examples(self):
    return self.input_ids.shape[0]

  @property
  def max_seq_length(self):
    return self.input_ids.shape[1]

  @property
  def num_labels(self):
    return self.labels.shape[1]

  @property
  def input_mask(self):
    """int32 [n, max_seq_length], 1 on real tokens, 0 on padding."""
    return (np.arange(self.max_seq_length) < self.lengths[:, None]).astype(np.int32)

  def per_document(self):
    """`Features` of the documents, one row each, their first: what scores and names them.

    Returns self when every document has one row.

    Raises:
      ValueError: the rows are not grouped by document (see `windows.first_rows`).
    """
    first = windows.first_rows(self.document_index)
    if len(first) == self.num_examples:
      return self
    return Features(guids=tuple(self.guids[i] for i in first), input_ids=self.input_ids[first],
                    segment_ids=self.segment_ids[first], lengths=self.lengths[first],
                    labels=self.labels[first], has_labels=self.has_labels[first])


def _check_max_seq_length(max_seq_length, has_pairs):
  """Raises `UserError` when `max_seq_length` cannot hold the special tokens."""
  minimum = 3 if has_pairs else 2
  if max_seq_length < minimum:
    layout = "[CLS] a [SEP] b [SEP]" if has_pairs else "[CLS] a [SEP]"
    raise UserError(f"--max_seq_length={max_seq_length} is too small: this task's inputs are "
                    f"{layout}, which needs at least {minimum}")


def truncated_pair_lengths(length_a, length_b, budget):
  """Returns the lengths Google's `_truncate_seq_pair` leaves, without popping token by token.

  Google pops one token at a time from the longer sequence, from b on ties, until the pair fits
  `budget`. So the longer one shrinks alone until both are equal, then they shrink in turn, b
  first: a keeps the odd token.

  Args:
    length_a: int, tokens in text a.
    length_b: int, tokens in text b.
    budget: int >= 0, the most tokens the two may keep together.

  Returns:
    (int, int), the numbers of leading tokens kept of a and of b.
  """
  if length_a + length_b <= budget:
    return length_a, length_b
  keep_a = min(length_a, max(budget - length_b, (budget + 1) // 2))
  return keep_a, budget - keep_a


def _label_width(examples, num_labels):
  """Returns the number of labels, checking every labelled example has that many."""
  widths = {len(e.labels) for e in examples if e.labels is not None}
  if num_labels is not None:
    widths.add(num_labels)
  if len(widths) > 1:
    raise ValueError(f"examples have label vectors of different lengths: {sorted(widths)}")
  return widths.pop() if widths else 0


def convert_examples(examples, tokenizer, max_seq_length, num_labels=None,
                     long_texts=windows.Options()):
  """Converts examples to `Features` exactly as Google's `convert_single_example` does.

  Pairs are truncated longest-first to `max_seq_length - 3` tokens, single texts to
  `max_seq_length - 2` as `long_texts` says (by default Google's: the first tokens). With
  `long_texts.doc_stride`, a longer single text becomes several rows, its windows, each with
  its labels. As in Google's code, a text b that is None, empty or without tokens
  gives a single-text input, and so does a b that truncation cuts to nothing (max_seq_length 3
  or 4), though a was then truncated as one of a pair.

  Args:
    examples: sequence of `InputExample`.
    tokenizer: an object with `convert_tokens_to_ids(tokens)` and `tokenize_batch(texts)`
      (word-piece ids of each text, no special tokens), such as `tokenization.FullTokenizer`.
    max_seq_length: int, the padded length.
    num_labels: int, or None to take it from the labelled examples; pass it when no example may
      have labels.
    long_texts: `windows.Options`.

  Returns:
    `Features` of the examples, in their order.

  Raises:
    UserError: `max_seq_length` is too small for the special tokens.
  """
  num_labels = _label_width(examples, num_labels)
  cls_id, sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])

  ids_a = tokenizer.tokenize_batch([e.text_a for e in examples])
  ids_b = [None] * len(examples)
  with_b = [i for i, e in enumerate(examples) if e.text_b]
  for i, ids in zip(with_b, tokenizer.tokenize_batch([examples[i].text_b for i in with_b])):
    # Google pairs only when b has tokens (`if tokens_b:`); else the input is a single text.
    if len(ids):
      ids_b[i] = ids
  _check_max_seq_length(max_seq_length, has_pairs=any(b is not None for b in ids_b))

  # Rows are counted before they are made, so that each example's pieces are written as they
  # are cut: pieces kept for a second pass make Python's garbage collector scan them again and
  # again (200,000 examples took 2.2 s instead of 1.1 s).
  document_index = np.repeat(np.arange(len(examples), dtype=np.int32), [
      1 if b is not None else long_texts.num_pieces(len(a), max_seq_length - 2)
      for a, b in zip(ids_a, ids_b)])
  n = len(document_index)
  input_ids = np.zeros([n, max_seq_length], dtype=np.int32)
  segment_ids = np.zeros([n, max_seq_length], dtype=np.int32)
  lengths = np.zeros([n], dtype=np.int32)
  r = 0
  for a, b in zip(ids_a, ids_b):
    if b is None:
      pieces = [(piece, ()) for piece in long_texts.pieces(a, max_seq_length - 2)]
    else:
      keep_a, keep_b = truncated_pair_lengths(len(a), len(b), max_seq_length - 3)
      pieces = [(a[:keep_a], b[:keep_b])]
    for piece_a, piece_b in pieces:
      keep_a, keep_b = len(piece_a), len(piece_b)
      row = input_ids[r]
      row[0] = cls_id
      row[1:1 + keep_a] = piece_a
      row[1 + keep_a] = sep_id
      length = 2 + keep_a
      # Google tests `if tokens_b` again after truncating: a b cut to nothing adds no [SEP].
      if keep_b:
        row[length:length + keep_b] = piece_b
        row[length + keep_b] = sep_id
        segment_ids[r, length:length + keep_b + 1] = 1
        length += keep_b + 1
      lengths[r] = length
      r += 1

  labels = np.zeros([len(examples), num_labels], dtype=np.float32)
  has_labels = np.array([e.labels is not None for e in examples], dtype=bool)
  if has_labels.any():
    labels[has_labels] = [e.labels for e in examples if e.labels is not None]
  guids = [e.guid for e in examples]
  return Features(guids=tuple(guids[i] for i in document_index.tolist()), input_ids=input_ids,
                  segment_ids=segment_ids, lengths=lengths, labels=labels[document_index],
                  has_labels=has_labels[document_index], document_index=document_index)

