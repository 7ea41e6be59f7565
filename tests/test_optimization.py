"""Tests for optimization.py against Google BERT's optimizer equations, written in numpy."""

import os
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimization
from tests import clitools


# Keras names deliberately unlike the checkpoint names: decay must follow the latter.
CHECKPOINT_NAMES = {
    "w0": "bert/encoder/layer_0/attention/output/LayerNorm/gamma",
    "w1": "loss/output_bias",
    "w2": "bert/pooler/dense/kernel",
    "bias_in_keras_name": "loss/output_weights",
}
DECAYED = {"w0": False, "w1": False, "w2": True, "bias_in_keras_name": True}
SHAPES = {"w0": (4,), "w1": (3,), "w2": (4, 4), "bias_in_keras_name": (3, 4)}


def schedule_formula(init_lr, num_train_steps, num_warmup_steps, step):
  if step < num_warmup_steps:
    return init_lr * step / num_warmup_steps
  return init_lr * (1.0 - min(step, num_train_steps) / num_train_steps)


def reference_adam_weight_decay(params, grads_per_step, lrs, decayed, clip_norm=1.0,
                                weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999,
                                epsilon=1e-6, bias_correction=False):
  """Google's AdamWeightDecayOptimizer after tf.clip_by_global_norm, in float64; with
  `bias_correction`, Adam's corrected moments m / (1 - beta_1^t), v / (1 - beta_2^t)."""
  params = {k: np.asarray(p, np.float64).copy() for k, p in params.items()}
  m = {k: np.zeros_like(p) for k, p in params.items()}
  v = {k: np.zeros_like(p) for k, p in params.items()}
  for t, (grads, lr) in enumerate(zip(grads_per_step, lrs), start=1):
    grads = {k: np.asarray(g, np.float64) for k, g in grads.items()}
    norm = np.sqrt(sum(np.sum(g * g) for g in grads.values()))
    scale = clip_norm / max(norm, clip_norm)
    for k, g in grads.items():
      g = g * scale
      m[k] = beta_1 * m[k] + (1.0 - beta_1) * g
      v[k] = beta_2 * v[k] + (1.0 - beta_2) * g * g
      if bias_correction:
        update = (m[k] / (1.0 - beta_1 ** t)) / (np.sqrt(v[k] / (1.0 - beta_2 ** t)) + epsilon)
      else:
        update = m[k] / (np.sqrt(v[k]) + epsilon)
      if decayed[k]:
        update = update + weight_decay_rate * params[k]
      params[k] = params[k] - lr * update
  return params, m, v


def make_variables(seed=0):
  rng = np.random.default_rng(seed)
  initial = {k: rng.normal(size=shape).astype(np.float32) for k, shape in SHAPES.items()}
  variables = {k: keras.Variable(value, name=k) for k, value in initial.items()}
  return initial, variables


def make_optimizer(variables, **kwargs):
  optimizer = optimization.AdamWeightDecay(**kwargs)
  optimizer.set_variable_names({CHECKPOINT_NAMES[k]: v for k, v in variables.items()})
  return optimizer


def random_gradients(num_steps, large_steps, seed=1):
  """Gradients of global norm below 1, except on `large_steps`, where it is far above."""
  rng = np.random.default_rng(seed)
  steps = []
  for step in range(num_steps):
    scale = 10.0 if step in large_steps else 0.05
    steps.append({k: (scale * rng.normal(size=shape)).astype(np.float32)
                  for k, shape in SHAPES.items()})
  return steps


def test_schedule_warmup_then_linear_decay_from_step_zero():
  schedule = optimization.WarmupLinearDecay(init_lr=0.5, num_train_steps=100,
                                            num_warmup_steps=10)
  for step in (0, 5, 9, 10, 55, 99, 100, 150):
    np.testing.assert_allclose(float(schedule(step)), schedule_formula(0.5, 100, 10, step),
                               rtol=1e-6, atol=1e-9, err_msg=f"step {step}")
  # As in Google's code the decay counts from step 0, so the peak is never quite reached.
  np.testing.assert_allclose(float(schedule(10)), 0.45, rtol=1e-6)
  assert float(schedule(150)) == 0.0


