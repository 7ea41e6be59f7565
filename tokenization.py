"""WordPiece tokenization, token for token and id for id the same as Google's BERT.

A fine-tuned model only works on the ids it was pre-trained with, so everything here reproduces
Google's `tokenization.py` exactly, including its quirks: every non-alphanumeric ASCII character
counts as punctuation, lower-casing comes before accent stripping, and "[CLS]" or "[SEP]" written
in a text are split like any other word. What differs on purpose is the handling of mistakes: a
missing or malformed vocab file or a casing flag that contradicts the checkpoint raises a
`UserError` that says what to fix.

`FullTokenizer.tokenize_batch` is a faster route to the same ids through the Rust `tokenizers`
library. That library's BERT pipeline disagrees with Google's on some characters (its Unicode
tables are of another version, it drops private-use characters, it lower-cases a final capital
sigma to 'σ' where Python writes 'ς'), so a text takes the Rust route only when every one of its
characters is on a list checked, in this process, to give Google's words; any other text goes
through the Python tokenizer.
"""

import os
import re
import unicodedata

from errors import UserError, file_error

try:
  import tokenizers
except ImportError:  # The Python path alone gives the same ids, only slower.
  tokenizers = None

# A vocab that lacks these cannot tokenize unknown words or frame an input for BERT.
REQUIRED_TOKENS = ("[UNK]", "[CLS]", "[SEP]")

# Google refuses to split words longer than this and maps them to "[UNK]" whole.
MAX_INPUT_CHARS_PER_WORD = 200

# Checkpoint folder names of Google's released models, by the casing they were trained with.
_LOWERCASED_MODELS = (
    "uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12", "multilingual_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12")
_CASED_MODELS = (
    "cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12")

# Characters that may go through the Rust tokenizer, as (first, last) code points. Each is still
# checked at run time (`_verified_fast_chars`) against the Python tokenizer and dropped if the
# installed `tokenizers` treats it differently. Capital sigma is left out because Python
# lower-cases it by its context and Rust does not. Checking single characters is enough because
# every other step is per character, except NFD's reordering of combining marks, and every mark
# that NFD can reorder here is a nonspacing one ("Mn") that both sides strip when lower-casing
# (and neither reorders when not).
_FAST_PATH_RANGES = (
    (0x0000, 0x02FF),  # ASCII, Latin-1, Latin Extended-A and -B, IPA, spacing modifiers.
    (0x0300, 0x036F),  # Combining diacritical marks: accents typed in decomposed form.
    (0x0370, 0x03A2),  # Greek, up to capital sigma...
    (0x03A4, 0x03FF),  # ...and after it.
    (0x0400, 0x04FF),  # Cyrillic.
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese).
    (0x2000, 0x206F),  # General punctuation: typographic quotes, dashes, zero-width characters.
    (0x20A0, 0x20BF),  # Currency symbols.
    (0x2100, 0x214F),  # Letterlike symbols (™, ℃, the Kelvin and Ångström signs).
)

# do_lower_case -> frozenset of the characters verified for the Rust path in this process.
_fast_chars_cache = {}


def convert_to_unicode(text):
  """Returns `text` as a `str`, decoding `bytes` as UTF-8 and dropping undecodable bytes."""
  if isinstance(text, str):
    return text
  if isinstance(text, bytes):
    return text.decode("utf-8", "ignore")
  raise ValueError(f"Unsupported string type: {type(text)}")


def _read_bytes(path):
  """Returns the bytes of a local file, or of a remote one (gs://...) through TensorFlow."""
  if "://" not in path:
    with open(path, "rb") as f:
      return f.read()
  # TensorFlow takes seconds to import: only a remote vocab pays for it.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    with tf.io.gfile.GFile(path, "rb") as f:
      return f.read()
  except tf.errors.OpError as e:
    raise OSError(e.message) from e


