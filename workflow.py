"""The steps of a run_classifier.py run: set up, load the splits, train, evaluate and predict.

`run_classifier.main` calls them in order, as Google's main built its estimator and called
train, evaluate and predict. Each step takes what it needs as arguments and returns what the
next one needs, so each reads alone.

Several workers: every worker runs every step (their replicas compute together), but only the
chief reads and writes `--output_dir`. Whatever the chief decides from its disk (the checkpoint
to start from, whether saved thresholds fit) reaches the others through `distribution`, so
that all take the same path.
"""

import dataclasses
import functools
import glob
import math
import os

from absl import logging
import keras
import numpy as np

import checkpoints
import classifier
import console
import distribution
from errors import UserError
import feature_cache
import input_pipeline
import inference
import metrics
import model_selection
import modeling
import predictions
import report
import summaries
import thresholds
import tokenization
import training
import windows

# Split names: also the names of their feature caches and of the log's sections.
TRAIN, DEV, TEST = "train", "dev", "test"


@dataclasses.dataclass(frozen=True)
class Hardware:
  """Where and how the model runs.

  Attributes:
    strategy: the `tf.distribute.Strategy`.
    device: "cpu", "gpu" or "tpu".
    precision: "fp32", "bf16" or "fp16".
    bucket_by_length: batch training examples of similar length, each batch padded to its own
      longest.
    use_xla: compile the training step with XLA.
  """
  strategy: object
  device: str
  precision: str
  bucket_by_length: bool
  use_xla: bool

  @property
  def static_shapes(self):
    """TPUs compile for one shape: everything is padded to max_seq_length there."""
    return self.device == "tpu"

  @property
  def is_chief(self):
    return distribution.is_chief(self.strategy)

  @property
  def length_multiple(self):
    """Batch widths are rounded up to a multiple of this (see `input_pipeline`)."""
    return input_pipeline.length_multiple(self.device, self.use_xla)

  @property
  def skips_padding(self):
    """The model's dense layers skip the padding when predicting (`classifier.skips_padding`)."""
    return classifier.skips_padding(self.device, self.use_xla)


def choose_hardware(use_tpu, tpu_name, tpu_zone, gcp_project, master, precision,
                    bucket_by_length, use_xla):
  """Builds the strategy and resolves the flags whose default depends on the device."""
  strategy = distribution.make_strategy(use_tpu, tpu_name, tpu_zone, gcp_project, master)
  device = distribution.on_accelerator(strategy)
  precision = distribution.resolve_precision(precision, strategy)
  distribution.set_precision(precision)
  hardware = Hardware(
      strategy=strategy, device=device, precision=precision,
      bucket_by_length=device != "tpu" if bucket_by_length is None else bucket_by_length,
      use_xla=device != "cpu" if use_xla is None else use_xla)
  logging.info("Device %s, precision %s, bucketing %s, XLA %s", device, precision,
               hardware.bucket_by_length, hardware.use_xla)
  return hardware


def load_model_files(bert_config_file, vocab_file, do_lower_case, init_checkpoint,
                     max_seq_length):
  """Reads the BERT config and the vocabulary, checking they fit each other and the flags.

  Returns:
    (`modeling.BertConfig`, `tokenization.FullTokenizer`).

  Raises:
    UserError: naming the flag whose file does not fit.
  """
  bert_config = modeling.BertConfig.from_json_file(bert_config_file)
  if max_seq_length > bert_config.max_position_embeddings:
    raise UserError(
        f"cannot use --max_seq_length {max_seq_length} because the BERT model was only "
        f"trained up to sequence length {bert_config.max_position_embeddings} "
        f"({bert_config_file})")
  tokenization.validate_case_matches_checkpoint(do_lower_case, init_checkpoint)
  if init_checkpoint:
    checkpoints.resolve(init_checkpoint)  # A typo is an error even when --output_dir wins.
  tokenizer = tokenization.FullTokenizer(vocab_file, do_lower_case)
  # A token's id is its line in the vocab file, so the highest id, not the number of distinct
  # tokens, must fit the embedding table.
  vocab_lines = max(tokenizer.vocab.values()) + 1
  if vocab_lines != bert_config.vocab_size:
    raise UserError(f"--vocab_file {vocab_file} has {vocab_lines} tokens but "
                    f"--bert_config_file {bert_config_file} says vocab_size "
                    f"{bert_config.vocab_size}: they belong to different models")
  return bert_config, tokenizer


