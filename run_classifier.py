"""BERT multi-label classification: fine-tune, evaluate and predict.

The command line of Google's BERT `run_classifier.py`, as the original multi-label fork used it,
on TensorFlow 2: `--do_train`, `--do_eval`, `--do_predict`, a task, a checkpoint. See README.md.
"""

import os
import sys
import tempfile

from absl import app
from absl import flags
from absl import logging

from errors import UserError

FLAGS = flags.FLAGS

## Required parameters

flags.DEFINE_string(
    "data_dir", None,
    "The input data dir. Should contain the task's files (train, test and optionally dev), in "
    "the format its processor reads; see README.md.")

flags.DEFINE_string(
    "bert_config_file", None,
    "The config json file corresponding to the pre-trained BERT model. This specifies the model "
    "architecture.")

flags.DEFINE_string("task_name", None,
                    "The name of the task to train: movielens, se0714, psychexp or toxic.")

flags.DEFINE_string("vocab_file", None,
                    "The vocabulary file that the BERT model was trained on.")

flags.DEFINE_string(
    "output_dir", None,
    "The output directory where the model checkpoints, cached features, evaluation results and "
    "predictions will be written.")

## Other parameters

flags.DEFINE_string(
    "init_checkpoint", None,
    "Initial checkpoint (usually from a pre-trained BERT model), as a prefix or a folder with a "
    "'checkpoint' file. A checkpoint already in --output_dir takes precedence, as with the "
    "original's Estimator.")

flags.DEFINE_bool(
    "do_lower_case", True,
    "Whether to lower case the input text. Should be True for uncased models and False for "
    "cased models.")

flags.DEFINE_integer(
    "max_seq_length", 128,
    "The maximum total input sequence length after WordPiece tokenization. Sequences longer than "
    "this will be truncated, and sequences shorter than this will be padded.")

flags.DEFINE_bool("do_train", False, "Whether to run training.")

flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")

flags.DEFINE_bool(
    "do_predict", False,
    "Whether to run the model in inference mode on the test set.")

flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.")

flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.")

flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.")

flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")

flags.DEFINE_float("num_train_epochs", 3.0,
                   "Total number of training epochs to perform.")

flags.DEFINE_float(
    "warmup_proportion", 0.1,
    "Proportion of training to perform linear learning rate warmup for. E.g., 0.1 = 10% of "
    "training.")

flags.DEFINE_integer("save_checkpoints_steps", 1000,
                     "How often to save the model checkpoint.")

flags.DEFINE_integer("iterations_per_loop", 1000,
                     "How many steps to make in each device loop before returning to the host.")

flags.DEFINE_bool("use_tpu", False, "Whether to use TPU or GPU/CPU.")

flags.DEFINE_string(
    "tpu_name", None,
    "The Cloud TPU to use for training. This should be either the name used when creating the "
    "Cloud TPU, or a grpc://ip.address.of.tpu:8470 url.")

flags.DEFINE_string(
    "tpu_zone", None,
    "[Optional] GCE zone where the Cloud TPU is located in. If not specified, we will attempt "
    "to automatically detect the GCE project from metadata.")

flags.DEFINE_string(
    "gcp_project", None,
    "[Optional] Project name for the Cloud TPU-enabled project. If not specified, we will "
    "attempt to automatically detect the GCE project from metadata.")

flags.DEFINE_string("master", None, "[Optional] TensorFlow master URL.")

flags.DEFINE_integer(
    "num_tpu_cores", 8,
    "Accepted for the original's scripts and not used: tf.distribute takes the number of TPU "
    "cores from the TPU system itself.")

## Multi-label parameters (the original multi-label fork's)

flags.DEFINE_bool("add_dense", False,
                  "Whether to add a linear Dense(num_labels) layer on the logits.")

flags.DEFINE_float(
    "cut_off", 0.5,
    "Probability cut-off: with --cutoff_type=static, label i is predicted when p_i >= cut_off. "
    "With dynamic, the threshold of a label that has no positive example in dev.")

flags.DEFINE_enum(
    "cutoff_type", None, ["static", "dynamic"],
    "How probabilities become 0/1 predictions. static: one --cut_off for all labels. dynamic: "
    "per label, the threshold that maximises its F1 on the dev split, saved in thresholds.json. "
    "Unset: probabilities only, and eval reports the threshold-free metrics.")

## Parameters of this port

flags.DEFINE_integer("seed", 42,
                     "Seed of the training data order, the head's initialisation and dropout.")

