"""Google's tokenization and feature packing as TensorFlow ops, for a model that takes raw text.

`TextEncoder` turns a batch of strings (and, for sentence pairs, a second batch) into the
`input_ids`, `input_mask` and `segment_ids` that `tokenization.FullTokenizer` and
`features.convert_examples` give, id for id, with core TensorFlow ops only: a SavedModel built on
it loads in any TensorFlow (TF Serving, `saved_model_cli`, C++), with no custom-op library.

The steps, each mirroring Google's:
  1. UTF-8 decoding; invalid bytes are dropped, as Google's `convert_to_unicode` drops them.
  2. Uncased models: capital sigmas that Python would lower-case to final 'ς' become 'ς'.
  3. Each character becomes its text in `char_tables.character_table` (cleaning, lower-casing,
     accent stripping, a space for every word break), one hash-table lookup per character.
  4. Words are split at spaces; a word longer than Google's 200 characters becomes "[UNK]".
  5. WordPiece: greedy longest match first, a word with an unmatched part becoming one "[UNK]".
  6. `[CLS] a [SEP]` or `[CLS] a [SEP] b [SEP]`, truncated longest-first as Google's
     `_truncate_seq_pair` does.
Where the result can differ from Google's (a run of two rare combining marks in uncased
models) is said in `char_tables`.
"""

import tensorflow as tf

import char_tables

_CAPITAL_SIGMA = 0x3A3
_FINAL_SIGMA = 0x3C2


