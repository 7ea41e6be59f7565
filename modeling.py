"""The BERT encoder, as Keras 3 layers on TensorFlow, computing what Google's `modeling.py` does.

Google's checkpoints name every variable by its TF1 scope (`bert/encoder/layer_3/attention/self/
query/kernel`). Keras 3 forbids '/' in variable names, so each layer here states the Google name
of each of its variables in `checkpoint_variables()`, and the model assembles the full names. The
same names are used to load Google's checkpoints and to write ours (see `checkpoints.py`).

Sections: activations, config, layers, model, checkpoints.
"""

import dataclasses
import json
import math

import keras
import tensorflow as tf

import checkpoints
from errors import UserError

# ------------------------------------------------------------------------------------------------
# Activations
# ------------------------------------------------------------------------------------------------


def gelu_tanh(x):
  """Google's GELU: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³)))."""
  return tf.nn.gelu(x, approximate=True)


def gelu_exact(x):
  """The exact GELU, x·Φ(x) with the error function: Hugging Face's "gelu"."""
  return tf.nn.gelu(x, approximate=False)


# Training runs the same two functions with hand-written gradients. Autodiff through tf.nn.gelu
# makes about twice as many passes over the [rows, intermediate] activations as these, and keeps
# more of them for the backward pass. Prediction keeps tf.nn.gelu, whose pattern oneDNN fuses
# into the matrix product before it.
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)
_TANH_CUBIC = 0.044715


@tf.custom_gradient
def _trained_gelu_tanh(x):
  tanh = tf.tanh(_SQRT_2_OVER_PI * (x + _TANH_CUBIC * x * x * x))

  def gradient(upstream):
    slope = (0.5 * x * (1 - tf.square(tanh))
             * (_SQRT_2_OVER_PI * (1 + 3 * _TANH_CUBIC * tf.square(x))))
    return upstream * (0.5 * (1 + tanh) + slope)

  return 0.5 * x * (1 + tanh), gradient


@tf.custom_gradient
def _trained_gelu_exact(x):
  cdf = 0.5 * tf.math.erfc(x * -math.sqrt(0.5))  # Φ(x)

  def gradient(upstream):  # Φ(x) + x·φ(x)
    return upstream * (cdf + x * (tf.exp(-0.5 * tf.square(x)) / math.sqrt(2 * math.pi)))

  return x * cdf, gradient


TRAINED_ACTIVATIONS = {gelu_tanh: _trained_gelu_tanh, gelu_exact: _trained_gelu_exact}


# `bert_config.json` follows Google's meaning: "gelu" is the tanh form. A model converted from
# Hugging Face, whose "gelu" is the erf form, says "gelu_exact" (see convert_hf_checkpoint.py).
# The other spellings are the ones other BERT ports write for the same two functions.
ACTIVATIONS = {
    "gelu": gelu_tanh,
    "gelu_new": gelu_tanh,
    "gelu_tanh": gelu_tanh,
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_exact": gelu_exact,
    "gelu_erf": gelu_exact,
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "swish": tf.nn.silu,
    "silu": tf.nn.silu,
    "linear": tf.identity,
}

