"""graph_optimisation.py: the lighter Grappler options reach the functions called on a CPU, on
the calling thread only and only during the call."""

import concurrent.futures

import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context

import distribution
import graph_optimisation

RewriterConfig = rewriter_config_pb2.RewriterConfig


def rewrite_options():
  """The rewrite options that a function called now, on this thread, would run with."""
  config = config_pb2.ConfigProto()
  config.ParseFromString(context.context().function_call_options.config_proto_serialized)
  return config.graph_options.rewrite_options


def is_lighter(options):
  return (options.meta_optimizer_iterations == RewriterConfig.ONE
          and options.memory_optimization == RewriterConfig.NO_MEM_OPT
          and options.constant_folding == RewriterConfig.OFF
          and options.layout_optimizer == RewriterConfig.OFF)


def test_a_call_on_the_cpu_runs_one_round_without_the_passes_it_does_not_need():
  assert not is_lighter(rewrite_options())
  seen = graph_optimisation.on_cpu(rewrite_options, tf.distribute.get_strategy())()
  assert is_lighter(seen)
  # The rest of the configuration is the thread's own: soft placement, as for any function.
  config = config_pb2.ConfigProto()
  config.ParseFromString(graph_optimisation.lighter_options().config_proto_serialized)
  assert config.allow_soft_placement
  assert not is_lighter(rewrite_options())  # Put back after the call.


def test_the_previous_options_come_back_when_the_call_fails():
  def fails():
    raise ValueError("inside")

  wrapped = graph_optimisation.on_cpu(fails, tf.distribute.get_strategy())
  try:
    wrapped()
  except ValueError:
    pass
  assert not is_lighter(rewrite_options())


def test_each_worker_thread_gets_the_options_for_its_own_calls():
  wrapped = graph_optimisation.on_cpu(rewrite_options, tf.distribute.get_strategy())
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    seen = list(pool.map(lambda _: wrapped(), range(4)))
    plain = pool.submit(rewrite_options).result()
  assert all(is_lighter(options) for options in seen)
  assert not is_lighter(plain)


def test_a_function_computes_the_same_with_the_lighter_options():
  @tf.function
  def layer(x, w, b):
    return tf.nn.gelu(tf.matmul(x, w) + b)

  rng = np.random.default_rng(0)
  x, w = (tf.constant(rng.normal(size=shape), tf.float32) for shape in ((6, 5), (5, 4)))
  b = tf.constant(rng.normal(size=4), tf.float32)
  lighter = graph_optimisation.on_cpu(layer, tf.distribute.get_strategy())
  np.testing.assert_allclose(lighter(x, w, b).numpy(), layer(x, w, b).numpy(), rtol=1e-6,
                             atol=1e-7)


def test_accelerators_keep_the_default_options(monkeypatch):
  monkeypatch.setattr(distribution, "on_accelerator", lambda strategy: "gpu")
  assert graph_optimisation.on_cpu(rewrite_options, tf.distribute.get_strategy()) is (
      rewrite_options)
