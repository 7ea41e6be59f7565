"""BERT multi-label classification: fine-tune, evaluate and predict.

The command line of Google's BERT `run_classifier.py`, as the original multi-label fork used it,
on TensorFlow 2: `--do_train`, `--do_eval`, `--do_predict`, a task, a checkpoint. See README.md.
"""

import sys

from absl import app
from absl import flags
from absl import logging

from errors import UserError
import windows

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
                    "The name of the task to train: movielens, se0714, psychexp, toxic, or "
                    "generic for your own CSV, TSV or JSON Lines files (see README.md).")

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
    "this will be truncated, and sequences shorter than this will be padded. At least 3: "
    "[CLS], a token and [SEP].", lower_bound=3)

flags.DEFINE_bool("do_train", False, "Whether to run training.")

flags.DEFINE_bool("do_eval", False, "Whether to run eval on the dev set.")

flags.DEFINE_bool(
    "do_predict", False,
    "Whether to run the model in inference mode on the test set.")

flags.DEFINE_integer("train_batch_size", 32, "Total batch size for training.", lower_bound=1)

flags.DEFINE_integer("eval_batch_size", 8, "Total batch size for eval.", lower_bound=1)

flags.DEFINE_integer("predict_batch_size", 8, "Total batch size for predict.", lower_bound=1)

flags.DEFINE_float("learning_rate", 5e-5, "The initial learning rate for Adam.")

flags.DEFINE_float("num_train_epochs", 3.0,
                   "Total number of training epochs to perform.")

flags.DEFINE_float(
    "warmup_proportion", 0.1,
    "Proportion of training to perform linear learning rate warmup for. E.g., 0.1 = 10% of "
    "training.", lower_bound=0.0, upper_bound=1.0)

flags.DEFINE_integer("save_checkpoints_steps", 1000,
                     "How often to save the model checkpoint.", lower_bound=1)

flags.DEFINE_integer("iterations_per_loop", 1000,
                     "How many steps to make in each device loop before returning to the host.",
                     lower_bound=1)

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
    "With dynamic, the threshold of a label that has no positive example in dev.",
    lower_bound=0.0, upper_bound=1.0)

flags.DEFINE_enum(
    "cutoff_type", None, ["static", "dynamic"],
    "How probabilities become 0/1 predictions. static: one --cut_off for all labels. dynamic: "
    "per label, the threshold that maximises its F1 on the dev split, saved in thresholds.json. "
    "Unset: probabilities only, and eval reports the threshold-free metrics.")

## Parameters of this port

flags.DEFINE_integer("seed", 42,
                     "Seed of the training data order, the head's initialisation and dropout.")

flags.DEFINE_bool(
    "adam_bias_correction", False,
    "Whether Adam divides its moment estimates by their bias corrections, as PyTorch's AdamW "
    "does. Off by default: Google's update, which the original's commands and checkpoints were "
    "tuned with, has none. Without it the first steps are several times larger, which can make "
    "fine-tuning on small data sets at higher rates diverge.")

flags.DEFINE_enum(
    "pooling", "cls", ["cls", "mean"],
    "What the classifier reads. cls: BERT's pooler on [CLS], as the original. mean: the mean of "
    "the last layer over the real tokens, for checkpoints whose pooler was never trained, such "
    "as sentence-transformer models like all-MiniLM-L6-v2; the model then has no pooler.")

flags.DEFINE_enum(
    "pos_weight", "none", ["none", "auto"],
    "Weight of each label's positive examples in the loss. auto: per label, the number of "
    "negatives per positive in the training data, at most 10; for sparse labels.")

flags.DEFINE_enum(
    "truncation", "head", windows.TRUNCATIONS,
    "Which tokens a single text longer than --max_seq_length - 2 keeps. head: the first, as "
    "the original. tail: the last. head_tail: the first quarter of them (rounded up) and the "
    "rest from the end, as Sun et al. 2019 kept 128 + 382 of 510 (best on IMDb). A text pair "
    "(text b) is truncated as the original does, longest first, whatever this says.")

flags.DEFINE_integer(
    "doc_stride", 0,
    "0: a long single text is truncated (--truncation). Else it becomes windows of "
    "--max_seq_length - 2 tokens, each [CLS] window [SEP], starting every doc_stride tokens "
    "(the last one ending with the text), at most --max_windows; training trains on every "
    "window with its document's labels, and eval and predict pool the windows' probabilities "
    "per document (--window_pooling). At most --max_seq_length - 2. Text pairs get no windows.",
    lower_bound=0)

