"""The exported model: raw text in; probabilities, 0/1 predictions and label names out.

`build` restores the newest checkpoint of a run's `--output_dir` into a `ServingModule`, with the
run's tokenization in the graph (`text_graph`) and its cut-offs as constants; `save` writes it as
a SavedModel, whole or not at all. The SavedModel has three signatures:
  * `serving_default`: `text` (and `text_b` for sentence-pair tasks), string [batch] ->
    `probabilities` float32 [batch, labels], `predictions` int32 [batch, labels] (when the run
    has cut-offs), `labels` string [batch, labels] (the label names, repeated for each row,
    because TF Serving's row format needs every output batch-major);
  * `token_ids`: `input_ids`, `input_mask`, `token_type_ids` int32 [batch, seq] -> the same;
  * `tokenize`: the text inputs -> `input_ids`, `input_mask`, `token_type_ids` int32
    [batch, width], width the batch's longest input.
Every op is a core TensorFlow op, so the folder loads wherever TensorFlow does. Its assets hold
the vocab and `export_metadata.json` (the checkpoint, labels, cut-offs and settings).
"""

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Optional
import unicodedata
import uuid

from absl import logging
import tensorflow as tf

import char_tables
import checkpoints
import classifier
from errors import UserError
import modeling
import processors
from processors import generic
from processors import label_set
import text_graph
import thresholds
import tokenization

SERVING_SIGNATURE = "serving_default"
TOKEN_IDS_SIGNATURE = "token_ids"
TOKENIZE_SIGNATURE = "tokenize"
METADATA_FILE = "export_metadata.json"
_POOLER = "bert/pooler/dense/kernel"
_DENSE = f"{classifier.HEAD_SCOPE}/dense/kernel"


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """What an export needs to know about the run, as the run's flags of the same names gave it.

  Attributes:
    output_dir: str, the run's folder; its newest checkpoint is exported.
    task_name: str, for the label names and whether inputs are pairs.
    bert_config_file, vocab_file: str.
    do_lower_case: bool.
    max_seq_length: int.
    add_dense: bool.
    cutoff_type: "static", "dynamic" or None.
    cut_off: float, the static cut-off.
    text_b_column: str or None; for --task_name=generic, the column of the second text, which
      makes the inputs pairs.
  """
  output_dir: str
  task_name: str
  bert_config_file: str
  vocab_file: str
  do_lower_case: bool
  max_seq_length: int
  add_dense: bool
  cutoff_type: Optional[str]
  cut_off: float
  text_b_column: Optional[str] = None


class ServingModule(tf.Module):
  """The classifier with its tokenizer and cut-offs, and the functions the signatures call."""

  def __init__(self, model, encoder, label_names, cut_offs, has_pairs):
    """Wraps a restored model.

    Args:
      model: `classifier.MultiLabelClassifier` with the weights to export.
      encoder: `text_graph.TextEncoder` of the run's vocab, casing and max_seq_length.
      label_names: sequence of k str.
      cut_offs: float64-convertible [k], label i is predicted when p_i >= cut_offs[i]; or None
        for probabilities only.
      has_pairs: bool, whether the text signatures take `text_b`.
    """
    super().__init__()
    self.encoder = encoder
    # The Keras model stays out of the saved object graph, and its tf.Variables are tracked
    # directly: with the model tracked, the TF1-style loader of TF Serving and saved_model_cli
    # finds its variables uninitialised.
    self.model_variables = [variable.value for variable in model.variables]
    label_constant = tf.constant(list(label_names), tf.string)
    cut_off_constant = None if cut_offs is None else tf.constant(cut_offs, tf.float64)

    def outputs(inputs):
      probabilities = tf.sigmoid(model(inputs, training=False))
      batch = tf.shape(probabilities)[0]
      result = {"probabilities": probabilities,
                "labels": tf.tile(label_constant[None, :], [batch, 1])}
      if cut_off_constant is not None:
        # In float64, as `thresholds.static_predictions` compares the float32 probabilities
        # with the float64 cut-offs: a float32 cut-off could round to the other side of one.
        result["predictions"] = tf.cast(
            tf.cast(probabilities, tf.float64) >= cut_off_constant, tf.int32)
      return result

    def classify_text(text, text_b=None):
      return outputs(encoder(text, text_b))

    def classify_token_ids(input_ids, input_mask, token_type_ids):
      return outputs({"input_ids": input_ids, "input_mask": input_mask,
                      "segment_ids": token_type_ids})

    def tokenize(text, text_b=None):
      inputs = encoder(text, text_b)
      return {"input_ids": inputs["input_ids"], "input_mask": inputs["input_mask"],
              "token_type_ids": inputs["segment_ids"]}

    texts = [tf.TensorSpec([None], tf.string, name="text")]
    if has_pairs:
      texts.append(tf.TensorSpec([None], tf.string, name="text_b"))
    ids = [tf.TensorSpec([None, None], tf.int32, name=name)
           for name in ("input_ids", "input_mask", "token_type_ids")]
    self.classify_text = tf.function(classify_text, input_signature=texts)
    self.classify_token_ids = tf.function(classify_token_ids, input_signature=ids)
    self.tokenize = tf.function(tokenize, input_signature=texts)

  def signatures(self):
    """{signature name: tf.function}, for `tf.saved_model.save`."""
    return {SERVING_SIGNATURE: self.classify_text, TOKEN_IDS_SIGNATURE: self.classify_token_ids,
            TOKENIZE_SIGNATURE: self.tokenize}


