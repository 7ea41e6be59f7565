"""Measures training and prediction throughput; prints one JSON object.

  # The full training step (forward, loss, backward, optimizer) on random ids at fixed shape:
  python bench/throughput.py --bert_config_file=CFG --mode=train --batch_size=32 \
      --max_seq_length=128 --steps=20
  # Inference at fixed shape:
  python bench/throughput.py --bert_config_file=CFG --mode=predict --batch_size=32 \
      --max_seq_length=128 --steps=20
  # A task's test split through the real input pipeline (files -> features -> bucketed
  # tf.data -> probabilities); examples_per_sec covers all of it. --batch_size=8 is
  # run_classifier's default --predict_batch_size:
  python bench/throughput.py --bert_config_file=CFG --mode=predict --task_name=psychexp \
      --data_dir=D --vocab_file=V --batch_size=8 [--init_checkpoint=C]
  # Training on a task's train split through the real input pipeline (seeded plan, bucketed by
  # length, each batch padded as run_classifier pads it); --steps defaults to one epoch:
  python bench/throughput.py --bert_config_file=CFG --mode=train --task_name=psychexp \
      --data_dir=D --vocab_file=V
  # Feature conversion alone (texts per second):
  python bench/throughput.py --task_name=psychexp --data_dir=D --vocab_file=V --tokenize_only

Weights are random unless --init_checkpoint is given: speed does not depend on them.

Cold start counts: a user's run is one process. Task prediction makes one cold pass (the first
in the process: tracing and oneDNN's kernels for each new shape included) and then --passes
warm ones, each from the files to the probabilities; `examples_per_sec` is the best warm pass,
`cold_examples_per_sec` the first. Task training times its first step (tracing included) apart
as `cold_step_ms`; `examples_per_sec` is the rate over the following steps, which run as the
product runs them, up to 100 (run_classifier's --log_steps) per call of the training loop.
"""

import json
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

import timing  # pylint: disable=g-import-not-at-top,wrong-import-position  # bench/timing.py

FLAGS = flags.FLAGS
flags.DEFINE_string("bert_config_file", None, "bert_config.json of the model to measure.")
flags.DEFINE_enum("mode", "train", ["train", "predict"], "What to measure.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_integer("max_seq_length", 128, "Sequence length (fixed-shape modes) or the cap.")
flags.DEFINE_integer("steps", None, "Timed steps after the warm-up steps (fixed-shape modes, "
                     "default 20); in the task training mode, all steps (default: one epoch). "
                     "At least 2: training times its first step apart from the rest.",
                     lower_bound=2)
flags.DEFINE_integer("warmup_steps", 3, "Untimed steps first: tracing and compilation.")
flags.DEFINE_enum("precision", "fp32", ["fp32", "bf16", "fp16"], "Compute precision.")
flags.DEFINE_bool("jit_compile", False, "Compile the step with XLA.")
flags.DEFINE_string("task_name", None, "With --data_dir and --vocab_file: measure a real test "
                    "split through the project's input pipeline.")
flags.DEFINE_string("data_dir", None, "The task's data folder.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab for the task modes.")
flags.DEFINE_bool("do_lower_case", True, "Casing for the task modes.")
flags.DEFINE_string("init_checkpoint", None, "Optional weights to load.")
flags.DEFINE_bool("tokenize_only", False, "Measure feature conversion of the task's test split.")
flags.DEFINE_bool("bucket_by_length", True, "Bucket the task's split by length.")
flags.DEFINE_integer("passes", 3, "Task prediction: warm passes after the cold one.")
flags.DEFINE_bool("paced", False, "Run each prediction pass, or each chunk of training steps, "
                  "when a line arrives on stdin (see timing.time_passes); bench/paired.py sets "
                  "it. Fixed-shape training then runs --steps after its first step, in chunks.")
flags.DEFINE_integer("chunk_steps", 100, "Training: steps per call of the training loop after "
                     "the first step (run_classifier's --log_steps runs 100), each chunk timed.")
flags.DEFINE_integer("seed", 42, "Task training: the plan's seed.")
flags.DEFINE_float("peak_tflops", None, "The device's dense bf16 peak in TFLOP/s, for the model "
                   "FLOPs utilisation (mfu) of the fixed-shape modes. Default: known for some "
                   "GPUs (see PEAK_BF16_TFLOPS), else no mfu is reported.")

# Dense bf16 peaks (no sparsity) from the vendors' data sheets, by a substring of the device name.
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0),
                    ("L4", 121.0))


def device_name(tf):
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU")
  import onednn  # pylint: disable=g-import-not-at-top
  kernels = "oneDNN" if onednn.running() else "Eigen"
  return f"{timing.cpu_description()}, {kernels} kernels"


