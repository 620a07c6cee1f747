"""The Gradescope autograder: the zip builds, and run_autograder — run against a fake
/autograder folder — writes results.json from the grader's process in every case."""
import json
import os
import subprocess
import sys
import zipfile

import pytest

from tests.grading import ROOT, notebook

STEM = "01_bernoulli_mask"
CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError('p')\n"
           "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) >= p\n")

pytestmark = pytest.mark.skipif(not list((ROOT / "solutions").glob("*.ipynb")),
                                reason="the autograder ships the reference solutions")


def package(tmp_path, *options):
    out = tmp_path / "autograder.zip"
    proc = subprocess.run([sys.executable, "-m", "grader.package", "gradescope", str(out), *options],
                          cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def autograder(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gradescope")
    return package(tmp, "--only", "01", "--exercise-visibility", "bernoulli_mask=after_due_date",
                   "--timeout", "5")


def run_autograder(zip_path, tmp_path, fill):
    """Unzip into a fake /autograder, let fill(submission folder) upload, run, return results."""
    root = tmp_path / "autograder"
    for d in ("source", "submission", "results"):
        (root / d).mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as z:
        z.extractall(root / "source")
    for name in ("run_autograder", "setup.sh"):
        os.chmod(root / "source" / name, 0o755)
    (root / "submission_metadata.json").write_text('{"previous_submissions": []}')
    fill(root / "submission")
    proc = subprocess.run([str(root / "source" / "run_autograder")], capture_output=True, text=True,
                          env={**os.environ, "AUTOGRADER_ROOT": str(root), "GRADER_PYTHON": sys.executable},
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads((root / "results" / "results.json").read_text()), proc


def test_zip_holds_the_autograder_and_refuses_to_overwrite(autograder, tmp_path):
    names = zipfile.ZipFile(autograder).namelist()
    for must in ("setup.sh", "run_autograder", "gradescope.json", "requirements.txt",
                 "grader/cli.py", "grader/publish/gradescope.py", f"grader/test_{STEM}.py", f"solutions/{STEM}.ipynb"):
        assert must in names, must
    info = zipfile.ZipFile(autograder).getinfo("run_autograder")
    assert (info.external_attr >> 16) & 0o111, "run_autograder must be executable"
    cfg = json.loads(zipfile.ZipFile(autograder).read("gradescope.json"))
    assert cfg["exercise_visibility"] == {"bernoulli_mask": "after_due_date"} and cfg["only"] == "01"
    solution = json.loads(zipfile.ZipFile(autograder).read(f"solutions/{STEM}.ipynb"))
    assert all(not c.get("outputs") for c in solution["cells"])
    again = subprocess.run([sys.executable, "-m", "grader.package", "gradescope", str(autograder)],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


def test_nested_notebooks_are_found_and_graded(autograder, tmp_path):
    def fill(sub):
        (sub / "dropout" / "notebooks").mkdir(parents=True)
        notebook(sub / "dropout" / "notebooks" / f"{STEM}.ipynb", ["import numpy as np", CORRECT])
    res, proc = run_autograder(autograder, tmp_path, fill)
    assert {t["name"].split(" · ")[0] for t in res["tests"]} == {STEM}   # --only 01
    assert res["score"] == sum(t["max_score"] for t in res["tests"]) > 0
    assert all(t["visibility"] == "after_due_date" for t in res["tests"] if t["name"].startswith(STEM))
    assert res["stdout_visibility"] == "hidden"
    assert "total:" in proc.stdout


def test_a_zip_upload_is_read(autograder, tmp_path):
    def fill(sub):
        nb = notebook(tmp_path / f"{STEM}.ipynb", ["import numpy as np", CORRECT])
        with zipfile.ZipFile(sub / "work.zip", "w") as z:
            z.write(nb, f"work/{STEM}.ipynb")
    res, _ = run_autograder(autograder, tmp_path, fill)
    assert res["score"] > 0


def test_an_empty_upload_gets_zero_and_a_reason(autograder, tmp_path):
    res, _ = run_autograder(autograder, tmp_path, lambda sub: (sub / "notes.txt").write_text("hi"))
    assert res["score"] == 0 and "no course notebooks found" in res["output"]


def test_the_learner_cannot_write_the_results(autograder, tmp_path):
    results = tmp_path / "autograder" / "results" / "results.json"
    forge = (f"    try:\n        open({str(results)!r}, 'w').write('{{\"score\": 99, \"tests\": []}}')\n"
             "    except Exception:\n        pass\n    return np.ones(shape, dtype=bool)\n")
    body = "def bernoulli_mask(shape, p, rng=None):\n" + forge

    def fill(sub):
        notebook(sub / f"{STEM}.ipynb", ["import numpy as np", body])
    res, _ = run_autograder(autograder, tmp_path, fill)
    assert res["score"] < 13 and res["tests"]
