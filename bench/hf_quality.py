"""The Hugging Face (PyTorch) baseline for bench/quality.py: same rows, same recipe, same metrics.

  # CPU-only torch: PyPI's default Linux wheel pulls several GB of CUDA libraries. Not in
  # requirements.txt: only the bench scripts need them.
  pip install torch --index-url https://download.pytorch.org/whl/cpu
  pip install transformers
  python bench/hf_quality.py --task_name=se0714 --data_dir=DIR --max_seq_length=64 \
      --learning_rate=1e-4 --num_train_epochs=10 --seeds=42,43,44

`BertForSequenceClassification` (the multi-label BCE loss, dropout 0.1 on the pooled [CLS]
output) from a Hugging Face folder (default: the packaged all-MiniLM-L6-v2), fine-tuned as
Google's recipe does it and as bench/quality.py runs ours: batch 32, int(n / 32 · epochs) steps,
linear warm-up over the first 10% then linear decay to 0, gradients clipped to global norm 1,
PyTorch's AdamW (bias-corrected; β 0.9/0.999, ε 1e-6, weight decay 0.01 except on biases and
LayerNorm). Each batch is padded to its longest example.

The rows are this project's: train, dev and test come from its processors (so the dev split is
the same seeded hold-out of train that run_classifier.py uses) and its feature conversion (the
same word pieces, truncated the same way). Thresholds are tuned per label on dev with
`thresholds.best_f1_thresholds`, and the test metrics are `metrics.compute_metrics`', as
run_classifier.py computes them. Prints the lines bench/quality.py prints.
"""

import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

import scores  # pylint: disable=g-import-not-at-top,wrong-import-position  # bench/scores.py

FLAGS = flags.FLAGS
flags.DEFINE_string("task_name", None, "The task: se0714, psychexp, movielens or toxic.")
flags.DEFINE_string("data_dir", None, "The task's data folder.")
flags.DEFINE_string("hf_model_dir", None, "A Hugging Face BERT folder (config.json, vocab.txt, "
                    "model.safetensors); default: the packaged all-MiniLM-L6-v2.")
