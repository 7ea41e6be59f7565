"""The Hugging Face (PyTorch) baseline for bench/throughput.py, measured the same way.

  # Not in requirements.txt: only this script needs them. The CPU wheel of torch is the light
  # one (the default wheel pulls several GB of CUDA libraries):
  pip install torch --index-url https://download.pytorch.org/whl/cpu && pip install transformers
  # Fixed shape, random ids:
  python bench/hf_throughput.py --mode=train --batch_size=32 --max_seq_length=128 --steps=20
  python bench/hf_throughput.py --mode=predict --batch_size=32 --max_seq_length=128 --steps=20
  # A task's test split, files to probabilities, as Hugging Face users predict at their best:
  # fast tokenizer, examples sorted by length, each batch padded to its longest
  # (`DataCollatorWithPadding`); --padding=max_length pads every batch to --max_seq_length:
  python bench/hf_throughput.py --mode=predict --task_name=psychexp --data_dir=D
  # A task's train split as the Trainer's `group_by_length=True` batches it (its
  # `LengthGroupedSampler`), each batch padded to its longest; --steps defaults to one epoch:
  python bench/hf_throughput.py --mode=train --task_name=psychexp --data_dir=D

`BertForSequenceClassification` with the multi-label (BCE) loss: built from a Hugging Face
`config.json` with random weights in the fixed-shape modes, loaded from the model folder
(default: the packaged all-MiniLM-L6-v2) in the task modes; the head is random either way, and
speed does not depend on the weights. A training step is forward, loss, backward, gradient
clipping to norm 1 and an AdamW step, in a plain loop (no `Trainer` and its callbacks around
it). The AdamW is the Trainer's default (`optim="adamw_torch_fused"`): torch's fused kernel, one
pass over each parameter and its moments, some five times faster on a CPU than the per-tensor
loop that `torch.optim.AdamW()` runs by default (--fused_adamw=false measures that one);
prediction is a forward pass and the sigmoid under `torch.inference_mode()`.

The task modes read the split with the project's processor, as bench/throughput.py does, so
that both sides parse the same files the same way. Prediction makes one cold pass (the first in
the process) and then --passes warm ones, each from the files to the probabilities in input
order; `examples_per_sec` is the best warm pass, `cold_examples_per_sec` the first. Training
times its first step apart (`cold_step_ms`) and reports the rate over the following steps.

Prints one JSON object with the fields bench/throughput.py prints. Run it beside
bench/throughput.py in the same session (bench/side_by_side.sh): these machines are noisy.
"""

import json
import os
import sys

from absl import app
from absl import flags
import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

import timing  # pylint: disable=g-import-not-at-top,wrong-import-position  # bench/timing.py

FLAGS = flags.FLAGS
flags.DEFINE_string("hf_model_dir", None, "A Hugging Face BERT folder (config.json; the task "
                    "modes also load its weights and fast tokenizer). Default: the packaged "
                    "all-MiniLM-L6-v2.")
flags.DEFINE_enum("mode", "train", ["train", "predict"], "What to measure.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length (fixed-shape modes) or the cap.")
flags.DEFINE_integer("steps", None, "Timed steps after the warm-up steps (default 20); in the "
                     "task training mode, all steps (default: one epoch). At least 2: training "
                     "times its first step apart from the rest.", lower_bound=2)
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first (fixed-shape modes).")
flags.DEFINE_integer("num_labels", 7, "Labels of the multi-label head (fixed-shape modes).")
flags.DEFINE_string("task_name", None, "With --data_dir: measure a real split.")
flags.DEFINE_string("data_dir", None, "The task's data folder.")
flags.DEFINE_enum("padding", "longest", ["longest", "max_length"], "Task modes: pad each batch "
                  "to its longest example, or to --max_seq_length.")
flags.DEFINE_bool("sort_by_length", True, "Task prediction: predict the examples sorted by "
                  "length (then restored to input order).")
flags.DEFINE_integer("passes", 3, "Task prediction: warm passes after the cold one.")
flags.DEFINE_bool("paced", False, "Run each prediction pass, or each chunk of training steps, "
                  "when a line arrives on stdin (see timing.time_passes); bench/paired.py sets "
                  "it. Fixed-shape training then runs --steps after its first step, in chunks.")
flags.DEFINE_integer("chunk_steps", 100, "Training: steps per timed chunk after the first step, "
                     "as bench/throughput.py times ours.")
