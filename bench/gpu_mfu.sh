#!/bin/bash
# BERT-base-sized training throughput and model FLOPs utilisation on one accelerator.
#
#   bash bench/gpu_mfu.sh            # a few minutes on a GPU
#
# Writes a BERT-base bert_config.json (hidden 768, 12 layers, 12 heads, vocab 30522; random
# weights: speed does not depend on them) and runs bench/throughput.py's full training step at
# sequence 128 in fp32, bf16, and bf16 with XLA, one JSON line each: examples_per_sec and mfu
# (6 x non-embedding parameters x tokens/s plus attention, over the device's dense bf16 peak,
# known for H100/H200/A100/L4; pass PEAK_TFLOPS=... for another).
# BATCH, SEQ, STEPS, HIDDEN, LAYERS, HEADS override the defaults (the tests use a tiny model).
set -euo pipefail
cd "$(dirname "$0")/.."
batch=${BATCH:-128} seq=${SEQ:-128} steps=${STEPS:-30}
hidden=${HIDDEN:-768} layers=${LAYERS:-12} heads=${HEADS:-12}
workdir=$(mktemp -d)
trap 'rm -rf "$workdir"' EXIT
cat > "$workdir/bert_config.json" <<EOF
{"vocab_size": 30522, "hidden_size": $hidden, "num_hidden_layers": $layers,
 "num_attention_heads": $heads, "intermediate_size": $((4 * hidden)), "hidden_act": "gelu",
 "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
 "max_position_embeddings": 512, "type_vocab_size": 2, "initializer_range": 0.02}
EOF
peak=()
if [[ -n "${PEAK_TFLOPS:-}" ]]; then peak=(--peak_tflops="$PEAK_TFLOPS"); fi
for run in "fp32 --nojit_compile" "bf16 --nojit_compile" "bf16 --jit_compile"; do
  set -- $run
  python bench/throughput.py --bert_config_file="$workdir/bert_config.json" --mode=train \
      --batch_size="$batch" --max_seq_length="$seq" --steps="$steps" --precision="$1" "$2" \
      "${peak[@]}" 2>/dev/null \
    | python -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))'
done
