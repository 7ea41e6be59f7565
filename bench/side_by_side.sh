#!/bin/bash
# Measures this project and Hugging Face transformers (PyTorch) in one session, one after the
# other, on the same model config and shapes, and prints one JSON line per measurement.
#
#   bash bench/side_by_side.sh MODEL_DIR [DATA_DIR]
#
# MODEL_DIR: a Google-format folder (bert_config.json, vocab.txt), e.g. the output of
#   `python convert_hf_checkpoint.py`; the Hugging Face runs use the packaged all-MiniLM-L6-v2
#   config, which is the same model.
# DATA_DIR: optional psychexp folder; adds the real-test-split prediction runs.
# Needs `pip install torch transformers` for the baseline. Each run is a fresh process.
set -euo pipefail
cd "$(dirname "$0")/.."
model_dir=${1:?usage: bash bench/side_by_side.sh MODEL_DIR [DATA_DIR]}
data_dir=${2:-}
steps=${STEPS:-20}
config="$model_dir/bert_config.json"
fixed="--batch_size=32 --max_seq_length=128 --steps=$steps"

one_line() { python -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))'; }

for mode in train predict; do
  python bench/hf_throughput.py --mode=$mode $fixed 2>/dev/null | one_line
  for precision in fp32 bf16; do
    python bench/throughput.py --bert_config_file="$config" --mode=$mode $fixed \
        --precision=$precision 2>/dev/null | one_line
  done
done
if [[ -n "$data_dir" ]]; then
  for precision in fp32 bf16; do
    python bench/throughput.py --bert_config_file="$config" --mode=predict --task_name=psychexp \
        --data_dir="$data_dir" --vocab_file="$model_dir/vocab.txt" --max_seq_length=128 \
        --precision=$precision 2>/dev/null | one_line
  done
  python bench/throughput.py --task_name=psychexp --data_dir="$data_dir" \
      --vocab_file="$model_dir/vocab.txt" --tokenize_only 2>/dev/null | one_line
fi