flags.DEFINE_integer("seed", 42, "Task training: the sampler's seed.")
flags.DEFINE_bool("fused_adamw", True, "Training: torch's fused AdamW, as the Trainer uses by "
                  "default; false for the per-tensor loop of `torch.optim.AdamW()`.")


def model_dir():
  if FLAGS.hf_model_dir:
    return FLAGS.hf_model_dir
  import convert_hf_checkpoint  # pylint: disable=g-import-not-at-top
  return convert_hf_checkpoint.default_hf_dir()


def fixed_shape(torch, transformers):
  """The fixed-shape modes: random weights and random ids, [batch_size, max_seq_length]."""
  config = transformers.BertConfig.from_json_file(os.path.join(model_dir(), "config.json"))
  config.num_labels = FLAGS.num_labels
  config.problem_type = "multi_label_classification"
  torch.manual_seed(0)
  model = transformers.BertForSequenceClassification(config)
  rng = np.random.default_rng(0)
  shape = (FLAGS.batch_size, FLAGS.max_seq_length)
  batch = {"input_ids": torch.tensor(rng.integers(1, config.vocab_size, shape)),
           "attention_mask": torch.ones(shape, dtype=torch.long),
           "token_type_ids": torch.zeros(shape, dtype=torch.long)}
  labels = torch.tensor(rng.integers(0, 2, (FLAGS.batch_size, FLAGS.num_labels)),
                        dtype=torch.float32)
  if FLAGS.mode == "train":
    step = make_train_step(torch, model)
    run = lambda: step(batch, labels)
  else:
    model.eval()
    run = lambda: predict_batch(torch, model, batch)
  steps = FLAGS.steps or 20
  if FLAGS.paced and FLAGS.mode == "train":
    return timing.paced_fixed_training(lambda n: [run() for _ in range(n)], FLAGS.batch_size,
                                       steps, FLAGS.chunk_steps)
  return timing.time_steps(run, FLAGS.batch_size, FLAGS.warmup_steps, steps)


def make_train_step(torch, model):
  """Returns step(batch, labels): one AdamW step on the mean BCE loss, gradients clipped."""
  model.train()
  optimizer = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01,
                                fused=FLAGS.fused_adamw)

  def step(batch, labels):
    loss = model(**batch, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss)

  return step


def predict_batch(torch, model, batch):
  with torch.inference_mode():
    return torch.sigmoid(model(**batch).logits).numpy()


def task_model(transformers, num_labels):
  return transformers.BertForSequenceClassification.from_pretrained(
      model_dir(), num_labels=num_labels, problem_type="multi_label_classification",
      local_files_only=True)


def tokenize(tokenizer, examples):
  """Fast-tokenizes text a (and b) of each example, truncated to max_seq_length, unpadded."""
  texts = [e.text_a for e in examples]
  pairs = [e.text_b for e in examples] if any(e.text_b for e in examples) else None
  return tokenizer(texts, pairs, truncation=True, max_length=FLAGS.max_seq_length)


def collate(collator, encoded, indices):
  """The batch of `indices`, padded as --padding says, as torch tensors."""
  return collator([{key: encoded[key][i] for key in encoded} for i in indices])


def task_predict(torch, transformers):
  """Files to probabilities in input order, a cold pass and then --passes warm ones."""
  import processors  # pylint: disable=g-import-not-at-top
  processor = processors.get_processor(FLAGS.task_name)
  model = task_model(transformers, len(processor.get_labels()))
  model.eval()
  tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir(), local_files_only=True)
  collator = transformers.DataCollatorWithPadding(tokenizer, padding=FLAGS.padding,
                                                  max_length=FLAGS.max_seq_length)

  def one_pass():
    examples = processor.get_test_examples(FLAGS.data_dir)
    encoded = tokenize(tokenizer, examples)
    lengths = np.array([len(ids) for ids in encoded["input_ids"]])
    order = (np.argsort(-lengths, kind="stable") if FLAGS.sort_by_length
             else np.arange(lengths.size))
    rows, widths = [], []
    for start in range(0, order.size, FLAGS.batch_size):
      batch = collate(collator, encoded, order[start:start + FLAGS.batch_size])
      widths.append(batch["input_ids"].shape[1])
      rows.append(predict_batch(torch, model, batch))
    probabilities = np.empty((order.size, model.config.num_labels), np.float32)
    probabilities[order] = np.concatenate(rows)
    return lengths, widths

  timed, (lengths, widths), process_seconds = timing.time_passes(one_pass, FLAGS.passes,
                                                                 FLAGS.paced)
  return {"task": FLAGS.task_name, "examples": int(lengths.size),
          "examples_per_sec": lengths.size / min(timed[1:]),
          "cold_examples_per_sec": lengths.size / timed[0],
          "process_seconds": process_seconds,
          "warm_examples_per_sec": [lengths.size / t for t in timed[1:]],
          "seconds": min(timed[1:]), "cold_seconds": timed[0], "padding": FLAGS.padding,
          "sort_by_length": FLAGS.sort_by_length, "mean_tokens": float(lengths.mean()),
          "mean_width": float(np.mean(widths)), "batches": len(widths)}


