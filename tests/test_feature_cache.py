"""The TFRecord feature cache: reuse while the inputs are unchanged, rebuild on damage."""

import os

import numpy as np
import pytest

import feature_cache
import fileio
from processors.base import InputExample
from tests.test_features import FakeTokenizer, assert_features_equal, random_examples



def test_fingerprint_and_hash_file(tmp_path):
  assert feature_cache.fingerprint("a", 1, True) == feature_cache.fingerprint("a", 1, True)
  assert len({feature_cache.fingerprint("1"), feature_cache.fingerprint(1), feature_cache.fingerprint(True),
              feature_cache.fingerprint("a", "b"), feature_cache.fingerprint("a,b")}) == 5
  path = tmp_path / "data.txt"
  path.write_bytes(b"x" * 3_000_000)
  first = feature_cache.hash_file(str(path))
  path.write_bytes(b"x" * 2_999_999 + b"y")
  assert feature_cache.hash_file(str(path)) != first


@pytest.fixture(name="cache")
def fixture_cache(tmp_path):
  """Examples (pairs, singles, one unscored), a counting tokenizer and a cache path."""
  examples = random_examples(np.random.default_rng(0), 30, max_words=12)
  examples[3] = InputExample("unscored", "w1 w2", labels=None)
  tokenizer = FakeTokenizer()

  def load(fp="A", max_seq_length=16):
    return feature_cache.load_or_build_features(examples, tokenizer, max_seq_length,
                                           str(tmp_path / "train.tf_record"), fp)

  return load, tokenizer, tmp_path / "train.tf_record"


def test_cache_is_reused_when_fingerprint_matches(cache):
  load, tokenizer, path = cache
  built = load()
  calls = tokenizer.calls
  assert calls > 0 and path.exists() and os.path.exists(str(path) + ".json")
  reused = load()
  assert tokenizer.calls == calls
  assert_features_equal(built, reused)


def test_cache_is_rebuilt_when_inputs_change(cache):
  load, tokenizer, _ = cache
  load("A")
  calls = tokenizer.calls
  load("B")
  assert tokenizer.calls > calls
  calls = tokenizer.calls
  load("B")
  assert tokenizer.calls == calls
  rebuilt = load("B", max_seq_length=12)
  assert tokenizer.calls > calls and rebuilt.max_seq_length == 12


def truncate(path):
  data = path.read_bytes()
  path.write_bytes(data[:len(data) // 2])


def flip_a_byte(path):
  data = bytearray(path.read_bytes())
  data[len(data) // 2] ^= 0xFF
  path.write_bytes(bytes(data))


def remove_sidecar(path):
  os.remove(str(path) + ".json")


def garble_sidecar(path):
  with open(str(path) + ".json", "w", encoding="utf-8") as f:
    f.write('{"format": ')


@pytest.mark.parametrize("damage", [truncate, flip_a_byte, remove_sidecar, garble_sidecar])
def test_damaged_cache_is_rebuilt(cache, damage):
  load, tokenizer, path = cache
  built = load()
  calls = tokenizer.calls
  damage(path)
  assert_features_equal(load(), built)
  assert tokenizer.calls > calls
  calls = tokenizer.calls
  load()
  assert tokenizer.calls == calls


def test_crash_before_sidecar_leaves_no_usable_cache(cache, monkeypatch):
  load, tokenizer, _ = cache
  load("A")

  def crash(path, text):
    raise KeyboardInterrupt

  with monkeypatch.context() as patch:
    patch.setattr(fileio, "atomic_write_text", crash)
    with pytest.raises(KeyboardInterrupt):
      load("B")
  # The record on disk is now B's: A's sidecar must not vouch for it.
  calls = tokenizer.calls
  load("A")
  assert tokenizer.calls > calls
