"""bench/throughput.py runs as the benchmark checks call it, and reports what it measured."""

import io
import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import modeling
from tests import clitools
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
  assert report["peak_rss_mb"] > 0 and report["tf_version"]
  # The machine as a reader needs it: cores, vector extensions, and the kernels that
  # onednn.enable chose (conftest calls it too, so the bench inherits its choice).
  assert f"{os.cpu_count()} cores" in report["device"]
  onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS") == "1"
  assert report["device"].endswith("oneDNN kernels" if onednn else "Eigen kernels")


def test_task_split_and_tokenize_only(tiny_bert, tmp_path):
  write_se0714(tmp_path, n_test=13)
  task = ["--task_name=se0714", f"--data_dir={tmp_path}", f"--vocab_file={tiny_bert['vocab_file']}",
          "--max_seq_length=16"]
  report = run_bench(f"--bert_config_file={tiny_bert['config_file']}", "--mode=predict",
                     "--batch_size=4", "--passes=2", *task)
  assert report["examples"] == 13 and report["bucket_by_length"] is True
  assert len(report["warm_examples_per_sec"]) == 2
  assert report["examples_per_sec"] == max(report["warm_examples_per_sec"])
  assert report["cold_examples_per_sec"] > 0
  # The whole process to the end of its cold pass: TensorFlow's import alone takes seconds.
  assert report["process_seconds"] > report["cold_seconds"] + 1
  report = run_bench("--tokenize_only", *task)
  assert report["texts"] == 13 and report["texts_per_sec"] > 0


@pytest.mark.parametrize("script", ["bench/throughput.py", "bench/hf_throughput.py"])
def test_one_step_is_refused_before_anything_runs(script):
  # Training times its first step apart: one step would leave no rate to report.
  result = subprocess.run([sys.executable, script, "--mode=train", "--steps=1"],
                          cwd=conftest.REPO_DIR, capture_output=True, text=True, timeout=60,
                          check=False)
  assert result.returncode != 0 and not result.stdout
  assert "--steps=1" in result.stderr and ">= 2" in result.stderr, result.stderr[-2000:]


def test_paced_passes_wait_for_a_line_each_and_report_their_seconds(monkeypatch, capsys):
  monkeypatch.syspath_prepend(os.path.join(conftest.REPO_DIR, "bench"))
  import timing  # pylint: disable=g-import-not-at-top  # bench/timing.py
  stdin = io.StringIO("go\ngo\ngo\nleft over\n")
  monkeypatch.setattr(sys, "stdin", stdin)
  lines_read_before = []

  def one_pass():
    lines_read_before.append(stdin.tell())
    return len(lines_read_before)

  seconds, last, process_seconds = timing.time_passes(one_pass, passes=2, paced=True)
  assert len(seconds) == 3 and last == 3
  # The first pass waited for bench/paired.py's line: no figure rather than a wrong one.
  assert process_seconds is None
  # Each pass began after its own line and before the next one was read.
  assert lines_read_before == [3, 6, 9]
  printed = capsys.readouterr().out.splitlines()
  assert printed[0] == "ready 2" and len(printed) == 4
  assert [float(line.split()[1]) for line in printed[1:]] == pytest.approx(seconds)
  monkeypatch.setattr(sys, "stdin", io.StringIO("go\n"))
  with pytest.raises(SystemExit, match="stdin closed"):
    timing.time_passes(one_pass, passes=2, paced=True)


def test_training_is_timed_first_step_alone_then_in_chunks(monkeypatch):
  monkeypatch.syspath_prepend(os.path.join(conftest.REPO_DIR, "bench"))
  import timing  # pylint: disable=g-import-not-at-top  # bench/timing.py
  assert timing.chunk_sizes(1, 10) == [1]
  assert timing.chunk_sizes(21, 10) == [1, 10, 10]
  assert timing.chunk_sizes(25, 10) == [1, 10, 10, 4]
  ran = []
  sizes, seconds, process_seconds = timing.time_chunks(ran.append, 25, 10)
  assert ran == sizes == [1, 10, 10, 4] and len(seconds) == 4
  assert process_seconds > 0


def test_process_age_counts_from_the_interpreters_start(monkeypatch):
  code = ("import time; time.sleep(0.5); import timing; import json\n"
          "print(json.dumps(timing.seconds_since_process_start()))")
  result = clitools.run_python(code, cwd=os.path.join(conftest.REPO_DIR, "bench"), timeout=60)
  assert 0.5 <= json.loads(result.stdout) < 30
  monkeypatch.syspath_prepend(os.path.join(conftest.REPO_DIR, "bench"))
  import timing  # pylint: disable=g-import-not-at-top  # bench/timing.py
  before = timing.seconds_since_process_start()
  seconds, _, process_seconds = timing.time_passes(lambda: time.sleep(0.2), passes=1)
  # Read when the first pass ended; /proc counts in 10 ms ticks.
  assert before + seconds[0] - 0.02 <= process_seconds < before + seconds[0] + seconds[1]


def test_paired_reads_a_result_that_came_in_one_write_with_the_last_pass_line():
  # In a fresh interpreter: bench/paired.py defines absl flags that run_classifier.py also has.
  side = ("import sys\n"
          "print('ready 0', flush=True)\n"
          "sys.stdin.readline()\n"
          "sys.stdout.write('pass 1.5\\n' + '{\"steps\": 3}' + '\\n')\n")
  code = ("import json, subprocess, sys, paired\n"
          f"side = subprocess.Popen([sys.executable, '-c', {side!r}], stdin=subprocess.PIPE,\n"
          "                        stdout=subprocess.PIPE, text=True)\n"
          "ready = paired._read_until(side, 'ready')\n"
          "print(json.dumps([ready, paired._one_pass(side), paired._result(side)]))\n")
  result = clitools.run_python(code, cwd=os.path.join(conftest.REPO_DIR, "bench"), timeout=60)
  assert json.loads(result.stdout) == ["ready 0\n", 1.5, {"steps": 3}]


