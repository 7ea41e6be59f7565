"""The training loop and its checkpoints: what the Estimator did for Google's script.

The state of a run is the model's variables, the optimizer's `adam_m`/`adam_v` slots and the
global step, all under Google's TF1 names, so that our checkpoints and the original script's
read alike. A run started on an `--output_dir` that already holds checkpoints resumes from the
latest: same step, same optimizer state, same place in the seeded data order.
"""

import dataclasses
import json
import os
import time

from absl import logging
import keras
import numpy as np
import tensorflow as tf

import checkpoints
import classifier
import console
import distribution
from errors import UserError
import fileio
import graph_optimisation
import optimization


DROPOUT_SEED_SCOPE = "dropout_seed_state"
LOSS_SCALE_SCOPE = "loss_scale"
PLAN_FILE = "training_plan.json"
# The key of `plan_mismatch`'s inputs that fingerprints the training features.
TRAINING_DATA = "training data"


class TrainingDiverged(UserError):
  """The loss became NaN or infinite; the last good checkpoint is kept."""


def make_optimizer(model, learning_rate, num_train_steps, num_warmup_steps, precision="fp32",
                   head_learning_rate=None, bias_correction=False):
  """Google's fine-tuning optimizer for `model`, built (its slots exist), at step 0.

  `head_learning_rate`, when given, is the peak rate of the head's `loss/...` variables (same
  warm-up and decay). `bias_correction`: Adam's, which Google's update lacks (see
  `optimization.AdamWeightDecay`). Under fp16 the optimizer is wrapped in Keras' dynamic loss scaling; bf16
  has float32's range and needs none.
  """
  scales = ()
  if head_learning_rate is not None:
    scales = ((f"^{classifier.HEAD_SCOPE}/", head_learning_rate / learning_rate),)
  optimizer = optimization.create_optimizer(learning_rate, num_train_steps, num_warmup_steps,
                                            model.checkpoint_variables(), scales,
                                            bias_correction)
  if precision == "fp16":
    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
  optimizer.build(model.trainable_variables)
  return optimizer


def _adam(optimizer):
  """The `AdamWeightDecay` itself, also when wrapped for loss scaling."""
  return getattr(optimizer, "inner_optimizer", optimizer)


def global_step(optimizer):
  """The optimizer's step count as a Python int (also for a mirrored variable)."""
  return int(_adam(optimizer).iterations.numpy())


def state_variables(model, optimizer):
  """{name: variable} of everything a checkpoint holds.

  Google's names for the weights, their `adam_m`/`adam_v` slots and `global_step`; ours for the
  dropout generators' states and, under fp16, the dynamic loss scale.
  """
  weights = model.checkpoint_variables()
  variables = dict(weights)
  for name, variable in weights.items():
    m, v = _adam(optimizer).slot_variables(variable)
    variables[f"{name}/adam_m"] = m
    variables[f"{name}/adam_v"] = v
  variables[checkpoints.GLOBAL_STEP] = _adam(optimizer).iterations
  variables.update(dropout_seed_variables(model))
  if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
    variables[f"{LOSS_SCALE_SCOPE}/dynamic_scale"] = optimizer.dynamic_scale
    variables[f"{LOSS_SCALE_SCOPE}/good_steps"] = optimizer.step_counter
  return variables


def _is_our_state(name):
  """Whether `name` is state that only our checkpoints hold (see `state_variables`)."""
  return name.startswith((DROPOUT_SEED_SCOPE + "/", LOSS_SCALE_SCOPE + "/"))


def dropout_seed_variables(model):
  """{name: variable} of the dropout layers' random-generator states.

  Not Google's: they make a resumed run draw the same dropout masks as an uninterrupted one.
  Checkpoints without them (the original script's) still resume, with fresh masks.
  """
  return {f"{DROPOUT_SEED_SCOPE}/{i}": variable
          for i, variable in enumerate(model.non_trainable_variables)}


def initialize(model, optimizer, strategy, output_dir, init_checkpoint):
  """Loads the state a training run starts from, as the Estimator chose it.

  The latest checkpoint in `output_dir` wins (a resumed run). Otherwise the model starts from
  `init_checkpoint`: BERT's variables must all be there; the head is loaded too where present
  (a checkpoint fine-tuned by the original script) and starts fresh where not (Google's
  pre-trained checkpoints). The optimizer and the step start fresh, as they did with the
  Estimator's init_from_checkpoint. With neither, everything starts fresh.

  The chief chooses and reads; every other worker takes the chief's state, whatever its own
  `output_dir` holds, so that all replicas start from the same weights and step.

  Returns:
    The step the run starts at.
  """
  variables = state_variables(model, optimizer)
  if distribution.is_chief(strategy):
    latest = checkpoints.latest(output_dir)
    if latest:
      checkpoints.restore(variables, latest, optional=_is_our_state)
      logging.info("Resuming from %s at step %d", latest, global_step(optimizer))
    elif init_checkpoint:
      report = checkpoints.restore(model.checkpoint_variables(), init_checkpoint,
                                   optional=classifier.is_head_variable)
      logging.info("Initialized from %s: %d variables loaded, fresh: %s", report.checkpoint,
                   len(report.loaded), ", ".join(report.absent) or "none")
    else:
      logging.warning("No --init_checkpoint: training BERT from random weights")
  distribution.sync_from_chief(strategy, list(variables.values()))
  return global_step(optimizer)