flags.DEFINE_integer(
    "max_windows", windows.DEFAULT_MAX_WINDOWS,
    "With --doc_stride: the most windows of one text. A longer text is first cut by "
    "--truncation to the --max_seq_length - 2 + (max_windows - 1) * doc_stride tokens they "
    "span. Bounds the cost of a few huge texts.", lower_bound=1)

flags.DEFINE_enum(
    "window_pooling", "max", windows.POOLINGS,
    "With --doc_stride: how a document's probability of each label is made of its windows' at "
    "eval and predict: the highest (a label shown anywhere in the text), or the mean.")

flags.DEFINE_integer("log_steps", 100,
                     "Log the loss, learning rate, speed and ETA every this many training steps. "
                     "A device loop (--iterations_per_loop) ends there too.", lower_bound=1)

flags.DEFINE_float(
    "head_learning_rate", None,
    "Peak learning rate of the classifier head (loss/...), with the same warm-up and decay. "
    "Default: --learning_rate, as in the original. A model whose pooler was never trained, "
    "such as all-MiniLM-L6-v2, gives pooled outputs that barely vary, and its head needs a "
    "higher rate (say 1e-3) to learn within a few epochs.")

flags.DEFINE_integer("keep_checkpoint_max", 5,
                     "How many of the newest checkpoints to keep in --output_dir.", lower_bound=1)

flags.DEFINE_integer(
    "eval_every_steps", 0,
    "Score the dev split every this many training steps, and at the last step: a log line and "
    "TensorBoard's eval/ folder. 0: once an epoch where --keep_best is set, else never.",
    lower_bound=0)

flags.DEFINE_enum(
    "keep_best", "none", ["none", "mean_auc", "micro_f1", "macro_f1", "weighted_f1"],
    "Keep the checkpoint with the best dev score by this metric in --output_dir/best, which "
    "eval, thresholds and predict then use, also in later runs given this flag. F1 is measured "
    "at the static --cut_off, so that the choice of checkpoint is not tuned on the thresholds "
    "it is scored with. none: eval and predict use the latest checkpoint.")

flags.DEFINE_integer(
    "early_stopping_patience", 0,
    "Stop training after this many dev evaluations in a row without an improvement of the "
    "--keep_best metric, which it needs. 0: never stop early.", lower_bound=0)

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

## Own-data (generic task) parameters

flags.DEFINE_string("train_file", None,
                    "--task_name=generic: the train file (.csv, .tsv, .jsonl or .json), instead "
                    "of train.* in --data_dir.")
flags.DEFINE_string("dev_file", None,
                    "--task_name=generic: the dev file, instead of dev.* in --data_dir. Without "
                    "either, the dev split is the seeded hold-out of train.")
flags.DEFINE_string("test_file", None,
                    "--task_name=generic: the test file, instead of test.* in --data_dir; "
                    "without labels it is predicted only.")
flags.DEFINE_string("text_column", "text", "--task_name=generic: the column of the text.")
flags.DEFINE_string("text_b_column", None,
                    "--task_name=generic: the column of an optional second text (a sentence "
                    "pair, as title and summary).")
flags.DEFINE_string("id_column", None,
                    "--task_name=generic: the column of the ids in the predictions. Default: "
                    "the line where the row starts.")
flags.DEFINE_list("label_columns", None,
                  "--task_name=generic: the label columns, each holding 0/1 or true/false "
                  "(wide layout), in label order.")
flags.DEFINE_string("labels_column", None,
                    "--task_name=generic: the column holding each row's label names or ids, a "
                    "JSON list or a string split on --label_separator. Where neither this nor "
                    "--label_columns is given: a 'labels' column if there is one, else every "
                    "column that is not text, text b, id or ignored is a label column.")
flags.DEFINE_list("ignore_columns", None,
                  "--task_name=generic: columns that are neither text, id nor label.")
flags.DEFINE_string("label_separator", "|",
                    "--task_name=generic: what separates the labels in a CSV or TSV cell.")
flags.DEFINE_string("labels_file", None,
                    "--task_name=generic: the label names, one a line, in label order; line i "
                    "(from 0) names label id i. Default: labels.txt in --data_dir, if there.")
