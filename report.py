"""`report.html`: one page that shows what a run learned, with its plots beside it as PNG files.

The page is a single file: its images are embedded, it has no script and names no other file
or address, so it opens from disk anywhere. It holds the run's flags and model, and per
evaluated split a table of per-label support, AUC, precision, recall, F1 and threshold (the
numbers of `eval_results.json`), and plots:

  report_training_loss.png          the training loss (and learning rate) against the step
  report_pr_curves_SPLIT.png        each label's precision-recall curve, its cut-off marked
  report_f1_threshold_dev.png       each label's dev F1 against the threshold, with the static
                                    cut-off and the tuned threshold marked
  report_label_frequency_SPLIT.png  each label's AUC and F1 against its frequency

Everything it shows is handed to it; it computes curves from labels and probabilities but reads
nothing of the training. matplotlib is imported when a plot is drawn, never at import time, and
draws with its Agg backend (no display needed).
"""

import base64
import dataclasses
import html
import io
import math
import os
from typing import Optional

from absl import logging
import numpy as np
from sklearn import metrics as sk_metrics

from fileio import atomic_open
from fileio import atomic_write_text

REPORT_FILE = "report.html"
_PLOT_PREFIX = "report_"
_MISSING = "—"


@dataclasses.dataclass
class SplitResults:
  """One evaluated split, as the page shows it.

  Attributes:
    name: str, "dev" or "test".
    labels: np.ndarray [n, k] of 0/1, the labelled examples only.
    probabilities: np.ndarray [n, k] of float, their probabilities.
    metrics: dict shaped as `eval_results.json` (`dataclasses.asdict(metrics.EvalMetrics)`).
    thresholds: np.ndarray [k] of float, the cut-off applied to each label; None without one.
  """
  name: str
  labels: np.ndarray
  probabilities: np.ndarray
  metrics: dict
  thresholds: Optional[np.ndarray] = None


def _figure(num_panels, panel_size=(3.2, 2.7), columns=4):
  """A matplotlib Figure on the Agg canvas with a grid of `num_panels` axes; returns (fig, axes).

  Unused cells of the grid are hidden.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg  # pylint: disable=g-import-not-at-top
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  columns = min(columns, num_panels)
  rows = math.ceil(num_panels / columns)
  figure = Figure(figsize=(panel_size[0] * columns, panel_size[1] * rows), dpi=100,
                  layout="constrained")
  FigureCanvasAgg(figure)
  axes = figure.subplots(rows, columns, squeeze=False).ravel()
  for unused in axes[num_panels:]:
    unused.set_visible(False)
  return figure, axes[:num_panels]


def _png(figure):
  """The figure as PNG bytes, without matplotlib's metadata (which names its web site)."""
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", metadata={"Software": None})
  return buffer.getvalue()


def _pr_curves_figure(split, label_names):
  """Each label's precision-recall curve, with the point its threshold gives."""
  figure, axes = _figure(len(label_names))
  for j, (axis, name) in enumerate(zip(axes, label_names)):
    labels, probabilities = split.labels[:, j], split.probabilities[:, j]
    axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="recall", ylabel="precision")
    if not labels.any():
      axis.set_title(f"{name}: no positive", fontsize=10)
      continue
    precision, recall, _ = sk_metrics.precision_recall_curve(labels, probabilities)
    average_precision = sk_metrics.average_precision_score(labels, probabilities)
    axis.plot(recall, precision, drawstyle="steps-post", color="tab:blue")
    axis.axhline(labels.mean(), color="gray", linestyle=":", linewidth=1)
    axis.set_title(f"{name}: AP {average_precision:.3f}", fontsize=10)
    label_metrics = split.metrics["per_label"][j]
    if split.thresholds is not None:
      point = (label_metrics["recall"], label_metrics["precision"])
      axis.plot(*point, "o", color="tab:red")
      # The text goes inside the axes, away from the edge the point is near.
      axis.annotate(f"t={split.thresholds[j]:.3g}", point, textcoords="offset points",
                    xytext=(-5 if point[0] > 0.7 else 5, -12 if point[1] > 0.85 else 5),
                    ha="right" if point[0] > 0.7 else "left", fontsize=8, color="tab:red")
  figure.suptitle(f"Precision-recall on {split.name} (dotted: share of positives; dot: the "
                  "cut-off's precision and recall)", fontsize=11)
  return figure


def f1_by_threshold(labels, probabilities):
  """F1 of `probabilities >= t` for every t at which it changes.

  Predicting `p >= t` gives the same decisions for every t in (v', v], where v and v' are
  adjacent distinct probabilities, so the curve is a step function known at each distinct v.

  Args:
    labels: np.ndarray [n] of 0/1, with at least one 1.
    probabilities: np.ndarray [n] of float.

  Returns:
    (values, f1): float64 [m], the distinct probabilities in ascending order and the F1 of
    `p >= value` at each.
  """
  order = np.argsort(-probabilities, kind="stable")
  descending = probabilities[order]
  true_positives = np.cumsum(labels[order])
  ends = np.flatnonzero(np.append(descending[1:] != descending[:-1], True))
  f1 = 2 * true_positives[ends] / (ends + 1 + true_positives[-1])
  return descending[ends][::-1].astype(np.float64), f1[::-1].astype(np.float64)