def test_schedule_without_warmup_or_training_steps():
  no_warmup = optimization.WarmupLinearDecay(1.0, num_train_steps=4, num_warmup_steps=0)
  np.testing.assert_allclose([float(no_warmup(s)) for s in range(6)],
                             [1.0, 0.75, 0.5, 0.25, 0.0, 0.0], rtol=1e-6)
  no_steps = optimization.WarmupLinearDecay(1.0, num_train_steps=0, num_warmup_steps=0)
  assert [float(no_steps(s)) for s in range(3)] == [0.0, 0.0, 0.0]
  only_warmup = optimization.WarmupLinearDecay(1.0, num_train_steps=0, num_warmup_steps=4)
  np.testing.assert_allclose([float(only_warmup(s)) for s in range(6)],
                             [0.0, 0.25, 0.5, 0.75, 0.0, 0.0], rtol=1e-6)


def test_schedule_takes_an_int64_step_in_tf_function_and_round_trips_its_config():
  schedule = optimization.WarmupLinearDecay(2e-5, num_train_steps=1000, num_warmup_steps=100)
  step = tf.Variable(250, dtype=tf.int64)
  np.testing.assert_allclose(float(tf.function(schedule)(step)),
                             schedule_formula(2e-5, 1000, 100, 250), rtol=1e-6)
  copy = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(schedule))
  assert isinstance(copy, optimization.WarmupLinearDecay)
  assert copy.get_config() == schedule.get_config()


@pytest.mark.parametrize("bias_correction", [False, True], ids=["google", "bias_corrected"])
@pytest.mark.parametrize("use_tf_function", [False, True], ids=["eager", "tf_function"])
def test_matches_numpy_reference(use_tf_function, bias_correction):
  initial, variables = make_variables()
  schedule = optimization.WarmupLinearDecay(0.1, num_train_steps=8, num_warmup_steps=2)
  optimizer = make_optimizer(variables, learning_rate=schedule, bias_correction=bias_correction)
  var_list = list(variables.values())
  grads_per_step = random_gradients(5, large_steps={1, 3})

  def apply(grads):
    optimizer.apply(grads, var_list)

  if use_tf_function:
    optimizer.build(var_list)
    apply = tf.function(apply)
  for grads in grads_per_step:
    apply([tf.constant(grads[k]) for k in variables])

  lrs = [schedule_formula(0.1, 8, 2, step) for step in range(5)]
  expected, m, v = reference_adam_weight_decay(initial, grads_per_step, lrs, DECAYED,
                                               bias_correction=bias_correction)
  assert int(optimizer.iterations) == 5
  for k, variable in variables.items():
    assert optimizer.is_decayed(variable) == DECAYED[k]
    # The fused kernel forms 1 - beta_2 in float32, 1.3e-5 below 0.001: without the
    # optimizer's correction v is that far off, and the weights 3.6e-5 (Google's update) and
    # 1.9e-4 (bias-corrected). With it: 3e-7 and 1.7e-6, v 3e-7, m 6.9e-6 (6.7e-6 by design).
    np.testing.assert_allclose(variable.numpy(), expected[k], rtol=5e-6, err_msg=k)
    slot_m, slot_v = optimizer.slot_variables(variable)
    np.testing.assert_allclose(slot_m.numpy(), m[k], rtol=1e-5, atol=1e-7, err_msg=k)
    np.testing.assert_allclose(slot_v.numpy(), v[k], rtol=2e-6, err_msg=k)


def test_each_variable_is_updated_by_one_fused_kernel():
  """One `ResourceApplyAdam` pass per variable (a dozen tensor ops each would cost a training
  step ~40 ms more for MiniLM's 22.7M parameters on a CPU core)."""
  _, variables = make_variables()
  optimizer = make_optimizer(variables)
  var_list = list(variables.values())
  optimizer.build(var_list)
  apply = tf.function(lambda grads: optimizer.apply(grads, var_list))
  grads = [tf.ones(v.shape) for v in var_list]
  ops = [op.type for op in apply.get_concrete_function(grads).graph.get_operations()]
  assert ops.count("ResourceApplyAdam") == len(var_list)


