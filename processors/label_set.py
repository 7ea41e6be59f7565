"""The label set an output folder was used with, kept in `labels.txt` there.

A checkpoint's head has one output per label, in an order that nothing in the checkpoint names.
The first run on an output folder writes its label names there, one a line; every later run on
the folder (predict-only, resume, another evaluation) uses that order, and a run whose labels
differ stops with a clear error instead of silently reading outputs as the wrong labels.

For the generic task, whose labels may come from the data, the folder's set is also the label
set where neither --label_columns nor a labels file gives one, so that a predict-only run needs
no train file; see `generic`.
"""

import os

from errors import UserError
import fileio
from processors import generic

LABELS_FILE = generic.LABELS_FILE


def labels_path(output_dir):
  """Returns the path of the label set file of `output_dir`."""
  return os.path.join(output_dir, LABELS_FILE)


def resolve(processor, output_dir):
  """Returns the label names of a run on `output_dir`: the task's, checked against the folder's.

  Reads nothing but `output_dir`'s label set file and, for the generic task, the files its
  label set comes from. Writes nothing.

  Args:
    processor: a `DataProcessor`.
    output_dir: str, the run's --output_dir (it may not exist yet).

  Returns:
    list of str, the label names in order.

  Raises:
    UserError: the folder was used with other labels, or in another order; or as the processor.
  """
  path = labels_path(output_dir)
  saved = generic.read_label_names(path) if os.path.isfile(path) else None
  if saved is not None and isinstance(processor, generic.GenericProcessor):
    processor.use_output_labels(saved, path)
  names = processor.get_labels()
  if saved is not None and names != saved:
    if set(names) == set(saved):
      difference = "the same labels in another order"
    else:
      difference = "; ".join(part for part in (
          _listed("not in this run's", [n for n in saved if n not in names]),
          _listed("new in this run", [n for n in names if n not in saved])) if part)
    raise UserError(
        f"{path}: this output folder was used with the labels {', '.join(saved)}, and this run's "
        f"are {', '.join(names)} ({difference}); its checkpoint's outputs would be read as the "
        "wrong labels. Use another --output_dir, or the same labels in the same order")
  return names


def _listed(what, names):
  return f"{what}: {', '.join(names)}" if names else ""


def save(output_dir, names):
  """Writes `names` to `output_dir`'s label set file, unless it is there already.

  Call it once the run's data has been read without error, so that a failed run leaves no label
  set behind; `resolve` has checked that a file already there holds the same names.
  """
  path = labels_path(output_dir)
  if not os.path.exists(path):
    fileio.atomic_write_text(path, "".join(name + "\n" for name in names))
