"""report.html: self-contained, its tables are the metrics' numbers, its plots are real images."""

import base64
import dataclasses
import html.parser
import os

import numpy as np
from PIL import Image
import pytest
from sklearn import metrics as sk_metrics

import metrics
import report
import thresholds
from tests import clitools

LABELS = ("fear", "joy", "sadness")


class PageParser(html.parser.HTMLParser):
  """Collects a page's tags with their attributes, and the text of each table's cells."""

  def __init__(self):
    super().__init__()
    self.tags = []  # (tag, {attribute: value})
    self.tables = []  # (css class, [[cell text]])
    self._cell = None

  def handle_starttag(self, tag, attrs):
    self.tags.append((tag, dict(attrs)))
    if tag == "table":
      self.tables.append((dict(attrs).get("class", ""), []))
    elif tag == "tr":
      self.tables[-1][1].append([])
    elif tag in ("td", "th"):
      self._cell = ""

  def handle_endtag(self, tag):
    if tag in ("td", "th"):
      self.tables[-1][1][-1].append(self._cell)
      self._cell = None

  def handle_data(self, data):
    if self._cell is not None:
      self._cell += data


def parse_page(path):
  parser = PageParser()
  with open(path, encoding="utf-8") as f:
    parser.feed(f.read())
  return parser


def check_self_contained(parser):
  """Asserts that the page loads nothing: no script, no stylesheet link, only data: images."""
  tags = {tag for tag, _ in parser.tags}
  assert not tags & {"script", "link", "iframe", "object", "embed"}
  for _, attributes in parser.tags:
    for name in ("src", "href"):
      if name in attributes:
        assert attributes[name].startswith("data:image/png;base64,"), attributes[name][:80]


def check_table_matches(parser, split_name, metrics_dict, split_thresholds):
  """Asserts that the per-label table of a split shows the numbers of `metrics_dict`."""
  (rows,) = [rows for css, rows in parser.tables if css == f"per-label {split_name}"]
  assert rows[0] == ["label", "support", "AUC", "precision", "recall", "F1", "threshold"]
  assert len(rows) == 1 + len(metrics_dict["per_label"])
  for j, (row, expected) in enumerate(zip(rows[1:], metrics_dict["per_label"])):
    assert row[0] == expected["label"] and int(row[1]) == expected["support"]
    for cell, key in zip(row[2:6], ("auc", "precision", "recall", "f1")):
      if expected[key] is None:
        assert cell == "—"
      else:
        assert float(cell) == pytest.approx(expected[key], abs=5e-5)
    if split_thresholds is None:
      assert row[6] == "—"
    else:
      assert float(row[6]) == pytest.approx(split_thresholds[j], abs=5e-5)


def check_png(path):
  """Asserts that `path` is a PNG of a real plot: a sensible size and many colours."""
  with Image.open(path) as image:
    assert image.format == "PNG"
    assert image.width >= 300 and image.height >= 200
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20)) > 20


def synthetic_split(rng, name, n, cut_offs):
  labels = (rng.random((n, len(LABELS))) < [0.1, 0.3, 0.5]).astype(np.int64)
  labels[0] = 1  # Every label has a positive.
  probabilities = np.clip(0.35 * labels + 0.65 * rng.random(labels.shape), 0, 1)
  predictions = None if cut_offs is None else thresholds.static_predictions(probabilities,
                                                                              cut_offs)
  result = metrics.compute_metrics(labels, probabilities, LABELS, predictions)
  return report.SplitResults(name, labels, probabilities, dataclasses.asdict(result), cut_offs)


@pytest.mark.parametrize("with_cut_off", [True, False])
def test_page_is_self_contained_and_shows_the_metrics(tmp_path, with_cut_off):
  rng = np.random.default_rng(0)
  tuned = np.array([0.3, 0.55, 0.62]) if with_cut_off else None
  splits = [synthetic_split(rng, "dev", 60, tuned), synthetic_split(rng, "test", 40, tuned)]
  curves = {"loss": (np.arange(10, 110, 10), np.linspace(0.7, 0.2, 10))}
  written = report.write_report(str(tmp_path), "se0714 <&>", LABELS, splits,
                                {"task_name": "se0714", "cut_off": 0.5},
                                {"checkpoint": "out/model.ckpt-100", "step": 100}, 0.5,
                                tuned, curves)
  page = str(tmp_path / "report.html")
  assert written[0] == page
  plots = {"training_loss", "pr_curves_dev", "f1_threshold_dev", "label_frequency_dev",
           "pr_curves_test", "label_frequency_test"}
  assert sorted(written[1:]) == sorted(str(tmp_path / f"report_{p}.png") for p in plots)
  parser = parse_page(page)
  check_self_contained(parser)
  with open(page, encoding="utf-8") as f:
    text = f.read()
  assert "http" not in text and "se0714 &lt;&amp;&gt;" in text
  for split in splits:
    check_table_matches(parser, split.name, split.metrics, tuned)
  # Each embedded image is the PNG file written beside the page.
  embedded = [base64.b64decode(attributes["src"].split(",", 1)[1])
              for tag, attributes in parser.tags if tag == "img"]
  files = []
  for path in written[1:]:
    check_png(path)
    with open(path, "rb") as f:
      files.append(f.read())
  assert sorted(embedded) == sorted(files)


def test_no_training_curve_without_events(tmp_path):
  rng = np.random.default_rng(1)
  written = report.write_report(str(tmp_path), "t", LABELS, [synthetic_split(rng, "test", 30,
                                                                             None)],
                                {}, {}, 0.5)
  assert [os.path.basename(p) for p in written] == [
      "report.html", "report_pr_curves_test.png", "report_label_frequency_test.png"]
  with open(written[0], encoding="utf-8") as f:
    assert "No training loss" in f.read()


def test_f1_by_threshold_is_scikit_learns_f1_at_each_step():
  rng = np.random.default_rng(2)
  labels = (rng.random(50) < 0.3).astype(np.int64)
  labels[0] = 1
  probabilities = np.round(rng.random(50), 1)  # Ties, as real probabilities have.
  values, f1 = report.f1_by_threshold(labels, probabilities)
  np.testing.assert_array_equal(values, np.unique(probabilities))
  for value, score in zip(values, f1):
    assert score == pytest.approx(sk_metrics.f1_score(labels, probabilities >= value))


def test_importing_report_does_not_import_matplotlib(tmp_path):
  code = ("import sys; sys.modules['matplotlib'] = None\n"
          "import numpy as np, report\n"
          "split = report.SplitResults('test', np.eye(2, dtype=int), np.eye(2) * 0.8,\n"
          "    {'num_examples': 2, 'mean_auc': 1.0, 'auc_averages': {}, 'f1_averages': None,\n"
          "     'label_ranking_average_precision': 1.0,\n"
          "     'per_label': [{'support': 1, 'auc': 1.0, 'precision': None, 'recall': None,\n"
          "                    'f1': None}] * 2})\n"
          f"print(report.write_report({str(tmp_path)!r}, 't', ['a', 'b'], [split], {{}}, {{}},"
          " 0.5))\n")
  result = clitools.run_python(code)
  assert "matplotlib is not installed" in result.stderr
  assert os.listdir(tmp_path) == ["report.html"]
