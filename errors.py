"""The one exception type for a user's mistake.

A bad flag, a malformed data row or a missing file is not a bug in this program: the user
should see one line that says what is wrong and where, not a stack trace. Every module raises
`UserError` for such cases; `run_classifier.py` catches it at the top, prints the message and
exits non-zero. Anything else that escapes is a bug and keeps its traceback.
"""


class UserError(Exception):
  """A problem with the user's input, described in a message fit to print as it is."""


def file_error(path, line_number, reason):
  """Returns a `UserError` that names a file, a 1-based line number and the reason."""
  if line_number is None:
    return UserError(f"{path}: {reason}")
  return UserError(f"{path}, line {line_number}: {reason}")