def prepare_output_dir(output_dir, is_chief):
  """Creates `output_dir` and clears what a killed run left half-written in it.

  `fileio` writes `.NAME.*.tmp` files and TF's checkpoint writer `*.tempstate*` files, each
  renamed once complete; a run killed in between leaves them behind, unused by anything.
  Only the chief clears them: in a folder shared by several workers they may be its own.
  """
  try:
    os.makedirs(output_dir, exist_ok=True)
  except OSError as e:
    raise UserError(f"cannot create --output_dir {output_dir}: {e.strerror}") from None
  if not os.access(output_dir, os.W_OK):
    raise UserError(f"--output_dir {output_dir} is not writable")
  if not is_chief:
    return
  for path in (glob.glob(os.path.join(output_dir, ".*.tmp")) +
               glob.glob(os.path.join(output_dir, "*.tempstate*"))):
    logging.info("Removing %s, left by a run that was stopped while writing it", path)
    os.remove(path)


@dataclasses.dataclass(frozen=True)
class Split:
  """A split's model inputs and what identifies them.

  Attributes:
    name: `TRAIN`, `DEV` or `TEST`.
    features: `features.Features`, the rows the model reads (with windows, a row per window).
    fingerprint: str, a digest of the task, the split, the vocabulary, the casing,
      max_seq_length, the long-text settings and every example: equal fingerprints mean equal
      features.
    long_texts: `windows.Options`, how the features were made and how the windows' probabilities
      are pooled.
  """
  name: str
  features: object
  fingerprint: str
  long_texts: windows.Options = windows.Options()

  @functools.cached_property
  def documents(self):
    """`features.Features` of the documents (input examples), one row each: their ids, labels
    and count."""
    return self.features.per_document()

  @property
  def probabilities_key(self):
    """Identifies the split's per-document probabilities for given weights: the features'
    digest, and the pooling where some document has several windows."""
    if self.documents is self.features:
      return self.fingerprint
    return feature_cache.fingerprint(self.fingerprint, self.long_texts.pooling)


def load_splits(processor, names, data_dir, tokenizer, vocab_file, do_lower_case,
                max_seq_length, output_dir, num_labels, long_texts=windows.Options()):
  """Reads the splits `names` and converts them to features, through the cache.

  Every split is read and converted before anything trains, so that a bad row anywhere stops
  the run at once. `long_texts` (`windows.Options`) says how texts longer than max_seq_length
  become rows.

  Returns:
    {name: `Split`}.
  """
  readers = {TRAIN: processor.get_train_examples, DEV: processor.get_dev_examples,
             TEST: processor.get_test_examples}
  vocab_hash = feature_cache.hash_file(vocab_file)
  # Every file is read before any cache is written: a bad row in test must not leave a
  # rewritten train cache behind.
  read = {name: readers[name](data_dir) for name in names}
  # Google's behaviour adds nothing, so that caches made before the long-text flags stay valid.
  long_text_parts = [long_texts.identity()] if long_texts.identity() else []
  splits = {}
  for name, examples in read.items():
    fingerprint = feature_cache.fingerprint(
        processor.name, name, vocab_hash, do_lower_case, max_seq_length,
        [[e.guid, e.text_a, e.text_b, list(e.labels) if e.labels is not None else None]
         for e in examples], *long_text_parts)
    split_features = feature_cache.load_or_build_features(
        examples, tokenizer, max_seq_length, os.path.join(output_dir, f"{name}.tf_record"),
        fingerprint, num_labels, long_texts)
    splits[name] = Split(name, split_features, fingerprint, long_texts)
  return splits


def uses_random_weights(do_train, output_dir, init_checkpoint):
  """Whether a run uses BERT's random initial weights.

  Only a training run with no checkpoint in `output_dir` to resume and no `init_checkpoint`
  does. Every other run loads all of BERT's variables from a checkpoint before it uses them
  (`training.initialize`, `inference.load`, `model_selection.load_best`), or stops.
  """
  return do_train and not (init_checkpoint or checkpoints.latest(output_dir))


