"""Google BERT's fine-tuning optimizer as Keras 3 pieces.

Google's TF1 `optimization.py` builds one training op out of three parts, reproduced here:

* `WarmupLinearDecay`: the learning rate rises linearly from 0 over the warm-up steps, then
  falls linearly to 0 at the last training step.
* `AdamWeightDecay`: Adam without bias correction, plus decoupled weight decay on every
  variable whose checkpoint name matches none of the exclusion patterns (LayerNorm and bias
  variables by default); before the update, all gradients are clipped together to global
  norm 1.0. Adam's bias correction can be switched on (`bias_correction`).
* `create_optimizer`: the two above with Google's settings.

The update of each variable is TensorFlow's fused `ResourceApplyAdam` kernel: one pass over the
variable, its slots and its gradient, where the same update written as tensor ops makes a dozen
(and compiled by XLA instead, it cost 2 s of a training run's first step).

The optimizer's step counter, `optimizer.iterations`, is Google's `global_step`.
"""

import math
import re

import keras
import numpy as np
import tensorflow as tf

# Google's defaults: variables whose checkpoint name contains one of these are not decayed.
DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


@keras.saving.register_keras_serializable(package="bert")
class WarmupLinearDecay(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `init_lr`, then linear decay to 0 at `num_train_steps`.

  For a step s, with W = `num_warmup_steps` and T = `num_train_steps`:

    lr(s) = init_lr * s / W                   if s < W
    lr(s) = init_lr * (1 - min(s, T) / T)     otherwise

  The second line is `tf.train.polynomial_decay(init_lr, s, T, end_learning_rate=0.0,
  power=1.0, cycle=False)`, which Google's code computes for every step and then replaces
  with the warm-up value while s < W; as there, the decay is measured from step 0, not from
  the end of the warm-up. W = 0 means no warm-up. T = 0 means the decay has already ended,
  so the rate is 0 after any warm-up (Google's formula would divide 0 by 0 there).
  """

  def __init__(self, init_lr, num_train_steps, num_warmup_steps, name=None):
    super().__init__()
    if num_train_steps < 0 or num_warmup_steps < 0:
      raise ValueError(
          "num_train_steps and num_warmup_steps must be >= 0, got "
          f"{num_train_steps} and {num_warmup_steps}")
    self.init_lr = init_lr
    self.num_train_steps = num_train_steps
    self.num_warmup_steps = num_warmup_steps
    self.name = name

  def __call__(self, step):
    with tf.name_scope(self.name or "WarmupLinearDecay"):
      init_lr = tf.constant(self.init_lr, tf.float32)
      step = tf.cast(step, tf.float32)
      if self.num_train_steps > 0:
        train_steps = tf.constant(self.num_train_steps, tf.float32)
        decayed_lr = init_lr * (1.0 - tf.minimum(step, train_steps) / train_steps)
      else:
        decayed_lr = tf.zeros([], tf.float32)
      if not self.num_warmup_steps:
        return decayed_lr
      warmup_steps = tf.constant(self.num_warmup_steps, tf.float32)
      warmup_lr = init_lr * step / warmup_steps
      return tf.where(step < warmup_steps, warmup_lr, decayed_lr)

  def get_config(self):
    return {
        "init_lr": self.init_lr,
        "num_train_steps": self.num_train_steps,
        "num_warmup_steps": self.num_warmup_steps,
        "name": self.name,
    }


@keras.saving.register_keras_serializable(package="bert")
class AdamWeightDecay(keras.optimizers.Optimizer):
  """Google BERT's `AdamWeightDecayOptimizer`, with its global-norm gradient clipping.

  For each variable p with gradient g (after clipping) and learning rate lr:

    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g^2
    update = m / (sqrt(v) + epsilon)           # no bias correction, as in Google's code
    update += weight_decay_rate * p            # only for decayed variables
    p -= lr * update

  With `bias_correction`, the update of step t (1 for the first) uses Adam's corrected moments
  instead, as PyTorch's AdamW does:

    update = (m / (1 - beta_1^t)) / (sqrt(v / (1 - beta_2^t)) + epsilon)

  Without it, m and v start at 0, so that for a steady gradient the uncorrected update is
  (1 - beta_1^t) / sqrt(1 - beta_2^t) times the corrected one: 3.2 at the first step, 6.5 at
  step 10, 3.2 at step 100, 1.26 at step 1000. On small data sets at higher rates those large
  early steps can make fine-tuning diverge (Mosbach et al., ICLR 2021).

  Decay is decided on each variable's Google checkpoint name (say
  `bert/encoder/layer_0/attention/output/LayerNorm/gamma`), which Keras 3 cannot hold in
  `variable.name` because it forbids '/'. Pass the model's `{checkpoint name: variable}`
  mapping to `set_variable_names` before the optimizer is built; a variable is not decayed
  when `re.search` finds any of the `exclude_from_weight_decay` patterns in its name. Without
  that mapping, `variable.path` is used.

  Before the update, the gradients of all variables are scaled together so that their
  global norm is at most `clip_norm` (`tf.clip_by_global_norm`). Under a `tf.distribute`
  strategy this happens on the gradients summed over the replicas, so training on N
  replicas gives the same result as training on one device with the whole batch, provided
  each replica's loss is divided by the global batch size. An embedding lookup's
  `IndexedSlices` gradient is made dense first, so its norm and update are the true
  gradient's, as with Google's one-hot (TPU) lookup. Keras' own `global_clipnorm`
  would clip each replica's partial gradient instead, so it is refused here, and so are
  `clipnorm`, `clipvalue` and Keras' `weight_decay`, which would apply a second, differently
  placed clipping or decay.

  Under a strategy, build the optimizer (`optimizer.build(trainable_variables)`) inside
  `strategy.scope()` before the first distributed step, as `model.fit` does: like Keras' own
  Adam, it cannot create its slots inside `strategy.run`.
  """

  def __init__(self,
               learning_rate=0.001,
               weight_decay_rate=0.01,
               beta_1=0.9,
               beta_2=0.999,
               epsilon=1e-6,
               exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
               clip_norm=1.0,
               learning_rate_scales=(),
               bias_correction=False,
               name="AdamWeightDecay",
               **kwargs):
    """Creates the optimizer.

    Args:
      learning_rate: a float or a `LearningRateSchedule` such as `WarmupLinearDecay`.
      weight_decay_rate: the decay coefficient; 0 disables decay.
      beta_1: decay rate of the first-moment estimate m.
      beta_2: decay rate of the second-moment estimate v.
      epsilon: added to sqrt(v) in the denominator.
      exclude_from_weight_decay: regular expressions; a variable whose checkpoint name
        contains a match is not decayed.
      clip_norm: the global gradient norm to clip to, or None for no clipping.
      learning_rate_scales: (regular expression, factor) pairs; a variable whose checkpoint
        name contains a match of the first pattern that matches learns at factor × the
        learning rate. Empty (Google's recipe): one rate for all.
      bias_correction: whether to divide m and v by Adam's bias corrections (see above);
        False is Google's update.
      name: the optimizer's name.
      **kwargs: other `keras.optimizers.Optimizer` arguments (`use_ema`,
        `gradient_accumulation_steps`, `loss_scale_factor`, ...).
    """
    for keras_argument, ours in (("weight_decay", "weight_decay_rate"),
                                 ("global_clipnorm", "clip_norm"),
                                 ("clipnorm", "clip_norm"),
                                 ("clipvalue", "clip_norm")):
      if kwargs.get(keras_argument) is not None:
        raise ValueError(
            f"AdamWeightDecay does not take Keras' `{keras_argument}`; use `{ours}`.")
    super().__init__(learning_rate=learning_rate, name=name, **kwargs)
    self.weight_decay_rate = weight_decay_rate
    self.beta_1 = beta_1
    self.beta_2 = beta_2
    self.epsilon = epsilon
    # Not `self.exclude_from_weight_decay`: that would hide the Keras method of that name.
    self._exclude_patterns = tuple(exclude_from_weight_decay or ())
    self.clip_norm = clip_norm
    self._learning_rate_scales = tuple((pattern, float(factor))
                                       for pattern, factor in learning_rate_scales)
    self.bias_correction = bool(bias_correction)
    self._gradient_scale, self._m_scale = _fused_kernel_corrections(beta_1, beta_2)
    self._names_by_key = None
    self._step_scalars = None

  def set_variable_names(self, variables_by_name):
    """Gives the checkpoint name of each variable, on which weight decay is decided.

    Call it before the optimizer is built (by `build` or its first `apply`). Every variable
    the optimizer is then built with must be in the mapping.

    Args:
      variables_by_name: a mapping from Google checkpoint name to variable, as a model's
        `checkpoint_variables()` returns it, e.g. `{"loss/output_bias": <Variable>}`.
    """
    if self.built:
      raise ValueError("set_variable_names() must be called before the optimizer is built.")
    # Keyed like the optimizer's own index, which sees through tf.distribute's per-replica
    # copies to the one distributed variable.
    self._names_by_key = {self._var_key(variable): name
                          for name, variable in variables_by_name.items()}

  def build(self, var_list):
    """Creates the m and v slots and decides, once, which variables are decayed."""
    if self.built:
      return
    super().build(var_list)
    self._m, self._v = self.add_optimizer_variables(var_list, ["adam_m", "adam_v"])
    # Indexed like the slots, because `update_step` sees the raw (per-replica) TF variable,
    # which has no Keras path.
    self._decayed = [self._use_decay(self._checkpoint_name(variable))
                     for variable in var_list]
    self._scales = [self._scale(self._checkpoint_name(variable)) for variable in var_list]
    # The last step's global norm of the summed gradients, before clipping, for the training
    # log. Every replica computes the same value, so the first one's is kept.
    self.gradient_norm = self.add_variable((), name="gradient_norm",
                                           aggregation="only_first_replica")

  def _scale(self, checkpoint_name):
    return next((factor for pattern, factor in self._learning_rate_scales
                 if re.search(pattern, checkpoint_name)), 1.0)

  def _checkpoint_name(self, variable):
    if self._names_by_key is None:
      return variable.path
    try:
      return self._names_by_key[self._var_key(variable)]
    except KeyError:
      raise ValueError(
          f"No checkpoint name was given for variable {variable.path!r}; "
          "pass it to set_variable_names().") from None

  def _use_decay(self, checkpoint_name):
    if not self.weight_decay_rate:
      return False
    return not any(re.search(pattern, checkpoint_name) for pattern in self._exclude_patterns)

  def is_decayed(self, variable):
    """Returns whether `variable`, one the optimizer was built with, gets weight decay."""
    return self._decayed[self._get_variable_index(variable)]

  def slot_variables(self, variable):
    """Returns `(m, v)`, the optimizer's slots for `variable`, available once built.

    Google's TF1 checkpoints hold them as `<checkpoint name>/adam_m` and `.../adam_v`.
    """
    index = self._get_variable_index(variable)
    return self._m[index], self._v[index]

  def _all_reduce_sum_gradients(self, grads_and_vars):
    # Keras' TF backend sums the replicas' gradients in this (private) method, the first
    # place where the gradient of the whole global batch exists; clipping earlier would clip
    # each replica's share on its own. The MirroredStrategy test guards this hook.
    grads_and_vars = super()._all_reduce_sum_gradients(grads_and_vars)
    # Dense: an embedding lookup's IndexedSlices lists a repeated id once per occurrence, and
    # its norm would count each one apart; the norm is that of the true gradient, in which
    # they are summed, as Google's one-hot (TPU) lookup gives. Google's update is dense too.
    # One dtype: under mixed precision a gradient may be narrower than its float32 variable.
    present = [tf.cast(tf.convert_to_tensor(grad), var.dtype)
               for grad, var in grads_and_vars if grad is not None]
    norm = tf.linalg.global_norm(present)
    self.gradient_norm.assign(norm)
    # One multiply per gradient: the clipping (as `tf.clip_by_global_norm`: NaN for a norm that
    # is not finite, so that a diverged step shows in the weights) and the fused kernel's
    # correction (see `_fused_kernel_corrections`).
    scale = tf.constant(self._gradient_scale, tf.float32)
    if self.clip_norm:
      scale *= self.clip_norm * tf.minimum(1.0 / norm, 1.0 / self.clip_norm) + (norm - norm)
    present = [gradient * tf.cast(scale, gradient.dtype) for gradient in present]
    present = iter(present)
    return [(grad if grad is None else next(present), var) for grad, var in grads_and_vars]

  def _distributed_tf_update_step(self, distribution, grads_and_vars, learning_rate):
    # Keras' TF backend calls every variable's `update_step` from here, once per step. The
    # kernels' scalar inputs are made once per step and device for all variables: made per
    # variable, they were a fifth of a training step's graph and 0.4 s of a run's first step.
    self._step_scalars = {}
    try:
      super()._distributed_tf_update_step(distribution, grads_and_vars, learning_rate)
    finally:
      self._step_scalars = None  # They belong to this step's graph.

  def _shared_scalars(self, learning_rate):
    """`_kernel_scalars(learning_rate)`, made once per step for each device's learning rate."""
    if self._step_scalars is None:
      return self._kernel_scalars(learning_rate)
    # Keyed by identity (tensors are unhashable); the value keeps the key's object alive.
    key = id(learning_rate)
    if key not in self._step_scalars:
      self._step_scalars[key] = (learning_rate, self._kernel_scalars(learning_rate))
    return self._step_scalars[key][1]

  def _kernel_scalars(self, learning_rate):
    """{name: float32 scalar}: the fused kernel's inputs that all variables share."""
    lr = tf.cast(learning_rate, tf.float32)
    adam_lr = lr / self._m_scale
    epsilon = tf.constant(self.epsilon, tf.float32)
    if self.bias_correction:
      # (m / (1 - b1^t)) / (sqrt(v) / sqrt(1 - b2^t) + eps)
      #   = sqrt(1 - b2^t) / (1 - b1^t) * m / (sqrt(v) + eps * sqrt(1 - b2^t)).
      # The kernel could take b1^t and b2^t itself, but it would form 1 - b^t in float32.
      step = tf.cast(self.iterations + 1, tf.float32)
      root = tf.sqrt(self._one_minus_power(self.beta_2, step, tf.float32))
      adam_lr = adam_lr * root / self._one_minus_power(self.beta_1, step, tf.float32)
      epsilon = epsilon * root
    return {"decay": lr * self.weight_decay_rate, "lr": adam_lr, "epsilon": epsilon,
            # b1^t = b2^t = 0: the kernel's own bias correction is 1.
            "beta_power": tf.zeros([]), "beta_1": tf.constant(self.beta_1, tf.float32),
            "beta_2": tf.constant(self.beta_2, tf.float32)}

  def update_step(self, gradient, variable, learning_rate):
    """Applies one Google AdamWeightDecay update to `variable`.

    `gradient` is dense and clipped, and carries the fused kernel's correction (both from
    `_all_reduce_sum_gradients`).
    """
    index = self._get_variable_index(variable)
    m, v = self._m[index], self._v[index]
    scalars = self._shared_scalars(learning_rate)
    scalars = {name: tf.cast(value, variable.dtype) for name, value in scalars.items()}
    if self._scales[index] != 1.0:
      for name in ("decay", "lr"):
        scalars[name] *= self._scales[index]
    if self._decayed[index]:
      # p -= lr * (Adam's step + rate * p) is p -= lr * rate * p, then Adam's step.
      self.assign_sub(variable, scalars["decay"] * variable)
    tf.raw_ops.ResourceApplyAdam(
        var=variable.handle, m=m.handle, v=v.handle, beta1_power=scalars["beta_power"],
        beta2_power=scalars["beta_power"], lr=scalars["lr"], beta1=scalars["beta_1"],
        beta2=scalars["beta_2"], epsilon=scalars["epsilon"], grad=gradient)

  @staticmethod
  def _one_minus_power(beta, step, dtype):
    """1 - beta^step as -expm1(step · log(beta)), log taken in Python float64: in float32,
    1 - 0.999^1 computed directly is off by 1.3e-5 relative; this is within 1e-7, on TPUs too
    (no float64 on device)."""
    return -tf.math.expm1(step * tf.cast(math.log(beta), dtype))

  def get_config(self):
    config = super().get_config()
    config.update({
        "weight_decay_rate": self.weight_decay_rate,
        "beta_1": self.beta_1,
        "beta_2": self.beta_2,
        "epsilon": self.epsilon,
        "exclude_from_weight_decay": list(self._exclude_patterns),
        "clip_norm": self.clip_norm,
        "learning_rate_scales": [list(scale) for scale in self._learning_rate_scales],
        "bias_correction": self.bias_correction,
    })
    return config


def _fused_kernel_corrections(beta_1, beta_2):
  """(gradient scale, m scale) that give `ResourceApplyAdam` Google's moments in float32.

  The kernel updates m += (g - m) * (1 - beta_1) and v += (g^2 - v) * (1 - beta_2), forming
  1 - beta in float32, where Google's code forms it in Python's float64: for beta_2 = 0.999,
  float32's 1 - 0.999 is 1.3e-5 below 0.001, and v would be that much too small. Gradients
  scaled by sqrt(0.001 / that) give Google's v. They also scale m, by the gradient scale times
  float32's 1 - beta_1 over 0.1 (6.7e-6 in all), which is the m scale: the learning rate is
  divided by it, so that the weights move by Google's update. m, as checkpoints hold it, stays
  6.7e-6 above Google's.
  """
  one = np.float32(1.0)
  in_kernel = [float(one - np.float32(beta)) for beta in (beta_1, beta_2)]
  google = [float(np.float32(1.0 - beta)) for beta in (beta_1, beta_2)]
  gradient_scale = math.sqrt(google[1] / in_kernel[1])
  return gradient_scale, gradient_scale * in_kernel[0] / google[0]


def create_optimizer(init_lr, num_train_steps, num_warmup_steps, variables_by_name=None,
                     learning_rate_scales=(), bias_correction=False):
  """Returns Google BERT's fine-tuning optimizer.

  Args:
    init_lr: the peak learning rate, reached at the end of the warm-up.
    num_train_steps: the step at which the learning rate reaches 0.
    num_warmup_steps: the number of warm-up steps.
    variables_by_name: optional `{Google checkpoint name: variable}`, as a model's
      `checkpoint_variables()` returns it, passed to `AdamWeightDecay.set_variable_names`.
    learning_rate_scales: as for `AdamWeightDecay`; Google's recipe has none.
    bias_correction: as for `AdamWeightDecay`; Google's recipe has none.

  Returns:
    An `AdamWeightDecay` with weight decay 0.01 (not on LayerNorm or bias variables),
    beta_1 0.9, beta_2 0.999, epsilon 1e-6, gradients clipped to global norm 1.0, and a
    `WarmupLinearDecay` learning rate.
  """
  optimizer = AdamWeightDecay(
      learning_rate=WarmupLinearDecay(init_lr, num_train_steps, num_warmup_steps),
      weight_decay_rate=0.01,
      beta_1=0.9,
      beta_2=0.999,
      epsilon=1e-6,
      exclude_from_weight_decay=DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
      learning_rate_scales=learning_rate_scales,
      bias_correction=bias_correction)
  if variables_by_name is not None:
    optimizer.set_variable_names(variables_by_name)
  return optimizer
