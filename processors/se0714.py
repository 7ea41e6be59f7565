"""SemEval-2007 Task 14 "Affective Text" headlines: `[False, True, False]<TAB>headline`."""

from processors import base


class Se0714Processor(base.LabelsFirstProcessor):
  """SE0714: three emotions per headline; ids are line numbers."""
  name = "se0714"
  labels = ("fear", "joy", "sadness")
  train_file = "train_SE0714.txt"
  dev_file = "dev_SE0714.txt"
  test_file = "test_SE0714.txt"