flags.DEFINE_integer("log_steps", 100,
                     "Log the loss, learning rate, speed and ETA every this many training steps. "
                     "A device loop (--iterations_per_loop) ends there too.")

flags.DEFINE_float(
    "head_learning_rate", None,
    "Peak learning rate of the classifier head (loss/...), with the same warm-up and decay. "
    "Default: --learning_rate, as in the original. A model whose pooler was never trained, "
    "such as all-MiniLM-L6-v2, gives pooled outputs that barely vary, and its head needs a "
    "higher rate (say 1e-3) to learn within a few epochs.")

flags.DEFINE_integer("keep_checkpoint_max", 5,
                     "How many of the newest checkpoints to keep in --output_dir.")

flags.DEFINE_enum(
    "precision", "auto", ["auto", "fp32", "bf16", "fp16"],
    "Numeric precision of the model's matrix work. auto: bf16 on TPUs and on GPUs that support "
    "it, fp32 on CPUs. The loss, the sigmoid and the metrics are always fp32.")

flags.DEFINE_bool(
    "bucket_by_length", None,
    "Whether to batch training examples of similar length and pad each batch only to its own "
    "longest example. Default: on, except on TPUs, which need static shapes. Eval and predict "
    "always bucket where shapes may vary.")

flags.DEFINE_bool("use_xla", None,
                  "Whether to compile the training step with XLA. Default: on GPUs and TPUs.")

REQUIRED_FLAGS = ("data_dir", "task_name", "vocab_file", "bert_config_file", "output_dir")

# Spellings that users paste from the original README and elsewhere, with the flag they meant.
MISSPELLED_FLAGS = {"cut-off": "cut_off", "cutoff": "cut_off", "cut_off_type": "cutoff_type",
                    "cutoff-type": "cutoff_type", "add-dense": "add_dense"}


def validate_flags():
  """Checks the flags that need no file; raises `UserError` naming the flag."""
  if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
    raise UserError("at least one of --do_train, --do_eval or --do_predict must be true")
  for name in ("train_batch_size", "eval_batch_size", "predict_batch_size",
               "save_checkpoints_steps", "iterations_per_loop", "log_steps",
               "keep_checkpoint_max"):
    if getattr(FLAGS, name) <= 0:
      raise UserError(f"--{name} must be positive, got {getattr(FLAGS, name)}")
  if FLAGS.do_train and not FLAGS.num_train_epochs > 0:
    raise UserError(f"--num_train_epochs must be positive, got {FLAGS.num_train_epochs}")
  if FLAGS.head_learning_rate is not None and not FLAGS.head_learning_rate > 0:
    raise UserError(f"--head_learning_rate must be positive, got {FLAGS.head_learning_rate}")
  if not 0 <= FLAGS.warmup_proportion <= 1:
    raise UserError(f"--warmup_proportion must be in [0, 1], got {FLAGS.warmup_proportion}")
  if not 0 <= FLAGS.cut_off <= 1:
    raise UserError(f"--cut_off must be a probability in [0, 1], got {FLAGS.cut_off}")
  if FLAGS.max_seq_length < 3:
    raise UserError(f"--max_seq_length must be at least 3 ([CLS], a token, [SEP]), got "
                    f"{FLAGS.max_seq_length}")