def model_flops_per_example(config, seq_length, mode):
  """FLOPs one example costs by the usual count: per token 6·N for training (2·N forward, 4·N
  backward), N the non-embedding parameters, plus attention's two [seq, seq] products,
  12·layers·seq·hidden per token; a third of that to predict. It counts the whole model even
  where the classifier computes less (its last block works on [CLS] alone)."""
  hidden, inner, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
  per_layer = 4 * hidden * hidden + 2 * hidden * inner + 9 * hidden + inner  # Weights, biases, LN.
  parameters = layers * per_layer + hidden * hidden + hidden  # + the pooler.
  per_token = 6 * parameters + 12 * layers * seq_length * hidden
  return seq_length * per_token // (1 if mode == "train" else 3)


def peak_tflops(device):
  if FLAGS.peak_tflops:
    return FLAGS.peak_tflops
  return next((peak for name, peak in PEAK_BF16_TFLOPS if name in device), None)


def task_features(split="test"):
  """Reads and converts the task's `split` ("train" or "test"); returns (features, seconds)."""
  import features  # pylint: disable=g-import-not-at-top
  import processors  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  started = time.perf_counter()
  processor = processors.get_processor(FLAGS.task_name)
  examples = (processor.get_train_examples if split == "train"
              else processor.get_test_examples)(FLAGS.data_dir)
  tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, FLAGS.do_lower_case)
  converted = features.convert_examples(examples, tokenizer, FLAGS.max_seq_length,
                                        len(processor.get_labels()))
  return converted, time.perf_counter() - started


def product_length_multiple():
  """The width multiple run_classifier.py uses on this device with these flags."""
  import input_pipeline  # pylint: disable=g-import-not-at-top
  return input_pipeline.local_length_multiple(FLAGS.jit_compile)


def random_batch(tf, config, batch_size, seq_length, num_labels):
  rng = np.random.default_rng(0)
  inputs = {
      "input_ids": tf.constant(rng.integers(1, config.vocab_size, (batch_size, seq_length)),
                               tf.int32),
      "input_mask": tf.ones((batch_size, seq_length), tf.int32),
      "segment_ids": tf.zeros((batch_size, seq_length), tf.int32),
  }
  labels = tf.constant(rng.integers(0, 2, (batch_size, num_labels)), tf.float32)
  return inputs, labels


def task_predict(model, strategy):
  """Files to probabilities of the test split: a cold pass, then --passes warm ones."""
  import inference  # pylint: disable=g-import-not-at-top

  def one_pass():
    converted, _ = task_features()
    inference.predict_probabilities(model, strategy, converted, FLAGS.batch_size,
                                    FLAGS.bucket_by_length, pad_to_max=False,
                                    length_multiple=product_length_multiple())
    return converted

  timed, converted, process_seconds = timing.time_passes(one_pass, FLAGS.passes, FLAGS.paced)
  n = converted.num_examples
  return {"examples": n, "examples_per_sec": n / min(timed[1:]),
          "cold_examples_per_sec": n / timed[0],
          "process_seconds": process_seconds,
          "warm_examples_per_sec": [n / t for t in timed[1:]], "seconds": min(timed[1:]),
          "cold_seconds": timed[0], "mean_tokens": float(converted.lengths.mean())}


