"""TF1-style, name-based checkpoints: the format of Google's BERT checkpoints and of ours.

A checkpoint is a prefix (`model.ckpt-1000`) with `.index` and `.data-*` files holding one tensor
per variable name, as TF1's `Saver` wrote them. TF2's object-based `tf.train.Checkpoint` would
name variables by object path instead, which neither Google's tools nor the original script's
users could read; so we read with `tf.train.load_checkpoint` and write with the `SaveV2` op that
`Saver` itself used. A folder's `checkpoint` file lists its checkpoints, newest last, as TF1 did.
"""

import dataclasses
import hashlib
import os
import re

import tensorflow as tf

import fileio
from errors import UserError

INDEX_FILE = "checkpoint"
GLOBAL_STEP = "global_step"


@dataclasses.dataclass
class RestoreReport:
  """What `restore` did: the names it loaded, optional names the checkpoint lacked, and the
  checkpoint's names it left alone."""
  checkpoint: str
  loaded: list
  absent: list
  unused: list


@dataclasses.dataclass(frozen=True)
class Identity:
  """What identifies a checkpoint's content: its prefix, its global step, and the SHA-256 of its
  `.index` file, which holds every tensor's CRC32C, so that another checkpoint written at the
  same step (another run, another model) has another digest."""
  prefix: str
  step: int
  digest: str


def identify(prefix):
  """Returns the `Identity` of the checkpoint `prefix`."""
  with tf.io.gfile.GFile(prefix + ".index", "rb") as f:
    digest = hashlib.sha256(f.read()).hexdigest()
  return Identity(prefix=prefix, step=global_step(prefix), digest=digest)


def exists(prefix):
  return tf.io.gfile.exists(prefix + ".index")


def resolve(path):
  """Returns the checkpoint prefix that `path` names.

  Args:
    path: a checkpoint prefix, or a folder of checkpoints (its newest, see `latest`).

  Raises:
    UserError: nothing there is a checkpoint. Where the path starts with the original README's
      stray '.', the message says so.
  """
  if tf.io.gfile.isdir(path):
    newest = latest(path)
    if newest:
      return newest
    raise UserError(f"--init_checkpoint {path} is a folder without a '{INDEX_FILE}' file naming "
                    f"an existing checkpoint")
  if exists(path):
    return path
  hint = ""
  if path.startswith(".") and exists(path[1:]):
    hint = f" (did you mean {path[1:]}? The original README has a stray '.' before $BERT_DIR)"
  else:
    bare = re.sub(r"\.(index|meta|data-\d+-of-\d+)$", "", path)
    if bare != path and exists(bare):
      hint = f" (give the prefix without the file's extension: {bare})"
  raise UserError(f"--init_checkpoint {path}: no such checkpoint (no {path}.index){hint}")


def _step_in_name(prefix):
  match = re.search(r"-(\d+)$", prefix)
  return int(match.group(1)) if match else -1


def complete(folder):
  """The complete checkpoints in `folder`, oldest first, as prefixes.

  Those its index file lists, and any `model.ckpt-STEP` whose `.index` exists: a run killed
  after TF wrote a checkpoint (the `.index` lands last) but before it was listed still resumes
  from it, rather than redoing its steps.
  """
  if not tf.io.gfile.isdir(folder):
    return []
  state = tf.train.get_checkpoint_state(folder)
  # TF has already joined the folder to relative entries.
  listed = [p for p in (state.all_model_checkpoint_paths if state else []) if exists(p)]
  found = [path[:-len(".index")]
           for path in tf.io.gfile.glob(os.path.join(folder, "model.ckpt-*.index"))]
  return sorted(dict.fromkeys(listed + found), key=_step_in_name)


def latest(folder):
  """The newest complete checkpoint in `folder` (see `complete`), or None."""
  prefixes = complete(folder)
  return prefixes[-1] if prefixes else None


