"""PsychExp (ISEAR-style) reports of emotional experiences: `[0.0, 1.0, ...]<TAB>text`."""

from processors import base


class PsychExpProcessor(base.LabelsFirstProcessor):
  """PsychExp: seven emotions per text; ids are line numbers."""
  name = "psychexp"
  labels = ("joy", "fear", "anger", "sadness", "disgust", "shame", "guilt")
  train_file = "train_psychexp.txt"
  dev_file = "dev_psychexp.txt"
  test_file = "test_psychexp.txt"