flags.register_multi_flags_validator(
    ["data_dir", "task_name", "train_file", "test_file"],
    lambda values: values["data_dir"] is not None or (
        (values["task_name"] or "").strip().lower() == "generic" and
        (values["train_file"] or values["test_file"]) is not None),
    "flag --data_dir must have a value (with --task_name=generic, --train_file or --test_file "
    "may name the files instead)")

REQUIRED_FLAGS = ("task_name", "vocab_file", "bert_config_file", "output_dir")
flags.mark_flags_as_required(REQUIRED_FLAGS)

flags.register_multi_flags_validator(
    ["do_train", "do_eval", "do_predict"], lambda values: any(values.values()),
    "at least one of --do_train, --do_eval or --do_predict must be true")
flags.register_multi_flags_validator(
    ["do_train", "num_train_epochs"],
    lambda values: not values["do_train"] or values["num_train_epochs"] > 0,
    "--num_train_epochs must be positive")
flags.register_multi_flags_validator(
    ["early_stopping_patience", "keep_best"],
    lambda values: not values["early_stopping_patience"] or values["keep_best"] != "none",
    "--early_stopping_patience counts evaluations without improvement of the --keep_best "
    "metric: set --keep_best too")
flags.register_multi_flags_validator(
    ["do_train", "eval_every_steps", "early_stopping_patience"],
    lambda values: values["do_train"] or not (values["eval_every_steps"] or
                                              values["early_stopping_patience"]),
    "--eval_every_steps and --early_stopping_patience act during training: they need "
    "--do_train")
flags.register_multi_flags_validator(
    ["doc_stride", "max_seq_length"],
    lambda values: values["doc_stride"] <= values["max_seq_length"] - 2,
    "--doc_stride must be at most --max_seq_length - 2, else windows skip tokens")
flags.register_validator("head_learning_rate", lambda rate: rate is None or rate > 0,
                         "--head_learning_rate must be positive")

# Spellings that users paste from the original README and elsewhere, with the flag they meant.
MISSPELLED_FLAGS = {"cut-off": "cut_off", "cutoff": "cut_off", "cut_off_type": "cutoff_type",
                    "cutoff-type": "cutoff_type", "add-dense": "add_dense"}


