"""The command-line frame of export_saved_model.py and classify.py.

absl parses the flags; a user's mistake (a bad flag, a missing file, a `UserError` from any
module) ends in one line `error: ...` on stderr and exit code 2, without a stack trace
(`--verbosity=1` logs it).
"""

import sys

from absl import app
from absl import flags
from absl import logging

from errors import UserError


def run(main):
  """Parses `sys.argv` into absl's flags and runs `main(argv)`, as `app.run` does."""
  try:
    app.define_help_flags()  # --help, --helpshort, --helpfull, as app.run would define them.
    try:
      argv = flags.FLAGS(sys.argv)
    except flags.Error as e:
      raise UserError(str(e)) from None
    app.run(main, argv=argv, flags_parser=lambda parsed: parsed)
  except UserError as e:
    logging.debug("User error", exc_info=True)
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)


def import_tensorflow():
  """Imports TensorFlow without its C++ start-up log (unless --verbosity=1); see `console`."""
  import console  # pylint: disable=g-import-not-at-top
  return console.import_tensorflow(logging.get_verbosity())