def test_bias_corrected_first_step_moves_each_weight_by_the_rate():
  # At t = 1 the corrected moments are g and g², so the step is lr · g / (|g| + ε): lr for every
  # weight whatever its gradient's size, where Google's update moves it by 3.16 · lr.
  initial, variables = make_variables()
  grads = random_gradients(1, large_steps=set())[0]
  moved = {}
  for bias_correction in (False, True):
    _, variables = make_variables()
    optimizer = make_optimizer(variables, learning_rate=0.01, weight_decay_rate=0.0,
                               bias_correction=bias_correction)
    optimizer.apply([tf.constant(grads[k]) for k in variables], list(variables.values()))
    moved[bias_correction] = {k: np.abs(initial[k] - v.numpy()) for k, v in variables.items()}
  for k, grad in grads.items():
    step = 0.01 * np.abs(grad) / (np.abs(grad) + 1e-6)
    np.testing.assert_allclose(moved[True][k], step, rtol=1e-4, err_msg=k)
    google = 0.01 * 0.1 * np.abs(grad) / (np.sqrt(0.001) * np.abs(grad) + 1e-6)
    np.testing.assert_allclose(moved[False][k], google, rtol=1e-4, err_msg=k)
    assert np.all(moved[False][k] > 2.5 * moved[True][k]), k


def test_bias_correction_is_exact_after_many_steps():
  # 1 - beta^t in float32 loses digits as beta^t nears 1 (early) and as it nears 0 (late): the
  # corrected update must still be Adam's, in float64, after 3,000 steps.
  initial, variables = make_variables()
  optimizer = make_optimizer(variables, learning_rate=1e-3, bias_correction=True)
  optimizer.iterations.assign(2999)
  grads = random_gradients(1, large_steps=set())[0]
  optimizer.apply([tf.constant(grads[k]) for k in variables], list(variables.values()))
  for k, variable in variables.items():
    g = grads[k].astype(np.float64)
    m, v = 0.1 * g, 0.001 * g * g
    update = (m / (1 - 0.9 ** 3000)) / (np.sqrt(v / (1 - 0.999 ** 3000)) + 1e-6)
    if DECAYED[k]:
      update += 0.01 * initial[k]
    np.testing.assert_allclose(initial[k] - variable.numpy(), 1e-3 * update, rtol=1e-4,
                               atol=1e-10, err_msg=k)


def test_weight_decay_skips_layer_norm_and_bias_checkpoint_names():
  initial, variables = make_variables()
  optimizer = make_optimizer(variables, learning_rate=0.5, weight_decay_rate=0.1)
  # A zero gradient leaves m and v at 0, so the decay is the only change.
  optimizer.apply([tf.zeros(SHAPES[k]) for k in variables], list(variables.values()))
  for k, variable in variables.items():
    factor = 1.0 - 0.5 * 0.1 if DECAYED[k] else 1.0
    np.testing.assert_allclose(variable.numpy(), initial[k] * factor, rtol=1e-6, err_msg=k)


def test_paths_decide_decay_when_no_names_are_given():
  layer_norm = keras.Variable(np.ones(2, np.float32), name="LayerNorm_gamma")
  kernel = keras.Variable(np.ones(2, np.float32), name="kernel")
  optimizer = optimization.AdamWeightDecay(learning_rate=1.0)
  optimizer.build([layer_norm, kernel])
  assert not optimizer.is_decayed(layer_norm)
  assert optimizer.is_decayed(kernel)


def test_clipping_scales_all_gradients_by_their_global_norm():
  grads = random_gradients(1, large_steps={0})[0]
  global_norm = np.sqrt(sum(np.sum(np.square(g, dtype=np.float64)) for g in grads.values()))
  assert global_norm > 10.0
  for scale in (1.0, 1.0 / global_norm):
    _, variables = make_variables()
    optimizer = make_optimizer(variables, learning_rate=0.1)
    optimizer.apply([tf.constant(grads[k] * scale) for k in variables], list(variables.values()))
    for k, variable in variables.items():
      # After clipping, every gradient is the raw one divided by the global norm; a
      # per-tensor clip would have left the small tensors larger than this.
      slot_m, _ = optimizer.slot_variables(variable)
      np.testing.assert_allclose(slot_m.numpy(), 0.1 * grads[k] / global_norm,
                                 rtol=1e-5, atol=1e-8, err_msg=k)


