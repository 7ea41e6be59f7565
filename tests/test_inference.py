"""inference.py: bucketed prediction gives the fixed-padding probabilities, in input order."""

import numpy as np
import tensorflow as tf

import classifier
import features
import inference
import modeling
import tokenization
from processors.base import InputExample
from tests import conftest


def test_bucketed_prediction_equals_fixed_padding_in_input_order(tiny_bert):
  config = modeling.BertConfig.from_json_file(tiny_bert["config_file"])
  model = classifier.MultiLabelClassifier(config, 3)
  modeling.load_checkpoint(model.bert, tiny_bert["checkpoint"])
  rng = np.random.default_rng(5)
  examples = [InputExample(guid=str(i), text_a=" ".join(rng.choice(conftest.TINY_WORDS, n)),
                           text_b=" ".join(rng.choice(conftest.TINY_WORDS, 3)) if i % 3 else None)
              for i, n in enumerate(rng.integers(1, 25, size=23))]
  tokenizer = tokenization.FullTokenizer(tiny_bert["vocab_file"], True)
  converted = features.convert_examples(examples, tokenizer, 32, 3)
  strategy = tf.distribute.get_strategy()
  bucketed = inference_probabilities(model, strategy, converted, bucket=True, pad=False)
  fixed = inference_probabilities(model, strategy, converted, bucket=False, pad=True)
  assert bucketed.shape == fixed.shape == (23, 3)
  np.testing.assert_allclose(bucketed, fixed, atol=1e-6)
  # Row i is example i: the same as predicting that example alone.
  for i in (0, 7, 22):
    alone = features.convert_examples([examples[i]], tokenizer, 32, 3)
    np.testing.assert_allclose(
        inference_probabilities(model, strategy, alone, bucket=False, pad=False)[0],
        bucketed[i], atol=1e-6)
  assert len(set(converted.lengths.tolist())) > 5  # The buckets really differ in width.


def inference_probabilities(model, strategy, converted, bucket, pad):
  return inference.predict_probabilities(model, strategy, converted, 4, bucket_by_length=bucket,
                                         pad_to_max=pad)
