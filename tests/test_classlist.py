"""Grades an LMS imports: summary.csv and gradebook.csv keep learners' names exactly (Unicode
included) and report collisions, join an optional roster (--roster), leave the score blank —
never 0 — with a status when there is none, carry a Points Possible row (gradebook.csv) and
the grader's version, commit and seed."""
import csv
import io
import subprocess
import sys

import pytest

from grader import __version__
from grader.nbfile import BadInput
from grader.publish import classlist
from tests.grading import ROOT, notebook

STEM = "01_bernoulli_mask"
SETTINGS = {"seed": 3, "timeout": 5.0, "submission_timeout": 120.0, "memory": 2048, "only": None, "jobs": 1}


def record(score, top=2.0):
    return {"notebook": STEM, "exercise": "bernoulli_mask", "name": "n", "check": "c", "number": "01.1",
            "max_score": top, "score": score, "status": "passed" if score == top else "failed",
            "kind": None if score == top else "failed", "message": ""}


def summary(roster=None):
    entries = [("Jos_Garc_a", "/subs/José García.zip"), ("b", "/subs/Åsa"), ("c", "/subs/ÅSA"),
               ("d", "/subs/broken.zip"), ("e", "/subs/Zero"), ("f", "/subs/bad_json")]
    answers = {"Jos_Garc_a": {"records": [record(2.0)]}, "b": {"records": [record(1.0)]},
               "c": {"records": [record(1.0)]}, "d": {"records": [], "fatal": "not a readable zip file"},
               "e": {"records": [record(0.0)]},
               "f": {"records": [record(0.0)], "unreadable": {STEM: "not valid notebook JSON"}}}
    return classlist.summarize(entries, answers, SETTINGS, 1.0, roster)


def rows(text):
    return list(csv.DictReader(io.StringIO(text)))


def test_names_are_kept_exactly_and_collisions_reported_not_renamed():
    r = {x["learner"]: x for x in rows(classlist.summary_csv(summary()))}
    assert set(r) == {"José García", "Åsa", "ÅSA", "broken", "Zero", "bad_json"}
    assert "name collision" in r["Åsa"]["problems"] and "/subs/ÅSA" in r["Åsa"]["problems"]
    assert "name collision" in r["ÅSA"]["problems"] and "collision" not in r["Zero"]["problems"]


def test_no_score_is_a_blank_cell_with_a_status_never_a_zero():
    r = {x["learner"]: x for x in rows(classlist.summary_csv(summary()))}
    assert r["broken"]["score"] == "" and r["broken"]["01 bernoulli_mask"] == ""
    assert r["broken"]["status"].startswith("unreadable") and "not a readable zip" in r["broken"]["problems"]
    assert r["bad_json"]["score"] == r["bad_json"]["01 bernoulli_mask"] == "" and r["bad_json"]["status"] != "graded"
    assert r["Zero"]["score"] == "0" and r["Zero"]["status"] == "graded"
    assert r["José García"]["score"] == "2" and r["José García"]["max_score"] == "2"


def test_the_grader_version_commit_and_seed_are_recorded():
    s = summary()
    assert s["grader"]["version"] == __version__ and s["grader"]["seed"] == 3 and s["grader"]["commit"]
    for r in rows(classlist.summary_csv(s)):
        assert (r["grader_version"], r["grader_commit"], r["seed"]) == (__version__, s["grader"]["commit"], "3")