def test_embedding_lookup_gradient_is_clipped_and_applied_as_its_dense_form():
  # tf.gather's gradient is an IndexedSlices with id 3 listed twice. The global norm must be
  # the dense gradient's, where both occurrences are summed into one row, and m and v must
  # decay on the rows no id touched, as with Google's dense (one-hot) lookup.
  table_value = np.random.default_rng(2).normal(size=(5, 3)).astype(np.float32)
  ids = tf.constant([0, 3, 3])
  results = []
  for densify in (False, True):
    table = keras.Variable(table_value, name="word_embeddings")
    optimizer = optimization.AdamWeightDecay(learning_rate=0.1)
    optimizer.set_variable_names({"bert/embeddings/word_embeddings": table})
    for _ in range(2):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(tf.gather(table.value, ids)))
      grad = tape.gradient(loss, table.value)
      assert isinstance(grad, tf.IndexedSlices)
      assert float(tf.norm(tf.convert_to_tensor(grad))) > 1.0  # so clipping applies
      optimizer.apply([tf.convert_to_tensor(grad) if densify else grad], [table])
    results.append((table.numpy(), *(slot.numpy() for slot in optimizer.slot_variables(table))))
  for sparse, dense in zip(*results):
    np.testing.assert_allclose(sparse, dense, rtol=1e-6, atol=1e-7)


def test_bfloat16_gradients_update_float32_variables():
  initial, variables = make_variables()
  optimizer = make_optimizer(variables, learning_rate=0.1)
  grads = random_gradients(2, large_steps={0})
  rounded = [{k: tf.cast(tf.cast(g, tf.bfloat16), tf.float32).numpy() for k, g in step.items()}
             for step in grads]
  for step in grads:
    optimizer.apply([tf.cast(step[k], tf.bfloat16) for k in variables],
                    list(variables.values()))
  expected, _, _ = reference_adam_weight_decay(initial, rounded, [0.1, 0.1], DECAYED)
  for k, variable in variables.items():
    assert variable.dtype == "float32"
    np.testing.assert_allclose(variable.numpy(), expected[k], rtol=1e-6, atol=1e-6, err_msg=k)


def test_learning_rate_scales_apply_to_matching_names_only():
  initial, variables = make_variables()
  grads = random_gradients(3, large_steps={1})
  optimizer = make_optimizer(variables, learning_rate=0.01,
                             learning_rate_scales=((r"^loss/", 50.0),))
  for step in grads:
    optimizer.apply([tf.constant(step[k]) for k in variables], list(variables.values()))
  # Each variable's update only depends on its own rate (the clipping norm is shared).
  reference_head, _, _ = reference_adam_weight_decay(initial, grads, [0.5] * 3, DECAYED)
  reference_rest, _, _ = reference_adam_weight_decay(initial, grads, [0.01] * 3, DECAYED)
  for k, variable in variables.items():
    reference = reference_head if CHECKPOINT_NAMES[k].startswith("loss/") else reference_rest
    np.testing.assert_allclose(variable.numpy(), reference[k], rtol=1e-5, atol=1e-6, err_msg=k)
  assert optimizer.get_config()["learning_rate_scales"] == [["^loss/", 50.0]]


def test_a_variable_without_a_checkpoint_name_is_an_error():
  _, variables = make_variables()
  optimizer = optimization.AdamWeightDecay()
  optimizer.set_variable_names({CHECKPOINT_NAMES["w0"]: variables["w0"]})
  with pytest.raises(ValueError, match="w1"):
    optimizer.build(list(variables.values()))


def test_names_cannot_change_after_build():
  _, variables = make_variables()
  optimizer = make_optimizer(variables)
  optimizer.build(list(variables.values()))
  with pytest.raises(ValueError, match="before the optimizer is built"):
    optimizer.set_variable_names({})


@pytest.mark.parametrize("argument", ["weight_decay", "global_clipnorm", "clipnorm",
                                      "clipvalue"])
def test_keras_clipping_and_decay_arguments_are_refused(argument):
  with pytest.raises(ValueError, match=argument):
    optimization.AdamWeightDecay(**{argument: 1.0})


def test_create_optimizer_has_google_settings_and_round_trips_its_config():
  optimizer = optimization.create_optimizer(3e-5, num_train_steps=100, num_warmup_steps=10)
  config = optimizer.get_config()
  assert (config["weight_decay_rate"], config["beta_1"], config["beta_2"],
          config["epsilon"], config["clip_norm"]) == (0.01, 0.9, 0.999, 1e-6, 1.0)
  assert config["exclude_from_weight_decay"] == ["LayerNorm", "layer_norm", "bias"]
  assert config["bias_correction"] is False
  copy = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
  assert isinstance(copy, optimization.AdamWeightDecay)
  assert copy.get_config() == config
  np.testing.assert_allclose(float(copy.learning_rate), 0.0)
  corrected = optimization.create_optimizer(3e-5, 100, 10, bias_correction=True)
  copy = keras.optimizers.deserialize(keras.optimizers.serialize(corrected))
  assert copy.bias_correction is True and copy.get_config()["bias_correction"] is True