def check_export_dir(export_dir, overwrite):
  """Raises `UserError` unless `export_dir` is absent, an empty folder, or may be overwritten."""
  if not os.path.lexists(export_dir):
    return
  if not os.path.isdir(export_dir):
    raise UserError(f"--export_dir {export_dir} is a file, not a folder")
  if os.listdir(export_dir) and not overwrite:
    raise UserError(f"--export_dir {export_dir} is not empty: pass --overwrite to replace it, "
                    "or choose a new folder")


def _newest_checkpoint(output_dir):
  prefix = checkpoints.latest(output_dir)
  if prefix is None:
    raise UserError(f"--output_dir {output_dir} has no checkpoint to export (no "
                    "model.ckpt-STEP); train there first with run_classifier.py --do_train")
  return prefix


def _cut_offs(settings, label_names, checkpoint):
  """Returns (cut-offs as a list of k floats or None, where they come from)."""
  if settings.cutoff_type == "static":
    return [settings.cut_off] * len(label_names), f"--cut_off={settings.cut_off}"
  if settings.cutoff_type == "dynamic":
    path = os.path.join(settings.output_dir, thresholds.THRESHOLDS_FILE)
    found = thresholds.load_thresholds(path, label_names, checkpoint)
    return found.tolist(), f"{thresholds.THRESHOLDS_FILE} of step {checkpoint.step}"
  return None, None


def _load_tokenizer(settings, bert_config):
  if settings.max_seq_length > bert_config.max_position_embeddings:
    raise UserError(f"cannot use --max_seq_length {settings.max_seq_length}: the model "
                    f"({settings.bert_config_file}) has {bert_config.max_position_embeddings} "
                    "positions")
  tokenizer = tokenization.FullTokenizer(settings.vocab_file, settings.do_lower_case)
  # Ids are line numbers, so the highest id (not the count of distinct tokens) must fit.
  vocab_lines = max(tokenizer.vocab.values()) + 1
  if vocab_lines != bert_config.vocab_size:
    raise UserError(f"{settings.vocab_file} has {vocab_lines} tokens but "
                    f"{settings.bert_config_file} says vocab_size {bert_config.vocab_size}: "
                    "they belong to different models")
  marked = char_tables.reorderable_marks_in(tokenizer.vocab) if tokenizer.do_lower_case else []
  if marked:
    logging.warning("The vocab has tokens with combining marks that are not nonspacing (%s): "
                    "a word with two of them out of canonical order may get other ids than "
                    "FullTokenizer gives (see char_tables.py)", ", ".join(marked[:5]))
  return tokenizer


def restore_model(settings, bert_config, num_labels, prefix):
  """Builds the classifier the checkpoint `prefix` holds and loads it, in float32.

  The pooling follows the checkpoint (BERT's pooler when it has one, else the mean); the dense
  layer must be there exactly when `settings.add_dense`.

  Returns:
    (`classifier.MultiLabelClassifier`, its pooling).

  Raises:
    UserError: the checkpoint does not fit `bert_config`, `num_labels` or --add_dense.
  """
  stored = checkpoints.shapes(prefix)
  has_dense = _DENSE in stored
  if has_dense != settings.add_dense:
    raise UserError(f"{prefix} has {'the' if has_dense else 'no'} --add_dense layer ({_DENSE}): "
                    f"pass --add_dense={str(has_dense).lower()}, as the run was trained")
  pooling = "cls" if _POOLER in stored else "mean"
  model = classifier.MultiLabelClassifier(bert_config, num_labels, settings.add_dense,
                                          pooling=pooling, draw_weights=False, dtype="float32")
  checkpoints.restore(model.checkpoint_variables(), prefix)
  return model, pooling


