"""python -m grader SUBMISSIONS --out RESULTS: the interface, the files it writes, its errors."""
import csv
import json
import subprocess
import sys
import zipfile

import pytest

from grader import engine, uploads
from tests.grading import ROOT, notebook

STEM = "01_bernoulli_mask"
CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError('p')\n"
           "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) >= p\n")
SWAPPED = CORRECT.replace(">= p", "< p")


def grader(*args):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def learner(folder, source):
    folder.mkdir(parents=True)
    return notebook(folder / f"{STEM}.ipynb", ["import numpy as np", source])


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("batch")
    subs = tmp / "subs"
    learner(subs / "Ann Smith", CORRECT)
    nb = learner(tmp / "bob", SWAPPED)
    with zipfile.ZipFile(subs / "bob.zip", "w") as z:
        z.write(nb, f"bob/notebooks/{STEM}.ipynb")
    (subs / "notes.txt").write_text("not a submission")
    out = tmp / "results"
    proc = grader(subs, "--out", out, "--jobs", "2", "--seed", "7", "--only", "01")
    return out, proc


def test_writes_summary_csv_json_and_each_learners_results(graded):
    out, proc = graded
    assert proc.returncode == 0, proc.stderr
    with open(out / "summary.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["learner"] for r in rows] == ["Ann Smith", "bob"]   # the name exactly (issue 17)
    assert list(rows[0])[:4] == ["learner", "score", "max_score", "01 bernoulli_mask"]
    ann, bob = rows
    assert ann["score"] == ann["max_score"] == ann["01 bernoulli_mask"] == "13" and not ann["problems"]
    assert float(bob["score"]) < 13
    summary = json.loads((out / "summary.json").read_text())
    assert summary["grader"]["seed"] == 7 and summary["max_score"] == 13
    assert summary["learners"][1]["exercises"]["01 bernoulli_mask"] == float(bob["score"])
    for who in ("Ann_Smith", "bob"):
        res = json.loads((out / "learners" / who / "results.json").read_text())
        assert {"score", "tests"} <= set(res) and all({"name", "score", "max_score", "status", "output"}
                                                      <= set(t) for t in res["tests"])
    assert "█" not in proc.stdout, "no progress bar when stdout is not a terminal"
    assert "graded 2 submissions" in proc.stdout


def test_one_learners_folder_is_a_class_of_one_and_missing_notebooks_are_named(tmp_path):
    learner(tmp_path / "me", CORRECT)
    proc = grader(tmp_path / "me", "--out", tmp_path / "out", "--no-reference-check")   # all 7: twice as long
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "out" / "learners" / "me" / "results.json").exists()
    stems = sorted(engine.course_stems().values())
    with open(tmp_path / "out" / "summary.csv", newline="") as f:
        (row,) = list(csv.DictReader(f))
    assert row["01 bernoulli_mask"] == "13"
    if len(stems) > 1:   # one line names every missing notebook
        assert row["problems"] == "missing: " + ", ".join(f"{s}.ipynb" for s in stems[1:])


@pytest.mark.parametrize("case", ["no submissions", "json with out", "no parent", "folder without out",
                                  "bad jobs", "bad only"])
def test_unusable_batch_input_is_one_line_and_exit_2(tmp_path, case):
    (tmp_path / "empty").mkdir()
    learner(tmp_path / "class" / "ann", CORRECT)
    args = {"no submissions": [tmp_path / "empty", "--out", tmp_path / "o"],
            "json with out": [tmp_path / "class", "--out", tmp_path / "o", "--json", tmp_path / "r.json"],
            "no parent": [tmp_path / "class", "--out", tmp_path / "nope" / "o"],
            "folder without out": [tmp_path / "class"],
            "bad jobs": [tmp_path / "class", "--out", tmp_path / "o", "--jobs", "0"],
            "bad only": [tmp_path / "class", "--out", tmp_path / "o", "--only", "01,nosuch"]}[case]
    proc = grader(*args)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("grader: ")
    assert not (tmp_path / "o").exists()
    if case == "folder without out":
        assert "--out" in proc.stderr


def test_learner_names_become_safe_unique_folder_names():
    taken = set()
    assert [uploads.learner_id(n, taken) for n in ("Ann Smith", "ann smith", "../../etc", ".hidden", "")] \
        == ["Ann_Smith", "ann_smith-2", "etc", "hidden", "submission"]


def test_discover_tells_a_learners_folder_from_a_class(tmp_path):
    stems = engine.course_stems()
    learner(tmp_path / "one", CORRECT)
    assert [i for i, _ in uploads.discover([tmp_path / "one"], stems)] == ["one"]
    (tmp_path / "class").mkdir()
    (tmp_path / "one").rename(tmp_path / "class" / "one")
    (tmp_path / "class" / "two.zip").write_bytes(b"")
    (tmp_path / "class" / "__MACOSX").mkdir()
    assert [i for i, _ in uploads.discover([tmp_path / "class"], stems)] == ["one", "two"]
