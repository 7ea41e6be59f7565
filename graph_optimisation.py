"""A lighter graph optimisation for the training loop on a CPU.

The first call of a `tf.function` waits for TensorFlow's graph optimiser, Grappler, to rewrite
the traced graph. By default Grappler runs its passes twice over and adds a memory optimiser
(recomputation and swapping, which find nothing to do on a CPU). On a CPU, where nothing
compiles the graph after Grappler, its time is a large part of a run's first step. One round
without the memory optimiser keeps what makes the steps fast: the remapper's fusions (a matrix
product with its bias, GELU or residual add, as oneDNN runs it) and the arithmetic and pruning
passes all still run once.

Measured on psychexp's training step with all-MiniLM-L6-v2 (3,781 nodes; 2-core AMD EPYC,
AVX2 kernels): 962 ms of graph optimisation by default, 456 ms this way, and a first step
0.5 s shorter. Warm steps ran as fast: the same 10 batches in chunks alternated between the
two settings in one process, 8 rounds, a median ratio of 1.01 (1.003 in a second run).

Constant folding and the layout optimiser are off too. Since the encoder's blocks share one
trace, constant folding took 132 ms of that optimisation and the layout optimiser 58 ms, and
the layout optimiser changed no node of a CPU graph. Without the two, Grappler spent 0.54-0.58 s
on the training loop's graph instead of 0.58-0.70 s (two runs each, with its logging on), and
warm steps were 1.00-1.04x as fast (mean 1.024 over six runs of two loops alternated in one
process, 82-168 psychexp steps, both build orders). Constant folding also turns divisions by a
constant into multiplications by its reciprocal: without it, weights after three steps differed
from before in their last bits (at most 2.4e-7 of each tensor's largest), with the same losses.

Prediction keeps the defaults: its forward graph optimises in a quarter of that time, and the
test split's passes ran 1-2% slower this way (passes alternated in one process, 8 rounds,
twice: medians 0.98 and 0.99), with the same probabilities.

TensorFlow has no public setting for the number of rounds or the memory optimiser, and
`tf.config.optimizer.set_experimental_options`, which toggles the other two, would change every
function of the process, prediction's too. So all four go into the calling thread's
function-call options, which a function's runtime reads when it is called.
"""

import functools

from tensorflow.core.protobuf import config_pb2
from tensorflow.core.protobuf import rewriter_config_pb2
from tensorflow.python.eager import context

import distribution


def lighter_options():
  """This thread's function-call options with one round of Grappler and without its memory
  optimiser, constant folding and layout optimiser."""
  config = config_pb2.ConfigProto()
  config.ParseFromString(context.context().function_call_options.config_proto_serialized)
  rewrite = config.graph_options.rewrite_options
  rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
  rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
  rewrite.constant_folding = rewriter_config_pb2.RewriterConfig.OFF
  rewrite.layout_optimizer = rewriter_config_pb2.RewriterConfig.OFF
  return context.FunctionCallOptions(config_proto=config)


def on_cpu(function, strategy):
  """Returns `function` (which calls `tf.function`s) optimised lighter where `strategy` runs on
  the CPU, and `function` itself on accelerators, where Grappler's defaults stand (its memory
  optimiser is for their memory).

  The returned function may be called from any thread: each call sets the options on its own
  thread and puts back what was there.
  """
  if distribution.on_accelerator(strategy) != "cpu":
    return function
  options = lighter_options()

  @functools.wraps(function)
  def with_lighter_options(*args, **kwargs):
    eager_context = context.context()
    previous = eager_context.function_call_options
    eager_context.function_call_options = options
    try:
      return function(*args, **kwargs)
    finally:
      eager_context.function_call_options = previous

  return with_lighter_options