# Runs in a fresh interpreter: the two logical CPUs must exist before TF sets up its devices,
# which in this process other tests have already done.
_MIRRORED_SCRIPT = textwrap.dedent("""
    import json
    import numpy as np
    import tensorflow as tf
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    import optimization

    GLOBAL_BATCH = 8
    rng = np.random.default_rng(0)
    x = rng.normal(size=(GLOBAL_BATCH, 4)).astype(np.float32)
    y = rng.normal(size=(GLOBAL_BATCH, 3)).astype(np.float32)
    y[:GLOBAL_BATCH // 2] *= 10.0  # replica 0's share of the gradient is far larger
    initial = {"kernel": rng.normal(size=(4, 3)).astype(np.float32),
               "gamma": np.ones(3, np.float32), "bias": np.zeros(3, np.float32)}
    names = {"kernel": "loss/output_weights", "gamma": "bert/LayerNorm/gamma",
             "bias": "loss/output_bias"}

    def loss_fn(ws, xb, yb):
      pred = tf.matmul(xb, ws["kernel"]) * ws["gamma"] + ws["bias"]
      # Per replica: its examples' loss over the global batch, so the replicas' gradients
      # sum to the gradient of the mean loss over the global batch.
      return tf.reduce_sum(tf.square(pred - yb)) / GLOBAL_BATCH

    def gradient_norm(part):
      ws = {k: tf.Variable(v) for k, v in initial.items()}
      with tf.GradientTape() as tape:
        loss = loss_fn(ws, x[part], y[part])
      return float(tf.linalg.global_norm(tape.gradient(loss, list(ws.values()))))

    def train(strategy):
      with strategy.scope():
        ws = {k: keras.Variable(v, name=k) for k, v in initial.items()}
        optimizer = optimization.create_optimizer(
            0.1, num_train_steps=10, num_warmup_steps=2,
            variables_by_name={names[k]: ws[k] for k in ws})
        # Slots cannot be created inside the distributed step (true of Keras' Adam too).
        optimizer.build(list(ws.values()))

      def replica_step(xb, yb):
        with tf.GradientTape() as tape:
          loss = loss_fn(ws, xb, yb)
        optimizer.apply(tape.gradient(loss, list(ws.values())), list(ws.values()))

      step = tf.function(lambda xb, yb: strategy.run(replica_step, args=(xb, yb)))
      per_replica = GLOBAL_BATCH // strategy.num_replicas_in_sync
      def shard(a):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(
                a[ctx.replica_id_in_sync_group * per_replica:][:per_replica]))
      for _ in range(5):
        step(shard(x), shard(y))
      result = {k: v.numpy().tolist() for k, v in ws.items()}
      result.update({k + "/adam_m": optimizer.slot_variables(v)[0].numpy().tolist()
                     for k, v in ws.items()})
      return result

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    print(json.dumps({
        "mirrored": train(mirrored),
        "single": train(tf.distribute.OneDeviceStrategy("/cpu:0")),
        "replica_norms": [gradient_norm(slice(0, 4)), gradient_norm(slice(4, 8))],
    }))
""")


def test_mirrored_strategy_matches_one_device_on_the_global_batch():
  env = dict(os.environ, PYTHONPATH=clitools.REPO_DIR, TF_CPP_MIN_LOG_LEVEL="2")
  result = clitools.printed_json(clitools.run_python(_MIRRORED_SCRIPT, env=env))
  # Both replicas' own gradients exceed the clip norm by different factors, so clipping
  # each replica's share before the sum would give a different update.
  norm_0, norm_1 = result["replica_norms"]
  assert norm_0 > 1.0 and norm_1 > 1.0 and abs(norm_0 - norm_1) > 1.0
  for name, single in result["single"].items():
    np.testing.assert_allclose(result["mirrored"][name], single, rtol=1e-5, atol=1e-6,
                               err_msg=name)
