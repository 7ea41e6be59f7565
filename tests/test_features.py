"""Tests for features.py: examples to model inputs, as Google's `convert_single_example`."""

from hypothesis import given, settings, strategies as st
import numpy as np
import pytest

from errors import UserError
import features
from processors.base import InputExample

WORDS = [f"w{i}" for i in range(1, 30)]


class FakeTokenizer:
  """Whitespace tokenization over a small vocab, with `tokenization.FullTokenizer`'s interface.

  `calls` counts `tokenize_batch` calls, which shows whether features were rebuilt.
  """

  def __init__(self):
    self.vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + WORDS)}
    self.calls = 0

  def tokenize(self, text):
    return text.split()

  def convert_tokens_to_ids(self, tokens):
    return [self.vocab.get(t, self.vocab["[UNK]"]) for t in tokens]

  def tokenize_batch(self, texts):
    self.calls += 1
    return [self.convert_tokens_to_ids(self.tokenize(t)) for t in texts]


def google_truncate_seq_pair(tokens_a, tokens_b, max_length):
  """Google's `_truncate_seq_pair`, verbatim in behaviour: pops in place."""
  while True:
    total_length = len(tokens_a) + len(tokens_b)
    if total_length <= max_length:
      break
    if len(tokens_a) > len(tokens_b):
      tokens_a.pop()
    else:
      tokens_b.pop()


def google_convert(example, tokenizer, max_seq_length):
  """Google's `convert_single_example`: returns (input_ids, input_mask, segment_ids) lists."""
  tokens_a = tokenizer.tokenize(example.text_a)
  tokens_b = None
  if example.text_b:
    tokens_b = tokenizer.tokenize(example.text_b)
  if tokens_b:
    google_truncate_seq_pair(tokens_a, tokens_b, max_seq_length - 3)
  elif len(tokens_a) > max_seq_length - 2:
    tokens_a = tokens_a[0:(max_seq_length - 2)]
  tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
  segment_ids = [0] * len(tokens)
  if tokens_b:
    tokens += tokens_b + ["[SEP]"]
    segment_ids += [1] * (len(tokens_b) + 1)
  input_ids = tokenizer.convert_tokens_to_ids(tokens)
  input_mask = [1] * len(input_ids)
  while len(input_ids) < max_seq_length:
    input_ids.append(0)
    input_mask.append(0)
    segment_ids.append(0)
  return input_ids, input_mask, segment_ids


def words(*indices):
  return " ".join(f"w{i}" for i in indices)


def random_examples(rng, n, max_words=40, num_labels=3, pair_share=0.5):
  examples = []
  for i in range(n):
    text_a = words(*rng.integers(1, 30, size=rng.integers(0, max_words)))
    text_b = None
    if rng.random() < pair_share:
      text_b = words(*rng.integers(1, 30, size=rng.integers(0, max_words)))
    examples.append(InputExample(guid=f"id{i}", text_a=text_a, text_b=text_b,
                                 labels=tuple(rng.integers(0, 2, size=num_labels))))
  return examples


def assert_features_equal(x, y):
  assert x.guids == y.guids
  for name in ("input_ids", "segment_ids", "lengths", "labels", "has_labels", "document_index"):
    np.testing.assert_array_equal(getattr(x, name), getattr(y, name), err_msg=name)
    assert getattr(x, name).dtype == getattr(y, name).dtype, name


# Conversion.


def test_single_text_is_truncated_and_padded():
  tokenizer = FakeTokenizer()
  examples = [InputExample("0", words(1, 2, 3, 4, 5)), InputExample("1", words(7))]
  f = features.convert_examples(examples, tokenizer, max_seq_length=6, num_labels=2)
  cls, sep = 2, 3
  w = tokenizer.vocab
  np.testing.assert_array_equal(f.input_ids, [[cls, w["w1"], w["w2"], w["w3"], w["w4"], sep],
                                              [cls, w["w7"], sep, 0, 0, 0]])
  np.testing.assert_array_equal(f.segment_ids, np.zeros([2, 6]))
  np.testing.assert_array_equal(f.lengths, [6, 3])
  np.testing.assert_array_equal(f.input_mask, [[1] * 6, [1, 1, 1, 0, 0, 0]])
  assert f.input_ids.dtype == f.segment_ids.dtype == f.lengths.dtype == np.int32


