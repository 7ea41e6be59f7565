"""Writes that land whole or not at all.

A run killed half-way through writing `test_results.tsv` must not leave a truncated file that
looks complete. Each writer here writes a temporary file in the destination folder and then
renames it over the destination, which POSIX makes atomic within one file system.
"""

import contextlib
import os
import tempfile


@contextlib.contextmanager
def atomic_open(path, mode="w", encoding="utf-8", newline=None):
  """Opens a temporary file beside `path`; on a clean exit it replaces `path`.

  On an exception the temporary file is removed and `path` keeps its previous content.
  """
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp_path = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".",
                                  suffix=".tmp")
  try:
    # mkstemp makes the file private (0600); results are ordinary files, readable as the umask
    # allows.
    os.chmod(tmp_path, 0o666 & ~_umask())
    kwargs = {} if "b" in mode else {"encoding": encoding, "newline": newline}
    with os.fdopen(fd, mode, **kwargs) as f:
      yield f
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    with contextlib.suppress(FileNotFoundError):
      os.remove(tmp_path)
    raise


def _umask():
  mask = os.umask(0)
  os.umask(mask)
  return mask


def atomic_write_text(path, text):
  """Writes `text` to `path` atomically."""
  with atomic_open(path) as f:
    f.write(text)