def build_model(hardware, bert_config, num_labels, add_dense, seed, pooling="cls",
                draw_weights=True):
  """The classifier, its head initialised from `seed` (which also seeds dropout).

  BERT's weights are drawn only with `draw_weights` (see `uses_random_weights`); the head's
  are the same either way.
  """
  keras.utils.set_random_seed(seed)
  with hardware.strategy.scope():
    return classifier.MultiLabelClassifier(bert_config, num_labels, add_dense, pooling,
                                           skip_padding=hardware.skips_padding,
                                           draw_weights=draw_weights)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
  """The training flags, as Google's script named them (see run_classifier.py)."""
  batch_size: int
  num_train_epochs: float
  learning_rate: float
  head_learning_rate: object  # float or None
  warmup_proportion: float
  seed: int
  save_checkpoints_steps: int
  steps_per_loop: int
  keep_checkpoint_max: int
  init_checkpoint: object  # str or None
  adam_bias_correction: bool
  pos_weight: str  # "none" or "auto"
  # Dev evaluation during training (see model_selection.py); off by default.
  eval_every_steps: int = 0  # 0: once an epoch where keep_best is set, else never.
  keep_best: object = None  # None or a key of `model_selection.METRICS`.
  early_stopping_patience: int = 0
  eval_batch_size: int = 8

  @property
  def evaluates(self):
    return bool(self.eval_every_steps or self.keep_best)


def train(model, hardware, train_split, settings, output_dir, dev=None, decisions=None):
  """Fine-tunes `model` on `train_split`, resuming from `output_dir`'s newest checkpoint.

  With `settings.evaluates`, also scores `dev` (a `Split`) during training, with the label
  names and `--cut_off` of `decisions`, keeps the best checkpoint and stops early as the
  settings say; a run that stopped early does not train on.

  Raises:
    UserError: no full batch, or a resume that would change the training plan.
    training.TrainingDiverged: the loss or the weights became NaN or infinite.
  """
  train_features = train_split.features
  num_train_steps = int(train_features.num_examples / settings.batch_size *
                        settings.num_train_epochs)
  if num_train_steps < 1:
    raise UserError(f"{train_features.num_examples} training examples × "
                    f"{settings.num_train_epochs} epochs make no full batch of "
                    f"{settings.batch_size}")
  num_warmup_steps = int(num_train_steps * settings.warmup_proportion)
  # Rounded up, so that a fraction of an epoch left at the end is not evaluated twice.
  steps_per_epoch = math.ceil(num_train_steps / settings.num_train_epochs)
  _check_training_plan(hardware, output_dir, {
      training.TRAINING_DATA: train_split.fingerprint,
      "train_batch_size": settings.batch_size,
      "num_train_epochs": settings.num_train_epochs,
      "learning_rate": settings.learning_rate,
      "head_learning_rate": settings.head_learning_rate,
      "warmup_proportion": settings.warmup_proportion,
      "seed": settings.seed,
      "bucket_by_length": hardware.bucket_by_length,
      "adam_bias_correction": settings.adam_bias_correction,
      "pos_weight": settings.pos_weight,
      "pooling": model.pooling,
      # Off is None, which is also what a record from before these flags existed gives.
      "eval_every_steps": settings.eval_every_steps or None,
      "keep_best": settings.keep_best,
      "early_stopping_patience": settings.early_stopping_patience or None,
      **train_split.long_texts.plan_inputs(),
  })
  evaluator = None
  if settings.evaluates:
    evaluator = model_selection.Evaluator(
        model, hardware.strategy, output_dir,
        lambda: probabilities_of(model, hardware, dev, settings.eval_batch_size),
        dev.documents.labels, dev.documents.has_labels, decisions.label_names,
        decisions.cut_off, settings.keep_best, settings.early_stopping_patience,
        fresh_start=checkpoints.latest(output_dir) is None)
    if evaluator.stopped_early:
      logging.info("Training stopped early in an earlier run (see %s): training is complete",
                   model_selection.best_dir(output_dir))
      evaluator.close()
      return
  with hardware.strategy.scope():
    optimizer = training.make_optimizer(model, settings.learning_rate, num_train_steps,
                                        num_warmup_steps, hardware.precision,
                                        settings.head_learning_rate,
                                        settings.adam_bias_correction)
  pos_weight = None
  if settings.pos_weight == "auto":
    pos_weight = classifier.positive_weights(train_features.labels)
    logging.info("Positive weights, in label order: %s",
                 ", ".join(f"{weight:.2f}" for weight in pos_weight))
  start_step = training.initialize(model, optimizer, hardware.strategy, output_dir,
                                   settings.init_checkpoint)
  plan = input_pipeline.training_plan(train_features.lengths, settings.batch_size,
                                      num_train_steps, settings.seed, hardware.bucket_by_length)
  logging.info("***** Running training: %d examples, batch size %d, %d steps *****",
               train_features.num_examples, settings.batch_size, num_train_steps)
  if train_split.documents is not train_features:
    logging.info("Training examples are windows: %d windows of %d documents, each with its "
                 "document's labels; epochs, steps and --pos_weight=auto count windows",
                 train_features.num_examples, train_split.documents.num_examples)
  events = (summaries.EventWriter(os.path.join(output_dir, summaries.TRAIN_DIR))
            if hardware.is_chief else None)
  with console.Progress("Training", num_train_steps, "step", start=start_step) as progress:

    def on_log(step, scalars):
      progress.update(step, f"loss {scalars['loss']:.4f}")
      if events:
        events.write_scalars(step, scalars)

    training.run(
        model, optimizer, hardware.strategy,
        input_pipeline.train_dataset(train_features, plan, start_step,
                                     pad_to_max=not hardware.bucket_by_length,
                                     length_multiple=hardware.length_multiple),
        start_step,
        training.LoopSettings(num_train_steps, settings.batch_size,
                              settings.save_checkpoints_steps, settings.steps_per_loop,
                              settings.keep_checkpoint_max,
                              settings.eval_every_steps or steps_per_epoch),
        output_dir, jit_compile=hardware.use_xla, on_log=on_log, pos_weight=pos_weight,
        on_evaluate=evaluator)
  if events:
    events.close()
  if evaluator:
    evaluator.close()