class TextEncoder(tf.Module):
  """Strings to BERT inputs, as `FullTokenizer` plus `features.convert_examples` compute them.

  Attributes:
    max_seq_length: int, the most tokens an input may have, [CLS] and [SEP] included.
    do_lower_case: bool.
  """

  def __init__(self, tokenizer, max_seq_length, name=None):
    """Builds the lookup tables.

    Args:
      tokenizer: `tokenization.FullTokenizer`; its vocab, casing, unknown token and word-length
        limit are copied into the graph.
      max_seq_length: int >= 3.
      name: optional module name.
    """
    super().__init__(name=name)
    self.max_seq_length = max_seq_length
    self.do_lower_case = tokenizer.do_lower_case
    self._cls_id, self._sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    wordpiece = tokenizer.wordpiece_tokenizer
    self._unk_id = tokenizer.vocab[wordpiece.unk_token]
    self._max_chars_per_word = wordpiece.max_input_chars_per_word
    # Longer substrings cannot be in the vocab, so they are never looked up.
    self._max_piece_chars = max(len(t[2:]) if t.startswith("##") else len(t)
                                for t in tokenizer.vocab)
    self._vocab = _table(list(tokenizer.vocab), list(tokenizer.vocab.values()), tf.string, -1)

    chars = char_tables.character_table(self.do_lower_case)
    self._char_texts = tf.constant(list(chars.values()), tf.string)
    self._char_index = _table(list(chars), range(len(chars)), tf.int64, -1)
    self._sigma_class = None
    if self.do_lower_case:
      classes = char_tables.sigma_classes()
      self._sigma_class = _table(list(classes), list(classes.values()), tf.int64,
                                 char_tables.OTHER)

  def __call__(self, text_a, text_b=None):
    """Returns the BERT inputs of a batch of texts or text pairs.

    Args:
      text_a: string [batch], UTF-8.
      text_b: string [batch] or None; an empty b (or one without tokens) makes a single-text
        input, as in Google's code.

    Returns:
      dict of int32 [batch, width], width the longest input (at most `max_seq_length`):
      `input_ids`, `input_mask`, `segment_ids`.
    """
    ids_b = None if text_b is None else self.token_ids(text_b)
    return pack(self.token_ids(text_a), ids_b, self.max_seq_length, self._cls_id, self._sep_id)

  def words(self, text):
    """Returns BasicTokenizer's words: string RaggedTensor [batch, (words)]."""
    code_points = tf.strings.unicode_decode(text, "UTF-8", errors="ignore")
    if self.do_lower_case:
      code_points = self._mark_final_sigmas(code_points)
    flat = code_points.flat_values
    chars = tf.strings.unicode_encode(flat[:, None], "UTF-8")
    index = self._char_index.lookup(tf.cast(flat, tf.int64))
    texts = tf.where(index >= 0, tf.gather(self._char_texts, tf.maximum(index, 0)), chars)
    # Every word break is now a plain space: no other whitespace is left.
    return tf.strings.split(tf.strings.reduce_join(code_points.with_flat_values(texts), axis=1))

  def token_ids(self, text):
    """Returns the word-piece ids of each text: int64 RaggedTensor [batch, (tokens)]."""
    return self._wordpiece(self.words(text))

  def _mark_final_sigmas(self, code_points):
    """Replaces each capital sigma that Python lower-cases to 'ς' by 'ς'.

    Args:
      code_points: int32 RaggedTensor [batch, (chars)].

    Returns:
      The same, with those sigmas replaced.
    """
    flat = code_points.flat_values
    n = tf.size(flat, out_type=tf.int64)
    # A sentinel OTHER character at index n keeps every gather below in range.
    classes = tf.concat([self._sigma_class.lookup(tf.cast(flat, tf.int64)),
                         [char_tables.OTHER]], axis=0)
    is_stop = classes[:-1] != char_tables.TRANSPARENT
    stops = tf.concat([tf.where(is_stop)[:, 0], [n]], axis=0)
    stops_before = tf.cumsum(tf.cast(is_stop, tf.int64), exclusive=True)
    row = code_points.value_rowids()
    row_start = tf.gather(code_points.row_starts(), row)
    row_limit = tf.gather(code_points.row_limits(), row)
    previous = tf.gather(stops, tf.maximum(stops_before - 1, 0))
    following = tf.gather(stops, stops_before + tf.cast(is_stop, tf.int64))
    cased_before = ((stops_before > 0) & (previous >= row_start) &
                    (tf.gather(classes, previous) == char_tables.CASED))
    cased_after = (following < row_limit) & (tf.gather(classes, following) == char_tables.CASED)
    final = (flat == _CAPITAL_SIGMA) & cased_before & ~cased_after
    return code_points.with_flat_values(tf.where(final, _FINAL_SIGMA, flat))

  def _wordpiece(self, words):
    """Google's WordPiece on every word, greedy longest match first.

    A word in the vocab is its own piece. In the others, every substring that could be a piece
    (at most the longest vocab token) is looked up at once, which gives the longest piece
    starting at each character. A word's pieces then start
    where the chain of longest pieces from its first character passes; the chain is followed by
    pointer doubling, a fixed number of vectorised steps. A word whose chain reaches a character
    where no piece starts, or that is longer than the word-length limit, becomes one unknown
    token.

    Args:
      words: string RaggedTensor [batch, (words)].

    Returns:
      int64 RaggedTensor [batch, (tokens)].
    """
    flat_words = words.flat_values
    lengths = tf.strings.length(flat_words, unit="UTF8_CHAR")
    # Most words are a vocab token whole, which greedy matching takes at once: they need no
    # other lookup. Nor do words over the length limit.
    whole_ids = self._vocab.lookup(flat_words)
    is_whole = (whole_ids >= 0) & (lengths <= self._max_chars_per_word)
    positions = tf.ragged.range(lengths)  # [words, (chars)]: every possible piece start.
    word = positions.value_rowids()
    position = positions.flat_values
    num_starts = tf.size(position, out_type=tf.int64)
    word_is_whole = tf.gather(is_whole, word)
    longest = tf.where(word_is_whole | tf.gather(lengths > self._max_chars_per_word, word), 0,
                       tf.minimum(self._max_piece_chars, tf.gather(lengths, word) - position))
    piece_lengths = tf.ragged.range(1, longest + 1)  # [starts, (candidate pieces)].
    start = piece_lengths.value_rowids()
    piece_length = piece_lengths.flat_values
    piece_position = tf.gather(position, start)
    pieces = tf.strings.substr(tf.gather(flat_words, tf.gather(word, start)), piece_position,
                               piece_length, unit="UTF8_CHAR")
    pieces = tf.where(piece_position > 0, tf.strings.join(["##", pieces]), pieces)
    piece_ids = self._vocab.lookup(pieces)
    matched_length = tf.where(piece_ids >= 0, piece_length, 0)
    # Segments without candidates come out as the dtype's minimum: clamp to "no piece".
    best_length = tf.maximum(
        tf.math.unsorted_segment_max(matched_length, start, num_starts), 0)
    is_best = (piece_ids >= 0) & (matched_length == tf.gather(best_length, start))
    best_id = tf.math.unsorted_segment_max(tf.where(is_best, piece_ids, -1), start, num_starts)

    # Where each piece start leads: the next piece's start, or the end node (index num_starts)
    # at the word's end and where no piece starts.
    following = tf.range(num_starts) + tf.cast(best_length, tf.int64)
    successor = tf.concat([tf.where((best_length > 0) & (following < tf.gather(
        positions.row_limits(), word)), following, num_starts), [num_starts]], axis=0)
    on_chain = tf.concat([position == 0, [False]], axis=0)
    # After step k, on_chain holds the first 2^(k+1) starts of each chain and successor jumps
    # 2^(k+1) pieces; a chain has at most max_chars_per_word pieces.
    for _ in range(self._max_chars_per_word.bit_length()):
      reached = tf.math.unsorted_segment_max(tf.cast(on_chain, tf.int32), successor,
                                             num_starts + 1) > 0
      on_chain |= reached
      successor = tf.gather(successor, successor)
    is_piece = on_chain[:-1]
    failed = tf.math.unsorted_segment_max(tf.cast(is_piece & (best_length == 0), tf.int32),
                                          word, tf.size(lengths, out_type=tf.int64)) > 0
    word_failed = tf.gather(failed, word) & ~word_is_whole
    emit = tf.where(word_is_whole | word_failed, position == 0, is_piece)
    ids = tf.where(word_is_whole, tf.gather(whole_ids, word),
                   tf.where(word_failed, tf.constant(self._unk_id, tf.int64), best_id))
    example = tf.gather(words.value_rowids(), word)
    return tf.RaggedTensor.from_value_rowids(tf.boolean_mask(ids, emit),
                                             tf.boolean_mask(example, emit),
                                             nrows=words.nrows(), validate=False)


