"""The prediction files of a test split: `test_results.tsv` and `test_results_classes.tsv`.

Both have the header `id<TAB>label...` and one row per example in input order. Probabilities are
written as `str` writes their numpy type, the shortest text that reads back as the same number
(as the original script wrote them), so no precision is lost and no two different scores tie.
"""

import os

import numpy as np

from fileio import atomic_open

RESULTS_FILE = "test_results.tsv"
CLASSES_FILE = "test_results_classes.tsv"


def _write_tsv(path, guids, label_names, rows):
  """Writes a header and one `id<TAB>value...` line per row, atomically.

  Args:
    path: str, the file.
    guids: sequence of n str, none holding a tab or a line break.
    label_names: sequence of k str.
    rows: np.ndarray [n, k]; each value is written with `str`.
  """
  with atomic_open(path) as f:
    f.write("\t".join(["id", *label_names]) + "\n")
    for guid, row in zip(guids, rows):
      f.write("\t".join([guid, *map(str, row)]) + "\n")


def write_predictions(output_dir, guids, label_names, probabilities, predictions=None):
  """Writes `test_results.tsv`, and `test_results_classes.tsv` when a cut-off applies.

  Args:
    output_dir: str, an existing folder.
    guids: sequence of n str, the examples' ids in input order.
    label_names: sequence of k str.
    probabilities: array-like [n, k] of float (float32 or float64).
    predictions: array-like [n, k] of 0/1, or None when no cut-off applies.

  Returns:
    list of str, the paths written.

  Raises:
    ValueError: the shapes disagree with each other, with `guids` or with `label_names`.
  """
  probabilities = np.asarray(probabilities)
  if not np.issubdtype(probabilities.dtype, np.floating):
    probabilities = probabilities.astype(np.float64)
  files = [(RESULTS_FILE, probabilities)]
  if predictions is not None:
    files.append((CLASSES_FILE, np.asarray(predictions, dtype=np.int64)))
  expected_shape = (len(guids), len(label_names))
  for name, rows in files:
    if rows.shape != expected_shape:
      raise ValueError(f"{name}: values {rows.shape} differ from [ids, labels] {expected_shape}")
  paths = []
  for name, rows in files:
    paths.append(os.path.join(output_dir, name))
    _write_tsv(paths[-1], guids, label_names, rows)
  return paths
