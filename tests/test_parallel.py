"""One learner's notebooks graded by several processes (--jobs) give exactly the results of
one process: the same records in the same order, one JUnit file, no learner process left.
A copy of the grader with a second check file (a copy of notebook 01's) stands in for a
course with several notebooks."""
import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.grading import ROOT, notebook

CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError('p')\n"
           "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) >= p\n")
SWAPPED = CORRECT.replace(">= p", "< p")
LOOPS = "def bernoulli_mask(shape, p, rng=None):\n    while True:\n        pass\n"


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    """The grader with check files for notebooks 01, 02 and 03 (02 and 03: copies of 01's)."""
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(ROOT / "grader", root / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    for f in (root / "grader").glob("test_[0-9][0-9]_*.py"):
        if f.name != "test_01_bernoulli_mask.py":
            f.unlink()
    for n in ("02_copy", "03_again"):
        shutil.copy(ROOT / "grader" / "test_01_bernoulli_mask.py", root / "grader" / f"test_{n}.py")
    work = root / "work"
    work.mkdir()
    notebook(work / "01_bernoulli_mask.ipynb", ["import numpy as np", CORRECT])
    notebook(work / "02_copy.ipynb", ["import numpy as np", SWAPPED])
    return root, work


def grade(root, work, jobs, tmp_path):
    out, xml = tmp_path / f"r{jobs}.json", tmp_path / f"j{jobs}.xml"
    proc = subprocess.run([sys.executable, "-m", "grader", str(work), "--jobs", str(jobs), "--json", str(out),
                           "--junitxml", str(xml), "--timeout", "2"], cwd=root, capture_output=True,
                          text=True, env={**os.environ, "PYTHONPATH": str(root)}, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), ET.parse(xml).getroot(), proc.stdout


def test_parallel_grading_equals_serial_grading(course, tmp_path):
    root, work = course
    (one, xml1, out1), (three, xml3, out3) = (grade(root, work, j, tmp_path) for j in (1, 3))
    assert three["tests"] == one["tests"] and three["score"] == one["score"]
    assert sum(t["score"] for t in one["tests"] if t["name"].startswith("01_")) == 13
    assert sum(t["score"] for t in one["tests"] if t["name"].startswith("02_")) < 13
    assert any("not found" in t["output"] or "missing" in t["output"] for t in three["tests"]
               if t["name"].startswith("03_again"))
    suite1 = xml1.find("testsuite") if xml1.tag == "testsuites" else xml1
    suite3 = xml3.find("testsuite") if xml3.tag == "testsuites" else xml3
    assert suite3.get("tests") == suite1.get("tests") == str(len(one["tests"]))
    assert suite3.get("failures") == suite1.get("failures")
    assert out1.rsplit("graded in", 1)[0] == out3.rsplit("graded in", 1)[0]


def test_a_hang_in_one_runner_costs_only_its_notebook(course, tmp_path):
    root, work = course
    notebook(work / "03_again.ipynb", ["import numpy as np", LOOPS])
    try:
        res, _, _ = grade(root, work, 3, tmp_path)
    finally:
        (work / "03_again.ipynb").unlink()
    by_nb = {}
    for t in res["tests"]:
        by_nb.setdefault(t["name"].split(" · ")[0], []).append(t)
    assert sum(t["score"] for t in by_nb["01_bernoulli_mask"]) == 13
    assert sum(t["score"] for t in by_nb["03_again"]) == 0
    assert any("did not finish" in t["output"] for t in by_nb["03_again"])
    child = str(root / "grader" / "_child.py").encode()
    left = [d for d in os.listdir("/proc") if d.isdigit() and child in _cmdline(d)]
    assert left == []


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""
