"""What bench/quality.py and bench/hf_quality.py report alike: per-seed scores and their spread."""

import json

import numpy as np

METRICS = ("test_mean_auc", "test_weighted_f1", "test_micro_f1", "test_hamming_loss", "wall_s")


def record(seed, test_metrics, wall_s):
  """The numbers one seed's run is judged by, from its test `EvalMetrics` as a dict."""
  return {"seed": seed, "test_mean_auc": test_metrics["mean_auc"],
          "test_weighted_f1": test_metrics["f1_averages"]["weighted"],
          "test_micro_f1": test_metrics["f1_averages"]["micro"],
          "test_hamming_loss": test_metrics["hamming_loss"], "wall_s": wall_s}


def summary(name, records):
  """{metric: [mean, sample sd]} over the seeds' records, with the name and the seeds."""
  result = {"name": name, "seeds": [r["seed"] for r in records]}
  for metric in METRICS:
    values = np.array([r[metric] for r in records], np.float64)
    sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    result[metric] = [round(float(np.mean(values)), 4), round(sd, 4)]
  return result


def print_line(value):
  print(json.dumps(value), flush=True)