def _check_training_plan(hardware, output_dir, plan_inputs):
  """Refuses a resume that changes the plan (see `training.plan_mismatch`), on every worker."""
  problem = training.plan_mismatch(output_dir, plan_inputs) if hardware.is_chief else None
  [refused] = distribution.chief_values(hardware.strategy, [problem is not None])
  if problem:
    raise UserError(problem)
  if refused:
    raise UserError("the chief refused to resume its training run; its log says why")
  if hardware.is_chief:
    training.record_plan(output_dir, plan_inputs)


def weights_for_prediction(model, hardware, output_dir, init_checkpoint, trained,
                           keep_best=None):
  """Makes `model` hold the weights that eval and predict use.

  With `keep_best` (a metric), those of the best checkpoint by that dev metric (see
  `model_selection`), after training or not. Else, after training in this run, the trained
  weights already in memory, the same on every worker; reading them back from disk would race
  the chief's last save. Otherwise they are loaded as the Estimator chose them (see
  `inference.load`).

  Returns:
    The `checkpoints.Identity` of those weights on the chief; None on other workers.
  """
  if keep_best:
    return model_selection.load_best(model, hardware.strategy, output_dir, keep_best)
  if not trained:
    return inference.load(model, hardware.strategy, output_dir, init_checkpoint)
  return checkpoints.identify(checkpoints.latest(output_dir)) if hardware.is_chief else None


def probabilities_of(model, hardware, split, batch_size):
  """float32 [n, num_labels], the sigmoid outputs for the split's n documents, in input order.

  A document split into windows gets its windows' probabilities pooled (`windows.pool`).
  """
  with console.Progress(f"Predicting {split.name}", split.features.num_examples,
                        "example") as progress:
    rows = inference.predict_probabilities(model, hardware.strategy, split.features, batch_size,
                                           bucket_by_length=not hardware.static_shapes,
                                           pad_to_max=hardware.static_shapes,
                                           length_multiple=hardware.length_multiple,
                                           on_batch=progress.update)
  return windows.pool(rows, split.features.document_index, split.long_texts.pooling)


