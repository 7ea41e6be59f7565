"""The tasks' data processors, by task name.

Each processor reads its task's files from `--data_dir` into `InputExample`s (see `base`);
`get_processor` is how the command line finds one.
"""

from errors import UserError
from processors.generic import GenericProcessor
from processors.movielens import MovieLensProcessor
from processors.psychexp import PsychExpProcessor
from processors.se0714 import Se0714Processor
from processors.toxic import ToxicProcessor

PROCESSORS = {
    processor.name: processor
    for processor in (MovieLensProcessor, Se0714Processor, PsychExpProcessor, ToxicProcessor,
                      GenericProcessor)
}


def get_processor(task_name, options=None):
  """Returns a new processor for `task_name`, matched case-insensitively.

  Args:
    task_name: str.
    options: `generic.Options` of the generic task (the own-data flags), or None for defaults.

  Raises:
    UserError: no task has that name (the message lists the known names), or `options` sets
      flags that only the generic task reads.
  """
  processor = PROCESSORS.get(task_name.strip().lower())
  if processor is None:
    raise UserError(f"unknown task name {task_name!r}; known tasks: "
                    f"{', '.join(sorted(PROCESSORS))}")
  if processor is GenericProcessor:
    return GenericProcessor(options)
  changed = options.changed_flags() if options is not None else []
  if changed:
    raise UserError(f"{', '.join(changed)} apply to --task_name={GenericProcessor.name} only, "
                    f"not to {processor.name}, whose files have a fixed format")
  return processor()