def plan_mismatch(output_dir, plan_inputs):
  """Names what a resume would change of the training plan recorded in `output_dir`.

  A run resumed with another batch size, seed, schedule or training data would follow another
  plan from the middle of the old one, and the result would be neither run. `PLAN_FILE` records
  the inputs of the plan when training starts; a checkpoint written before the record existed
  (by the original script, or an older version of this one) resumes as it is.

  Args:
    output_dir: str.
    plan_inputs: {flag name or "training data": JSON value}, what determines the plan.

  Returns:
    A message naming each changed flag with its recorded and its new value, or None when
    nothing changed, nothing was recorded, or there is no checkpoint to resume.
  """
  path = os.path.join(output_dir, PLAN_FILE)
  if not checkpoints.latest(output_dir) or not os.path.exists(path):
    return None
  try:
    with open(path, encoding="utf-8") as f:
      recorded = json.load(f)
  except (OSError, ValueError) as e:
    return f"{path} is unreadable ({e})"
  changed = [name for name in plan_inputs if recorded.get(name) != plan_inputs[name]]
  if not changed:
    return None
  described = "; ".join(
      "the training data changed (or --vocab_file, --do_lower_case, --max_seq_length)"
      if name == TRAINING_DATA else
      f"--{name} was {json.dumps(recorded.get(name))}, now {json.dumps(plan_inputs[name])}"
      for name in changed)
  return (f"{output_dir} holds a training run that this command would resume with another "
          f"plan: {described}. Rerun with the recorded values to resume, or use a new "
          "--output_dir to start afresh")


def record_plan(output_dir, plan_inputs):
  """Writes `plan_inputs` as the training plan of `output_dir` (see `plan_mismatch`)."""
  fileio.atomic_write_text(os.path.join(output_dir, PLAN_FILE),
                           json.dumps(plan_inputs, indent=2, sort_keys=True) + "\n")


def save(model, optimizer, output_dir, keep):
  """Writes `model.ckpt-STEP` and lists it in the `checkpoint` index; returns the prefix."""
  step = global_step(optimizer)
  prefix = os.path.join(output_dir, f"model.ckpt-{step}")
  checkpoints.write(prefix, state_variables(model, optimizer))
  checkpoints.record(output_dir, prefix, keep)
  return prefix


@dataclasses.dataclass
class LoopSettings:
  """How a training run is cut into device loops and checkpoints."""
  num_train_steps: int
  global_batch_size: int
  save_checkpoints_steps: int
  iterations_per_loop: int
  keep_checkpoints: int
  eval_every_steps: int = 0  # With `run`'s on_evaluate; the last step is evaluated too.


def make_train_loop(model, optimizer, strategy, global_batch_size, jit_compile=False,
                    pos_weight=None):
  """Returns a function that runs `num_steps` training steps from a distributed iterator: a
  `tf.function`, which on a CPU runs with `graph_optimisation`'s lighter options.

  It returns the loss of each step, float32 [num_steps], so that the host can name the first
  step whose loss was not finite, and each step's global gradient norm before clipping (that of
  the gradients summed over replicas), float32 [num_steps]. `pos_weight`: None, or float
  [num_labels], the weight of each label's positive examples in the loss (see
  `classifier.per_example_loss`).
  """

  loss_scaled = isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
  iterations = _adam(optimizer).iterations

  def step_fn(features, labels):
    with tf.GradientTape() as tape:
      logits = model(features, training=True)
      # Divided by the global batch size, so that gradients summed over replicas equal the
      # gradient of the global batch's mean loss.
      loss = (tf.reduce_sum(classifier.per_example_loss(labels, logits, pos_weight))
              / global_batch_size)
      scaled = optimizer.scale_loss(loss) if loss_scaled else loss
    variables = model.trainable_variables
    gradients = tape.gradient(scaled, variables)
    before = tf.identity(iterations)
    optimizer.apply_gradients(zip(gradients, variables))
    if loss_scaled:
      # The loss scale skips the update of a step whose gradients overflowed, and Keras then
      # leaves the step count alone. Counted anyway, the step count stays the batch count:
      # checkpoint names, the resume position in the data, the schedule and the end of
      # training all follow one counter, as the Estimator's global step did.
      iterations.assign_add(tf.cast(tf.equal(iterations, before), iterations.dtype))
    return loss

  if jit_compile:
    step_fn = tf.function(step_fn, jit_compile=True, autograph=False)

  # Graph code throughout, so without AutoGraph: converting the loop, the step and the update
  # took about 0.4 s of a run's first step (3.6-3.8 against 3.0-3.4 s of tracing).
  @tf.function(autograph=False)
  def train_loop(iterator, num_steps):
    def one_step(i, losses, gradient_norms):
      features, labels = next(iterator)
      replica_losses = strategy.run(step_fn, args=(features, labels))
      losses = losses.write(i, strategy.reduce("SUM", replica_losses, axis=None))
      gradient_norms = gradient_norms.write(
          i, tf.convert_to_tensor(_adam(optimizer).gradient_norm))
      return i + 1, losses, gradient_norms

    _, losses, gradient_norms = tf.while_loop(
        lambda i, *_: i < num_steps, one_step,
        (tf.constant(0), tf.TensorArray(tf.float32, size=num_steps),
         tf.TensorArray(tf.float32, size=num_steps)))
    return losses.stack(), gradient_norms.stack()

  return graph_optimisation.on_cpu(train_loop, strategy)