# ------------------------------------------------------------------------------------------------
# Config
# ------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class BertConfig:
  """The hyper-parameters in a checkpoint's `bert_config.json`, with Google's defaults."""
  vocab_size: int
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 16
  initializer_range: float = 0.02

  def __post_init__(self):
    self.validate()

  @classmethod
  def from_dict(cls, json_object, source="bert_config"):
    """Builds a config from a dict; keys that BERT does not use (as in HF configs) are ignored.

    Args:
      json_object: the parsed JSON.
      source: what to call the origin in error messages (usually the file's path).
    """
    if not isinstance(json_object, dict):
      raise UserError(f"{source}: expected a JSON object, got {type(json_object).__name__}")
    if "vocab_size" not in json_object:
      raise UserError(f"{source}: 'vocab_size' is missing")
    known = {f.name for f in dataclasses.fields(cls)}
    try:
      return cls(**{k: v for k, v in json_object.items() if k in known})
    except UserError as e:
      raise UserError(f"{source}: {e}") from None

  @classmethod
  def from_json_file(cls, json_file):
    """Reads `bert_config.json`; a missing or malformed file is a `UserError` naming it."""
    try:
      with open(json_file, encoding="utf-8") as f:
        text = f.read()
    except OSError as e:
      raise UserError(f"cannot read the BERT config {json_file}: {e.strerror}") from None
    except UnicodeDecodeError:
      raise UserError(f"{json_file}: the BERT config is not UTF-8 text") from None
    try:
      json_object = json.loads(text)
    except json.JSONDecodeError as e:
      raise UserError(f"{json_file}, line {e.lineno}: not valid JSON ({e.msg})") from None
    return cls.from_dict(json_object, source=json_file)

  def to_dict(self):
    return dataclasses.asdict(self)

  def to_json_string(self):
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def validate(self):
    """Raises `UserError` for a value no BERT can have."""
    for name in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                 "intermediate_size", "max_position_embeddings", "type_vocab_size"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UserError(f"'{name}' must be a positive integer, got {value!r}")
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise UserError(f"'{name}' must be a number in [0, 1), got {value!r}")
    if (isinstance(self.initializer_range, bool) or
        not isinstance(self.initializer_range, (int, float)) or self.initializer_range <= 0):
      raise UserError(f"'initializer_range' must be a positive number, got "
                      f"{self.initializer_range!r}")
    if self.hidden_size % self.num_attention_heads:
      raise UserError(f"'hidden_size' ({self.hidden_size}) is not a multiple of "
                      f"'num_attention_heads' ({self.num_attention_heads})")
    if self.hidden_act not in ACTIVATIONS:
      raise UserError(f"'hidden_act' {self.hidden_act!r} is not one of "
                      f"{', '.join(sorted(ACTIVATIONS))}")


# ------------------------------------------------------------------------------------------------
# Layers
# ------------------------------------------------------------------------------------------------


def _initializer(config, draw_weights):
  """Google's truncated normal; zeros where `draw_weights` is False (see `BertModel`).

  The truncated normal is made either way: Keras takes its seed from the global generator when
  it is made, so every initializer made after (the classifier head's) draws the same values
  whether BERT's weights are drawn or not.
  """
  initializer = keras.initializers.TruncatedNormal(stddev=config.initializer_range)
  return initializer if draw_weights else "zeros"


def _prefixed(prefix, variables):
  """Prepends `prefix/` to each name of a {name: variable} dict."""
  return {f"{prefix}/{name}": variable for name, variable in variables.items()}


def _dense_variables(dense):
  return {"kernel": dense.kernel, "bias": dense.bias}


def _layer_norm_variables(layer_norm):
  return {"LayerNorm/gamma": layer_norm.gamma, "LayerNorm/beta": layer_norm.beta}


def _project(dense, x, scale=None):
  """x · kernel + bias for a [rows, in] matrix x, with a `keras.layers.Dense`'s variables; with
  `scale`, x · (scale · kernel) + scale · bias."""
  if scale is None:
    return tf.nn.bias_add(tf.matmul(x, dense.kernel), dense.bias)
  return tf.nn.bias_add(tf.matmul(x, dense.kernel * scale), dense.bias * scale)


def _scatter_tokens(rows, token_positions, batch, seq):
  """The real tokens' rows [tokens, hidden] in their places of a [batch, seq, hidden] tensor that
  is zero at the padding; `token_positions` int32 [tokens, 1] as in `TransformerLayer.call`."""
  hidden = tf.shape(rows)[1]
  return tf.reshape(tf.scatter_nd(token_positions, rows, tf.stack([batch * seq, hidden])),
                    tf.stack([batch, seq, hidden]))


@tf.custom_gradient
def _masked(x, mask):
  """x · mask, whose backward pass needs only the mask: d(x · mask)/dx = mask."""
  return x * mask, lambda upstream: (upstream * mask, None)


