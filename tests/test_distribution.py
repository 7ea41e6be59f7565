"""Training under tf.distribute: two logical CPUs, two worker processes, and mixed precision.

Logical devices must be configured before TensorFlow starts, so each case runs in a subprocess.
"""

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests import clitools
from tests import conftest

MIRRORED_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import classifier, modeling, training

    config = modeling.BertConfig.from_json_file(sys.argv[1])
    config.hidden_dropout_prob = config.attention_probs_dropout_prob = 0.0
    rng = np.random.default_rng(0)
    batch, seq, steps = 8, 12, 3
    inputs = {"input_ids": rng.integers(1, config.vocab_size, (steps * batch, seq)),
              "input_mask": np.ones((steps * batch, seq)),
              "segment_ids": np.zeros((steps * batch, seq))}
    inputs = {k: tf.constant(v, tf.int32) for k, v in inputs.items()}
    labels = tf.constant(rng.integers(0, 2, (steps * batch, 3)), tf.float32)
    dataset = tf.data.Dataset.from_tensor_slices((inputs, labels)).batch(batch)

    def train(strategy):
      tf.keras.utils.set_random_seed(1)
      with strategy.scope():
        model = classifier.MultiLabelClassifier(config, 3)
        model.dropout.rate = 0.0
        optimizer = training.make_optimizer(model, 1e-3, 10, 2)
      loop = training.make_train_loop(model, optimizer, strategy, batch)
      losses, norms = loop(iter(strategy.experimental_distribute_dataset(dataset)),
                           tf.constant(steps))
      return losses.numpy(), norms.numpy(), {
          n: np.asarray(v.numpy() if hasattr(v, "numpy") else v)
          for n, v in training.state_variables(model, optimizer).items()}

    tf.keras.utils.set_random_seed(1)
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
      initial = {n: np.asarray(v.numpy()) for n, v in
                 classifier.MultiLabelClassifier(config, 3).checkpoint_variables().items()}
    one_losses, one_norms, one_state = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two_losses, two_norms, two_state = train(mirrored)
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "loss_diff": float(np.abs(one_losses - two_losses).max()),
        "norm_rel_diff": float(np.abs(one_norms / two_norms - 1).max()),
        "weight_diff": max(float(np.abs(one_state[n] - two_state[n]).max()) for n in one_state),
        "moved": max(float(np.abs(two_state[n] - initial[n]).max()) for n in initial),
        "global_step": int(two_state["global_step"])}))