def run(model, optimizer, strategy, dataset, start_step, settings, output_dir, jit_compile=False,
        on_log=None, pos_weight=None, on_evaluate=None):
  """Trains from `start_step` to `settings.num_train_steps`, checkpointing as it goes.

  Args:
    model: a `classifier.MultiLabelClassifier` built under `strategy`.
    optimizer: its `optimization.AdamWeightDecay`, built, at `start_step`.
    strategy: the `tf.distribute.Strategy`.
    dataset: a `tf.data.Dataset` of (features, labels) global batches for steps `start_step`
      onwards.
    start_step: the step training resumes at.
    settings: a `LoopSettings`.
    output_dir: where checkpoints go (only the chief writes them).
    jit_compile: compile the training step with XLA.
    on_log: None, or a function called where the log reports progress, with the step and
      {"loss", "learning_rate", "gradient_norm", "examples_per_second"}: floats, the loss and
      gradient norm averaged over the steps since the previous call.
    pos_weight: as for `make_train_loop`.
    on_evaluate: None, or a function called with the step after every
      `settings.eval_every_steps`-th step and after the last one, before that step's checkpoint
      is saved. It returns whether to stop training there, the same on every worker; a stop
      saves a checkpoint at that step.

  Raises:
    TrainingDiverged: a step's loss was NaN or infinite. Nothing after the last checkpoint is
      saved.
  """
  total = settings.num_train_steps
  if start_step >= total:
    logging.info("The checkpoint is at step %d of %d: training is already complete", start_step,
                 total)
    return
  iterator = iter(strategy.experimental_distribute_dataset(dataset))
  train_loop = make_train_loop(model, optimizer, strategy, settings.global_batch_size,
                               jit_compile, pos_weight)
  step = start_step
  started = time.time()
  logging.info("Training steps %d to %d, %d examples per step", start_step, total,
               settings.global_batch_size)
  while step < total:
    intervals = [settings.save_checkpoints_steps]
    if on_evaluate:
      intervals.append(settings.eval_every_steps)
    num_steps = min([settings.iterations_per_loop, total - step] +
                    [every - step % every for every in intervals])
    loop_started = time.time()
    losses, gradient_norms = (t.numpy() for t in train_loop(iterator, tf.constant(num_steps)))
    bad = np.flatnonzero(~np.isfinite(losses))
    if bad.size:
      raise _diverged(output_dir, f"the loss became {losses[bad[0]]} at step {step + bad[0] + 1}")
    step = global_step(optimizer)
    elapsed = time.time() - loop_started
    rate = num_steps / elapsed
    remaining = (total - step) / max((step - start_step) / (time.time() - started), 1e-9)
    scalars = {"loss": float(np.mean(losses)),
               "learning_rate": float(_adam(optimizer).learning_rate),
               "gradient_norm": float(np.mean(gradient_norms)),
               "examples_per_second": rate * settings.global_batch_size}
    logging.info("step %d/%d  loss %.4f  lr %.3g  %.2f steps/s  %.1f examples/s  ETA %s", step,
                 total, scalars["loss"], scalars["learning_rate"], rate,
                 scalars["examples_per_second"], console.format_duration(remaining))
    if on_log:
      on_log(step, scalars)
    evaluate = bool(on_evaluate) and (step % settings.eval_every_steps == 0 or step == total)
    checkpoint = step % settings.save_checkpoints_steps == 0 or step == total
    if checkpoint or evaluate:
      # The last update of a loop is only judged by the next loss: check the weights themselves
      # so that no checkpoint holds NaN or infinity, and no evaluation scores them.
      if not all(bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))))
                 for v in model.trainable_variables):
        raise _diverged(output_dir, f"the weights became NaN or infinite by step {step}")
    stop = evaluate and on_evaluate(step)
    if (checkpoint or stop) and distribution.is_chief(strategy):
      logging.info("Saved %s", save(model, optimizer, output_dir, settings.keep_checkpoints))
    if stop:
      logging.info("Stopped early at step %d of %d", step, total)
      return


def _diverged(output_dir, what):
  last = checkpoints.latest(output_dir)
  return TrainingDiverged(f"{what}; stopped without saving. The last good checkpoint is "
                          f"{last or 'none (no checkpoint yet)'}. Try a lower --learning_rate.")
