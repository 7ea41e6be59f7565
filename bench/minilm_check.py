"""Checks the converted all-MiniLM-L6-v2 against Google's modeling code and against its purpose.

  python bench/minilm_check.py [--model_dir=models/all-MiniLM-L6-v2]

Converts the model if the folder is missing, then prints one JSON object with
  * the largest absolute difference between our `modeling.BertModel` and Google's own
    `modeling.py` (TF1 graph mode, in a subprocess) on the same checkpoint and sentences, for the
    sequence and the pooled outputs;
  * cosine similarities of mean-pooled sentence embeddings (what all-MiniLM-L6-v2 was trained
    for): paraphrase pairs should score high, unrelated pairs low.
"""

import json
import os
import sys
import tempfile

from absl import app
from absl import flags
import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

import convert_hf_checkpoint  # pylint: disable=g-import-not-at-top,wrong-import-position
import modeling  # pylint: disable=g-import-not-at-top,wrong-import-position
import tokenization  # pylint: disable=g-import-not-at-top,wrong-import-position
from tests import conftest  # pylint: disable=g-import-not-at-top,wrong-import-position

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", os.path.join(REPO_DIR, "models", "all-MiniLM-L6-v2"),
                    "Google-format folder of the converted model.")

PARAPHRASES = [
    ("A man is playing a guitar on stage.", "Someone performs music with a guitar at a concert."),
    ("The cat sleeps on the warm windowsill.", "A cat is napping on the sunny window ledge."),
    ("How do I reset my password?", "What are the steps to change my login password?"),
]
UNRELATED = [
    ("A man is playing a guitar on stage.", "The quarterly tax report is due on Friday."),
    ("The cat sleeps on the warm windowsill.", "Volcanic eruptions release large amounts of ash."),
    ("How do I reset my password?", "The recipe needs two cups of flour and an egg."),
]


def encode(tokenizer, sentences, max_len=32):
  """[CLS] tokens [SEP], zero-padded: the three int32 [batch, seq] inputs."""
  rows = [tokenizer.convert_tokens_to_ids(["[CLS]"] + tokenizer.tokenize(s)[:max_len - 2] +
                                          ["[SEP]"]) for s in sentences]
  seq = max(len(r) for r in rows)
  input_ids = np.array([r + [0] * (seq - len(r)) for r in rows], dtype=np.int32)
  input_mask = (input_ids != 0).astype(np.int32)
  return {"input_ids": input_ids, "input_mask": input_mask,
          "token_type_ids": np.zeros_like(input_ids)}


def mean_pooled_cosines(sequence_output, input_mask, pairs):
  mask = input_mask[..., None].astype(np.float32)
  embeddings = (sequence_output * mask).sum(1) / mask.sum(1)
  embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
  return [float(embeddings[2 * i] @ embeddings[2 * i + 1]) for i in range(len(pairs))]


def main(argv):
  del argv
  if not os.path.exists(os.path.join(FLAGS.model_dir, "bert_model.ckpt.index")):
    convert_hf_checkpoint.convert(convert_hf_checkpoint.default_hf_dir(), FLAGS.model_dir)
  config_file = os.path.join(FLAGS.model_dir, "bert_config.json")
  checkpoint = os.path.join(FLAGS.model_dir, "bert_model.ckpt")
  tokenizer = tokenization.FullTokenizer(os.path.join(FLAGS.model_dir, "vocab.txt"), True)
  model = modeling.BertModel(modeling.BertConfig.from_json_file(config_file))
  modeling.load_checkpoint(model, checkpoint)

  result = {}
  for label, pairs in (("paraphrase", PARAPHRASES), ("unrelated", UNRELATED)):
    inputs = encode(tokenizer, [s for pair in pairs for s in pair])
    sequence_output, pooled_output = (np.asarray(t) for t in model(**inputs, training=False))
    with tempfile.TemporaryDirectory() as workdir:
      google_sequence, google_pooled = conftest.run_google_reference(
          config_file, inputs, workdir, init_checkpoint=checkpoint)
    mask = inputs["input_mask"].astype(bool)
    result[f"{label}_max_abs_diff_sequence"] = float(
        np.abs(sequence_output - google_sequence)[mask].max())
    result[f"{label}_max_abs_diff_pooled"] = float(np.abs(pooled_output - google_pooled).max())
    result[f"{label}_cosines"] = [round(c, 4) for c in
                                  mean_pooled_cosines(sequence_output, inputs["input_mask"],
                                                      pairs)]
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
