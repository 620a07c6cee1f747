"""The GitHub Actions template: valid YAML that grades a pushed submission and uploads
results.json and JUnit XML.  Its grading step is run here as written (with sudo stubbed)."""
import json
import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.grading import ROOT, notebook

yaml = pytest.importorskip("yaml")   # PyYAML comes with Jupyter
TEMPLATE = ROOT / "grader" / "templates" / "github-actions" / "grade.yml"
CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError('p')\n"
           "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) >= p\n")


def workflow():
    return yaml.safe_load(TEMPLATE.read_text())


def test_is_a_workflow_triggered_by_push_that_uploads_the_results():
    wf = workflow()
    assert "push" in wf[True] or "push" in wf.get("on", {})   # YAML 1.1 reads `on` as True
    steps = wf["jobs"]["grade"]["steps"]
    uses = [s.get("uses", "") for s in steps]
    assert any(u.startswith("actions/checkout@") for u in uses)
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "results/" and upload["if"] == "always()"
    grade = next(s for s in steps if s.get("name") == "Grade")["run"]
    assert "--json ../results/results.json" in grade and "--junitxml ../results/junit.xml" in grade


def test_the_grading_step_runs_as_written(tmp_path):
    grade = next(s for s in workflow()["jobs"]["grade"]["steps"] if s.get("name") == "Grade")["run"]
    course = tmp_path / "course"
    shutil.copytree(ROOT / "grader", course / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    if (ROOT / "solutions").exists():
        shutil.copytree(ROOT / "solutions", course / "solutions")
    (tmp_path / "submission" / "notebooks").mkdir(parents=True)
    notebook(tmp_path / "submission" / "notebooks" / "01_bernoulli_mask.ipynb", ["import numpy as np", CORRECT])
    summary = tmp_path / "summary.md"
    script = 'sudo() { while [[ "$1" == --* ]]; do shift; done; "$@"; }\nset -e\n' + grade
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "NOTEBOOKS": "notebooks",
           "PATH": f"{os.path.dirname(os.sys.executable)}:{os.environ['PATH']}"}
    proc = subprocess.run(["bash", "-c", script], cwd=course, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    res = json.loads((tmp_path / "results" / "results.json").read_text())
    assert res["score"] > 0 and res["tests"]
    assert ET.parse(tmp_path / "results" / "junit.xml").getroot() is not None
    assert "total:" in summary.read_text()