def load_vocab(vocab_file):
  """Reads a WordPiece vocab file, one token per line, as Google's `load_vocab` reads it.

  The id of a token is the number of distinct tokens before it; a repeated token keeps its first
  id. Like TensorFlow's line reader, which Google's code uses, lines end at "\\n" only and every
  "\\r" is dropped; each line is then stripped of surrounding whitespace.

  Args:
    vocab_file: path of the vocab file (local, or any URL `tf.io.gfile` reads).

  Returns:
    A dict from token (str) to id (int), in file order.

  Raises:
    UserError: the file cannot be read, or a line is not UTF-8.
  """
  try:
    data = _read_bytes(vocab_file)
  except OSError as e:
    raise file_error(vocab_file, None,
                     f"cannot read the vocab file: {e.strerror or e}") from None
  lines = data.split(b"\n")
  if not lines[-1]:  # The text after a final newline is not a line.
    lines.pop()
  vocab = {}
  for line_number, line in enumerate(lines, start=1):
    try:
      token = line.replace(b"\r", b"").decode("utf-8").strip()
    except UnicodeDecodeError as e:
      raise file_error(
          vocab_file, line_number,
          f"not UTF-8 (byte 0x{line[e.start]:02x} at byte {e.start + 1} of the line); "
          "a vocab file must be UTF-8 text") from None
    if token not in vocab:
      vocab[token] = len(vocab)
  return vocab


def validate_case_matches_checkpoint(do_lower_case, init_checkpoint):
  """Checks `--do_lower_case` against the casing that Google's checkpoint name implies.

  Casing is not recorded in `bert_config.json`, so, like Google, this only recognizes the folder
  names of Google's released models (`.../uncased_L-12_H-768_A-12/bert_model.ckpt`) and says
  nothing about other paths. Unlike Google, it also recognizes the folder itself
  (`.../uncased_L-12_H-768_A-12`), a form `--init_checkpoint` accepts in this port.

  Args:
    do_lower_case: bool, the value of `--do_lower_case`.
    init_checkpoint: str or None, the value of `--init_checkpoint`.

  Raises:
    UserError: the checkpoint is a known model trained with the other casing.
  """
  if not init_checkpoint:
    return
  match = re.match("^.*?([A-Za-z0-9_-]+)/bert_model.ckpt", init_checkpoint)
  if match:
    model_name = match.group(1)
  else:
    model_name = os.path.basename(init_checkpoint.rstrip("/"))
  if model_name in _LOWERCASED_MODELS and not do_lower_case:
    casing, flag = "lower-cased (uncased)", "--do_lower_case=True"
  elif model_name in _CASED_MODELS and do_lower_case:
    casing, flag = "cased", "--do_lower_case=False"
  else:
    return
  raise UserError(
      f"--do_lower_case={bool(do_lower_case)} does not match --init_checkpoint="
      f"{init_checkpoint}: Google's model {model_name} was pre-trained on {casing} text, so "
      f"pass {flag}")


def _is_whitespace(char):
  """Whether Google's tokenizer turns `char` into a word break."""
  # Tab, newline and carriage return are control characters to Unicode, but breaks in text.
  return char in " \t\n\r" or unicodedata.category(char) == "Zs"


def _is_control(char):
  """Whether Google's tokenizer deletes `char` (a control or format character)."""
  if char in "\t\n\r":
    return False
  return unicodedata.category(char) in ("Cc", "Cf")


def _is_punctuation(char):
  """Whether `char` becomes a token of its own: Unicode punctuation or any ASCII symbol."""
  cp = ord(char)
  # Google counts "$", "^", "`", "+" and the other ASCII symbols as punctuation too.
  if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
    return True
  return unicodedata.category(char).startswith("P")


def _is_chinese_char(cp):
  """Whether code point `cp` is a CJK ideograph, which Google makes a word of its own.

  Hangul, Hiragana and Katakana are not in these blocks: they are written with spaces between
  words and are split like any other script.
  """
  return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF or
          0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B820 <= cp <= 0x2CEAF or
          0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def _clean_char(char):
  """Returns what Google's text cleaning and CJK spacing make of one character (a str)."""
  cp = ord(char)
  if cp == 0 or cp == 0xFFFD or _is_control(char):
    return ""
  if _is_whitespace(char):
    return " "
  if _is_chinese_char(cp):
    return f" {char} "
  return char


class _CleaningTable(dict):
  """A `str.translate` table that works out each code point's entry when first asked."""

  def __missing__(self, cp):
    self[cp] = _clean_char(chr(cp))
    return self[cp]


