"""oneDNN's kernels for TensorFlow on every x86 CPU, not only on the newest ones.

TensorFlow's x86 Linux wheels hold two sets of CPU kernels. With `TF_ENABLE_ONEDNN_OPTS=1` a
graph's matrix products run as oneDNN primitives, fused with their bias, GELU and residual add.
Unset, TensorFlow turns this on only for CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX;
on every other CPU (AVX2 machines such as AMD's EPYC Zen 3, older Xeons) each product becomes an
Eigen contraction that calls oneDNN's GEMM on small blocks, one op at a time. On a 2-core AMD
EPYC with AVX2, all-MiniLM-L6-v2 trained 1.4-1.5x faster with the variable set (15.6-16.4
against 10.9 examples/s, 32 x 128) and predicted 1.2-1.4x faster (666-730 against 850-977 ms
for a forward pass of 32 x 128). The set of kernels is chosen once, when TensorFlow loads.
"""

import os
import platform

# platform.machine() of the x86 machines that TensorFlow has wheels for (Linux, Windows).
X86_MACHINES = ("x86_64", "amd64")


def enable():
  """Sets `TF_ENABLE_ONEDNN_OPTS=1` on an x86 machine, unless the user set the variable.

  Call it before TensorFlow is first imported: TensorFlow reads the variable as it loads. A
  user's `TF_ENABLE_ONEDNN_OPTS=0` keeps Eigen's kernels. Other machines (ARM, where the
  variable chooses other kernels) are left to TensorFlow's default.
  """
  if platform.machine().lower() in X86_MACHINES:
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def running():
  """Whether the TensorFlow of this process runs oneDNN's kernels (it imports TensorFlow)."""
  from tensorflow.python.util import _pywrap_util_port  # pylint: disable=g-import-not-at-top
  return _pywrap_util_port.IsMklEnabled()