flags.DEFINE_bool("do_lower_case", True, "Casing of the word-piece tokenizer.")
flags.DEFINE_integer("max_seq_length", 128, "Word pieces per example, [CLS] and [SEP] included.")
flags.DEFINE_integer("train_batch_size", 32, "Training batch size.")
flags.DEFINE_integer("predict_batch_size", 64, "Prediction batch size.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
flags.DEFINE_float("num_train_epochs", 3.0, "Training epochs.")
flags.DEFINE_float("warmup_proportion", 0.1, "Share of the steps spent warming up.")
flags.DEFINE_list("seeds", ["42", "43", "44"], "The seeds, one run each.")
flags.DEFINE_string("name", "hf", "What to call this configuration in the printed lines.")


def load_split_features(vocab_file):
  """(label names, {split: Features}) for train, dev and test, as run_classifier.py builds them."""
  import features  # pylint: disable=g-import-not-at-top
  import processors  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  processor = processors.get_processor(FLAGS.task_name)
  label_names = processor.get_labels()
  tokenizer = tokenization.FullTokenizer(vocab_file, FLAGS.do_lower_case)
  splits = {"train": processor.get_train_examples(FLAGS.data_dir),
            "dev": processor.get_dev_examples(FLAGS.data_dir),
            "test": processor.get_test_examples(FLAGS.data_dir)}
  return label_names, {
      split: features.convert_examples(examples, tokenizer, FLAGS.max_seq_length,
                                       len(label_names))
      for split, examples in splits.items()}


def batch_tensors(torch, split_features, indices):
  """The model's inputs for rows `indices`, padded to their longest row."""
  width = int(split_features.lengths[indices].max())
  return {"input_ids": torch.tensor(split_features.input_ids[indices, :width], dtype=torch.long),
          "token_type_ids": torch.tensor(split_features.segment_ids[indices, :width],
                                         dtype=torch.long),
          "attention_mask": torch.tensor(split_features.input_mask[indices, :width],
                                         dtype=torch.long)}


def train_order(num_examples, num_steps, seed):
  """The row indices of each step's batch: seeded epochs of shuffled rows, one after another."""
  rng = np.random.default_rng(seed)
  needed = num_steps * FLAGS.train_batch_size
  epochs = -(-needed // num_examples)
  order = np.concatenate([rng.permutation(num_examples) for _ in range(epochs)])
  return order[:needed].reshape(num_steps, FLAGS.train_batch_size)


def fine_tune(torch, transformers, hf_dir, train, num_labels, seed):
  """Returns the fine-tuned `BertForSequenceClassification`, in eval mode."""
  torch.manual_seed(seed)
  model = transformers.BertForSequenceClassification.from_pretrained(
      hf_dir, num_labels=num_labels, problem_type="multi_label_classification",
      local_files_only=True)
  no_decay = [p for n, p in model.named_parameters() if "bias" in n or "LayerNorm" in n]
  decay = [p for n, p in model.named_parameters() if not ("bias" in n or "LayerNorm" in n)]
  optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=FLAGS.learning_rate, betas=(0.9, 0.999), eps=1e-6)
  num_steps = int(train.num_examples / FLAGS.train_batch_size * FLAGS.num_train_epochs)
  scheduler = transformers.get_linear_schedule_with_warmup(
      optimizer, int(num_steps * FLAGS.warmup_proportion), num_steps)
  model.train()
  for step, indices in enumerate(train_order(train.num_examples, num_steps, seed), start=1):
    outputs = model(**batch_tensors(torch, train, indices),
                    labels=torch.tensor(train.labels[indices]))
    outputs.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad()
    if step % 50 == 0 or step == num_steps:
      logging.info("seed %d: step %d/%d, loss %.4f", seed, step, num_steps, float(outputs.loss))
  model.eval()
  return model


def probabilities(torch, model, split_features):
  """Sigmoid outputs, float [n, num_labels], in row order (batches of similar lengths)."""
  order = np.argsort(split_features.lengths, kind="stable")
  result = np.zeros(split_features.labels.shape, np.float64)
  with torch.inference_mode():
    for start in range(0, len(order), FLAGS.predict_batch_size):
      indices = order[start:start + FLAGS.predict_batch_size]
      logits = model(**batch_tensors(torch, split_features, indices)).logits
      result[indices] = torch.sigmoid(logits).numpy()
  return result


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top
  import metrics  # pylint: disable=g-import-not-at-top
  import thresholds  # pylint: disable=g-import-not-at-top

  hf_dir = FLAGS.hf_model_dir
  if hf_dir is None:
    import convert_hf_checkpoint  # pylint: disable=g-import-not-at-top
    hf_dir = convert_hf_checkpoint.default_hf_dir()
  label_names, data = load_split_features(os.path.join(hf_dir, "vocab.txt"))
  dev, test = data["dev"], data["test"]
  records = []
  for seed in FLAGS.seeds:
    started = time.time()
    model = fine_tune(torch, transformers, hf_dir, data["train"], len(label_names), int(seed))
    found = thresholds.best_f1_thresholds(dev.labels[dev.has_labels],
                                          probabilities(torch, model, dev)[dev.has_labels], 0.5)
    test_probabilities = probabilities(torch, model, test)[test.has_labels]
    result = metrics.compute_metrics(
        test.labels[test.has_labels], test_probabilities, label_names,
        thresholds.static_predictions(test_probabilities, found.thresholds))
    records.append(scores.record(int(seed), {
        "mean_auc": result.mean_auc, "f1_averages": result.f1_averages,
        "hamming_loss": result.hamming_loss}, round(time.time() - started, 1)))
    scores.print_line({"name": FLAGS.name, **records[-1]})
  scores.print_line(scores.summary(FLAGS.name, records))


if __name__ == "__main__":
  flags.mark_flags_as_required(["task_name", "data_dir"])
  app.run(main)
