"""garbage_collection.paused_then_frozen and the import that uses it, each in a fresh process:
freezing in the test process would keep every earlier test's garbage for good."""

import json

from tests import clitools


def printed_json(code):
  """Runs `code` in a fresh interpreter in the repository; returns what it printed as JSON."""
  return json.loads(clitools.run_python(code).stdout.splitlines()[-1])


def test_the_block_runs_without_collections_then_freezes_what_it_made():
  state = printed_json(
      "import gc, json, garbage_collection\n"
      "with garbage_collection.paused_then_frozen():\n"
      "  inside = gc.isenabled()\n"
      "  before = gc.get_stats()[0]['collections']\n"
      "  made = [[i] for i in range(5000)]\n"
      "  after = gc.get_stats()[0]['collections']\n"
      "print(json.dumps({'inside': inside, 'collections_inside': after - before,\n"
      "                  'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count(),\n"
      "                  'tracked_after': len(gc.get_objects())}))\n")
  assert state["inside"] is False and state["collections_inside"] == 0
  assert state["enabled"] is True
  assert state["frozen"] >= 5000
  assert state["tracked_after"] < 1000  # What the block left is out of the collector's walks.


def test_a_collector_the_user_turned_off_stays_off_and_nothing_is_frozen():
  state = printed_json(
      "import gc, json, garbage_collection\n"
      "gc.disable()\n"
      "with garbage_collection.paused_then_frozen():\n"
      "  made = [[i] for i in range(5000)]\n"
      "print(json.dumps({'enabled': gc.isenabled(), 'frozen': gc.get_freeze_count()}))\n")
  assert state == {"enabled": False, "frozen": 0}


def test_the_products_first_import_of_tensorflow_freezes_and_a_later_call_does_not():
  state = printed_json(
      "import gc, json, sys, console\n"
      "console.import_tensorflow(0)\n"
      "first = gc.get_freeze_count()\n"
      "made = [[i] for i in range(5000)]\n"
      "console.import_tensorflow(0)\n"
      "print(json.dumps({'first': first, 'second': gc.get_freeze_count(),\n"
      "                  'enabled': gc.isenabled(), 'keras': 'keras' in sys.modules}))\n")
  assert state["first"] > 100_000  # TensorFlow's and Keras' modules, classes and functions.
  assert state["second"] == state["first"]
  assert state["enabled"] is True and state["keras"] is True