class Dropout(keras.layers.Layer):
  """Inverted dropout that draws 16 random bits per element instead of a float32 number.

  On CPU, drawing one float32 uniform number per element (as Keras' dropout does) costs more
  than the rest of dropout. Here each 32-bit draw of TensorFlow's Philox generator serves two
  elements; an element is dropped when its 16 bits are below round(rate · 2¹⁶), so the rate is
  met to within 2⁻¹⁷ (0.1 becomes 0.100006), and kept elements are scaled by the inverse of the
  exact keep probability, so that the expected output equals the input (in float32; bfloat16
  rounds the scale, as it does Keras'). The backward pass reuses the scaled mask.

  Input and output: any shape. Identity unless `training`.
  """

  def __init__(self, rate, seed=None, **kwargs):
    super().__init__(**kwargs)
    self.rate = rate
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)
    self.built = True

  def call(self, x, training=False):
    dropped_per_65536 = min(round(self.rate * 65536), 65536)
    if not training or not dropped_per_65536:
      return x
    if dropped_per_65536 == 65536:
      return tf.zeros_like(x)
    # Philox takes an int32 seed under XLA; the generator's state is int64.
    seed = tf.cast(tf.math.floormod(self.seed_generator.next(), 2**31 - 1), tf.int32)
    size = tf.size(x)
    words = tf.random.stateless_uniform([(size + 1) // 2], seed=seed, minval=None, maxval=None,
                                        dtype=tf.uint32)
    bits = tf.reshape(tf.reshape(tf.bitcast(words, tf.uint16), [-1])[:size], tf.shape(x))
    scale = 65536 / (65536 - dropped_per_65536)
    mask = tf.where(bits >= dropped_per_65536, tf.constant(scale, x.dtype),
                    tf.constant(0, x.dtype))
    return _masked(x, mask)

  def get_config(self):
    return {**super().get_config(), "rate": self.rate, "seed": self.seed}


# Google's layer_norm (from TF1's contrib layers) uses ε = 1e-12.
_LAYER_NORM_EPSILON = 1e-12


def _layer_norm(name, dtype):
  # Keras computes it in float32 even under a mixed-precision policy, which keeps bf16 training
  # stable.
  return keras.layers.LayerNormalization(epsilon=_LAYER_NORM_EPSILON, name=name, dtype=dtype)


@tf.custom_gradient
def _trained_layer_norm(x, gamma, beta):
  """Keras' LayerNormalization over the last axis, the same ops forward, with the gradient
  written out: x float32 [..., hidden]; gamma, beta float32 [hidden].

  With x̂ = (x - mean) / √(variance + ε) and y = γ·x̂ + β, per row (n = hidden):
  dx = (γ·dy - mean(γ·dy) - x̂·mean(γ·dy·x̂)) / √(variance + ε), dγ = Σ dy·x̂, dβ = Σ dy.
  Autodiff through the mean, the variance and their broadcasts makes about twice as many ops
  and passes over the [rows, hidden] activations.
  """
  mean, variance = tf.nn.moments(x, [-1], keepdims=True)
  inverse = tf.math.rsqrt(variance + _LAYER_NORM_EPSILON)
  scale = inverse * gamma
  y = x * scale + (-mean * scale + beta)

  def gradient(upstream):
    rows = list(range(len(x.shape) - 1))
    normalized = (x - mean) * inverse
    scaled = upstream * gamma
    dx = inverse * (scaled - tf.reduce_mean(scaled, -1, keepdims=True)
                    - normalized * tf.reduce_mean(scaled * normalized, -1, keepdims=True))
    return dx, tf.reduce_sum(upstream * normalized, rows), tf.reduce_sum(upstream, rows)

  return y, gradient


def trained_layer_norm(layer_norm, x):
  """`layer_norm` (a `keras.layers.LayerNormalization` over the last axis) of x [..., hidden],
  as Keras computes it (in float32, the result in x's dtype), with `_trained_layer_norm`'s
  gradient. Prediction keeps the Keras layer.

  all-MiniLM-L6-v2 training on psychexp's batches (2-core AMD EPYC, AVX2 kernels; the same 10
  batches in chunks alternated with autodiff's LayerNorm in one process, 8 rounds, twice): 1.02x
  and 1.03x faster (medians; 1.02x and 1.04x summed), and a training step's graph went from
  3,781 to 3,025 nodes, which shortens its tracing and optimisation."""
  gamma, beta = (tf.convert_to_tensor(v) for v in (layer_norm.gamma, layer_norm.beta))
  return tf.cast(_trained_layer_norm(tf.cast(x, tf.float32), gamma, beta), x.dtype)


def _normalized(layer_norm, x, training):
  return trained_layer_norm(layer_norm, x) if training else layer_norm(x)


class Embeddings(keras.layers.Layer):
  """Word + token-type + position embeddings, then LayerNorm and dropout.

  Inputs: `input_ids`, `token_type_ids`, int32 [batch, seq]. Output: [batch, seq, hidden].
  """

  def __init__(self, config, draw_weights=True, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.draw_weights = draw_weights
    init = _initializer(config, draw_weights)
    hidden = config.hidden_size
    self.word_embeddings = self.add_weight(
        name="word_embeddings", shape=(config.vocab_size, hidden), initializer=init)
    self.token_type_embeddings = self.add_weight(
        name="token_type_embeddings", shape=(config.type_vocab_size, hidden), initializer=init)
    self.position_embeddings = self.add_weight(
        name="position_embeddings", shape=(config.max_position_embeddings, hidden),
        initializer=init)
    self.layer_norm = _layer_norm("LayerNorm", self.dtype_policy)
    self.layer_norm.build((None, None, hidden))
    self.dropout = Dropout(config.hidden_dropout_prob)
    self.built = True

  def call(self, input_ids, token_type_ids, training=False):
    seq_length = tf.shape(input_ids)[1]
    embeddings = (tf.gather(self.word_embeddings, input_ids) +
                  tf.gather(self.token_type_embeddings, token_type_ids) +
                  self.position_embeddings[tf.newaxis, :seq_length])
    return self.dropout(_normalized(self.layer_norm, embeddings, training), training=training)

  def checkpoint_variables(self):
    return {
        "word_embeddings": self.word_embeddings,
        "token_type_embeddings": self.token_type_embeddings,
        "position_embeddings": self.position_embeddings,
        **_layer_norm_variables(self.layer_norm),
    }

  def get_config(self):
    return {**super().get_config(), "config": self.config.to_dict(),
            "draw_weights": self.draw_weights}


class TransformerLayer(keras.layers.Layer):
  """One encoder block: self-attention and feed-forward, each with residual and post-LayerNorm.

  Inputs: `hidden_states` [batch, seq, hidden]; `attention_bias` [batch, 1, 1, seq], 0 where a
  position may be attended and -10000 where it is padding (Google's additive mask).
  Output: [batch, seq, hidden], or [batch, 1, hidden] with `first_token_only`.
  """

  def __init__(self, config, draw_weights=True, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.draw_weights = draw_weights
    hidden = config.hidden_size
    self.num_heads = config.num_attention_heads
    self.head_size = hidden // self.num_heads
    self.activation = ACTIVATIONS[config.hidden_act]
    self.trained_activation = TRAINED_ACTIVATIONS.get(self.activation, self.activation)

    def dense(units, name, input_dim):
      layer = keras.layers.Dense(units, kernel_initializer=_initializer(config, draw_weights),
                                 name=name, dtype=self.dtype_policy)
      layer.build((None, None, input_dim))
      return layer

    self.query = dense(hidden, "query", hidden)
    self.key = dense(hidden, "key", hidden)
    self.value = dense(hidden, "value", hidden)
    self.attention_output = dense(hidden, "attention_output", hidden)
    self.attention_layer_norm = _layer_norm("attention_LayerNorm", self.dtype_policy)
    self.attention_layer_norm.build((None, None, hidden))
    self.intermediate = dense(config.intermediate_size, "intermediate", hidden)
    self.output_dense = dense(hidden, "output", config.intermediate_size)
    self.output_layer_norm = _layer_norm("output_LayerNorm", self.dtype_policy)
    self.output_layer_norm.build((None, None, hidden))
    self.attention_dropout = Dropout(config.attention_probs_dropout_prob)
    self.hidden_dropout = Dropout(config.hidden_dropout_prob)
    self.built = True

  def _split_heads(self, x, batch, seq):
    """[batch * seq, hidden] -> [batch, heads, seq, head_size]."""
    x = tf.reshape(x, [batch, seq, self.num_heads, self.head_size])
    return tf.transpose(x, [0, 2, 1, 3])

  def _attention(self, x, batch, seq, attention_bias, training):
    """Self-attention of every position: x [batch * seq, hidden] -> context [batch * seq,
    hidden], before the output projection."""
    # 1/√head_size scales the query weights (hidden² numbers), not the scores (batch · heads ·
    # seq² numbers): the same product, with a cheaper multiply and a cheaper gradient.
    query = self._split_heads(_project(self.query, x, scale=1.0 / math.sqrt(self.head_size)),
                              batch, seq)
    key = self._split_heads(_project(self.key, x), batch, seq)
    value = self._split_heads(_project(self.value, x), batch, seq)
    scores = tf.matmul(query, key, transpose_b=True) + tf.cast(attention_bias, query.dtype)
    probs = self.attention_dropout(tf.nn.softmax(scores), training=training)
    return tf.reshape(tf.transpose(tf.matmul(probs, value), [0, 2, 1, 3]), tf.shape(x))

  def _first_token_attention(self, hidden_states, first, attention_bias, training):
    """Attention of the first position alone: hidden_states [batch, seq, hidden] and their first
    row `first` [batch, hidden] -> context [batch, hidden], before the output projection.

    Every position's key and value would cost 2 · hidden² multiply-adds a token. Per head h,
    q · (x Wk + bk) = x (Wk q) + q · bk, and Σ p (x Wv + bv) = (Σ p x) Wv + (Σ p) bv: folded
    into the query and the attention weights, they cost 2 · hidden · heads a token instead
    (for all-MiniLM-L6-v2, 3% of the model's work on psychexp's texts).
    """
    hidden, heads, size = self.config.hidden_size, self.num_heads, self.head_size
    query = tf.reshape(_project(self.query, first, scale=1.0 / math.sqrt(size)),
                       [-1, heads, size])                                 # [batch, heads, size]
    key_kernel = tf.reshape(self.key.kernel, [hidden, heads, size])
    folded_query = tf.einsum("bhd,ihd->bhi", query, key_kernel)           # [batch, heads, hidden]
    # q · bk shifts all of a head's scores alike, which the softmax ignores; it is kept so that
    # the key bias keeps its (zero) gradient, as in the full attention.
    key_bias = tf.reduce_sum(query * tf.reshape(self.key.bias, [heads, size]), -1)
    scores = (tf.matmul(folded_query, hidden_states, transpose_b=True) + key_bias[..., tf.newaxis]
              + tf.cast(attention_bias[:, 0], query.dtype))               # [batch, heads, seq]
    probs = self.attention_dropout(tf.nn.softmax(scores), training=training)
    mixed = tf.matmul(probs, hidden_states)                               # [batch, heads, hidden]
    value_kernel = tf.reshape(self.value.kernel, [hidden, heads, size])
    # Σ p is 1 but where dropout zeroed some of the weights.
    context = (tf.einsum("bhi,ihd->bhd", mixed, value_kernel) +
               tf.reduce_sum(probs, -1, keepdims=True) * tf.reshape(self.value.bias, [heads, size]))
    return tf.reshape(context, [-1, hidden])

  def call(self, hidden_states, attention_bias, training=False, first_token_only=False,
           token_positions=None):
    """Returns the block's output, [batch, seq, hidden] or, if `first_token_only`, [batch, 1,
    hidden]: the first position alone, attending to all the others, which is all a pooler
    reads from the last block.

    With `token_positions`, int32 [tokens, 1], the flat index (row · seq + column) of each real
    token, `hidden_states` holds only those tokens, [tokens, hidden], and so does the output
    (unless `first_token_only`): the dense layers skip the padding, and only the attention
    sees the [batch, seq] layout.
    """
    batch, seq = tf.shape(attention_bias)[0], tf.shape(attention_bias)[3]
    hidden = self.config.hidden_size
    padded = hidden_states
    if token_positions is not None:
      padded = _scatter_tokens(hidden_states, token_positions, batch, seq)
    # As Google's code does, the dense layers work on [rows, hidden] matrices: a plain MatMul +
    # BiasAdd (+ GELU), which TensorFlow's oneDNN rewrites fuse into one kernel.
    if first_token_only:
      rows = padded[:, 0]
      context = self._first_token_attention(padded, rows, attention_bias, training)
      output_shape = [batch, 1, hidden]
    else:
      rows = tf.reshape(hidden_states, [-1, hidden])
      context = self._attention(tf.reshape(padded, [-1, hidden]), batch, seq, attention_bias,
                                training)
      if token_positions is not None:
        context = tf.gather_nd(context, token_positions)
      output_shape = tf.shape(hidden_states)
    attention = self.hidden_dropout(_project(self.attention_output, context), training=training)
    attention = _normalized(self.attention_layer_norm, attention + rows, training)
    activation = self.trained_activation if training else self.activation
    intermediate = activation(_project(self.intermediate, attention))
    output = self.hidden_dropout(_project(self.output_dense, intermediate), training=training)
    return tf.reshape(_normalized(self.output_layer_norm, output + attention, training),
                      output_shape)

  def checkpoint_variables(self):
    return {
        **_prefixed("attention/self/query", _dense_variables(self.query)),
        **_prefixed("attention/self/key", _dense_variables(self.key)),
        **_prefixed("attention/self/value", _dense_variables(self.value)),
        **_prefixed("attention/output/dense", _dense_variables(self.attention_output)),
        **_prefixed("attention/output", _layer_norm_variables(self.attention_layer_norm)),
        **_prefixed("intermediate/dense", _dense_variables(self.intermediate)),
        **_prefixed("output/dense", _dense_variables(self.output_dense)),
        **_prefixed("output", _layer_norm_variables(self.output_layer_norm)),
    }

  def get_config(self):
    return {**super().get_config(), "config": self.config.to_dict(),
            "draw_weights": self.draw_weights}


class Pooler(keras.layers.Layer):
  """tanh(dense) of the first token's ([CLS]) final hidden state.

  Input: [batch, seq, hidden]. Output: [batch, hidden].
  """

  def __init__(self, config, draw_weights=True, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.draw_weights = draw_weights
    self.dense = keras.layers.Dense(config.hidden_size, activation="tanh",
                                    kernel_initializer=_initializer(config, draw_weights),
                                    name="dense", dtype=self.dtype_policy)
    self.dense.build((None, config.hidden_size))
    self.built = True

  def call(self, sequence_output):
    return self.dense(sequence_output[:, 0])

  def checkpoint_variables(self):
    return _prefixed("dense", _dense_variables(self.dense))

  def get_config(self):
    return {**super().get_config(), "config": self.config.to_dict(),
            "draw_weights": self.draw_weights}


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


class BertModel(keras.Model):
  """BERT: embeddings, `num_hidden_layers` transformer blocks, and the [CLS] pooler.

  All variables are created in the constructor (their shapes follow from the config alone), so a
  checkpoint can be loaded before the first call. With `add_pooler=False` there is no pooler:
  no `bert/pooler/*` variables to load or train, and no pooled output (None), for a model whose
  head reads the sequence output instead. With `draw_weights=False`, the weights start at zero
  instead of Google's truncated normal (LayerNorm's gamma at one, as always): for a caller that
  loads every one of them from a checkpoint before the first call. Drawing all-MiniLM-L6-v2's
  22.7M weights took 0.3-0.4 s of every run on a 2-core CPU.

  Call with `input_ids`, `input_mask` and `token_type_ids`, int32 [batch, seq]; the mask is 1 on
  real tokens and 0 on padding (all ones if omitted); token types default to 0. Returns
  `(sequence_output [batch, seq, hidden], pooled_output [batch, hidden])`, in float32 under the
  default policy and in the policy's compute dtype under a mixed-precision one.
  """

  def __init__(self, config, add_pooler=True, draw_weights=True, **kwargs):
    kwargs.setdefault("name", "bert")
    super().__init__(**kwargs)
    self.config = config
    self.add_pooler = add_pooler
    self.draw_weights = draw_weights
    self.embeddings = Embeddings(config, draw_weights, name="embeddings",
                                 dtype=self.dtype_policy)
    self.encoder_layers = [
        TransformerLayer(config, draw_weights, name=f"layer_{i}", dtype=self.dtype_policy)
        for i in range(config.num_hidden_layers)
    ]
    self.pooler = (Pooler(config, draw_weights, name="pooler", dtype=self.dtype_policy)
                   if add_pooler else None)
    self.built = True

  def call(self, input_ids, input_mask=None, token_type_ids=None, training=False,
           pooled_only=False, real_tokens_only=False):
    """Returns `(sequence_output, pooled_output)`; with `pooled_only`, `(None, pooled_output)`.

    `pooled_only` lets the last block compute the [CLS] position alone, the only one the pooler
    reads: the same pooled output (and gradients) for about 1/num_hidden_layers less work.

    `real_tokens_only` runs the dense layers on the real tokens alone (the mask's ones), not on
    the padding: the same outputs at the real positions and the same pooled output, for the
    padding's share less work, and the sequence output is zero at padded positions. Its
    gathers have a dynamic shape: for CPUs and GPUs, not for XLA. Off, every position is
    computed as in Google's code.
    """
    if pooled_only and self.pooler is None:
      raise ValueError("pooled_only needs the pooler; this BertModel has none")
    input_ids = tf.cast(input_ids, tf.int32)
    if input_mask is None:
      input_mask = tf.ones_like(input_ids)
    if token_type_ids is None:
      token_type_ids = tf.zeros_like(input_ids)
    token_type_ids = tf.cast(token_type_ids, tf.int32)
    # Google adds -10000 to the scores of padded keys rather than -inf, so a fully padded row
    # still gives a finite (uniform) softmax.
    mask = tf.cast(input_mask, tf.float32)[:, tf.newaxis, tf.newaxis, :]
    attention_bias = (1.0 - mask) * -10000.0
    hidden_states = self.embeddings(input_ids, token_type_ids, training=training)
    token_positions = None
    if real_tokens_only:
      token_positions = tf.cast(tf.where(tf.reshape(input_mask, [-1]) > 0), tf.int32)
      hidden_states = tf.gather_nd(tf.reshape(hidden_states, [-1, self.config.hidden_size]),
                                   token_positions)                        # [tokens, hidden]
    hidden_states = self._encode(hidden_states, attention_bias, training, pooled_only,
                                 token_positions)
    if real_tokens_only and not pooled_only:
      hidden_states = _scatter_tokens(hidden_states, token_positions, tf.shape(input_ids)[0],
                                      tf.shape(input_ids)[1])
    pooled_output = None if self.pooler is None else self.pooler(hidden_states)
    return (None if pooled_only else hidden_states), pooled_output

  def _encode(self, hidden_states, attention_bias, training, pooled_only, token_positions):
    """Runs the blocks in order; the last computes the first position alone if `pooled_only`.

    While a graph is traced, every block runs one traced function: the first block's layer on
    the block's own weights, which a `keras.StatelessScope` puts in place of the first block's
    variables. Tracing then builds a block once (twice with `pooled_only`), not once per block.
    The graph runs the same ops; some gradients are summed in another order, so trained weights
    can differ from the blocks' own calls in the last bit. Training all-MiniLM-L6-v2 on psychexp
    (2-core AMD EPYC, AVX2 kernels), the step traced in 0.9-1.0 s instead of 1.2-1.4 and a run's
    first step took 0.1-0.5 s less; warm steps ran as fast (0.97x and 1.00x, chunks alternated
    in one process). Prediction's forward pass traces 0.1 s sooner, which its first call, where
    the graph optimiser inlines the calls, takes back.

    The variables a block assigns (its dropouts' seed states, when training) are assigned
    after its call, as the block would have. Eagerly, and under a mixed-precision policy, each
    block is called as it is: there the function would take cast copies of the weights, and a
    weight read twice would have its summed gradient rounded to the narrower type on the way back.
    """
    if tf.executing_eagerly() or self.compute_dtype != self.variable_dtype:
      def run_block(layer, hidden_states, first_token_only):
        return layer(hidden_states, attention_bias, training=training,
                     first_token_only=first_token_only, token_positions=token_positions)
    else:
      template = self.encoder_layers[0]

      @tf.function(autograph=False)
      def block(weights, hidden_states, attention_bias, token_positions, first_token_only):
        with keras.StatelessScope(list(zip(template.variables, weights))) as scope:
          output = template(hidden_states, attention_bias, training=training,
                            first_token_only=first_token_only, token_positions=token_positions)
          states = ([scope.get_current_value(v) for v in template.non_trainable_variables]
                    if training else [])
        return output, states

      def run_block(layer, hidden_states, first_token_only):
        weights = [tf.convert_to_tensor(v) for v in layer.variables]
        output, states = block(weights, hidden_states, attention_bias, token_positions,
                               first_token_only)
        for variable, value in zip(layer.non_trainable_variables, states):
          variable.assign(value)
        return output

    last = len(self.encoder_layers) - 1
    for i, layer in enumerate(self.encoder_layers):
      hidden_states = run_block(layer, hidden_states, pooled_only and i == last)
    return hidden_states

  def checkpoint_variables(self):
    """{Google checkpoint name: variable} for every variable, e.g. `bert/pooler/dense/kernel`."""
    variables = _prefixed("bert/embeddings", self.embeddings.checkpoint_variables())
    for i, layer in enumerate(self.encoder_layers):
      variables.update(_prefixed(f"bert/encoder/layer_{i}", layer.checkpoint_variables()))
    if self.pooler is not None:
      variables.update(_prefixed("bert/pooler", self.pooler.checkpoint_variables()))
    return variables

  def get_config(self):
    return {**super().get_config(), "config": self.config.to_dict(),
            "add_pooler": self.add_pooler, "draw_weights": self.draw_weights}


# ------------------------------------------------------------------------------------------------
# Checkpoints
# ------------------------------------------------------------------------------------------------


def load_checkpoint(model, init_checkpoint):
  """Loads every variable of `model` by its Google name from a checkpoint.

  Args:
    model: a `BertModel`, or any model with `checkpoint_variables()`.
    init_checkpoint: a checkpoint prefix (`.../bert_model.ckpt`) or a folder that holds a
      `checkpoint` index file, whose latest checkpoint is used.

  Returns:
    A `checkpoints.RestoreReport`: the names loaded, and the checkpoint's names left alone (a
    pre-trained checkpoint's `cls/...` heads and optimizer slots, say).

  Raises:
    UserError: the checkpoint does not exist, lacks one of the model's variables, or holds one
      with another shape; the message names the variable and both shapes.
  """
  return checkpoints.restore(model.checkpoint_variables(), init_checkpoint)


def save_checkpoint(model, prefix):
  """Writes `model`'s variables under their Google names as the checkpoint `prefix`."""
  checkpoints.write(prefix, model.checkpoint_variables())