""")


def test_mirrored_two_cpus_equal_one_device_on_the_global_batch(tiny_bert):
  result = clitools.printed_json(
      clitools.run_python(MIRRORED_SCRIPT, tiny_bert["config_file"], timeout=300))
  assert result["replicas"] == 2
  assert result["global_step"] == 3
  # Two replicas sum the gradient in another order than one device: rounding, not more.
  assert result["loss_diff"] < 1e-5
  assert result["weight_diff"] < 1e-5
  # The logged gradient norm is that of the gradient summed over replicas, as clipped.
  assert result["norm_rel_diff"] < 1e-5
  # The steps did train: at learning rate 1e-3 for 3 steps, Adam moves weights by ~1e-3.
  assert result["moved"] > 1e-4


def write_se0714(folder, n_train=48, n_test=8):
  rng = np.random.default_rng(1)
  words = conftest.TINY_WORDS
  os.makedirs(folder, exist_ok=True)
  for name, n in (("train_SE0714.txt", n_train), ("test_SE0714.txt", n_test)):
    with open(os.path.join(folder, name), "w", encoding="utf-8") as f:
      for _ in range(n):
        labels = [bool(b) for b in rng.integers(0, 2, 3)]
        f.write(f"{labels}\t{' '.join(rng.choice(words, 6))}\n")


def classifier_command(tiny_bert, data_dir, output_dir, *extra):
  return [sys.executable, "run_classifier.py", "--task_name=se0714", "--do_train=true",
          f"--data_dir={data_dir}", f"--vocab_file={tiny_bert['vocab_file']}",
          f"--bert_config_file={tiny_bert['config_file']}",
          f"--init_checkpoint={tiny_bert['checkpoint']}", "--max_seq_length=16",
          "--train_batch_size=8", "--num_train_epochs=1", f"--output_dir={output_dir}", *extra]


def free_port():
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def run_two_workers(command, output_dirs, attempts=3):
  """Runs `command(output_dir)` as workers 0 (the chief) and 1 of a loopback cluster.

  A free port is only free until the workers bind it: when another process took one in
  between, the run is repeated on new ports.

  Returns:
    The two workers' logs.
  """
  for attempt in range(attempts):
    workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
    processes = []
    for index, output_dir in enumerate(output_dirs):
      env = dict(os.environ, TF_CONFIG=json.dumps(
          {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
      processes.append(subprocess.Popen(
          command(output_dir), cwd=conftest.REPO_DIR, env=env, stdout=subprocess.PIPE,
          stderr=subprocess.STDOUT, text=True))
    logs = [p.communicate(timeout=600)[0] for p in processes]
    if [p.returncode for p in processes] == [0, 0]:
      return logs
    if attempt + 1 == attempts or not any("ddress already in use" in log for log in logs):
      raise AssertionError(logs[0][-3000:] + logs[1][-3000:])
  raise AssertionError("unreachable")


RESULTS = ("eval_results.json", "thresholds.json", "test_results.tsv", "test_results_classes.tsv")


def assert_same_results(folder, expected_folder):
  """The eval results, thresholds and predictions of two runs agree up to rounding.

  The runs split each batch differently over replicas, so their sums round differently.
  """
  _, ids, probabilities = clitools.read_tsv(os.path.join(folder, "test_results.tsv"))
  _, expected_ids, expected = clitools.read_tsv(os.path.join(expected_folder, "test_results.tsv"))
  assert ids == expected_ids
  conftest.assert_close(probabilities, expected, rtol=1e-5)
  loaded = [json.loads((folder / "thresholds.json").read_text()) for folder in
            (pathlib.Path(folder), pathlib.Path(expected_folder))]
  cut = np.array([[e["threshold"] for e in content["labels"]] for content in loaded])
  conftest.assert_close(cut[0], cut[1], rtol=1e-5)
  _, _, classes = clitools.read_tsv(os.path.join(folder, "test_results_classes.tsv"))
  clear = np.abs(expected - cut[1]) > 1e-4  # Away from a threshold, rounding cannot flip one.
  np.testing.assert_array_equal(classes[clear], (expected >= cut[1])[clear])


def test_two_workers_train_evaluate_and_predict_as_one_process(tiny_bert, tmp_path):
  """Each worker has its own --output_dir, as on machines without a shared disk."""
  data_dir = tmp_path / "data"
  write_se0714(data_dir)
  chief, worker = tmp_path / "chief", tmp_path / "worker1"
  logs = run_two_workers(lambda output_dir: classifier_command(
      tiny_bert, data_dir, output_dir, "--save_checkpoints_steps=100", "--do_eval=true",
      "--do_predict=true", "--cutoff_type=dynamic"), [chief, worker])
  assert "MultiWorkerMirroredStrategy with cluster_spec" in logs[0]
  assert "with 2 replica(s)" in logs[0]
  steps = 48 * 9 // 10 // 8  # The hold-out takes 10% of train.
  assert tf.train.latest_checkpoint(str(chief)).endswith(f"model.ckpt-{steps}")
  # Only the chief writes checkpoints and results.
  assert tf.train.latest_checkpoint(str(worker)) is None
  assert clitools.result_files(str(worker)) == []
  assert all((chief / name).exists() for name in RESULTS)

  # One process predicting with the chief's checkpoint gets what the two workers got: both
  # workers held the trained weights.
  single = tmp_path / "single"
  shutil.copytree(chief, single)
  for name in RESULTS:
    (single / name).unlink()
  clitools.succeeded(clitools.run_cli(
      classifier_command(tiny_bert, data_dir, single, "--do_train=false", "--do_eval=true",
                         "--do_predict=true", "--cutoff_type=dynamic")[2:]))
  assert_same_results(single, chief)

  # Predicting only, the chief finds its thresholds.json and the other worker has none: both
  # must take the chief's thresholds, not tune on dev alone while the chief predicts.
  for name in ("test_results.tsv", "test_results_classes.tsv"):
    (chief / name).unlink()
  logs = run_two_workers(lambda output_dir: classifier_command(
      tiny_bert, data_dir, output_dir, "--do_train=false", "--do_predict=true",
      "--cutoff_type=dynamic"), [chief, tmp_path / "worker1_predict"])
  assert "Tuning dynamic thresholds" not in logs[0] + logs[1]
  assert_same_results(chief, single)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_without_nan(tiny_bert, tmp_path, precision):
  data_dir = tmp_path / "data"
  write_se0714(data_dir)
  result = subprocess.run(
      classifier_command(tiny_bert, data_dir, tmp_path / "out", f"--precision={precision}",
                         "--num_train_epochs=3", "--learning_rate=1e-3", "--do_predict=true"),
      cwd=conftest.REPO_DIR, capture_output=True, text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"precision {precision}" in result.stderr
  prefix = tf.train.latest_checkpoint(str(tmp_path / "out"))
  steps = 48 * 9 // 10 * 3 // 8
  assert prefix.endswith(f"model.ckpt-{steps}")
  reader = tf.train.load_checkpoint(prefix)
  assert int(reader.get_tensor("global_step")) == steps
  kernel = reader.get_tensor("bert/encoder/layer_0/attention/self/query/kernel")
  assert kernel.dtype == np.float32 and np.isfinite(kernel).all()
  with open(tmp_path / "out" / "test_results.tsv", encoding="utf-8") as f:
    rows = [line.split("\t")[1:] for line in f.read().splitlines()[1:]]
  probabilities = np.array(rows, dtype=np.float64)
  assert probabilities.shape == (8, 3) and np.isfinite(probabilities).all()
  # The head, the sigmoid and the written probabilities are float32, not 16-bit: a bf16 value
  # has 8 significant bits, fp16 11, so most float32 probabilities have bits below those.
  mantissa, _ = np.frexp(probabilities.astype(np.float32))
  assert np.mean(mantissa * 2**12 != np.round(mantissa * 2**12)) > 0.5
