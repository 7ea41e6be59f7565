"""The record every task's processor produces, and the interface it implements."""

import dataclasses
from typing import Optional, Sequence


@dataclasses.dataclass(frozen=True)
class InputExample:
  """One document to classify.

  Attributes:
    guid: the id written to the predictions file (movie id, Kaggle id or line number).
    text_a: the text, or the first of a sentence pair.
    text_b: the second text of a pair (MovieLens' summary), else None.
    labels: one 0/1 int per label in the task's label order, or None where the split has no
      labels (an unscored Kaggle test row, say).
  """
  guid: str
  text_a: str
  text_b: Optional[str] = None
  labels: Optional[Sequence[int]] = None