def task_train(model, strategy):
  """--steps training steps on the train split through the product's input pipeline."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import input_pipeline  # pylint: disable=g-import-not-at-top
  import training  # pylint: disable=g-import-not-at-top
  converted, _ = task_features("train")
  steps = FLAGS.steps or converted.num_examples // FLAGS.batch_size
  plan = input_pipeline.training_plan(converted.lengths, FLAGS.batch_size, steps, FLAGS.seed,
                                      FLAGS.bucket_by_length)
  dataset = input_pipeline.train_dataset(converted, plan, pad_to_max=not FLAGS.bucket_by_length,
                                         length_multiple=product_length_multiple())
  optimizer = training.make_optimizer(model, 2e-5, steps, steps // 10)
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  loop = training.make_train_loop(model, optimizer, strategy, FLAGS.batch_size,
                                  FLAGS.jit_compile)
  sizes, seconds, process_seconds = timing.time_chunks(
      lambda n: loop(iterator, tf.constant(n))[0].numpy(), steps, FLAGS.chunk_steps, FLAGS.paced)
  cold, warm = seconds[0], sum(seconds[1:])
  multiple = product_length_multiple()
  widths = (np.minimum(-(-converted.lengths[plan].max(axis=1) // multiple) * multiple,
                       FLAGS.max_seq_length) if FLAGS.bucket_by_length
            else np.full(steps, FLAGS.max_seq_length))
  return {"steps": steps, "examples_per_sec": FLAGS.batch_size * (steps - 1) / warm,
          "cold_examples_per_sec": FLAGS.batch_size * steps / (cold + warm),
          "cold_step_ms": cold * 1e3,
          "process_seconds": process_seconds,
          "seconds": cold + warm, "chunk_steps": sizes,
          "chunk_seconds": seconds, "mean_tokens": float(converted.lengths.mean()),
          "mean_width": float(widths.mean())}


def main(argv):
  del argv
  if FLAGS.tokenize_only:
    converted, seconds = task_features()
    print(json.dumps({"mode": "tokenize_only", "task": FLAGS.task_name,
                      "texts": converted.num_examples,
                      "texts_per_sec": converted.num_examples / seconds,
                      "seconds": seconds, "peak_rss_mb": timing.peak_rss_mb()}, indent=2))
    return

  import console  # pylint: disable=g-import-not-at-top
  # As run_classifier.py imports it: oneDNN's kernels chosen first, the collector paused and
  # the import's objects frozen.
  tf = console.import_tensorflow(logging.get_verbosity())
  import checkpoints  # pylint: disable=g-import-not-at-top
  import classifier  # pylint: disable=g-import-not-at-top
  import distribution  # pylint: disable=g-import-not-at-top
  import inference  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  import processors  # pylint: disable=g-import-not-at-top
  import training  # pylint: disable=g-import-not-at-top

  if FLAGS.mode == "predict" and FLAGS.task_name:
    inference.share_cpu_cores(use_tpu=False)  # As run_classifier.py does for a prediction run.
  distribution.set_precision(FLAGS.precision)
  config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  strategy = tf.distribute.get_strategy()
  result = {"mode": FLAGS.mode, "batch_size": FLAGS.batch_size,
            "max_seq_length": FLAGS.max_seq_length, "precision": FLAGS.precision,
            "jit_compile": FLAGS.jit_compile, "device": device_name(tf),
            "tf_version": tf.__version__, "model": os.path.abspath(FLAGS.bert_config_file),
            "threads_per_op": tf.config.threading.get_intra_op_parallelism_threads() or "default"}

  # As run_classifier.py builds it on this device with these flags.
  skip_padding = classifier.skips_padding(distribution.on_accelerator(strategy), FLAGS.jit_compile)
  result["skip_padding"] = skip_padding
  if FLAGS.task_name:
    # The model exists before the clock starts, as in a server; the clock covers the rest.
    processor = processors.get_processor(FLAGS.task_name)
    model = classifier.MultiLabelClassifier(config, len(processor.get_labels()),
                                            skip_padding=skip_padding,
                                            draw_weights=not FLAGS.init_checkpoint)
    if FLAGS.init_checkpoint:
      checkpoints.restore(model.checkpoint_variables(), FLAGS.init_checkpoint,
                          optional=classifier.is_head_variable)
    measure = task_train if FLAGS.mode == "train" else task_predict
    result.update(task=FLAGS.task_name, bucket_by_length=FLAGS.bucket_by_length,
                  **measure(model, strategy))
  else:
    num_labels = 7
    model = classifier.MultiLabelClassifier(config, num_labels, skip_padding=skip_padding)
    inputs, labels = random_batch(tf, config, FLAGS.batch_size, FLAGS.max_seq_length, num_labels)
    if FLAGS.mode == "train":
      optimizer = training.make_optimizer(model, 2e-5, 10_000, 1_000)
      dataset = tf.data.Dataset.from_tensors((inputs, labels)).repeat()
      iterator = iter(strategy.experimental_distribute_dataset(dataset))
      loop = training.make_train_loop(model, optimizer, strategy, FLAGS.batch_size,
                                      FLAGS.jit_compile)
      run_steps = lambda n: loop(iterator, tf.constant(n))[0].numpy()
      step = lambda: run_steps(1)
    else:
      predict = tf.function(lambda x: tf.sigmoid(model(x, training=False)),
                            jit_compile=FLAGS.jit_compile)
      step = lambda: predict(inputs).numpy()
    if FLAGS.paced and FLAGS.mode == "train":
      result.update(timing.paced_fixed_training(run_steps, FLAGS.batch_size, FLAGS.steps or 20,
                                                FLAGS.chunk_steps))
    else:
      result.update(timing.time_steps(step, FLAGS.batch_size, FLAGS.warmup_steps,
                                      FLAGS.steps or 20))
    flops = model_flops_per_example(config, FLAGS.max_seq_length, FLAGS.mode)
    result.update(model_flops_per_example=flops,
                  model_tflops_per_sec=flops * result["examples_per_sec"] / 1e12)
    peak = peak_tflops(result["device"])
    if peak:
      result.update(peak_bf16_tflops=peak, mfu=result["model_tflops_per_sec"] / peak)
  result["peak_rss_mb"] = timing.peak_rss_mb()
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