@dataclasses.dataclass(frozen=True)
class Decisions:
  """How probabilities become 0/1 predictions: the cut-off flags and the labels' names."""
  label_names: tuple
  cutoff_type: object  # "static", "dynamic" or None
  cut_off: float


def tune_thresholds(hardware, dev, dev_probabilities, decisions, checkpoint, output_dir):
  """Chooses each label's F1-best threshold on dev; the chief saves them. Returns them, [k]."""
  scored = dev.documents.has_labels
  found = thresholds.best_f1_thresholds(dev.documents.labels[scored],
                                        dev_probabilities[scored], decisions.cut_off)
  if hardware.is_chief:
    thresholds.save_thresholds(os.path.join(output_dir, thresholds.THRESHOLDS_FILE),
                               decisions.label_names, found, checkpoint, dev.probabilities_key)
  logging.info("Dynamic thresholds (dev F1): %s", ", ".join(
      f"{n} {t:.4f} ({f:.3f})"
      for n, t, f in zip(decisions.label_names, found.thresholds, found.dev_f1)))
  return found.thresholds


def saved_or_tuned_thresholds(model, hardware, dev, decisions, batch_size, checkpoint,
                              output_dir):
  """The dynamic thresholds of a run that does not evaluate: those saved for this checkpoint
  and these dev features, else tuned on dev now."""
  saved = None
  if hardware.is_chief:
    try:
      saved = thresholds.load_thresholds(
          os.path.join(output_dir, thresholds.THRESHOLDS_FILE), decisions.label_names,
          checkpoint, dev.probabilities_key)
    except UserError as e:
      logging.info("Tuning dynamic thresholds on the dev split now: %s", e)
  num_labels = len(decisions.label_names)
  found, values = distribution.chief_values(
      hardware.strategy, [saved is not None, saved if saved is not None else np.zeros(num_labels)])
  if found:
    return values
  return tune_thresholds(hardware, dev, probabilities_of(model, hardware, dev, batch_size),
                         decisions, checkpoint, output_dir)


def evaluate(model, hardware, dev, decisions, batch_size, checkpoint, output_dir):
  """Scores the dev split into eval_results.txt/.json; tunes dynamic thresholds on it.

  Returns:
    (cut-offs, scored): the cut-offs for the test split (a float, np.ndarray [k], or None),
    and the dev split's `report.SplitResults` (None on other workers than the chief, or
    without labels).
  """
  dev_probabilities = probabilities_of(model, hardware, dev, batch_size)
  cut_offs = decisions.cut_off if decisions.cutoff_type == "static" else None
  out_of_fold = None
  if decisions.cutoff_type == "dynamic":
    cut_offs = tune_thresholds(hardware, dev, dev_probabilities, decisions, checkpoint,
                               output_dir)
    scored = dev.documents.has_labels
    out_of_fold = thresholds.cross_validated_predictions(
        dev.documents.labels[scored], dev_probabilities[scored], decisions.cut_off)
  scored = _score(hardware, dev, dev_probabilities, cut_offs, decisions, output_dir, "",
                  out_of_fold)
  return cut_offs, scored


def predict(model, hardware, test, decisions, cut_offs, batch_size, output_dir):
  """Writes test_results.tsv (and _classes with cut-offs); scores the test split's labels.

  Returns:
    The test split's `report.SplitResults`, or None (see `evaluate`).
  """
  test_probabilities = probabilities_of(model, hardware, test, batch_size)
  if hardware.is_chief:
    predictions.write_predictions(output_dir, test.documents.guids, decisions.label_names,
                                  test_probabilities, _cut(test_probabilities, cut_offs))
    logging.info("Wrote predictions for %d examples to %s", test.documents.num_examples,
                 output_dir)
  return _score(hardware, test, test_probabilities, cut_offs, decisions, output_dir, "test_")


def _cut(probabilities, cut_offs):
  return None if cut_offs is None else thresholds.static_predictions(probabilities, cut_offs)


