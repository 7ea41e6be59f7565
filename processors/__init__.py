"""The tasks' data processors, by task name.

Each processor reads its task's files from `--data_dir` into `InputExample`s (see `base`);
`get_processor` is how the command line finds one.
"""

from errors import UserError
from processors.movielens import MovieLensProcessor
from processors.psychexp import PsychExpProcessor
from processors.se0714 import Se0714Processor
from processors.toxic import ToxicProcessor

PROCESSORS = {
    processor.name: processor
    for processor in (MovieLensProcessor, Se0714Processor, PsychExpProcessor, ToxicProcessor)
}


def get_processor(task_name):
  """Returns a new processor for `task_name`, matched case-insensitively.

  Raises:
    UserError: no task has that name; the message lists the known names.
  """
  processor = PROCESSORS.get(task_name.strip().lower())
  if processor is None:
    raise UserError(f"unknown task name {task_name!r}; known tasks: "
                    f"{', '.join(sorted(PROCESSORS))}")
  return processor()