def main(argv):
  del argv
  validate_flags()
  # TensorFlow is imported here, after the flags were checked, so that a typo is answered at once.
  import keras  # pylint: disable=g-import-not-at-top
  import checkpoints  # pylint: disable=g-import-not-at-top
  import classifier  # pylint: disable=g-import-not-at-top
  import distribution  # pylint: disable=g-import-not-at-top
  import features  # pylint: disable=g-import-not-at-top
  import inference  # pylint: disable=g-import-not-at-top
  import metrics  # pylint: disable=g-import-not-at-top
  import modeling  # pylint: disable=g-import-not-at-top
  import predictions  # pylint: disable=g-import-not-at-top
  import processors  # pylint: disable=g-import-not-at-top
  import thresholds  # pylint: disable=g-import-not-at-top
  import tokenization  # pylint: disable=g-import-not-at-top
  import training  # pylint: disable=g-import-not-at-top

  keras.utils.set_random_seed(FLAGS.seed)
  processor = processors.get_processor(FLAGS.task_name)
  label_names = processor.get_labels()
  bert_config = modeling.BertConfig.from_json_file(FLAGS.bert_config_file)
  if FLAGS.max_seq_length > bert_config.max_position_embeddings:
    raise UserError(
        f"cannot use --max_seq_length {FLAGS.max_seq_length} because the BERT model was only "
        f"trained up to sequence length {bert_config.max_position_embeddings} "
        f"({FLAGS.bert_config_file})")
  tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
  if FLAGS.init_checkpoint:
    checkpoints.resolve(FLAGS.init_checkpoint)  # A typo is an error even when --output_dir wins.
  tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, FLAGS.do_lower_case)
  # Ids are line numbers, so the highest id (not the count of distinct tokens) must fit.
  vocab_lines = max(tokenizer.vocab.values()) + 1
  if vocab_lines != bert_config.vocab_size:
    raise UserError(f"{FLAGS.vocab_file} has {vocab_lines} tokens but "
                    f"{FLAGS.bert_config_file} says vocab_size {bert_config.vocab_size}: they "
                    "belong to different models")
  output_dir = FLAGS.output_dir
  try:
    os.makedirs(output_dir, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create --output_dir {output_dir}: {e.strerror}") from None
  if not os.access(output_dir, os.W_OK):
    raise UserError(f"--output_dir {output_dir} is not writable")

  strategy = distribution.make_strategy(FLAGS.use_tpu, FLAGS.tpu_name, FLAGS.tpu_zone,
                                        FLAGS.gcp_project, FLAGS.master)
  device = distribution.on_accelerator(strategy)
  precision = distribution.resolve_precision(FLAGS.precision, strategy)
  distribution.set_precision(precision)
  static_shapes = device == "tpu"
  bucket = not static_shapes if FLAGS.bucket_by_length is None else FLAGS.bucket_by_length
  use_xla = device != "cpu" if FLAGS.use_xla is None else FLAGS.use_xla
  logging.info("Device %s, precision %s, bucketing %s, XLA %s", device, precision, bucket,
               use_xla)

  # Every split this run needs is read and converted before anything trains, so that a bad row
  # anywhere stops the run at once.
  vocab_hash = features.hash_file(FLAGS.vocab_file)

  def load_features(split, examples):
    fingerprint = features.fingerprint(
        FLAGS.task_name.lower(), split, vocab_hash, FLAGS.do_lower_case, FLAGS.max_seq_length,
        [[e.guid, e.text_a, e.text_b, list(e.labels) if e.labels is not None else None]
         for e in examples])
    return features.load_or_build_features(
        examples, tokenizer, FLAGS.max_seq_length,
        os.path.join(output_dir, f"{split}.tf_record"), fingerprint, len(label_names))

  splits = {}
  if FLAGS.do_train:
    splits["train"] = processor.get_train_examples(FLAGS.data_dir)
  if FLAGS.do_eval or (FLAGS.do_predict and FLAGS.cutoff_type == "dynamic"):
    splits["eval"] = processor.get_dev_examples(FLAGS.data_dir)
  if FLAGS.do_predict:
    splits["predict"] = processor.get_test_examples(FLAGS.data_dir)
  data = {split: load_features(split, examples) for split, examples in splits.items()}

  with strategy.scope():
    model = classifier.MultiLabelClassifier(bert_config, len(label_names), FLAGS.add_dense)

  if FLAGS.do_train:
    train = data["train"]
    num_train_steps = int(train.num_examples / FLAGS.train_batch_size * FLAGS.num_train_epochs)
    if num_train_steps < 1:
      raise UserError(f"{train.num_examples} training examples × {FLAGS.num_train_epochs} "
                      f"epochs make no full batch of {FLAGS.train_batch_size}")
    num_warmup_steps = int(num_train_steps * FLAGS.warmup_proportion)
    with strategy.scope():
      optimizer = training.make_optimizer(model, FLAGS.learning_rate, num_train_steps,
                                          num_warmup_steps, precision,
                                          FLAGS.head_learning_rate)
    start_step = training.initialize(model, optimizer, output_dir, FLAGS.init_checkpoint)
    plan = features.training_plan(train.lengths, FLAGS.train_batch_size, num_train_steps,
                                  FLAGS.seed, bucket)
    logging.info("***** Running training: %d examples, batch size %d, %d steps *****",
                 train.num_examples, FLAGS.train_batch_size, num_train_steps)
    training.run(
        model, optimizer, strategy,
        features.train_dataset(train, plan, start_step, pad_to_max=not bucket), start_step,
        training.LoopSettings(num_train_steps, FLAGS.train_batch_size,
                              FLAGS.save_checkpoints_steps,
                              min(FLAGS.iterations_per_loop, FLAGS.log_steps),
                              FLAGS.keep_checkpoint_max),
        output_dir, jit_compile=use_xla, is_chief=distribution.is_chief(strategy))

  if not (FLAGS.do_eval or FLAGS.do_predict):
    return
  _, step = inference.load(model, output_dir, FLAGS.init_checkpoint)
  # Every worker predicts (the replicas work together), but only the chief writes results.
  results_dir = output_dir if distribution.is_chief(strategy) else tempfile.mkdtemp()
  thresholds_path = os.path.join(results_dir, thresholds.THRESHOLDS_FILE)

  def probabilities_of(split, batch_size):
    return inference.predict_probabilities(model, strategy, data[split], batch_size,
                                           bucket_by_length=not static_shapes,
                                           pad_to_max=static_shapes)

  def tune_thresholds(dev_probabilities):
    dev = data["eval"]
    found = thresholds.best_f1_thresholds(dev.labels[dev.has_labels],
                                          dev_probabilities[dev.has_labels], FLAGS.cut_off)
    thresholds.save_thresholds(thresholds_path, label_names, found.thresholds, found.dev_f1,
                               step, found.fallback_used)
    logging.info("Dynamic thresholds (dev F1): %s", ", ".join(
        f"{n} {t:.4f} ({f:.3f})" for n, t, f in zip(label_names, found.thresholds,
                                                   found.dev_f1)))
    return found.thresholds

  def cut(probabilities, cut_offs):
    return None if cut_offs is None else thresholds.static_predictions(probabilities, cut_offs)

  def evaluate(split, probabilities, cut_offs, prefix):
    split_features = data[split]
    scored = split_features.has_labels
    if not scored.any():
      return
    result = metrics.compute_metrics(split_features.labels[scored], probabilities[scored],
                                     label_names, cut(probabilities[scored], cut_offs))
    metrics.write_eval_results(results_dir, prefix, result)
    logging.info("***** %s results *****\n%s", split, metrics.format_eval_results(result))

  cut_offs = FLAGS.cut_off if FLAGS.cutoff_type == "static" else None
  if FLAGS.do_eval:
    dev_probabilities = probabilities_of("eval", FLAGS.eval_batch_size)
    if FLAGS.cutoff_type == "dynamic":
      cut_offs = tune_thresholds(dev_probabilities)
    evaluate("eval", dev_probabilities, cut_offs, "")

  if FLAGS.do_predict:
    if FLAGS.cutoff_type == "dynamic" and not FLAGS.do_eval:
      try:
        cut_offs = thresholds.load_thresholds(thresholds_path, label_names, step)
      except UserError as e:
        logging.info("Tuning dynamic thresholds on the dev split now: %s", e)
        cut_offs = tune_thresholds(probabilities_of("eval", FLAGS.eval_batch_size))
    test = data["predict"]
    test_probabilities = probabilities_of("predict", FLAGS.predict_batch_size)
    predictions.write_predictions(results_dir, test.guids, label_names, test_probabilities,
                                  cut(test_probabilities, cut_offs))
    evaluate("predict", test_probabilities, cut_offs, "test_")
    logging.info("Wrote predictions for %d examples to %s", test.num_examples, results_dir)


def parse_flags(argv):
  """absl's parsing, with a one-line answer for the original README's known slips."""
  app.define_help_flags()  # --help, --helpshort, --helpfull, as app.run would define them.
  for arg in argv[1:]:
    if not arg.startswith("-"):
      continue
    name, _, value = arg.lstrip("-").partition("=")
    if name in MISSPELLED_FLAGS:
      raise UserError(f"unknown flag --{name}: the flag is --{MISSPELLED_FLAGS[name]}")
    glued = value.find("--")
    if glued > 0:
      raise UserError(f"{arg!r} looks like two flags glued together: put a space between "
                      f"{value[:glued]!r} and {value[glued:]!r} (in a shell script, a space "
                      f"before the line's backslash)")
  try:
    return FLAGS(argv)
  except flags.Error as e:
    raise UserError(str(e)) from None


def run_from_command_line():
  """Parses the flags and runs; a user's mistake ends in one line on stderr and exit code 2."""
  try:
    argv = parse_flags(sys.argv)
    missing = [f"--{name}" for name in REQUIRED_FLAGS if getattr(FLAGS, name) is None]
    if missing:
      raise UserError(f"missing required flag(s): {', '.join(missing)}")
    app.run(main, argv=argv, flags_parser=lambda argv: argv)
  except UserError as e:
    logging.debug("User error", exc_info=True)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  run_from_command_line()