class BasicTokenizer:
  """Splits text into words: cleaning, CJK and punctuation splitting, optional lower-casing."""

  def __init__(self, do_lower_case=True):
    """Constructs a BasicTokenizer.

    Args:
      do_lower_case: bool; lower-case the text and strip its accents (for uncased models).
    """
    self.do_lower_case = do_lower_case
    self._cleaning_table = _CleaningTable()

  def tokenize(self, text):
    """Returns the words of `text` (str or UTF-8 bytes), as a list of str."""
    text = convert_to_unicode(text).translate(self._cleaning_table)
    words = []
    for token in text.split():
      if self.do_lower_case:
        token = _strip_accents(token.lower())
      words.extend(_split_on_punctuation(token))
    # Lower-casing can produce whitespace or leave a word empty: split once more, as Google does.
    return " ".join(words).split()


def _strip_accents(text):
  """Returns `text` decomposed (NFD) without its nonspacing marks ("é" -> "e")."""
  if text.isascii():
    return text
  return "".join(c for c in unicodedata.normalize("NFD", text)
                 if unicodedata.category(c) != "Mn")


def _split_on_punctuation(text):
  """Splits `text` (str without whitespace) so that each punctuation character stands alone."""
  if text.isalnum():
    return [text]
  output = []
  start = 0
  for i, char in enumerate(text):
    if _is_punctuation(char):
      if start < i:
        output.append(text[start:i])
      output.append(char)
      start = i + 1
  if start < len(text):
    output.append(text[start:])
  return output


class WordpieceTokenizer:
  """Splits words into the longest pieces the vocab holds, left to right."""

  def __init__(self, vocab, unk_token="[UNK]", max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD):
    """Constructs a WordpieceTokenizer.

    Args:
      vocab: dict (or other container) of the known tokens; a piece that continues a word is
        stored with a "##" prefix.
      unk_token: str, what a word that cannot be pieced together becomes.
      max_input_chars_per_word: int; a longer word becomes `unk_token` without being split.
    """
    self.vocab = vocab
    self.unk_token = unk_token
    self.max_input_chars_per_word = max_input_chars_per_word

  def tokenize(self, text):
    """Returns the word pieces of `text`, whose words were already split by BasicTokenizer.

    Greedy longest match first: "unaffable" becomes ["un", "##aff", "##able"]. A word with a
    part that no piece matches becomes a single `unk_token`.

    Args:
      text: str or UTF-8 bytes; whitespace separates words.

    Returns:
      A list of str, each a token of the vocab.
    """
    output = []
    for word in convert_to_unicode(text).split():
      pieces = None
      if len(word) <= self.max_input_chars_per_word:
        pieces = self._split_word(word)
      output.extend(pieces or [self.unk_token])
    return output

  def _split_word(self, word):
    """Returns the pieces of `word` (a non-empty str), or None where some part matches none."""
    pieces = []
    start = 0
    while start < len(word):
      for end in range(len(word), start, -1):
        piece = word[start:end] if start == 0 else "##" + word[start:end]
        if piece in self.vocab:
          pieces.append(piece)
          start = end
          break
      else:
        return None
    return pieces


