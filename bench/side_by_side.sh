#!/bin/bash
# Measures this project and Hugging Face transformers (PyTorch) in one session, one after the
# other, on the same model and shapes; prints one JSON line per measurement, then the ratios.
#
#   bash bench/side_by_side.sh MODEL_DIR [DATA_DIR]
#   ISA=avx2 bash bench/side_by_side.sh MODEL_DIR [DATA_DIR]   # both sides limited to AVX2
#
# MODEL_DIR: a Google-format folder (bert_config.json, vocab.txt, bert_model.ckpt), e.g. the
#   output of `python convert_hf_checkpoint.py`; the Hugging Face runs use the packaged
#   all-MiniLM-L6-v2, which is the same model. The real-data runs load its weights, as a user's
#   run does, and as Hugging Face's side does.
# DATA_DIR: optional psychexp folder; adds the real-data runs, where Hugging Face is measured at
#   its best: the test split predicted sorted by length, each batch padded to its longest, fast
#   tokenizer (and, for reference, padded to 128), and again in alternating passes of two
#   resident processes (bench/paired.py: the ratio least moved by the machine's drift);
#   the train split batched as `group_by_length=True` does, each batch padded to its longest,
#   for as many steps as ours (one epoch), the two sides alternating chunks of 10 steps. This
#   project runs as a user's command would: prediction with the default --predict_batch_size
#   (8), training through the product's bucketed pipeline. Fixed-shape training also runs
#   alternated, in chunks of 4 steps.
# ISA=avx2 approximates an AVX2-only CPU on a newer one: oneDNN (TensorFlow's and torch's), MKL
#   and torch's own kernels stop at AVX2. Only an approximation: caches, memory and clocks stay
#   the newer CPU's (README, Speed, has both machines). Each JSON line's "device" names the CPU.
# STEPS: timed steps of the fixed-shape runs (default 20; 40 alternated); TRAIN_STEPS: steps of
#   the real-data training run (default one epoch).
# Needs torch and transformers for the baseline (see bench/hf_throughput.py). Each run is a
# fresh process, so the real-data figures include the cold start; the last two rows time whole
# processes, imports included, and their ratio is Hugging Face's seconds over ours.
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
ours_task="$ours $task --vocab_file=$model_dir/vocab.txt"
ours_task+=" --init_checkpoint=$model_dir/bert_model.ckpt"
results=$(mktemp)
trap 'rm -f "$results"' EXIT

# Each measurement as one JSON line, labelled by what it is, on stdout and into $results.
measure() {
  local label=$1
  shift
  "$@" 2>/dev/null | python -c 'import json, sys
print(json.dumps({"label": sys.argv[1], **json.load(sys.stdin)}))' "$label" | tee -a "$results"
}

paired="python bench/paired.py --model_dir=$model_dir --max_seq_length=128"
for mode in train predict; do
  measure "hf_fixed_$mode" $hf --mode=$mode $fixed
  measure "ours_fixed_$mode" $ours --mode=$mode $fixed
done
measure paired_fixed_train $paired --mode=train --batch_size=32 --steps=$((2 * steps))
if [[ -n "$data_dir" ]]; then
  measure hf_task_predict $hf --mode=predict $task --batch_size=32
  measure hf_task_predict_pad128 $hf --mode=predict $task --batch_size=32 --padding=max_length \
      --passes=1
  measure ours_task_predict $ours_task --mode=predict --batch_size=8
  measure paired_task_predict $paired --mode=predict --data_dir="$data_dir"
  measure paired_task_train $paired --mode=train --data_dir="$data_dir" $train_steps
  # Each side's first training step again, in a process alone on the machine, as a user's run
  # is: in the alternated run, the side whose first step comes second (ours) is slowed by the
  # other's resident process (see bench/paired.py).
  measure hf_task_train_first $hf --mode=train $task --batch_size=32 --steps=2 --chunk_steps=1
  measure ours_task_train_first $ours_task --mode=train --batch_size=32 --steps=2 --chunk_steps=1
  measure ours_tokenize $ours_task --tokenize_only
fi

python - "$results" <<'EOF'
import json, sys
runs = {r["label"]: r for r in map(json.loads, open(sys.argv[1]))}
rows = [("training, fixed 32x128", "ours_fixed_train", "hf_fixed_train"),
        ("prediction, fixed 32x128", "ours_fixed_predict", "hf_fixed_predict"),
        ("prediction, test split, files to probabilities (warm)", "ours_task_predict",
         "hf_task_predict"),
        ("  the same, against Hugging Face padding to 128", "ours_task_predict",
         "hf_task_predict_pad128")]
print(f"{'examples/s':58} {'HF':>7} {'ours':>7} {'ratio':>6}")
for what, ours, hf in rows:
  if ours in runs and hf in runs:
    a, b = runs[ours]["examples_per_sec"], runs[hf]["examples_per_sec"]
    print(f"{what:58} {b:7.1f} {a:7.1f} {a / b:6.2f}")
# Alternated runs: warm examples/s over all warm passes; the ratio of the median round where
# every pass is the same work, of the summed passes where each side runs its own batches.
for label, what, ratio in [
    ("paired_fixed_train", "training, fixed 32x128, alternating chunks", "median_ratio"),
    ("paired_task_predict", "prediction, test split, alternating passes", "median_ratio"),
    ("paired_task_train", "training, train split, alternating chunks (summed)", "total_ratio")]:
  paired = runs.get(label)
  if paired:
    warm, cold = paired["warm_examples_per_sec"], paired["cold_examples_per_sec"]
    print(f"{what:58} {warm['hf']:7.1f} {warm['ours']:7.1f} {paired[ratio]:6.2f}")
    print(f"{'  the same, their cold passes':58} {cold['hf']:7.1f} "
          f"{cold['ours']:7.1f} {paired['cold_ratio']:6.2f}")
if "ours_task_predict" in runs and "hf_task_predict" in runs:
  a, b = (runs[s]["cold_examples_per_sec"] for s in ("ours_task_predict", "hf_task_predict"))
  print(f"{'prediction, test split, cold (first pass)':58} {b:7.1f} {a:7.1f} {a / b:6.2f}")
# The epoch with each side's first step as measured alone: the alternated run's warm seconds
# plus that step.
if all(label in runs for label in ("paired_task_train", "hf_task_train_first",
                                   "ours_task_train_first")):
  paired = runs["paired_task_train"]
  first = {side: runs[f"{side}_task_train_first"]["cold_step_ms"] / 1e3 for side in ("hf", "ours")}
  print(f"{'first training step, each side alone (seconds)':58} {first['hf']:7.2f} "
        f"{first['ours']:7.2f}")
  rate = {side: paired[side]["steps"] * paired[side]["batch_size"]
          / (sum(paired["seconds"][side][1:]) + first[side]) for side in first}
  print(f"{'training, train split, warm + first step alone':58} {rate['hf']:7.1f} "
        f"{rate['ours']:7.1f} {rate['ours'] / rate['hf']:6.2f}")
# A user's run is one process: from its start (imports, the model, reading and tokenizing the
# split) to the first pass's probabilities, or to the end of the first training step.
for what, hf, ours in [
    ("prediction: process start to first pass done (seconds)", "hf_task_predict",
     "ours_task_predict"),
    ("training: process start to first step done (seconds)", "hf_task_train_first",
     "ours_task_train_first")]:
  if hf in runs and ours in runs and runs[ours].get("process_seconds"):
    a, b = runs[ours]["process_seconds"], runs[hf]["process_seconds"]
    print(f"{what:58} {b:7.2f} {a:7.2f} {b / a:6.2f}")
EOF