def _table(keys, values, key_dtype, default):
  """A static hash table from `keys` to int64 `values`, with `default` for other keys."""
  return tf.lookup.StaticHashTable(
      tf.lookup.KeyValueTensorInitializer(tf.constant(keys, key_dtype),
                                          tf.constant(list(values), tf.int64)),
      default_value=tf.constant(default, tf.int64))


def truncated_pair_lengths(length_a, length_b, budget):
  """`features.truncated_pair_lengths` on tensors: the tokens of a and b that Google keeps.

  Args:
    length_a, length_b: int64 [batch].
    budget: int, the most tokens both may keep together.

  Returns:
    (keep_a, keep_b), int64 [batch] each.
  """
  fits = length_a + length_b <= budget
  keep_a = tf.minimum(length_a, tf.maximum(budget - length_b, (budget + 1) // 2))
  return (tf.where(fits, length_a, keep_a), tf.where(fits, length_b, budget - keep_a))


def pack(ids_a, ids_b, max_seq_length, cls_id, sep_id):
  """Frames and truncates token ids as `features.convert_examples` does.

  Args:
    ids_a: int RaggedTensor [batch, (tokens)], the first texts' word pieces.
    ids_b: the same for the second texts, or None. A row without tokens gives a single-text
      input; so does a b that truncation cuts to nothing (then without its [SEP]), as in
      Google's code.
    max_seq_length: int.
    cls_id, sep_id: int.

  Returns:
    dict of int32 [batch, width], width the longest input: `input_ids`, `input_mask` (1 on
    tokens), `segment_ids` (1 on `b [SEP]`).
  """
  length_a = ids_a.row_lengths()
  length_b = tf.zeros_like(length_a) if ids_b is None else ids_b.row_lengths()
  pair_a, pair_b = truncated_pair_lengths(length_a, length_b, max_seq_length - 3)
  single = length_b == 0
  keep_a = tf.where(single, tf.minimum(length_a, max_seq_length - 2), pair_a)
  keep_b = tf.where(single, tf.zeros_like(pair_b), pair_b)

  def head(ids, keep):
    return tf.ragged.boolean_mask(ids, tf.ragged.range(ids.row_lengths()) < keep[:, None])

  def column(value, count):
    return tf.RaggedTensor.from_row_lengths(
        tf.fill([tf.reduce_sum(count)], tf.constant(value, tf.int64)), count, validate=False)

  batch = tf.shape(length_a, out_type=tf.int64)[0]
  one = tf.ones([batch], tf.int64)
  has_b = tf.cast(keep_b > 0, tf.int64)
  parts_a = [column(cls_id, one), head(tf.cast(ids_a, tf.int64), keep_a), column(sep_id, one)]
  parts_b = [column(sep_id, has_b)]
  if ids_b is not None:
    parts_b.insert(0, head(tf.cast(ids_b, tf.int64), keep_b))
  tokens = tf.concat(parts_a + parts_b, axis=1)
  segments = tf.concat([tf.zeros_like(p) for p in parts_a] + [tf.ones_like(p) for p in parts_b],
                       axis=1)
  # Every input has [CLS] and [SEP]; an empty batch gets that width too, which the model needs.
  shape = tf.stack([batch, tf.maximum(tf.reduce_max(tokens.row_lengths()), 2)])

  def dense(ragged):
    return tf.cast(ragged.to_tensor(shape=shape), tf.int32)

  return {"input_ids": dense(tokens), "input_mask": dense(tf.ones_like(tokens)),
          "segment_ids": dense(segments)}
