"""Shared fixtures: one tiny random BERT per test session, written by Google's own code.

Importing TensorFlow and building a model cost seconds, so every test that needs a BERT shares
the checkpoint made here: Google's `modeling.py` (run by `google_reference.py` in TF1 graph mode,
in a subprocess) initialises a 2-layer, hidden-32 model and saves it with TF1's `Saver`, which is
exactly what a user's pre-trained checkpoint looks like on disk.
"""

import json
import os
import string
import subprocess
import sys

import hypothesis
import numpy as np
import pytest

import onednn

# The product's CPU kernels (onednn.py) in every test and in the processes tests start, chosen
# before a test module imports TensorFlow: the same kernels on AVX2 as on AVX-512 CPUs.
onednn.enable()

# Hypothesis fails an example that takes over 200 ms, and a health check fails slow data
# generation: on a loaded 2-core machine correct tests would fail. Tests assert results, not speed.
hypothesis.settings.register_profile(
    "no_timing", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("no_timing")

TESTS_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(TESTS_DIR)

# The environment under which two runs of the same command on one machine give the same bits:
# kernels chosen for determinism, thread pools of a fixed size (by default TensorFlow sizes them
# by the cores it may use, and a kernel's summation order can follow the thread count), the CPU.
DETERMINISTIC_ENV = {"TF_DETERMINISTIC_OPS": "1", "TF_NUM_INTRAOP_THREADS": "2",
                     "TF_NUM_INTEROP_THREADS": "2", "CUDA_VISIBLE_DEVICES": "-1"}

TINY_CONFIG = {
    "vocab_size": None,  # Set from the vocab below.
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "initializer_range": 0.02,
}

# Words the synthetic corpora of the tests are made of, so that they tokenize to known pieces.
TINY_WORDS = (
    "the a an and of to in is was it that on for with as movie film story about love war space "
    "alien robot crime police murder funny comedy laugh family child school music song dance "
    "ghost fear joy sad sadness happy angry anger disgust shame guilt night day man woman city "
    "world life death friend team game king queen ship sea horse gun west cowboy history true "
    "documentary mystery detective scary horror monster magic dragon adventure quest journey "
    "headline news report storm wins loses dies born found lost new old big small good bad"
).split()


def tiny_vocab():
  """Special tokens, the test words, single characters and their '##' continuations."""
  chars = string.ascii_lowercase + string.digits + string.punctuation
  tokens = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(TINY_WORDS)) +
            list(chars) + ["##" + c for c in string.ascii_lowercase + string.digits])
  return list(dict.fromkeys(tokens))  # "a" is a word and a character: one entry.


def assert_close(actual, desired, rtol=1e-5, atol=0.0, err_msg=""):
  """Asserts that float arrays agree up to the rounding of kernels that sum in another order.

  The tolerance is `rtol` of each element plus `rtol` of the largest |desired|: a sum taken in
  another order (oneDNN's AVX2 and AVX-512 kernels, a [CLS]-only last layer, a narrower batch)
  moves an element by ~1e-7 of the terms summed, which for an element near zero is far more than
  1e-7 of itself. `atol` is added for arrays that are zero in exact arithmetic.
  """
  desired = np.asarray(desired, np.float64)
  scale = np.abs(desired).max(initial=0.0)
  np.testing.assert_allclose(np.asarray(actual, np.float64), desired, rtol=rtol,
                             atol=rtol * scale + atol, err_msg=err_msg)


def run_google_reference(config_path, inputs, workdir, init_checkpoint=None,
                         save_checkpoint=None):
  """Runs Google's modeling on `inputs` (a dict of int32 arrays); returns (sequence, pooled)."""
  inputs_path = os.path.join(workdir, "reference_inputs.npz")
  outputs_path = os.path.join(workdir, "reference_outputs.npz")
  np.savez(inputs_path, **inputs)
  command = [sys.executable, os.path.join(TESTS_DIR, "google_reference.py"),
             "--config", config_path, "--inputs", inputs_path, "--outputs", outputs_path]
  if init_checkpoint:
    command += ["--init_checkpoint", init_checkpoint]
  if save_checkpoint:
    command += ["--save_checkpoint", save_checkpoint]
  result = subprocess.run(command, capture_output=True, text=True, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  outputs = np.load(outputs_path)
  return outputs["sequence_output"], outputs["pooled_output"]


def random_inputs(rng, vocab_size, batch=3, seq=12):
  """Token ids with ragged real lengths, zero-padded, two segments."""
  lengths = rng.integers(2, seq + 1, size=batch)
  lengths[0] = seq
  input_mask = (np.arange(seq)[None, :] < lengths[:, None]).astype(np.int32)
  input_ids = rng.integers(1, vocab_size, size=(batch, seq)).astype(np.int32) * input_mask
  token_type_ids = ((np.arange(seq)[None, :] >= lengths[:, None] // 2) * input_mask)
  return {"input_ids": input_ids, "input_mask": input_mask,
          "token_type_ids": token_type_ids.astype(np.int32)}


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory):
  """A Google-format model folder (`bert_config.json`, `vocab.txt`, `bert_model.ckpt.*`) made by
  Google's code, plus Google's outputs on some random inputs.

  Returns a dict with keys `dir`, `config_file`, `vocab_file`, `checkpoint`, `inputs`,
  `sequence_output`, `pooled_output`.
  """
  folder = tmp_path_factory.mktemp("tiny_bert")
  vocab = tiny_vocab()
  vocab_file = folder / "vocab.txt"
  vocab_file.write_text("\n".join(vocab) + "\n", encoding="utf-8")
  config = dict(TINY_CONFIG, vocab_size=len(vocab))
  config_file = folder / "bert_config.json"
  config_file.write_text(json.dumps(config, indent=2), encoding="utf-8")
  checkpoint = str(folder / "bert_model.ckpt")
  inputs = random_inputs(np.random.default_rng(0), len(vocab))
  sequence_output, pooled_output = run_google_reference(
      str(config_file), inputs, str(folder), save_checkpoint=checkpoint)
  return {"dir": str(folder), "config_file": str(config_file), "vocab_file": str(vocab_file),
          "checkpoint": checkpoint, "inputs": inputs, "sequence_output": sequence_output,
          "pooled_output": pooled_output}
