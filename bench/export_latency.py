"""Latency and throughput of an exported model, next to run_classifier.py's prediction; prints JSON.

  python bench/export_latency.py --export_dir=EXPORT --task_name=psychexp --data_dir=D \
      --output_dir=RUN --vocab_file=V --bert_config_file=C [--max_seq_length=128]

Measures, in one process on this machine:
  * latency: one short text (--text) through the SavedModel's serving signature, text to
    probabilities, --calls calls after --warmup_calls untimed ones: median and p99;
  * throughput: the task's test split through the serving signature in batches of
    --batch_size, texts to probabilities: in file order (as requests come to a server), and
    longest first (as classify.py sends them); and through the `tokenize` signature alone;
  * run_classifier.py's prediction of the same split from the checkpoint of --output_dir, as
    bench/throughput.py measures it (features, then bucketed tf.data batches of --batch_size);
and checks that both give the same ids and probabilities, so that the times compare like with
like. Each throughput is the best of --repeats runs, taken in turns.
"""

import json
import os
import platform
import sys
import time

from absl import app
from absl import flags
import numpy as np

REPO_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO_DIR)

FLAGS = flags.FLAGS
flags.DEFINE_string("export_dir", None, "The SavedModel of export_saved_model.py.")
flags.DEFINE_string("task_name", None, "The task whose test split is classified.")
flags.DEFINE_string("data_dir", None, "The task's data folder.")
flags.DEFINE_string("output_dir", None, "The run that was exported, for run_classifier's path.")
flags.DEFINE_string("vocab_file", None, "The run's vocab.txt.")
flags.DEFINE_string("bert_config_file", None, "The run's bert_config.json.")
flags.DEFINE_bool("do_lower_case", True, "The run's casing.")
flags.DEFINE_bool("add_dense", False, "The run's --add_dense.")
flags.DEFINE_integer("max_seq_length", 128, "The run's --max_seq_length.")
flags.DEFINE_string("text", "I was so happy when my sister came home.", "The latency's text.")
flags.DEFINE_integer("calls", 200, "Timed single-text calls.")
flags.DEFINE_integer("warmup_calls", 10, "Untimed calls first.")
flags.DEFINE_integer("batch_size", 32, "Batch size of both throughputs.")
flags.DEFINE_integer("repeats", 3, "Timed runs of each throughput; the fastest counts.")
flags.mark_flags_as_required(["export_dir", "task_name", "data_dir", "output_dir", "vocab_file",
                              "bert_config_file"])


def in_batches(signature, inputs, batch_size):
  """Runs `signature` on `inputs` (dict of lists) in file order; concatenates each output."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  n = len(next(iter(inputs.values())))
  outputs = [signature(**{k: tf.constant(v[start:start + batch_size]) for k, v in inputs.items()})
             for start in range(0, n, batch_size)]
  return {k: [o[k].numpy() for o in outputs] for k in outputs[0]}


def main(argv):
  del argv
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import checkpoints  # pylint: disable=g-import-not-at-top
  import features  # pylint: disable=g-import-not-at-top
  import inference  # pylint: disable=g-import-not-at-top
  import input_pipeline  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  import processors  # pylint: disable=g-import-not-at-top
  import serving  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top

  processor = processors.get_processor(FLAGS.task_name)
  examples = processor.get_test_examples(FLAGS.data_dir)
  inputs = {"text": [e.text_a for e in examples]}
  if processor.has_pairs:
    inputs["text_b"] = [e.text_b or "" for e in examples]
  result = {"device": f"CPU: {platform.processor() or platform.machine()}, "
                      f"{os.cpu_count()} cores", "tf_version": tf.__version__,
            "export_dir": os.path.abspath(FLAGS.export_dir), "task": FLAGS.task_name,
            "examples": len(examples), "batch_size": FLAGS.batch_size}

  loaded = tf.saved_model.load(FLAGS.export_dir)
  serve = loaded.signatures["serving_default"]
  single = {k: tf.constant([FLAGS.text] if k == "text" else [""]) for k in inputs}
  for _ in range(FLAGS.warmup_calls):
    serve(**single)["probabilities"].numpy()
  times = []
  for _ in range(FLAGS.calls):
    started = time.perf_counter()
    serve(**single)["probabilities"].numpy()
    times.append(time.perf_counter() - started)
  result.update(latency_ms_median=1e3 * float(np.median(times)),
                latency_ms_p99=1e3 * float(np.percentile(times, 99)), latency_calls=FLAGS.calls)

  # run_classifier.py's path: the model exists before the clock starts, as in bench/throughput.py.
  settings = serving.RunSettings(
      output_dir=FLAGS.output_dir, task_name=FLAGS.task_name,
      bert_config_file=FLAGS.bert_config_file, vocab_file=FLAGS.vocab_file,
      do_lower_case=FLAGS.do_lower_case, max_seq_length=FLAGS.max_seq_length,
      add_dense=FLAGS.add_dense, cutoff_type=None, cut_off=0.5)
  model, _ = serving.restore_model(settings,
                                   modeling.BertConfig.from_json_file(FLAGS.bert_config_file),
                                   len(processor.get_labels()),
                                   checkpoints.latest(FLAGS.output_dir))
  tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, FLAGS.do_lower_case)

  def run_classifier_predict():
    converted = features.convert_examples(examples, tokenizer, FLAGS.max_seq_length,
                                          len(processor.get_labels()))
    return converted, inference.predict_probabilities(
        model, tf.distribute.get_strategy(), converted, FLAGS.batch_size, bucket_by_length=True,
        pad_to_max=False, length_multiple=input_pipeline.local_length_multiple(use_xla=False))

  # As classify.py batches: longest texts first, so that each batch pads little.
  order = np.argsort([-sum(len(v[i]) for v in inputs.values()) for i in range(len(examples))],
                     kind="stable")
  by_length = {k: [v[i] for i in order] for k, v in inputs.items()}
  workloads = {
      "savedmodel": lambda: in_batches(serve, inputs, FLAGS.batch_size),
      "savedmodel_by_length": lambda: in_batches(serve, by_length, FLAGS.batch_size),
      "savedmodel_tokenize": lambda: in_batches(loaded.signatures["tokenize"], inputs,
                                                FLAGS.batch_size),
      "run_classifier": run_classifier_predict,
  }
  # Round robin, so that a busy spell of the machine slows all alike; the fastest run counts.
  best, outputs = {name: float("inf") for name in workloads}, {}
  for _ in range(FLAGS.repeats):
    for name, workload in workloads.items():
      started = time.perf_counter()
      outputs[name] = workload()
      best[name] = min(best[name], time.perf_counter() - started)
  for name, seconds in best.items():
    result[f"{name}_examples_per_sec"] = len(examples) / seconds
  exported, tokenized = outputs["savedmodel"], outputs["savedmodel_tokenize"]
  converted, probabilities = outputs["run_classifier"]

  ids_equal = all(
      np.array_equal(ids, converted.input_ids[start:start + len(ids), :ids.shape[1]]) and
      not converted.input_ids[start:start + len(ids), ids.shape[1]:].any()
      for start, ids in zip(range(0, len(examples), FLAGS.batch_size),
                            tokenized["input_ids"]))
  result.update(
      ids_equal_to_features=bool(ids_equal),
      max_abs_probability_difference=float(np.abs(
          np.concatenate(exported["probabilities"]) - probabilities).max()))
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