def _f1_at(values, f1, threshold):
  """The F1 of `p >= threshold` from `f1_by_threshold`'s curve: 0 when nothing is predicted."""
  index = np.searchsorted(values, threshold)  # The lowest probability >= threshold.
  return f1[index] if index < len(values) else 0.0


def _f1_threshold_figure(split, label_names, cut_off, tuned_thresholds):
  """Each label's dev F1 against the threshold, the static cut-off and the tuned one marked."""
  figure, axes = _figure(len(label_names))
  for j, (axis, name) in enumerate(zip(axes, label_names)):
    labels = split.labels[:, j]
    axis.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="threshold", ylabel="F1")
    axis.axvline(cut_off, color="gray", linestyle="--", linewidth=1)
    if not labels.any():
      axis.set_title(f"{name}: no positive", fontsize=10)
      continue
    values, f1 = f1_by_threshold(labels, split.probabilities[:, j])
    # Below the lowest probability every example is predicted; above the highest, none.
    axis.plot(np.concatenate([[0.0], values, [1.0]]), np.concatenate([[f1[0]], f1, [0.0]]),
              drawstyle="steps-pre", color="tab:blue")
    title = f"{name}: F1 {_f1_at(values, f1, cut_off):.3f} at {cut_off:g}"
    if tuned_thresholds is not None:
      axis.axvline(tuned_thresholds[j], color="tab:red", linewidth=1.2)
      title += f", {_f1_at(values, f1, tuned_thresholds[j]):.3f} at {tuned_thresholds[j]:.3g}"
    axis.set_title(title, fontsize=9)
  figure.suptitle(f"F1 against the threshold on {split.name} (dashed: --cut_off"
                  + ("; red: tuned threshold" if tuned_thresholds is not None else "") + ")",
                  fontsize=11)
  return figure