def main(argv):
  del argv
  # TensorFlow is imported here, after absl checked the flags, so that a typo is answered at once,
  # and through `console`, which hides its C++ start-up log unless --verbosity=1 asks for it.
  import console  # pylint: disable=g-import-not-at-top
  console.import_tensorflow(logging.get_verbosity())
  import inference  # pylint: disable=g-import-not-at-top
  import processors  # pylint: disable=g-import-not-at-top
  from processors import generic  # pylint: disable=g-import-not-at-top
  from processors import label_set  # pylint: disable=g-import-not-at-top
  import workflow  # pylint: disable=g-import-not-at-top

  if not FLAGS.do_train:
    inference.share_cpu_cores(FLAGS.use_tpu)  # First: the runtime sizes its threads once.
  processor = processors.get_processor(FLAGS.task_name, generic.Options.from_flags(FLAGS))
  label_names = label_set.resolve(processor, FLAGS.output_dir)
  bert_config, tokenizer = workflow.load_model_files(
      FLAGS.bert_config_file, FLAGS.vocab_file, FLAGS.do_lower_case, FLAGS.init_checkpoint,
      FLAGS.max_seq_length)
  hardware = workflow.choose_hardware(FLAGS.use_tpu, FLAGS.tpu_name, FLAGS.tpu_zone,
                                      FLAGS.gcp_project, FLAGS.master, FLAGS.precision,
                                      FLAGS.bucket_by_length, FLAGS.use_xla)
  output_dir = FLAGS.output_dir
  workflow.prepare_output_dir(output_dir, hardware.is_chief)

  keep_best = None if FLAGS.keep_best == "none" else FLAGS.keep_best
  needed = [workflow.TRAIN] if FLAGS.do_train else []
  if (FLAGS.do_eval or (FLAGS.do_predict and FLAGS.cutoff_type == "dynamic") or
      (FLAGS.do_train and (FLAGS.eval_every_steps or keep_best))):
    needed.append(workflow.DEV)
  if FLAGS.do_predict:
    needed.append(workflow.TEST)
  splits = workflow.load_splits(processor, needed, FLAGS.data_dir, tokenizer, FLAGS.vocab_file,
                                FLAGS.do_lower_case, FLAGS.max_seq_length, output_dir,
                                len(label_names), windows.Options(
                                    FLAGS.truncation, FLAGS.doc_stride, FLAGS.max_windows,
                                    FLAGS.window_pooling))
  if hardware.is_chief:
    label_set.save(output_dir, label_names)  # The data is read: the label set is final.
  model = workflow.build_model(
      hardware, bert_config, len(label_names), FLAGS.add_dense, FLAGS.seed, FLAGS.pooling,
      draw_weights=workflow.uses_random_weights(FLAGS.do_train, output_dir,
                                                FLAGS.init_checkpoint))
  decisions = workflow.Decisions(tuple(label_names), FLAGS.cutoff_type, FLAGS.cut_off)

  if FLAGS.do_train:
    workflow.train(model, hardware, splits[workflow.TRAIN], workflow.TrainSettings(
        batch_size=FLAGS.train_batch_size, num_train_epochs=FLAGS.num_train_epochs,
        learning_rate=FLAGS.learning_rate, head_learning_rate=FLAGS.head_learning_rate,
        warmup_proportion=FLAGS.warmup_proportion, seed=FLAGS.seed,
        save_checkpoints_steps=FLAGS.save_checkpoints_steps,
        steps_per_loop=min(FLAGS.iterations_per_loop, FLAGS.log_steps),
        keep_checkpoint_max=FLAGS.keep_checkpoint_max, init_checkpoint=FLAGS.init_checkpoint,
        adam_bias_correction=FLAGS.adam_bias_correction, pos_weight=FLAGS.pos_weight,
        eval_every_steps=FLAGS.eval_every_steps, keep_best=keep_best,
        early_stopping_patience=FLAGS.early_stopping_patience,
        eval_batch_size=FLAGS.eval_batch_size),
        output_dir, splits.get(workflow.DEV), decisions)
  if not (FLAGS.do_eval or FLAGS.do_predict):
    workflow.say_where_results_are(hardware, output_dir)
    return

  checkpoint = workflow.weights_for_prediction(model, hardware, output_dir,
                                               FLAGS.init_checkpoint, trained=FLAGS.do_train,
                                               keep_best=keep_best)
  cut_offs = FLAGS.cut_off if FLAGS.cutoff_type == "static" else None
  scored = []
  if FLAGS.do_eval:
    cut_offs, dev_scored = workflow.evaluate(model, hardware, splits[workflow.DEV], decisions,
                                             FLAGS.eval_batch_size, checkpoint, output_dir)
    scored.append(dev_scored)
  if FLAGS.do_predict:
    if FLAGS.cutoff_type == "dynamic" and not FLAGS.do_eval:
      cut_offs = workflow.saved_or_tuned_thresholds(
          model, hardware, splits[workflow.DEV], decisions, FLAGS.eval_batch_size, checkpoint,
          output_dir)
    scored.append(workflow.predict(model, hardware, splits[workflow.TEST], decisions, cut_offs,
                                   FLAGS.predict_batch_size, output_dir))
  workflow.write_report(
      hardware, output_dir, [s for s in scored if s is not None], checkpoint, decisions,
      f"{FLAGS.task_name}: {output_dir}",
      FLAGS.get_key_flags_for_module(sys.modules[__name__]), bert_config)
  workflow.say_where_results_are(hardware, output_dir)


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
    if glued > 0 and _is_flag_name(value[glued + 2:].partition("=")[0]):
      raise UserError(f"{arg!r} looks like two flags glued together: put a space between "
                      f"{value[:glued]!r} and {value[glued:]!r} (in a shell script, a space "
                      f"before the line's backslash)")
  try:
    return FLAGS(argv)
  except flags.Error as e:
    raise UserError(str(e)) from None


def _is_flag_name(name):
  """Whether `name` is one of our flags, also as absl's `--noNAME` for a boolean."""
  return name in FLAGS or (name.startswith("no") and name[2:] in FLAGS) or name in MISSPELLED_FLAGS


def run_from_command_line():
  """Parses the flags and runs; a user's mistake ends in one line on stderr and exit code 2."""
  try:
    argv = parse_flags(sys.argv)
    app.run(main, argv=argv, flags_parser=lambda argv: argv)
  except UserError as e:
    logging.debug("User error", exc_info=True)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  run_from_command_line()