class FullTokenizer:
  """Text to WordPiece tokens and ids, as Google's BERT computes them.

  Attributes:
    vocab: dict, token (str) -> id (int).
    inv_vocab: dict, id (int) -> token (str).
    do_lower_case: bool, whether text is lower-cased and stripped of accents.
  """

  def __init__(self, vocab_file, do_lower_case=True):
    """Loads the vocab.

    Args:
      vocab_file: str, path of the checkpoint's `vocab.txt`.
      do_lower_case: bool; True for uncased models.

    Raises:
      UserError: the vocab cannot be read, is not UTF-8 or lacks [UNK], [CLS] or [SEP].
    """
    self.vocab = load_vocab(vocab_file)
    for token in REQUIRED_TOKENS:
      if token not in self.vocab:
        raise file_error(
            vocab_file, None,
            f"the vocab has no {token} token; is this the vocab.txt of a BERT checkpoint?")
    self.inv_vocab = {i: token for token, i in self.vocab.items()}
    self.do_lower_case = do_lower_case
    self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case)
    self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
    self._rust_tokenizer = None  # Built by the first tokenize_batch call.
    self._fast_chars = None

  def tokenize(self, text):
    """Returns the WordPiece tokens (list of str) of `text` (str or UTF-8 bytes)."""
    return self.wordpiece_tokenizer.tokenize(" ".join(self.basic_tokenizer.tokenize(text)))

  def convert_tokens_to_ids(self, tokens):
    """Returns the ids (list of int) of `tokens`; KeyError for a token not in the vocab."""
    return [self.vocab[token] for token in tokens]

  def convert_ids_to_tokens(self, ids):
    """Returns the tokens (list of str) of `ids`; KeyError for an id not in the vocab."""
    return [self.inv_vocab[i] for i in ids]

  def tokenize_batch(self, texts):
    """Returns the token ids of each text: `convert_tokens_to_ids(tokenize(text))`, but faster.

    Texts made only of characters verified for the Rust `tokenizers` library go through it, in
    parallel; the others, and all texts when the library is not installed, go through `tokenize`.

    Args:
      texts: iterable of str or UTF-8 bytes.

    Returns:
      A list with, for each text in order, its ids as a list of int (no [CLS] or [SEP] added,
      nothing truncated).
    """
    texts = [convert_to_unicode(text) for text in texts]
    if tokenizers is None:
      return [self.convert_tokens_to_ids(self.tokenize(text)) for text in texts]
    if self._rust_tokenizer is None:
      self._rust_tokenizer = _rust_tokenizer(self.vocab, self.do_lower_case)
      self._fast_chars = _verified_fast_chars(self.do_lower_case)
    fast_chars = self._fast_chars
    ids = [None] * len(texts)
    fast_indices = []
    for i, text in enumerate(texts):
      if fast_chars.issuperset(text):
        fast_indices.append(i)
      else:
        ids[i] = self.convert_tokens_to_ids(self.tokenize(text))
    # encode_batch_fast (tokenizers 0.20 on) skips the character offsets that we do not use.
    encode = getattr(self._rust_tokenizer, "encode_batch_fast", self._rust_tokenizer.encode_batch)
    encodings = encode([texts[i] for i in fast_indices], add_special_tokens=False)
    for i, encoding in zip(fast_indices, encodings):
      ids[i] = encoding.ids
    return ids


def _rust_normalizer(do_lower_case):
  """Returns the `tokenizers` normalizer that mirrors Google's cleaning and casing."""
  return tokenizers.normalizers.BertNormalizer(
      clean_text=True, handle_chinese_chars=True, strip_accents=do_lower_case,
      lowercase=do_lower_case)


def _rust_tokenizer(vocab, do_lower_case):
  """Returns a `tokenizers.Tokenizer` for `vocab` that adds no special tokens and truncates not.

  The vocab is passed as the dict Google's loader built rather than as the file: the library's
  own reader strips lines differently and gives a repeated token its last id, not its first.
  """
  tokenizer = tokenizers.Tokenizer(tokenizers.models.WordPiece(
      vocab, unk_token="[UNK]", continuing_subword_prefix="##",
      max_input_chars_per_word=MAX_INPUT_CHARS_PER_WORD))
  tokenizer.normalizer = _rust_normalizer(do_lower_case)
  tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
  return tokenizer


def _verified_fast_chars(do_lower_case):
  """Returns the frozenset of `_FAST_PATH_RANGES` characters that split the same in both paths.

  Each character is tried inside a word, at the end of one (where context-dependent
  lower-casing would show) and alone; its words from the Rust normalizer and pre-tokenizer must
  equal BasicTokenizer's. Word pieces need no check: both use the same vocab dict and the same
  greedy algorithm. Takes some tens of milliseconds, once per process and casing.
  """
  if do_lower_case not in _fast_chars_cache:
    basic = BasicTokenizer(do_lower_case=do_lower_case)
    normalizer = _rust_normalizer(do_lower_case)
    pre_tokenizer = tokenizers.pre_tokenizers.BertPreTokenizer()
    verified = set()
    for first, last in _FAST_PATH_RANGES:
      for cp in range(first, last + 1):
        char = chr(cp)
        if _reorderable_marks(char):
          continue
        probe = f"a{char}b a{char} {char}"
        rust_words = [word for word, _ in
                      pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(probe))]
        if rust_words == basic.tokenize(probe):
          verified.add(char)
    _fast_chars_cache[do_lower_case] = frozenset(verified)
  return _fast_chars_cache[do_lower_case]


def _reorderable_marks(char):
  """Whether NFD may move a mark of `char` or of its lower case that is not nonspacing ("Mn").

  Such a mark survives accent stripping in a position that depends on the neighbouring
  characters, which a check of `char` alone would not see.
  """
  for form in (char, char.lower()):
    for part in unicodedata.normalize("NFD", form):
      if unicodedata.combining(part) and unicodedata.category(part) != "Mn":
        return True
  return False
