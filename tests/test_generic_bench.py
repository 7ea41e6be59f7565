"""The generic task's bench scripts run, on small files that the tests write.

bench/write_own_data.py must write psychexp in three layouts that the generic task reads as the
built-in psychexp task does: that is what the real-data comparison rests on.
"""

import json
import os
import pickle
import random
import subprocess
import sys

from processors import generic
import processors
from tests import clitools
from tests.conftest import REPO_DIR


def run_script(*args):
  result = subprocess.run([sys.executable, *args], cwd=REPO_DIR, capture_output=True, text=True,
                          timeout=300, check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  return json.loads(result.stdout)


def write_shared_data(root):
  """A small stand-in for ../shared/data: psychexp's two files and DeepMoji's insults pickle."""
  rng = random.Random(0)
  psychexp = root / "psychexp"
  psychexp.mkdir(parents=True)
  for split, count in (("train", 25), ("test", 6)):
    rows = [(tuple(int(j == i % 7) for j in range(7)), clitools.random_text(rng, 3, 9))
            for i in range(count)]
    text = clitools.labels_first_lines(rows, "float")
    # A tab inside a text, and quotes, which the CSV and TSV must quote.
    text = text.replace("\t", '\tsaid "hi",\t', 1)
    clitools.write_text(psychexp / f"{split}_psychexp.txt", text)
  (root / "deepmoji").mkdir()
  texts = [clitools.random_text(rng, 2, 8) + (" , quoted \"x\"" if i % 3 else "")
           for i in range(20)]
  with open(root / "deepmoji" / "kaggle-insults_raw.pickle", "wb") as f:
    pickle.dump({"texts": texts, "info": [{"label": i % 2} for i in range(20)],
                 "train_ind": list(range(12)), "val_ind": [12, 13, 14],
                 "test_ind": list(range(15, 20))}, f, protocol=2)


def test_write_own_data_gives_the_built_in_psychexp_examples(tmp_path):
  write_shared_data(tmp_path / "shared")
  report = run_script("bench/write_own_data.py", f"--shared_data={tmp_path / 'shared'}",
                      f"--output_dir={tmp_path / 'own'}")
  assert report["kaggle_insults (rows, positives)"] == {
      "train": [12, 6], "dev": [3, 1], "test": [5, 3]}
  builtin = processors.get_processor("psychexp")
  data_dir = str(tmp_path / "shared" / "psychexp")
  expected = {split: list(getattr(builtin, f"get_{split}_examples")(data_dir))
              for split in ("train", "dev", "test")}
  assert any("\t" in e.text_a for e in expected["train"] + expected["test"])
  for layout in ("wide", "names", "ids"):
    folder = str(tmp_path / "own" / f"psychexp_{layout}")
    own = generic.GenericProcessor(generic.Options(data_dir=folder, id_column="id"))
    assert own.get_labels() == builtin.get_labels()
    for split in ("train", "dev", "test"):
      assert list(getattr(own, f"get_{split}_examples")(folder)) == expected[split], layout
  insults = generic.GenericProcessor(generic.Options(
      data_dir=str(tmp_path / "own" / "kaggle_insults"), id_column="id"))
  assert insults.get_labels() == ["insult"]
  assert len(insults.get_train_examples(str(tmp_path / "own" / "kaggle_insults"))) == 12


def test_big_csv_bench_reports_speed_and_memory(tmp_path):
  report = run_script("bench/generic_big_csv.py", "--rows=500", "--stages=read,as_objects",
                      f"--work_dir={tmp_path}")
  assert report["rows"] == 500 and os.path.exists(tmp_path / "train.csv")
  assert [stage["stage"] for stage in report["stages"]] == ["read", "as_objects"]
  for stage in report["stages"]:
    assert stage["examples"] == 500
    assert stage["rows_per_second"] > 0 and stage["peak_rss_mib"] > 0
