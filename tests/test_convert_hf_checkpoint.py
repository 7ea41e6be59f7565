"""convert_hf_checkpoint.py: a Hugging Face BERT folder becomes the same model in Google format."""

import json
import os
import re
import shutil

import numpy as np
import pytest
import tensorflow as tf
from safetensors.numpy import save_file

import convert_hf_checkpoint
import modeling
from errors import UserError
from tests import conftest


def hf_name(google_name):
  """The Hugging Face name of a Google tensor (the inverse mapping, written independently)."""
  name = google_name.removeprefix("bert/")
  name = re.sub(r"layer_(\d+)", r"layer.\1", name).replace("/", ".")
  name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", name)
  name = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name)
  name = re.sub(r"\.kernel$", ".weight", name)
  return name if not name.startswith("embeddings.") or "LayerNorm" in name else name + ".weight"


@pytest.fixture(scope="module")
def hf_folder(tiny_bert, tmp_path_factory):
  """The tiny Google checkpoint re-saved as a Hugging Face folder (with a `bert.` prefix, a
  position_ids buffer and an MLM head, as real ones have)."""
  folder = tmp_path_factory.mktemp("hf")
  reader = tf.train.load_checkpoint(tiny_bert["checkpoint"])
  tensors = {}
  for name in reader.get_variable_to_shape_map():
    value = reader.get_tensor(name)
    tensors["bert." + hf_name(name)] = np.ascontiguousarray(
        value.T if name.endswith("/kernel") else value)
  tensors["bert.embeddings.position_ids"] = np.arange(64, dtype=np.int64)[None]
  tensors["cls.predictions.bias"] = np.zeros(8, np.float32)
  save_file(tensors, str(folder / "model.safetensors"))
  config = json.loads(open(tiny_bert["config_file"]).read())
  config.update(hidden_act="gelu_new", model_type="bert", layer_norm_eps=1e-12)
  (folder / "config.json").write_text(json.dumps(config))
  shutil.copyfile(tiny_bert["vocab_file"], folder / "vocab.txt")
  return folder


def test_converted_model_equals_the_original(tiny_bert, hf_folder, tmp_path):
  prefix = convert_hf_checkpoint.convert(str(hf_folder), str(tmp_path))
  assert prefix == str(tmp_path / "bert_model.ckpt")
  assert sorted(os.listdir(tmp_path)) == ["bert_config.json", "bert_model.ckpt.data-00000-of-00001",
                                          "bert_model.ckpt.index", "vocab.txt"]
  assert dict(tf.train.list_variables(prefix)) == dict(tf.train.list_variables(
      tiny_bert["checkpoint"]))
  config = modeling.BertConfig.from_json_file(str(tmp_path / "bert_config.json"))
  assert config.hidden_act == "gelu"  # Hugging Face's tanh form is Google's "gelu".
  model = modeling.BertModel(config)
  modeling.load_checkpoint(model, prefix)
  sequence_output, pooled_output = model(**tiny_bert["inputs"], training=False)
  conftest.assert_close(sequence_output, tiny_bert["sequence_output"])
  conftest.assert_close(pooled_output, tiny_bert["pooled_output"])


@pytest.mark.parametrize("hf_act, google_act", [("gelu", "gelu_exact"), ("gelu_new", "gelu"),
                                                ("relu", "relu")])
def test_activation_keeps_its_function(hf_act, google_act):
  config = {k: 2 for k in ("vocab_size", "hidden_size", "num_hidden_layers",
                           "num_attention_heads", "intermediate_size",
                           "max_position_embeddings", "type_vocab_size")}
  config.update(hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
                initializer_range=0.02, hidden_act=hf_act)
  assert convert_hf_checkpoint.convert_config(config, "x")["hidden_act"] == google_act


def test_missing_files_and_foreign_tensors_are_clear_errors(hf_folder, tmp_path):
  with pytest.raises(UserError, match="config.json not found"):
    convert_hf_checkpoint.convert(str(tmp_path), str(tmp_path / "out"))
  broken = tmp_path / "broken"
  shutil.copytree(hf_folder, broken)
  from safetensors.numpy import load_file
  tensors = load_file(str(broken / "model.safetensors"))
  tensors["bert.encoder.layer.0.extra.weight"] = np.zeros((2, 2), np.float32)
  save_file(tensors, str(broken / "model.safetensors"))
  with pytest.raises(UserError, match="bert/encoder/layer_0/extra/kernel"):
    convert_hf_checkpoint.convert(str(broken), str(tmp_path / "out2"))
  assert not (tmp_path / "out2").exists()
