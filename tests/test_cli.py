"""python -m grader: input errors are one line and exit 2; output formats; misbehaving code."""
import json
import time
import xml.etree.ElementTree as ET

import pytest

from tests.grading import ROOT, grade_variants, notebook, run_grader

NB01 = ROOT / "solutions" / "01_bernoulli_mask.ipynb"


def _bad_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.ipynb").write_text(NB01.read_text())
    (tmp_path / "01_a.txt").write_text("hello")
    (tmp_path / "01_bad.ipynb").write_text('{"cells": [')
    (tmp_path / "01_list.ipynb").write_text("[1, 2]")
    (tmp_path / "01_v3.ipynb").write_text(json.dumps({"nbformat": 3, "cells": []}))
    (tmp_path / "01_bin.ipynb").write_bytes(b"\xff\xfe\x00garbage")
    (tmp_path / "notes.ipynb").write_text(NB01.read_text())
    (tmp_path / "two").mkdir()
    for name in ("01_mine.ipynb", "01_bernoulli_mask-Copy1.ipynb"):
        (tmp_path / "two" / name).write_text(NB01.read_text())
    return {
        "same notebook twice": ([NB01, ROOT / "notebooks"], "given twice"),
        "ambiguous copies": ([tmp_path / "two"], "several notebooks"),
        "missing path": ([tmp_path / "nope"], "no such file"),
        "not a notebook": ([tmp_path / "01_a.txt"], "not a notebook"),
        "invalid JSON": ([tmp_path / "01_bad.ipynb"], "not valid notebook JSON"),
        "not a notebook object": ([tmp_path / "01_list.ipynb"], "no list of cells"),
        "old format": ([tmp_path / "01_v3.ipynb"], "format 3"),
        "binary": ([tmp_path / "01_bin.ipynb"], "not UTF-8"),
        "empty folder": ([tmp_path / "empty"], "no notebooks"),
        "no course notebooks": ([tmp_path / "other"], "no course notebooks"),
        "unknown notebook name": ([tmp_path / "notes.ipynb"], "not a course notebook"),
        "unknown exercise": ([NB01, "--only", "nosuch"], "no exercise called"),
        "bad option": ([NB01, "--seed", "x"], "invalid int"),
    }


BAD_INPUTS = ["same notebook twice", "ambiguous copies", "missing path", "not a notebook", "invalid JSON",
              "not a notebook object", "old format", "binary", "empty folder", "no course notebooks",
              "unknown notebook name", "unknown exercise", "bad option"]


def test_every_unusable_input_is_tested(tmp_path):
    assert sorted(_bad_inputs(tmp_path)) == sorted(BAD_INPUTS)


@pytest.mark.parametrize("name", BAD_INPUTS)   # each its own test: the workers share them out
def test_unusable_input_is_one_clear_line_and_exit_2(tmp_path, name):
    args, words = _bad_inputs(tmp_path)[name]
    proc = run_grader(args)
    assert proc.returncode == 2, (name, proc.returncode, proc.stderr)
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("grader: "), (name, proc.stderr)
    assert words in err[0], (name, err[0])
    assert "Traceback" not in proc.stderr + proc.stdout



def test_json_is_gradescope_results_and_junit_is_written(tmp_path):
    out, xml = tmp_path / "results.json", tmp_path / "junit.xml"
    proc = run_grader([NB01, "--json", out, "--junitxml", xml])
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert isinstance(data["score"], (int, float)) and data["tests"]
    for t in data["tests"]:
        assert set(t) >= {"name", "score", "max_score", "status", "output"}
        assert t["status"] in ("passed", "failed") and 0 <= t["score"] <= t["max_score"]
    assert data["score"] == sum(t["score"] for t in data["tests"])
    suite = ET.parse(xml).getroot()
    tests = suite.find(".//testsuite").get("tests") if suite.tag == "testsuites" else suite.get("tests")
    assert int(tests) == len(data["tests"])
    assert "total:" in proc.stdout


def test_exit_status_is_0_whatever_the_score(tmp_path):
    proc = run_grader([ROOT / "notebooks" / "01_bernoulli_mask.ipynb"])
    assert proc.returncode == 0 and "not implemented" in proc.stdout


def test_same_submission_same_score_every_run():
    a, b = (run_grader([NB01, "-v"]).stdout.rsplit("graded in", 1)[0] for _ in range(2))
    assert a == b


HOSTILE = {
    "loops forever": "def bernoulli_mask(shape, p, rng=None):\n    while True:\n        pass\n",
    "calls sys.exit": "def bernoulli_mask(shape, p, rng=None):\n    import sys\n    sys.exit(0)\n",
    "calls os._exit": "def bernoulli_mask(shape, p, rng=None):\n    import os\n    os._exit(0)\n",
}


@pytest.mark.parametrize("name", HOSTILE)
def test_misbehaving_function_costs_only_its_exercise_and_finishes_fast(tmp_path, name):
    cells = ["import numpy as np", HOSTILE[name], "def helper(x):\n    return x + 1\n"]
    t0 = time.monotonic()
    proc = run_grader([notebook(tmp_path / "01_bernoulli_mask.ipynb", cells), "--json", tmp_path / "r.json",
                       "--timeout", "2"])
    elapsed = time.monotonic() - t0
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["score"] == 0
    word = {"loops forever": "did not finish", "calls sys.exit": "sys.exit",
            "calls os._exit": "ended the process"}[name]
    assert any(word in t["output"] for t in data["tests"]), [t["output"] for t in data["tests"]]
    assert elapsed < 15, f"grading took {elapsed:.1f} s"


def test_syntax_error_elsewhere_costs_only_that_cell():
    g = grade_variants("01_bernoulli_mask", "bernoulli_mask",
                       {"syntax": "def other(:\n    pass\n", "nameerror": "x = undefined_name\n"})
    for v in g.values():
        assert v.score == v.max_score, v.messages()


def test_renamed_function_is_reported_as_not_found(tmp_path):
    cells = ["import numpy as np", "def bernoulli_masks(shape, p, rng=None):\n    return np.ones(shape, bool)\n"]
    proc = run_grader([notebook(tmp_path / "01_bernoulli_mask.ipynb", cells), "-v"])
    assert "bernoulli_mask was not found in your notebook — did you rename it" in proc.stdout
    assert "not found" in run_grader([tmp_path / "01_bernoulli_mask.ipynb"]).stdout


def test_broken_definition_is_reported_with_its_cell(tmp_path):
    cells = ["import numpy as np", "def bernoulli_mask(shape, p, rng=None)\n    return 1\n"]
    proc = run_grader([notebook(tmp_path / "01_bernoulli_mask.ipynb", cells), "-v"])
    assert "SyntaxError in cell 2" in proc.stdout


def test_the_exactly_named_notebook_wins_over_a_copy(tmp_path):
    (tmp_path / "01_bernoulli_mask.ipynb").write_text(NB01.read_text())
    blank = ROOT / "notebooks" / "01_bernoulli_mask.ipynb"
    (tmp_path / "01_bernoulli_mask-Copy1.ipynb").write_text(blank.read_text())
    proc = run_grader([tmp_path, "--only", "bernoulli_mask"])
    assert proc.returncode == 0 and "13/13" in proc.stdout, proc.stdout
