"""Training under tf.distribute: two logical CPUs, two worker processes, and mixed precision.

Logical devices must be configured before TensorFlow starts, so each case runs in a subprocess.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

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
      losses = loop(iter(strategy.experimental_distribute_dataset(dataset)), tf.constant(steps))
      return losses.numpy(), {n: np.asarray(v.numpy() if hasattr(v, "numpy") else v)
                              for n, v in training.state_variables(model, optimizer).items()}

    one_losses, one_state = train(tf.distribute.OneDeviceStrategy("/cpu:0"))
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    two_losses, two_state = train(mirrored)
    print(json.dumps({
        "replicas": mirrored.num_replicas_in_sync,
        "loss_diff": float(np.abs(one_losses - two_losses).max()),
        "weight_diff": max(float(np.abs(one_state[n] - two_state[n]).max()) for n in one_state),
        "moved": max(float(np.abs(one_state[n] - two_state[n]).max()) for n in one_state),
        "global_step": int(two_state["global_step"]),
        "losses": one_losses.tolist()}))
""")


def run_python(code, *args, env=None):
  result = subprocess.run([sys.executable, "-c", code, *args], cwd=conftest.REPO_DIR,
                          capture_output=True, text=True, env=env, timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout.strip().splitlines()[-1])


def test_mirrored_two_cpus_equal_one_device_on_the_global_batch(tiny_bert):
  result = run_python(MIRRORED_SCRIPT, tiny_bert["config_file"])
  assert result["replicas"] == 2
  assert result["global_step"] == 3
  assert result["loss_diff"] < 1e-6
  assert result["weight_diff"] < 1e-5
  assert len(set(np.round(result["losses"], 6))) == 3  # The steps did train.


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


def test_two_worker_processes_train_through_tf_config(tiny_bert, tmp_path):
  data_dir = tmp_path / "data"
  write_se0714(data_dir)
  workers = [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]
  processes = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}))
    output_dir = tmp_path / ("out" if index == 0 else "out_worker1")
    processes.append(subprocess.Popen(
        classifier_command(tiny_bert, data_dir, output_dir, "--save_checkpoints_steps=100"),
        cwd=conftest.REPO_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True))
  logs = [p.communicate(timeout=300)[0] for p in processes]
  assert [p.returncode for p in processes] == [0, 0], logs[0][-3000:] + logs[1][-3000:]
  assert "MultiWorkerMirroredStrategy with cluster_spec" in logs[0]
  assert "with 2 replica(s)" in logs[0]
  steps = 48 * 9 // 10 // 8  # The hold-out takes 10% of train.
  assert tf.train.latest_checkpoint(str(tmp_path / "out")).endswith(f"model.ckpt-{steps}")
  assert tf.train.latest_checkpoint(str(tmp_path / "out_worker1")) is None  # Only the chief.


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