def task_train(torch, transformers):
  """--steps AdamW steps on the train split, batched as `group_by_length=True` batches it."""
  import processors  # pylint: disable=g-import-not-at-top
  from transformers.trainer_pt_utils import LengthGroupedSampler  # pylint: disable=g-import-not-at-top
  processor = processors.get_processor(FLAGS.task_name)
  examples = processor.get_train_examples(FLAGS.data_dir)
  model = task_model(transformers, len(processor.get_labels()))
  tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir(), local_files_only=True)
  collator = transformers.DataCollatorWithPadding(tokenizer, padding=FLAGS.padding,
                                                  max_length=FLAGS.max_seq_length)
  encoded = tokenize(tokenizer, examples)
  labels = torch.tensor([e.labels for e in examples], dtype=torch.float32)
  lengths = [len(ids) for ids in encoded["input_ids"]]
  steps = FLAGS.steps or len(examples) // FLAGS.batch_size
  order = []
  epoch = 0
  while len(order) < steps * FLAGS.batch_size:
    # A new draw each epoch, as the Trainer's sampler makes (its generator is reseeded).
    generator = torch.Generator().manual_seed(FLAGS.seed + epoch)
    order.extend(LengthGroupedSampler(FLAGS.batch_size, lengths=lengths, generator=generator))
    epoch += 1
  step = make_train_step(torch, model)
  widths = []

  def run_steps(n):
    # The collation is timed with the step: the Trainer's data loader does it between steps.
    for _ in range(n):
      k = len(widths)
      indices = order[k * FLAGS.batch_size:(k + 1) * FLAGS.batch_size]
      batch = collate(collator, encoded, indices)
      step(batch, labels[indices])
      widths.append(batch["input_ids"].shape[1])

  sizes, seconds, process_seconds = timing.time_chunks(run_steps, steps, FLAGS.chunk_steps,
                                                       FLAGS.paced)
  warm = sum(seconds[1:])
  return {"task": FLAGS.task_name, "steps": steps,
          "examples_per_sec": FLAGS.batch_size * (steps - 1) / warm,
          "cold_examples_per_sec": FLAGS.batch_size * steps / sum(seconds),
          "cold_step_ms": seconds[0] * 1e3,
          "process_seconds": process_seconds,
          "seconds": sum(seconds), "chunk_steps": sizes,
          "chunk_seconds": seconds, "padding": FLAGS.padding,
          "mean_tokens": float(np.mean(lengths)), "mean_width": float(np.mean(widths))}


def main(argv):
  del argv
  import torch  # pylint: disable=g-import-not-at-top
  import transformers  # pylint: disable=g-import-not-at-top

  result = {
      "framework": f"transformers {transformers.__version__}, torch {torch.__version__}",
      "mode": FLAGS.mode, "batch_size": FLAGS.batch_size,
      "max_seq_length": FLAGS.max_seq_length, "precision": "fp32",
      "device": f"{timing.cpu_description()}, {torch.get_num_threads()} torch threads, "
                f"{torch.backends.cpu.get_cpu_capability()}",
      "model": os.path.abspath(model_dir())}
  if FLAGS.mode == "train":
    result["optimizer"] = "AdamW, fused" if FLAGS.fused_adamw else "AdamW, per-tensor loop"
  if FLAGS.task_name:
    result.update((task_train if FLAGS.mode == "train" else task_predict)(torch, transformers))
  else:
    result.update(fixed_shape(torch, transformers))
  result["peak_rss_mb"] = timing.peak_rss_mb()
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
