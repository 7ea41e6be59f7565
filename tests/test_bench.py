"""bench/throughput.py runs as the benchmark checks call it, and reports what it measured."""

import json
import subprocess
import sys

import pytest

from tests import conftest
from tests.test_distribution import write_se0714


def run_bench(*flags):
  result = subprocess.run([sys.executable, "bench/throughput.py", *flags], cwd=conftest.REPO_DIR,
                          capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout)


@pytest.mark.parametrize("mode", ["train", "predict"])
def test_fixed_shape(tiny_bert, mode):
  report = run_bench(f"--bert_config_file={tiny_bert['config_file']}", f"--mode={mode}",
                     "--batch_size=4", "--max_seq_length=16", "--steps=3")
  assert report["mode"] == mode and report["precision"] == "fp32"
  assert report["examples_per_sec"] > 0 and report["step_time_ms_median"] > 0
  assert report["peak_rss_mb"] > 0 and report["tf_version"] and report["device"]


def test_task_split_and_tokenize_only(tiny_bert, tmp_path):
  write_se0714(tmp_path, n_test=13)
  task = ["--task_name=se0714", f"--data_dir={tmp_path}", f"--vocab_file={tiny_bert['vocab_file']}",
          "--max_seq_length=16"]
  report = run_bench(f"--bert_config_file={tiny_bert['config_file']}", "--mode=predict",
                     "--batch_size=4", *task)
  assert report["examples"] == 13 and report["examples_per_sec"] > 0
  assert report["bucket_by_length"] is True
  report = run_bench("--tokenize_only", *task)
  assert report["texts"] == 13 and report["texts_per_sec"] > 0
