"""What Google's BasicTokenizer does to each character, read off the tokenizer itself.

BasicTokenizer cleans a text (deletes control characters, turns whitespace into spaces, puts
spaces around CJK ideographs), splits it at whitespace, lower-cases each word and strips its
accents (uncased models only) and splits off punctuation. Apart from the two exceptions below,
what it makes of a text is what it makes of each character, concatenated: every step works
character by character, and a word break is a character turned into a space or into a word of
its own. So a table from each character to its text, with a space for each break, lets a graph
tokenize with one lookup per character and a join (`text_graph.py`).

The tables are not written by hand: they are probed from `tokenization.BasicTokenizer` in this
process, so they follow this Python's Unicode tables and each of Google's quirks (ASCII symbols
counting as punctuation, lower-casing before accent stripping, CJK compatibility ideographs
decomposed in uncased models, ...).

The two exceptions, in uncased models only:
  * Final sigma. Python lower-cases a capital sigma to 'ς' at the end of a word and to 'σ'
    elsewhere, judged by the nearest letters on either side that are not case-ignorable.
    `sigma_classes` gives each character's part in that rule, for the graph to apply it.
  * Canonical reordering. Accent stripping decomposes the word (NFD), which sorts runs of
    combining marks by combining class, then deletes the nonspacing marks ("Mn"). The few
    combining marks that are not nonspacing survive, and two of them of
    different classes in one run come out sorted by Google, but in input order from the table.
    The ids still agree when no vocab token holds such a mark (the word is then "[UNK]" either
    way), which `reorderable_marks_in` checks.
"""

import functools
import unicodedata

import tokenization

# Probes are joined with this private-use character: BasicTokenizer leaves it as it is, no
# character lower-cases or decomposes to it, and it is neither cased nor a combining mark, so
# what each probe becomes can be cut back out of the output (see `_probe`).
_SEPARATOR = "\ue000"
_CAPITAL_SIGMA = "\u03a3"
_FINAL_SIGMA = "\u03c2"

# Code points and what the graph does with them, for `sigma_classes`.
OTHER, CASED, TRANSPARENT = 0, 1, 2


def _code_points_to_probe():
  """Returns every character BasicTokenizer may change, as a list of str.

  That is every assigned character, and the unassigned and private-use code points in Google's
  CJK ranges, which it spaces like ideographs. Other unassigned and private-use code points have
  no case, no decomposition and no category it acts on, so they stay as they are (a sample is
  checked in the tests); leaving out these 970,000 code points saves seconds per table.
  """
  return [chr(cp) for cp in range(0x110000)
          if cp != ord(_SEPARATOR) and
          (unicodedata.category(chr(cp)) not in ("Cn", "Co", "Cs") or
           tokenization._is_chinese_char(cp))]  # pylint: disable=protected-access


@functools.lru_cache(maxsize=None)
def _probed_characters():
  return _code_points_to_probe()


def _probe(basic_tokenizer, chars):
  """Returns what `basic_tokenizer` makes of each character of `chars`, as a list of str.

  All characters go through in one call, each between two separators; the words are joined by
  single spaces, so a character's text has a space wherever it breaks a word. Its text is then
  what lies between its two separators.
  """
  probe = _SEPARATOR + _SEPARATOR.join(chars) + _SEPARATOR
  pieces = " ".join(basic_tokenizer.tokenize(probe)).split(_SEPARATOR)
  if len(pieces) != len(chars) + 2 or pieces[0] or pieces[-1]:
    raise AssertionError("the probe separator did not survive BasicTokenizer")
  return pieces[1:-1]


@functools.lru_cache(maxsize=None)
def character_table(do_lower_case):
  """Returns {code point: the text BasicTokenizer makes of that character} where it differs.

  A space in the text is a word break: "" for a deleted character, " " for whitespace,
  " ! " for punctuation, "e" for "É" in uncased models. Capital sigma gets its non-final form.

  Args:
    do_lower_case: bool, the casing of the model.

  Returns:
    dict from int to str; characters not in it are left as they are.
  """
  chars = _probed_characters()
  texts = _probe(tokenization.BasicTokenizer(do_lower_case=do_lower_case), chars)
  return {ord(c): text for c, text in zip(chars, texts) if text != c}


@functools.lru_cache(maxsize=None)
def sigma_classes():
  """Returns {code point: CASED or TRANSPARENT} for Python's final-sigma rule; others are OTHER.

  A capital sigma becomes final when the nearest character before it that is not TRANSPARENT is
  CASED, and the nearest one after it that is not TRANSPARENT is not CASED (or there is none).
  TRANSPARENT is what Python's rule skips (case-ignorable characters: accents, apostrophes,
  modifier letters) plus what cleaning deletes before Python lower-cases; CASED is a cased letter
  that is not case-ignorable. Both are read off `str.lower`, the same way as `character_table`.
  """
  chars = _probed_characters()

  def sigma_is_final(before):
    lowered = _SEPARATOR.join(before + c + _CAPITAL_SIGMA for c in chars).lower()
    return [text.endswith(_FINAL_SIGMA) for text in lowered.split(_SEPARATOR)]

  # After a space, a sigma is final only if the character between is cased and not skipped;
  # after a capital A, also if it is skipped.
  stops_as_cased = sigma_is_final(" ")
  after_cased = sigma_is_final("A")
  deleted = {cp for cp, text in character_table(False).items() if not text}
  classes = {cp: TRANSPARENT for cp in deleted}
  for c, cased, final in zip(chars, stops_as_cased, after_cased):
    if ord(c) in deleted:
      continue
    if cased:
      classes[ord(c)] = CASED
    elif final:
      classes[ord(c)] = TRANSPARENT
  return classes


def reorderable_marks_in(vocab):
  """Returns the sorted vocab tokens that hold a combining mark that is not nonspacing.

  Those are the marks whose order canonical reordering may change after accent stripping (see
  the module docstring): 25 characters in Unicode 14, such as the Hangul tone marks U+302E and
  U+302F and the musical stems U+1D165 and U+1D16D.
  """
  return sorted(token for token in vocab
                if any(unicodedata.combining(c) and unicodedata.category(c) != "Mn"
                       for c in token))
