"""Compares the output folders of runs that should agree: features, checkpoint, predictions.

For each folder after the first: whether every feature cache (`*.tf_record`, compared record by
record once parsed, since protobuf writes a map's entries in no fixed order) holds the same
examples, the largest absolute difference between the latest checkpoints' tensors, and between
the probabilities of `test_results.tsv` (whose ids and header must be equal). Prints JSON.

  python bench/compare_outputs.py /tmp/runs/psychexp /tmp/runs/psychexp_wide /tmp/runs/psychexp_ids
"""

import json
import os
import sys

import numpy as np
import tensorflow as tf


def feature_records(output_dir):
  """{cache file: list of records as {feature: values}} of a folder's feature caches."""
  caches = {}
  for name in sorted(os.listdir(output_dir)):
    if name.endswith(".tf_record"):
      caches[name] = [
          {key: list(getattr(feature, feature.WhichOneof("kind")).value)
           for key, feature in tf.train.Example.FromString(record).features.feature.items()}
          for record in tf.data.TFRecordDataset(os.path.join(output_dir, name))
          .as_numpy_iterator()]
  return caches


def checkpoint_tensors(output_dir):
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(output_dir))
  return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}


def predictions(output_dir):
  """(header, ids, float64 [n, k]) of a folder's test_results.tsv."""
  with open(os.path.join(output_dir, "test_results.tsv"), encoding="utf-8") as f:
    rows = [line.split("\t") for line in f.read().split("\n") if line]
  return rows[0], [row[0] for row in rows[1:]], np.array(
      [[float(v) for v in row[1:]] for row in rows[1:]], dtype=np.float64)


def main(folders):
  reference = folders[0]
  features, tensors, results = (feature_records(reference), checkpoint_tensors(reference),
                                predictions(reference))
  report = {"reference": reference, "caches": sorted(features), "others": {}}
  for folder in folders[1:]:
    other_features, other_tensors, other_results = (feature_records(folder),
                                                    checkpoint_tensors(folder),
                                                    predictions(folder))
    same_names = other_tensors.keys() == tensors.keys()
    report["others"][folder] = {
        "same_features": other_features == features,
        "same_checkpoint_variables": same_names,
        "checkpoint_max_abs_difference": max(
            float(np.max(np.abs(other_tensors[name].astype(np.float64) - value)))
            for name, value in tensors.items()) if same_names else None,
        "same_test_ids_and_header": other_results[:2] == results[:2],
        "test_probability_max_abs_difference": float(
            np.max(np.abs(other_results[2] - results[2])))
            if other_results[2].shape == results[2].shape else None,
    }
  print(json.dumps(report, indent=2))


if __name__ == "__main__":
  main(sys.argv[1:])
