#!/bin/bash
# Measures this project and Hugging Face transformers (PyTorch) in one session, one after the
# other, on the same model and shapes; prints one JSON line per measurement, then the ratios.
#
#   bash bench/side_by_side.sh MODEL_DIR [DATA_DIR]
#   ISA=avx2 bash bench/side_by_side.sh MODEL_DIR [DATA_DIR]   # both sides limited to AVX2
#
# MODEL_DIR: a Google-format folder (bert_config.json, vocab.txt), e.g. the output of
#   `python convert_hf_checkpoint.py`; the Hugging Face runs use the packaged all-MiniLM-L6-v2,
#   which is the same model.
# DATA_DIR: optional psychexp folder; adds the real-data runs, where Hugging Face is measured at
#   its best: the test split predicted sorted by length, each batch padded to its longest, fast
#   tokenizer (and, for reference, padded to 128), and again in alternating passes of two
#   resident processes (bench/paired_predict.py: the ratio least moved by the machine's drift);
#   the train split batched as `group_by_length=True` does, each batch padded to its longest,
#   for as many steps as ours (one epoch). This project runs as a user's command would:
#   prediction with the default --predict_batch_size (8), training through the product's
#   bucketed pipeline.
# ISA=avx2 approximates an AVX2-only CPU on a newer one: oneDNN (TensorFlow's and torch's), MKL
#   and torch's own kernels stop at AVX2.
# STEPS: timed steps of the fixed-shape runs (default 20); TRAIN_STEPS: steps of the real-data
#   training runs (default one epoch).
# Needs torch and transformers for the baseline (see bench/hf_throughput.py). Each run is a
# fresh process, so the real-data figures include the cold start.
set -euo pipefail
cd "$(dirname "$0")/.."
model_dir=${1:?usage: bash bench/side_by_side.sh MODEL_DIR [DATA_DIR]}
data_dir=${2:-}
steps=${STEPS:-20}
train_steps=${TRAIN_STEPS:+--steps=$TRAIN_STEPS}
if [[ "${ISA:-}" == avx2 ]]; then
  export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2
fi
ours="python bench/throughput.py --bert_config_file=$model_dir/bert_config.json"
hf="python bench/hf_throughput.py"
fixed="--batch_size=32 --max_seq_length=128 --steps=$steps"
task="--task_name=psychexp --data_dir=$data_dir --max_seq_length=128"
results=$(mktemp)
trap 'rm -f "$results"' EXIT

# Each measurement as one JSON line, labelled by what it is, on stdout and into $results.
measure() {
  local label=$1
  shift
  "$@" 2>/dev/null | python -c 'import json, sys
print(json.dumps({"label": sys.argv[1], **json.load(sys.stdin)}))' "$label" | tee -a "$results"
}

for mode in train predict; do
  measure "hf_fixed_$mode" $hf --mode=$mode $fixed
  measure "ours_fixed_$mode" $ours --mode=$mode $fixed
done
if [[ -n "$data_dir" ]]; then
  measure hf_task_predict $hf --mode=predict $task --batch_size=32
  measure hf_task_predict_pad128 $hf --mode=predict $task --batch_size=32 --padding=max_length \
      --passes=1
  measure ours_task_predict $ours --mode=predict $task --vocab_file="$model_dir/vocab.txt" \
      --batch_size=8
  measure paired_task_predict python bench/paired_predict.py --model_dir="$model_dir" \
      --data_dir="$data_dir" --max_seq_length=128
  measure hf_task_train $hf --mode=train $task --batch_size=32 $train_steps
  measure ours_task_train $ours --mode=train $task --vocab_file="$model_dir/vocab.txt" \
      --batch_size=32 $train_steps
  measure ours_tokenize $ours $task --vocab_file="$model_dir/vocab.txt" --tokenize_only
fi

python - "$results" <<'EOF'
import json, sys
runs = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
rows = [("training, fixed 32x128", "ours_fixed_train", "hf_fixed_train"),
        ("prediction, fixed 32x128", "ours_fixed_predict", "hf_fixed_predict"),
        ("prediction, test split, files to probabilities (warm)", "ours_task_predict",
         "hf_task_predict"),
        ("  the same, against Hugging Face padding to 128", "ours_task_predict",
         "hf_task_predict_pad128"),
        ("training, train split, bucketed / group_by_length", "ours_task_train",
         "hf_task_train")]
print(f"{'examples/s':58} {'HF':>7} {'ours':>7} {'ratio':>6}")
for what, ours, hf in rows:
  if ours in runs and hf in runs:
    a, b = runs[ours]["examples_per_sec"], runs[hf]["examples_per_sec"]
    print(f"{what:58} {b:7.1f} {a:7.1f} {a / b:6.2f}")
paired = runs.get("paired_task_predict")
if paired:
  warm, cold = paired["median_examples_per_sec"], paired["cold_examples_per_sec"]
  print(f"{'prediction, test split, alternating passes (median round)':58} {warm['hf']:7.1f} "
        f"{warm['ours']:7.1f} {paired['median_ratio']:6.2f}")
  print(f"{'  the same, their cold passes':58} {cold['hf']:7.1f} {cold['ours']:7.1f} "
        f"{paired['cold_ratio']:6.2f}")
for what, ours, hf in [("prediction, test split, cold (first pass)", "ours_task_predict",
                        "hf_task_predict"),
                       ("training, train split, first step included", "ours_task_train",
                        "hf_task_train")]:
  if ours in runs and hf in runs:
    a, b = runs[ours]["cold_examples_per_sec"], runs[hf]["cold_examples_per_sec"]
    print(f"{what:58} {b:7.1f} {a:7.1f} {a / b:6.2f}")
EOF