def shapes(prefix):
  """{name: shape list} of every tensor in the checkpoint `prefix`."""
  return dict(tf.train.list_variables(prefix))


def restore(variables, path, optional=lambda name: False):
  """Assigns each variable the checkpoint's tensor of the same name.

  Args:
    variables: {checkpoint name: variable} (Keras or tf variables).
    path: a checkpoint prefix or a folder (see `resolve`).
    optional: a predicate on names that the checkpoint may lack; those variables keep their
      values. Every other name must be present.

  Returns:
    A `RestoreReport`.

  Raises:
    UserError: a required variable is missing, or a shape differs; every problem is listed,
      each with the variable's name and both shapes, and no variable is changed.
  """
  prefix = resolve(path)
  reader = tf.train.load_checkpoint(prefix)
  stored = reader.get_variable_to_shape_map()
  absent = check_fits(variables, stored, f"checkpoint {prefix}", optional)
  loaded = [name for name in sorted(variables) if name in stored]
  for name in loaded:
    variables[name].assign(tf.cast(reader.get_tensor(name), variables[name].dtype))
  unused = sorted(set(stored) - set(variables))
  return RestoreReport(checkpoint=prefix, loaded=loaded, absent=absent, unused=unused)


def check_fits(variables, stored_shapes, source, optional=lambda name: False):
  """Checks that stored tensors fit the variables, by name and shape.

  Args:
    variables: {name: variable}.
    stored_shapes: {name: shape} of what is stored.
    source: what to call the store in the error message.
    optional: a predicate on names that may be absent.

  Returns:
    The sorted optional names that are absent.

  Raises:
    UserError: listing every required name that is missing and every shape that differs.
  """
  problems, absent = [], []
  for name, variable in sorted(variables.items()):
    expected = list(variable.shape)
    if name not in stored_shapes:
      if optional(name):
        absent.append(name)
      else:
        problems.append(f"{name}: missing from the checkpoint (the model expects shape {expected})")
    elif list(stored_shapes[name]) != expected:
      problems.append(f"{name}: the checkpoint has shape {list(stored_shapes[name])}, the model "
                      f"expects {expected}")
  if problems:
    raise UserError(f"{source} does not fit the model:\n  " + "\n  ".join(problems))
  return absent


def write(prefix, variables):
  """Writes {name: variable or tensor} as the TF1-format checkpoint `prefix`.

  The `.index` and `.data` files are each written under a temporary name and renamed by TF, so a
  crash leaves no half-written checkpoint under `prefix`.
  """
  names = sorted(variables)
  folder = os.path.dirname(prefix)
  if folder:
    tf.io.gfile.makedirs(folder)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                    tensors=[tf.convert_to_tensor(variables[name]) for name in names])


def record(folder, prefix, keep):
  """Lists `prefix` as the newest checkpoint in `folder`'s index file, keeping the newest `keep`.

  Older checkpoints beyond `keep` are deleted after the index no longer names them. The index is
  replaced atomically, so it always names complete checkpoints.
  """
  name = os.path.basename(prefix)
  names = [os.path.basename(p) for p in complete(folder) if os.path.basename(p) != name]
  names.append(name)
  kept, dropped = names[-keep:], names[:-keep]
  lines = [f'model_checkpoint_path: "{name}"']
  lines += [f'all_model_checkpoint_paths: "{n}"' for n in kept]
  fileio.atomic_write_text(os.path.join(folder, INDEX_FILE), "\n".join(lines) + "\n")
  for old in dropped:
    for path in tf.io.gfile.glob(os.path.join(folder, old) + ".*"):
      tf.io.gfile.remove(path)


def global_step(prefix):
  """The checkpoint's `global_step`; else the STEP of a `model.ckpt-STEP` prefix; else 0."""
  reader = tf.train.load_checkpoint(prefix)
  if reader.has_tensor(GLOBAL_STEP):
    return int(reader.get_tensor(GLOBAL_STEP))
  return max(_step_in_name(prefix), 0)
