"""The Hugging Face (PyTorch) baseline for bench/throughput.py, measured the same way.

  pip install torch transformers    # Not in requirements.txt: only this script needs them.
  python bench/hf_throughput.py --mode=train --batch_size=32 --max_seq_length=128 --steps=20
  python bench/hf_throughput.py --mode=predict --batch_size=32 --max_seq_length=128 --steps=20

`BertForSequenceClassification` with the multi-label (BCE) loss, built from a Hugging Face
`config.json` (default: the packaged all-MiniLM-L6-v2's), random ids at a fixed shape. A training
step is forward, loss, backward, gradient clipping to norm 1 and an AdamW step; prediction is a
forward pass and the sigmoid under `torch.inference_mode()`. Weights are random: speed does not
depend on them. Prints one JSON object with the fields bench/throughput.py prints.

Run it beside bench/throughput.py in the same session: these machines are noisy.
"""

import json
import os
import platform
import sys

from absl import app
from absl import flags
import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

import timing  # pylint: disable=g-import-not-at-top,wrong-import-position  # bench/timing.py

FLAGS = flags.FLAGS
flags.DEFINE_string("hf_config_file", None, "A Hugging Face BERT config.json; default: the "
                    "packaged all-MiniLM-L6-v2's.")
flags.DEFINE_enum("mode", "train", ["train", "predict"], "What to measure.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length.")
flags.DEFINE_integer("steps", 20, "Timed steps, after the warm-up steps.")
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first.")
flags.DEFINE_integer("num_labels", 7, "Labels of the multi-label head.")


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  config_file = FLAGS.hf_config_file
  if config_file is None:
    import convert_hf_checkpoint  # pylint: disable=g-import-not-at-top
    config_file = os.path.join(convert_hf_checkpoint.default_hf_dir(), "config.json")
  config = transformers.BertConfig.from_json_file(config_file)
  config.num_labels = FLAGS.num_labels
  config.problem_type = "multi_label_classification"
  torch.manual_seed(0)
  model = transformers.BertForSequenceClassification(config)

  rng = np.random.default_rng(0)
  shape = (FLAGS.batch_size, FLAGS.max_seq_length)
  input_ids = torch.tensor(rng.integers(1, config.vocab_size, shape))
  attention_mask = torch.ones(shape, dtype=torch.long)
  token_type_ids = torch.zeros(shape, dtype=torch.long)
  labels = torch.tensor(rng.integers(0, 2, (FLAGS.batch_size, FLAGS.num_labels)),
                        dtype=torch.float32)

  if FLAGS.mode == "train":
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)

    def step():
      loss = model(input_ids=input_ids, attention_mask=attention_mask,
                   token_type_ids=token_type_ids, labels=labels).loss
      loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      optimizer.step()
      optimizer.zero_grad(set_to_none=True)
  else:
    model.eval()

    def step():
      with torch.inference_mode():
        torch.sigmoid(model(input_ids=input_ids, attention_mask=attention_mask,
                            token_type_ids=token_type_ids).logits)

  print(json.dumps({
      "framework": f"transformers {transformers.__version__}, torch {torch.__version__}",
      "mode": FLAGS.mode, "batch_size": FLAGS.batch_size,
      "max_seq_length": FLAGS.max_seq_length, "precision": "fp32",
      "device": f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
                f"{torch.get_num_threads()} torch threads",
      "model": os.path.abspath(config_file),
      **timing.time_steps(step, FLAGS.batch_size, FLAGS.warmup_steps, FLAGS.steps),
      "peak_rss_mb": timing.peak_rss_mb()}, indent=2))


if __name__ == "__main__":
  app.run(main)