def build(settings):
  """Restores the newest checkpoint of `settings.output_dir` into a `ServingModule`.

  Args:
    settings: `RunSettings`.

  Returns:
    (`ServingModule`, metadata dict for `export_metadata.json`).

  Raises:
    UserError: no checkpoint; thresholds of another checkpoint (dynamic); a vocab, config or
      --add_dense that does not fit the checkpoint; labels that differ from the folder's.
  """
  # The generic task's pairs depend on its flags; the other tasks take none (a UserError says so).
  options = (generic.Options(text_b_column=settings.text_b_column)
             if settings.text_b_column is not None else None)
  processor = processors.get_processor(settings.task_name, options)
  label_names = label_set.resolve(processor, settings.output_dir)
  prefix = _newest_checkpoint(settings.output_dir)
  checkpoint = checkpoints.identify(prefix)
  cut_offs, cut_offs_source = _cut_offs(settings, label_names, checkpoint)
  bert_config = modeling.BertConfig.from_json_file(settings.bert_config_file)
  tokenizer = _load_tokenizer(settings, bert_config)
  model, pooling = restore_model(settings, bert_config, len(label_names), prefix)
  encoder = text_graph.TextEncoder(tokenizer, settings.max_seq_length)
  module = ServingModule(model, encoder, label_names, cut_offs, processor.has_pairs)
  metadata = {
      "checkpoint": os.path.basename(prefix),
      "global_step": checkpoint.step,
      "checkpoint_digest": checkpoint.digest,
      "task_name": processor.name,
      "labels": list(label_names),
      "inputs": ["text", "text_b"] if processor.has_pairs else ["text"],
      "cutoff_type": settings.cutoff_type,
      "cut_offs": cut_offs,
      "cut_offs_source": cut_offs_source,
      "max_seq_length": settings.max_seq_length,
      "do_lower_case": settings.do_lower_case,
      "add_dense": settings.add_dense,
      "pooling": pooling,
      "vocab_file": os.path.basename(settings.vocab_file),
      "signatures": [SERVING_SIGNATURE, TOKEN_IDS_SIGNATURE, TOKENIZE_SIGNATURE],
      # The tokenizer tables follow this Python's Unicode tables, as FullTokenizer here does.
      "unicode_version": unicodedata.unidata_version,
      "tensorflow_version": tf.__version__,
  }
  return module, metadata


def save(module, metadata, vocab_file, export_dir, overwrite=False):
  """Writes `module` as a SavedModel in `export_dir`, whole or not at all.

  The SavedModel is written to a hidden folder beside `export_dir` and renamed into place; with
  `overwrite`, an existing `export_dir` is moved aside first and deleted after.

  Args:
    module: `ServingModule`.
    metadata: dict, written as the asset `export_metadata.json`.
    vocab_file: str, copied as an asset.
    export_dir: str.
    overwrite: bool, replace a non-empty `export_dir`.

  Raises:
    UserError: `export_dir` is a file or, without `overwrite`, a non-empty folder; or the
      parent folder cannot be written.
  """
  check_export_dir(export_dir, overwrite)
  export_dir = os.path.abspath(export_dir)
  parent, name = os.path.split(export_dir)
  try:
    os.makedirs(parent, exist_ok=True)
    staging = os.path.join(parent, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    os.mkdir(staging)  # Unlike mkdtemp's, its permissions are the umask's, as the export's.
  except OSError as e:
    raise UserError(f"cannot write --export_dir {export_dir}: {e.strerror}") from None
  try:
    with tempfile.TemporaryDirectory() as scratch:
      metadata_path = os.path.join(scratch, METADATA_FILE)
      with open(metadata_path, "w", encoding="utf-8") as f:
        f.write(json.dumps(metadata, indent=2) + "\n")
      module.metadata_file = tf.saved_model.Asset(metadata_path)
      module.vocab_file = tf.saved_model.Asset(vocab_file)
      tf.saved_model.save(module, staging, signatures=module.signatures())
    _move_into_place(staging, export_dir)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise


def _move_into_place(staging, export_dir):
  """Renames `staging` to `export_dir`; an existing non-empty `export_dir` is moved aside first."""
  if os.path.isdir(export_dir) and os.listdir(export_dir):
    old = tempfile.mkdtemp(dir=os.path.dirname(export_dir),
                           prefix=f".{os.path.basename(export_dir)}.", suffix=".old")
    os.rename(export_dir, os.path.join(old, "export"))
    os.rename(staging, export_dir)
    shutil.rmtree(old)
  else:
    # rename() replaces an empty folder.
    os.rename(staging, export_dir)