def test_paced_fixed_shape_training_runs_one_chunk_per_line(tiny_bert):
  process = subprocess.run(
      [sys.executable, "bench/throughput.py", f"--bert_config_file={tiny_bert['config_file']}",
       "--mode=train", "--batch_size=4", "--max_seq_length=16", "--steps=5", "--chunk_steps=2",
       "--paced"], input="\n" * 4, cwd=conftest.REPO_DIR, capture_output=True, text=True,
      timeout=300, check=False)
  assert process.returncode == 0, process.stderr[-3000:]
  lines = process.stdout.splitlines()
  # The first step, then 5 more in chunks of 2: four passes, three of them warm.
  assert lines[0] == "ready 3"
  assert [line.split()[0] for line in lines[1:5]] == ["pass"] * 4
  report = json.loads("\n".join(lines[5:]))
  assert report["chunk_steps"] == [1, 2, 2, 1] and report["steps"] == 5
  assert report["chunk_seconds"] == pytest.approx([float(l.split()[1]) for l in lines[1:5]])
  assert report["cold_step_ms"] == pytest.approx(1e3 * report["chunk_seconds"][0])
  assert report["examples_per_sec"] > 0


def test_task_training_runs_the_bucketed_pipeline(tiny_bert, tmp_path):
  write_se0714(tmp_path)
  report = run_bench(f"--bert_config_file={tiny_bert['config_file']}", "--mode=train",
                     "--batch_size=4", "--steps=3", "--task_name=se0714", f"--data_dir={tmp_path}",
                     f"--vocab_file={tiny_bert['vocab_file']}", "--max_seq_length=16")
  assert report["steps"] == 3 and report["examples_per_sec"] > 0 and report["cold_step_ms"] > 0
  assert report["chunk_steps"] == [1, 2]
  assert report["process_seconds"] > report["cold_step_ms"] / 1e3 + 1
  # Each batch is padded to its longest example rounded up to 8 (at most 16): 8 or 16 wide.
  assert 8 <= report["mean_width"] <= 16 and report["mean_tokens"] <= report["mean_width"]


def test_model_flops_count_every_non_embedding_weight_and_give_the_mfu(tiny_bert):
  report = run_bench(f"--bert_config_file={tiny_bert['config_file']}", "--mode=train",
                     "--batch_size=4", "--max_seq_length=16", "--steps=2", "--peak_tflops=2")
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  parameters = sum(int(np.prod(v.shape))
                   for name, v in modeling.BertModel(config).checkpoint_variables().items()
                   if not name.startswith("bert/embeddings/"))
  per_token = 6 * parameters + 12 * config.num_hidden_layers * 16 * config.hidden_size
  assert report["model_flops_per_example"] == 16 * per_token
  assert report["model_tflops_per_sec"] == pytest.approx(
      report["examples_per_sec"] * 16 * per_token / 1e12)
  assert report["mfu"] == pytest.approx(report["model_tflops_per_sec"] / 2)
  assert "mfu" not in run_bench(f"--bert_config_file={tiny_bert['config_file']}",
                                "--mode=predict", "--batch_size=4", "--max_seq_length=16",
                                "--steps=2")  # No peak known for a CPU.


def test_gpu_mfu_script_runs_fp32_bf16_and_xla():
  env = dict(os.environ, BATCH="4", SEQ="16", STEPS="2", HIDDEN="32", LAYERS="2", HEADS="2",
             PEAK_TFLOPS="1")
  # Three TensorFlow runs, one of them compiling with XLA: 107 s on a loaded 2-core machine.
  result = subprocess.run(["bash", "bench/gpu_mfu.sh"], cwd=conftest.REPO_DIR, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  reports = [json.loads(line) for line in result.stdout.splitlines()]
  assert [(r["precision"], r["jit_compile"]) for r in reports] == [
      ("fp32", False), ("bf16", False), ("bf16", True)]
  assert all(r["mode"] == "train" and r["mfu"] > 0 for r in reports)


def test_gemm_speed_measures_every_dense_shape_in_each_round():
  result = subprocess.run(
      [sys.executable, "bench/gemm_speed.py", "--frameworks=tensorflow", "--rows=8,16",
       "--hidden=16", "--intermediate=32", "--calls=2", "--rounds=2"],
      cwd=conftest.REPO_DIR, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout)
  assert set(report) == {"tensorflow", "device"}
  expected = {name for rows in (8, 16) for name in (f"{rows}x16x16", f"{rows}x16x32x16")}
  assert set(report["tensorflow"]) == expected
  for rounds in report["tensorflow"].values():
    assert len(rounds) == 2 and all(gflops > 0 for gflops in rounds)


def test_gemm_speed_reports_a_framework_it_could_not_measure(tmp_path):
  # A torch that cannot be imported, as on a machine without it: the report says why.
  (tmp_path / "torch.py").write_text("raise ImportError('torch is not installed here')\n")
  result = subprocess.run(
      [sys.executable, "bench/gemm_speed.py", "--frameworks=tensorflow", "--frameworks=torch",
       "--rows=8", "--hidden=16", "--intermediate=32", "--calls=2", "--rounds=2"],
      cwd=conftest.REPO_DIR, capture_output=True, text=True, timeout=300, check=False,
      env={**os.environ, "PYTHONPATH": str(tmp_path)})
  assert result.returncode == 0, result.stderr[-3000:]
  report = json.loads(result.stdout)
  assert report["torch"].startswith("not measured") and "not installed here" in report["torch"]
  assert all(len(rounds) == 2 for rounds in report["tensorflow"].values())