def test_a_roster_is_joined_and_people_without_a_submission_get_a_blank_row(tmp_path):
    path = tmp_path / "roster.csv"
    path.write_text("\ufeffSubmission,Student ID,Email\nJosé García,1001,jose@example.org\n"
                    "Åsa,1002,asa@example.org\nZoë Ng,1003,zoe@example.org\n", encoding="utf-8")
    roster = classlist.read_roster(path)
    r = {x["learner"]: x for x in rows(classlist.summary_csv(summary(roster)))}
    assert (r["José García"]["student_id"], r["José García"]["email"]) == ("1001", "jose@example.org")
    zoe = r["Zoë Ng"]
    assert zoe["status"] == "not submitted" and zoe["score"] == "" and zoe["student_id"] == "1003"
    assert "not on the roster" in r["Zero"]["problems"] and r["Zero"]["student_id"] == ""
    book = list(csv.reader(io.StringIO(classlist.gradebook_csv(summary(roster)))))
    assert book[0][:5] == ["Student", "ID", "SIS User ID", "SIS Login ID", "Section"]
    assert book[1][0] == "Points Possible" and book[1][-1] == "2"
    by_name = {b[0]: b for b in book[2:]}
    assert by_name["José García"][2] == "1001" and by_name["José García"][-1] == "2"
    assert by_name["Zoë Ng"][-1] == "" and by_name["broken"][-1] == ""


@pytest.mark.parametrize("text, words", [
    ("name,grade\nann,3\n", "student id or e-mail column"),
    ("submission,email\nann,a@x\nANN,b@x\n", "line 2 too"),
    ("", "empty"),
])
def test_a_bad_roster_is_one_clear_line(tmp_path, text, words):
    (tmp_path / "r.csv").write_text(text)
    with pytest.raises(BadInput, match=words):
        classlist.read_roster(tmp_path / "r.csv")
    with pytest.raises(BadInput, match="cannot read roster"):
        classlist.read_roster(tmp_path / "missing.csv")


def test_pandas_reads_the_csv_files_with_the_right_types():
    import pandas as pd  # in requirements/test.txt: the CSVs must open in pandas, never skipped
    roster = {"José García": {"student_id": "0042", "email": "j@x"}}
    s = summary(roster)
    df = pd.read_csv(io.StringIO(classlist.summary_csv(s)), dtype={"student_id": str})
    assert df["score"].dtype.kind == "f" and df["max_score"].dtype.kind in "if"
    assert df.loc[df["learner"] == "broken", "score"].isna().all()
    assert df.loc[df["learner"] == "Zero", "score"].iloc[0] == 0
    assert df.loc[df["learner"] == "José García", "student_id"].iloc[0] == "0042"
    book = pd.read_csv(io.StringIO(classlist.gradebook_csv(s)), skiprows=[1], dtype={"SIS User ID": str})
    assert book.iloc[:, -1].dtype.kind == "f" and book["Student"].tolist()[0] == "José García"


def test_the_batch_takes_a_roster_and_writes_both_files(tmp_path):
    subs = tmp_path / "subs"
    (subs / "José García").mkdir(parents=True)
    notebook(subs / "José García" / f"{STEM}.ipynb", ["import numpy as np", "x = 1"])
    (subs / "broken.zip").write_bytes(b"not a zip")
    (tmp_path / "roster.csv").write_text("submission,student_id\nJosé García,1\nbroken,2\nAbsent,3\n")
    proc = subprocess.run([sys.executable, "-m", "grader", str(subs), "--out", str(tmp_path / "out"), "--only",
                           "01", "--jobs", "1", "--roster", str(tmp_path / "roster.csv")], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = {x["learner"]: x for x in rows((tmp_path / "out" / "summary.csv").read_text())}
    assert set(r) == {"José García", "broken", "Absent"}
    assert r["José García"]["score"] == "0" and r["broken"]["score"] == r["Absent"]["score"] == ""
    assert [r[n]["student_id"] for n in ("José García", "broken", "Absent")] == ["1", "2", "3"]
    assert "Points Possible" in (tmp_path / "out" / "gradebook.csv").read_text()
    bad = subprocess.run([sys.executable, "-m", "grader", str(subs), "--out", str(tmp_path / "out2"),
                          "--roster", str(tmp_path / "nope.csv")], cwd=ROOT, capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 2 and "cannot read roster" in bad.stderr and not (tmp_path / "out2").exists()
