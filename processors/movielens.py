"""MovieLens genres from a title and a plot summary.

Lines are `movieId<TAB>title<TAB>summary<TAB>[0, 1, ...]`. Titles may hold brackets ("[REC]
(2007)"), so the label vector is the last field, not the first bracketed one; a tab inside the
summary is kept, the summary being every field between the title and the label vector.
"""

from processors import base


class MovieLensProcessor(base.TextLineProcessor):
  """MovieLens: 17 genres; title and summary are a sentence pair; ids are movie ids."""
  name = "movielens"
  has_pairs = True
  labels = ("Adventure", "Animation", "Children", "Comedy", "Fantasy", "Romance", "Drama",
            "Action", "Crime", "Thriller", "Horror", "Mystery", "Sci-Fi", "War", "Musical",
            "Documentary", "Western")
  train_file = "train_movies.txt"
  dev_file = "dev_movies.txt"
  test_file = "test_movies.txt"

  def _parse_line(self, line, line_number):
    fields = line.split("\t")
    if len(fields) < 4:
      raise base.BadRowError(
          f"expected movieId<TAB>title<TAB>summary<TAB>[labels], got {len(fields)} field(s)")
    labels = base.parse_label_vector(fields[-1], self.labels)
    return base.InputExample(guid=base.require_text(fields[0], "movie id"),
                             text_a=base.require_text(fields[1], "title"),
                             text_b=base.require_text("\t".join(fields[2:-1]), "summary"),
                             labels=labels)
