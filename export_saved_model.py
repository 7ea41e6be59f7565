"""Exports a trained run as a SavedModel that takes raw text; see README.md, "Ship the model".

  python export_saved_model.py --output_dir=RUN --export_dir=EXPORT \
      --task_name=TASK --vocab_file=V --bert_config_file=C [the run's other flags]

The newest checkpoint in --output_dir is exported, with the run's tokenization in the graph and
its cut-offs: thresholds.json for --cutoff_type=dynamic, --cut_off for static, none when unset.
Pass the flags the run was trained with: the folder does not record them.
"""

from absl import flags
from absl import logging

import cli

FLAGS = flags.FLAGS

flags.DEFINE_string("output_dir", None, "The run's folder: its newest checkpoint is exported.")
flags.DEFINE_string("export_dir", None,
                    "Where to write the SavedModel. It must not exist or be empty, unless "
                    "--overwrite. For TF Serving, a numbered version folder: models/NAME/1.")
flags.DEFINE_bool("overwrite", False, "Replace a non-empty --export_dir.")
flags.DEFINE_string("task_name", None, "The run's task: its labels and whether it has pairs.")
flags.DEFINE_string("bert_config_file", None, "The run's bert_config.json.")
flags.DEFINE_string("vocab_file", None, "The run's vocab.txt; copied into the export.")
flags.DEFINE_bool("do_lower_case", True, "The run's casing.")
flags.DEFINE_integer("max_seq_length", 128, "The run's --max_seq_length: longer inputs are "
                     "truncated as in training.", lower_bound=3)
flags.DEFINE_bool("add_dense", False, "The run's --add_dense.")
flags.DEFINE_enum("cutoff_type", None, ["static", "dynamic"],
                  "The run's cut-offs: static (--cut_off), dynamic (thresholds.json of the "
                  "exported checkpoint) or unset (no predictions output).")
flags.DEFINE_float("cut_off", 0.5, "The static cut-off.", lower_bound=0.0, upper_bound=1.0)
flags.DEFINE_string("text_b_column", None, "--task_name=generic: the run's --text_b_column, if "
                    "it had one; the export then takes text_b.")
flags.mark_flags_as_required(
    ["output_dir", "export_dir", "task_name", "bert_config_file", "vocab_file"])


def main(argv):
  del argv
  cli.import_tensorflow()
  import serving  # pylint: disable=g-import-not-at-top
  serving.check_export_dir(FLAGS.export_dir, FLAGS.overwrite)
  settings = serving.RunSettings(
      output_dir=FLAGS.output_dir, task_name=FLAGS.task_name,
      bert_config_file=FLAGS.bert_config_file, vocab_file=FLAGS.vocab_file,
      do_lower_case=FLAGS.do_lower_case, max_seq_length=FLAGS.max_seq_length,
      add_dense=FLAGS.add_dense, cutoff_type=FLAGS.cutoff_type, cut_off=FLAGS.cut_off,
      text_b_column=FLAGS.text_b_column)
  module, metadata = serving.build(settings)
  serving.save(module, metadata, FLAGS.vocab_file, FLAGS.export_dir, FLAGS.overwrite)
  logging.info("Exported %s (step %d, labels %s, cut-offs: %s) to %s", metadata["checkpoint"],
               metadata["global_step"], ", ".join(metadata["labels"]),
               metadata["cut_offs_source"] or "none", FLAGS.export_dir)


if __name__ == "__main__":
  cli.run(main)
