"""onednn.enable: oneDNN's kernels on every x86 CPU, unless the user chose otherwise."""

import os
import platform

import pytest

import onednn
from tests import clitools


@pytest.mark.parametrize("machine", ["x86_64", "AMD64"])
def test_x86_gets_onednn(monkeypatch, machine):
  monkeypatch.setattr(platform, "machine", lambda: machine)
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
  onednn.enable()
  assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"


def test_the_users_choice_stays(monkeypatch):
  monkeypatch.setattr(platform, "machine", lambda: "x86_64")
  monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
  onednn.enable()
  assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"


def test_other_machines_keep_tensorflows_default(monkeypatch):
  monkeypatch.setattr(platform, "machine", lambda: "aarch64")
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
  onednn.enable()
  assert "TF_ENABLE_ONEDNN_OPTS" not in os.environ


def onednn_in_a_fresh_process(env_value):
  """Whether TensorFlow, imported as the product imports it, runs oneDNN's kernels."""
  code = ("import console\n"
          "console.import_tensorflow(0)\n"
          "import onednn\n"
          "print(onednn.running())\n")
  env = {name: value for name, value in os.environ.items() if name != "TF_ENABLE_ONEDNN_OPTS"}
  if env_value is not None:
    env["TF_ENABLE_ONEDNN_OPTS"] = env_value
  return clitools.run_python(code, env=env).stdout.split()[-1] == "True"


# TensorFlow's own default is on only for CPUs with AVX512_VNNI, AVX512_BF16, AVX_VNNI or AMX:
# on an AVX2 machine the first assertion fails without onednn.enable.
@pytest.mark.skipif(platform.machine().lower() not in onednn.X86_MACHINES,
                    reason="oneDNN is chosen on x86 machines only")
def test_the_product_runs_onednn_on_x86_unless_the_user_says_no():
  assert onednn_in_a_fresh_process(None)
  assert not onednn_in_a_fresh_process("0")