@pytest.mark.parametrize("len_a, len_b, max_seq_length, keep_a, keep_b", [
    (6, 2, 10, 5, 2),  # The longer one alone is cut.
    (4, 4, 8, 3, 2),  # Ties pop from b first, so a keeps the odd token.
    (1, 9, 8, 1, 4),
    (3, 2, 10, 3, 2),  # Fits: untouched, padded.
    (3, 2, 4, 1, 0),  # b cut to nothing: no second [SEP], as Google's `if tokens_b` after.
])
def test_pair_is_truncated_longest_first(len_a, len_b, max_seq_length, keep_a, keep_b):
  tokenizer = FakeTokenizer()
  a, b = list(range(1, len_a + 1)), list(range(11, 11 + len_b))
  f = features.convert_examples([InputExample("0", words(*a), words(*b))], tokenizer,
                                max_seq_length)
  expected = ["[CLS]"] + [f"w{i}" for i in a[:keep_a]] + ["[SEP]"]
  if keep_b:
    expected += [f"w{i}" for i in b[:keep_b]] + ["[SEP]"]
  length = len(expected)
  np.testing.assert_array_equal(
      f.input_ids[0], tokenizer.convert_tokens_to_ids(expected) + [0] * (max_seq_length - length))
  np.testing.assert_array_equal(
      f.segment_ids[0], [0] * (keep_a + 2) + [1] * (length - keep_a - 2) +
      [0] * (max_seq_length - length))
  assert f.lengths[0] == length


@pytest.mark.parametrize("text_b", [None, "", "   "])
def test_text_b_without_tokens_gives_a_single_text(text_b):
  f = features.convert_examples([InputExample("0", words(1, 2, 3, 4), text_b)], FakeTokenizer(),
                                max_seq_length=5, num_labels=1)
  np.testing.assert_array_equal(f.input_ids[0], [2, 4, 5, 6, 3])
  np.testing.assert_array_equal(f.segment_ids[0], np.zeros(5))


@given(st.integers(0, 60), st.integers(0, 60), st.integers(0, 100))
def test_truncated_pair_lengths_match_googles_loop(len_a, len_b, budget):
  tokens_a, tokens_b = list(range(len_a)), list(range(len_b))
  google_truncate_seq_pair(tokens_a, tokens_b, budget)
  assert features.truncated_pair_lengths(len_a, len_b, budget) == (len(tokens_a), len(tokens_b))


texts = st.lists(st.sampled_from(WORDS), max_size=20).map(" ".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(texts, st.one_of(st.none(), st.just(""), texts)), min_size=1,
                max_size=8),
       st.integers(3, 24))
def test_convert_matches_google(pairs, max_seq_length):
  tokenizer = FakeTokenizer()
  examples = [InputExample(str(i), a, b) for i, (a, b) in enumerate(pairs)]
  f = features.convert_examples(examples, tokenizer, max_seq_length, num_labels=1)
  for i, example in enumerate(examples):
    input_ids, input_mask, segment_ids = google_convert(example, tokenizer, max_seq_length)
    np.testing.assert_array_equal(f.input_ids[i], input_ids)
    np.testing.assert_array_equal(f.input_mask[i], input_mask)
    np.testing.assert_array_equal(f.segment_ids[i], segment_ids)


def test_labels_and_unscored_rows():
  examples = [InputExample("a", "w1", labels=(0, 1, 1)), InputExample("b", "w2"),
              InputExample("c", "w3", labels=(1, 0, 0))]
  f = features.convert_examples(examples, FakeTokenizer(), max_seq_length=8)
  np.testing.assert_array_equal(f.labels, [[0, 1, 1], [0, 0, 0], [1, 0, 0]])
  assert f.labels.dtype == np.float32
  np.testing.assert_array_equal(f.has_labels, [True, False, True])
  assert f.guids == ("a", "b", "c")


def test_unlabelled_examples_take_num_labels():
  f = features.convert_examples([InputExample("a", "w1")], FakeTokenizer(), 8, num_labels=4)
  assert f.labels.shape == (1, 4)


@pytest.mark.parametrize("text_b, max_seq_length", [(None, 1), ("w2", 2)])
def test_max_seq_length_too_small_is_a_user_error(text_b, max_seq_length):
  with pytest.raises(UserError, match="max_seq_length"):
    features.convert_examples([InputExample("0", "w1", text_b)], FakeTokenizer(), max_seq_length)