def _score(hardware, split, probabilities, cut_offs, decisions, output_dir, prefix,
           out_of_fold=None):
  """Writes `{prefix}eval_results.*` for the split's labelled examples (chief only).

  Returns:
    The split's `report.SplitResults`; None where nothing was scored.
  """
  scored = split.documents.has_labels
  if not scored.any() or not hardware.is_chief:
    return None
  result = metrics.compute_metrics(split.documents.labels[scored], probabilities[scored],
                                   decisions.label_names, _cut(probabilities[scored], cut_offs),
                                   out_of_fold)
  metrics.write_eval_results(output_dir, prefix, result)
  logging.info("***** %s results *****\n%s", split.name, metrics.format_eval_results(result))
  num_labels = len(decisions.label_names)
  return report.SplitResults(
      split.name, split.documents.labels[scored], probabilities[scored].astype(np.float64),
      dataclasses.asdict(result),
      None if cut_offs is None else np.broadcast_to(cut_offs, [num_labels]).astype(np.float64))


# The TensorBoard folder of each scored split.
_EVENT_DIRS = {DEV: summaries.EVAL_DIR, TEST: summaries.TEST_DIR}


def write_report(hardware, output_dir, scored, checkpoint, decisions, title, flag_list,
                 bert_config):
  """Adds the scored splits to TensorBoard's eval/ and test/ folders and writes report.html.

  Chief only. The events are at the checkpoint's step: metrics and per-label PR curves.

  Args:
    hardware: `Hardware`.
    output_dir: str.
    scored: list of `report.SplitResults` of this run, each split once.
    checkpoint: `checkpoints.Identity` of the weights that were scored.
    decisions: `Decisions`.
    title: str, the page's heading.
    flag_list: the run's absl `Flag`s, shown on the page.
    bert_config: `modeling.BertConfig`.
  """
  if not hardware.is_chief or not scored:
    return
  for split in scored:
    events = summaries.EventWriter(os.path.join(output_dir, _EVENT_DIRS[split.name]))
    events.write_scalars(checkpoint.step, summaries.metric_scalars(split.metrics))
    events.write_pr_curves(checkpoint.step, split.labels, split.probabilities,
                           decisions.label_names)
    events.close()
  dev = [split for split in scored if split.name == DEV]
  tuned = dev[0].thresholds if dev and decisions.cutoff_type == "dynamic" else None
  model = {"checkpoint": checkpoint.prefix, "step": checkpoint.step, **bert_config.to_dict()}
  report.write_report(
      output_dir, title, decisions.label_names, scored,
      {flag.name: flag.value for flag in flag_list if flag.present}, model, decisions.cut_off,
      tuned, summaries.read_scalars(os.path.join(output_dir, summaries.TRAIN_DIR)),
      {flag.name: flag.value for flag in flag_list if not flag.present})


_RESULT_FILES = ("eval_results.json", "eval_results.txt", "test_eval_results.json",
                 "test_eval_results.txt", predictions.RESULTS_FILE, predictions.CLASSES_FILE,
                 thresholds.THRESHOLDS_FILE)


def say_where_results_are(hardware, output_dir):
  """Logs, as the run's last lines, where its checkpoint, results, page and event files are."""
  if not hardware.is_chief:
    return
  found = [name for name in _RESULT_FILES if os.path.exists(os.path.join(output_dir, name))]
  latest = checkpoints.latest(output_dir)
  if latest:
    logging.info("Checkpoint: %s", latest)
  best = checkpoints.latest(model_selection.best_dir(output_dir))
  if best:
    logging.info("Best checkpoint by dev score (--keep_best): %s", best)
  if found:
    logging.info("Results in %s: %s", output_dir, ", ".join(found))
  if os.path.exists(os.path.join(output_dir, report.REPORT_FILE)):
    logging.info("Report: %s", os.path.join(output_dir, report.REPORT_FILE))
  if any(os.path.isdir(os.path.join(output_dir, folder))
         for folder in (summaries.TRAIN_DIR, summaries.EVAL_DIR, summaries.TEST_DIR)):
    logging.info("TensorBoard: tensorboard --logdir=%s", output_dir)