def _label_frequency_figure(split, label_names):
  """Each label's AUC and (with a cut-off) F1 against the share of examples that have it."""
  per_label = split.metrics["per_label"]
  frequency = 100 * np.array([m["support"] for m in per_label]) / max(len(split.labels), 1)
  panels = [("AUC", [m["auc"] for m in per_label])]
  if split.thresholds is not None:
    panels.append(("F1", [m["f1"] for m in per_label]))
  figure, axes = _figure(len(panels), panel_size=(5.5, 4.2), columns=2)
  for axis, (metric, values) in zip(axes, panels):
    defined = [(x, y, name) for x, y, name in zip(frequency, values, label_names)
               if y is not None]
    axis.scatter([x for x, _, _ in defined], [y for _, y, _ in defined], color="tab:blue")
    for x, y, name in defined:
      axis.annotate(name, (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
    axis.set(xlabel=f"labelled with it in {split.name} (%)", ylabel=metric, ylim=(0, 1.05),
             xlim=(0, max(frequency.max(), 1) * 1.15))
    axis.grid(alpha=0.3)
  figure.suptitle(f"Label frequency against AUC and F1 on {split.name}", fontsize=11)
  return figure


def _training_figure(training_curves):
  """The training loss against the step, with the learning rate on a second axis."""
  figure, (axis,) = _figure(1, panel_size=(9, 3.6), columns=1)
  steps, loss = training_curves["loss"]
  axis.plot(steps, loss, color="tab:blue", label="loss")
  axis.set(xlabel="step", ylabel="training loss")
  axis.grid(alpha=0.3)
  if "learning_rate" in training_curves:
    rate_axis = axis.twinx()
    rate_axis.plot(*training_curves["learning_rate"], color="tab:orange", linewidth=1,
                   label="learning rate")
    rate_axis.set_ylabel("learning rate", color="tab:orange")
  figure.suptitle("Training loss (mean over each log interval)", fontsize=11)
  return figure


def _number(value, digits=4):
  if value is None:
    return _MISSING
  return f"{value:.{digits}f}"


def _shaded_cell(value):
  """A table cell whose background runs from red (0) to green (1), to spot weak labels."""
  if value is None:
    return f"<td>{_MISSING}</td>"
  return (f'<td style="background:hsl({120 * min(max(value, 0), 1):.0f},65%,85%)">'
          f"{_number(value)}</td>")


def _table(header, rows, css_class=""):
  head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
  body = "".join("<tr>" + "".join(row) + "</tr>\n" for row in rows)
  return f'<table class="{css_class}"><tr>{head}</tr>\n{body}</table>\n'


def _cell(value):
  return f"<td>{html.escape(str(value))}</td>"


def _key_value_table(heading, values, css_class):
  return _table([heading, "value"], [[_cell(k), _cell(v)] for k, v in values.items()],
                css_class)


def per_label_rows(split, label_names):
  """The rows of a split's per-label table: (label, support, AUC, P, R, F1, threshold) cells."""
  rows = []
  for j, (name, m) in enumerate(zip(label_names, split.metrics["per_label"])):
    threshold = None if split.thresholds is None else float(split.thresholds[j])
    rows.append([_cell(name), _cell(m["support"]), _shaded_cell(m["auc"]),
                 f"<td>{_number(m['precision'])}</td>", f"<td>{_number(m['recall'])}</td>",
                 _shaded_cell(m["f1"]), f"<td>{_number(threshold)}</td>"])
  return rows


def _summary_rows(metrics):
  rows = [("labelled examples", str(metrics["num_examples"])),
          ("mean AUC (of the per-label AUCs)", _number(metrics["mean_auc"]))]
  rows += [(f"{average} AUC", _number(value)) for average, value in metrics["auc_averages"].items()]
  rows.append(("label ranking average precision",
               _number(metrics["label_ranking_average_precision"])))
  if metrics["f1_averages"] is not None:
    rows += [(f"{average} F1", _number(value)) for average, value in metrics["f1_averages"].items()]
    rows += [("Hamming loss", _number(metrics["hamming_loss"])),
             ("subset accuracy", _number(metrics["subset_accuracy"]))]
  return [[_cell(name), f"<td>{value}</td>"] for name, value in rows]


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1300px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f0f0f0; }
td:first-child, th:first-child { text-align: left; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
.note { color: #666; }
.side { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
summary { cursor: pointer; color: #444; margin-bottom: 0.5em; }
"""


class _Page:
  """Collects the page's HTML and the PNG files written beside it."""

  def __init__(self, output_dir):
    self.output_dir = output_dir
    self.parts = []
    self.files = []

  def add(self, text):
    self.parts.append(text)

  def plot(self, name, make_figure, alt):
    """Draws a figure, writes it as `report_NAME.png` and embeds it in the page."""
    data = _png(make_figure())
    path = os.path.join(self.output_dir, f"{_PLOT_PREFIX}{name}.png")
    with atomic_open(path, "wb") as f:
      f.write(data)
    self.files.append(path)
    self.add(f'<img alt="{html.escape(alt)}" src="data:image/png;base64,'
             f'{base64.b64encode(data).decode("ascii")}">\n')


def _can_plot():
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    logging.warning("matplotlib is not installed: %s has tables but no plots (pip install "
                    "matplotlib)", REPORT_FILE)
    return False
  return True


def write_report(output_dir, title, label_names, splits, flags, model, cut_off,
                 tuned_thresholds=None, training_curves=None, default_flags=None):
  """Writes `report.html` and its PNG files into `output_dir`.

  Args:
    output_dir: str, an existing folder.
    title: str, the page's heading (say, the task's name).
    label_names: sequence of k str.
    splits: sequence of `SplitResults`, in the order to show.
    flags: dict {flag name: value} of the flags given on the command line.
    model: dict {what: value} describing the model (checkpoint, step, config), shown as it is.
    cut_off: float, the static cut-off (`--cut_off`), marked on the F1 plot.
    tuned_thresholds: np.ndarray [k] of the dynamic thresholds tuned on dev, or None.
    training_curves: {tag: (steps, values)} with "loss" (and "learning_rate"), as
      `summaries.read_scalars` returns them from train/; None or without "loss": no plot.
    default_flags: dict {flag name: value} of the other flags, shown folded.

  Returns:
    list of str: the page's path, then the PNG files.
  """
  page = _Page(output_dir)
  plots = _can_plot()
  page.add(f"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
           f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
           f"<h1>{html.escape(title)}</h1>\n")
  page.add('<h2>Run</h2>\n<div class="side">' + _key_value_table("flag given", flags, "flags") +
           _key_value_table("model", model, "model") + "</div>\n")
  if default_flags:
    page.add(f"<details><summary>{len(default_flags)} flags at their defaults</summary>"
             f'{_key_value_table("flag", default_flags, "default-flags")}</details>\n')

  page.add("<h2>Training</h2>\n")
  if plots and training_curves and "loss" in training_curves:
    page.plot("training_loss", lambda: _training_figure(training_curves), "training loss")
  else:
    page.add('<p class="note">No training loss: this run did not train, and --output_dir '
             "holds no train/ events.</p>\n")

  for split in splits:
    page.add(f"<h2>{html.escape(split.name.capitalize())} split</h2>\n")
    page.add('<div class="side">' +
             _table(["metric", "value"], _summary_rows(split.metrics), "summary") +
             _table(["label", "support", "AUC", "precision", "recall", "F1", "threshold"],
                    per_label_rows(split, label_names), f"per-label {split.name}") + "</div>\n")
    if not plots:
      continue
    page.plot(f"pr_curves_{split.name}", lambda s=split: _pr_curves_figure(s, label_names),
              f"precision-recall curves on {split.name}")
    if split.name == "dev":
      page.plot("f1_threshold_dev",
                lambda s=split: _f1_threshold_figure(s, label_names, cut_off, tuned_thresholds),
                "F1 against the threshold on dev")
    page.plot(f"label_frequency_{split.name}",
              lambda s=split: _label_frequency_figure(s, label_names),
              f"label frequency against AUC and F1 on {split.name}")
  page.add("</body></html>\n")
  path = os.path.join(output_dir, REPORT_FILE)
  atomic_write_text(path, "".join(page.parts))
  return [path] + page.files
