"""The Gradescope autograder: the zip builds, and run_autograder — run against a fake
/autograder folder — writes results.json from the grader's process in every case."""
import json
import os
import shutil
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
                 "grader/cli.py", "grader/gradescope.py", f"grader/checks/test_{STEM}.py",
                 f"solutions/{STEM}.ipynb"):
        assert must in names, must
    info = zipfile.ZipFile(autograder).getinfo("run_autograder")
    assert (info.external_attr >> 16) & 0o111, "run_autograder must be executable"
    cfg = json.loads(zipfile.ZipFile(autograder).read("gradescope.json"))
    assert cfg["exercise_visibility"] == {"bernoulli_mask": "after_due_date"} and cfg["only"] == "01"
    assert cfg["grader_version"] == __import__("grader").__version__, "the zip reports the package's version"
    solution = json.loads(zipfile.ZipFile(autograder).read(f"solutions/{STEM}.ipynb"))
    assert all(not c.get("outputs") for c in solution["cells"])
    again = subprocess.run([sys.executable, "-m", "grader.package", "gradescope", str(autograder)],
                           cwd=ROOT, capture_output=True, text=True)
    assert again.returncode == 2 and "already exists" in again.stderr


def course_copy(where, mtime, mode):
    """The grader, solutions and data copied to where, every file with this mtime and mode."""
    for part in ("grader", "solutions", "data"):
        shutil.copytree(ROOT / part, where / part, ignore=shutil.ignore_patterns("__pycache__", "course"))
    for f in where.rglob("*"):
        if f.is_file():
            os.chmod(f, mode)
            os.utime(f, (mtime, mtime))
    return where


def test_zip_is_byte_for_byte_reproducible(tmp_path):
    """Two checkouts made at different times, with different file modes, give the same bytes."""
    zips = []
    for name, mtime, mode in (("a", 1_000_000_000, 0o644), ("b", 1_700_000_000, 0o755)):
        course = course_copy(tmp_path / name, mtime, mode)
        out = tmp_path / f"{name}.zip"
        env = {k: v for k, v in os.environ.items() if k != "DROPOUT_COURSE"}
        proc = subprocess.run([sys.executable, "-m", "grader.package", "gradescope", str(out), "--only", "01",
                               "--exercise-visibility", "bernoulli_mask=hidden"], cwd=course,
                              env={**env, "PYTHONPATH": str(course)}, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        zips.append(out.read_bytes())
    assert zips[0] == zips[1], "the autograder zip depends on file times or modes"
    again = tmp_path / "again.zip"
    proc = subprocess.run([sys.executable, "-m", "grader.package", "gradescope", str(again), "--only", "01",
                           "--exercise-visibility", "bernoulli_mask=hidden"], cwd=tmp_path / "a",
                          env={**env, "PYTHONPATH": str(tmp_path / "a")}, capture_output=True, text=True)
    assert proc.returncode == 0 and again.read_bytes() == zips[0], "two builds differ"


def test_zip_holds_only_what_grading_needs(autograder):
    z = zipfile.ZipFile(autograder)
    names = z.namelist()
    assert names == sorted(names) and len(set(names)) == len(names)
    for never in ("grader/generate.py", "grader/benchmark.py", "grader/package.py", "data/README.md",
                  "data/make_moons.py", "data/export_digits.py"):
        assert never not in names, never
    assert not [n for n in names if "__pycache__" in n or n.startswith(("grader/templates/", "grader/course/",
                                                                          "notebooks/", "tests/"))]
    assert "data/load.py" in names and "data/moons.npz" in names   # notebooks import the loader
    for info in z.infolist():
        assert info.date_time == (1980, 1, 1, 0, 0, 0), info.filename
        mode = info.external_attr >> 16
        assert mode == (0o100755 if info.filename in ("setup.sh", "run_autograder") else 0o100644), info.filename
    assert z.read("requirements.txt").decode().splitlines() == [
        line for line in z.read("requirements.txt").decode().splitlines() if "==" in line]   # exact pins


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
    # Gradescope's keys only (its specification), and the table shown as a fenced Markdown block
    assert set(res) <= {"score", "execution_time", "output", "output_format", "test_output_format",
                        "test_name_format", "visibility", "stdout_visibility", "extra_data", "tests",
                        "leaderboard"}, set(res)
    for t in res["tests"]:
        assert set(t) <= {"score", "max_score", "status", "name", "name_format", "number", "output",
                          "output_format", "tags", "visibility", "extra_data"}, set(t)
    assert res["output_format"] == "md" and res["output"].startswith("```\n") and "total:" in res["output"]


def test_a_broken_zip_upload_is_named_with_what_is_wrong(autograder, tmp_path):
    res, _ = run_autograder(autograder, tmp_path, lambda sub: (sub / "work.zip").write_bytes(b"not a zip"))
    assert res["score"] == 0 and "work.zip is not a readable zip file" in res["output"], res["output"]


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
