"""The course as shipped: notebooks/ is generated from solutions/ and leaks nothing; the
grader gives the solutions full marks and the blank notebooks zero; the README lists them."""
import re
import subprocess
import sys

import nbformat
import pytest

from grader import generate
from tests.grading import ROOT, grade_notebook

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STEMS = [p.stem for p in SOLUTIONS]


def test_every_notebook_has_a_solution_and_grader_checks():
    students = sorted(p.stem for p in (ROOT / "notebooks").glob("*.ipynb"))
    assert students == STEMS, "notebooks/ and solutions/ hold different notebooks"
    for stem in STEMS:
        assert (ROOT / "grader" / "checks" / f"test_{stem}.py").exists(), f"no grader/checks/test_{stem}.py"


def test_student_notebooks_are_up_to_date():
    proc = subprocess.run([sys.executable, "-m", "grader.generate", "--check"], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, "notebooks/ differs from the generator's output — run " \
        "`python -m grader.generate`:\n" + proc.stdout + proc.stderr


@pytest.mark.parametrize("stem", STEMS)
def test_student_notebook_leaks_no_solution(stem):
    sol = nbformat.read(str(ROOT / "solutions" / f"{stem}.ipynb"), as_version=4)
    student = nbformat.read(str(ROOT / "notebooks" / f"{stem}.ipynb"), as_version=4)
    assert generate.leaks(student, sol) == []
    assert any("raise NotImplementedError()" in c.source for c in student.cells)


@pytest.mark.parametrize("stem", STEMS)
def test_solution_notebook_is_well_formed(stem):
    nb = nbformat.read(str(ROOT / "solutions" / f"{stem}.ipynb"), as_version=4)
    nbformat.validate(nb)
    text = "\n".join(c.source for c in nb.cells)
    assert "SEED" in text and "default_rng(SEED)" in text, "one seeded generator in the set-up cell"
    assert re.search(r"^#+ *Summary", text, re.M), "a Summary section"
    assert re.search(r"^#+ *Questions", text, re.M), "a Questions section"
    assert "check(" in text, "check cells after the exercises"
    assert any("nbval-check-output" in c.metadata.get("tags", []) for c in nb.cells
               if c.cell_type == "code"), "summary outputs checked by nbval (a cell tagged nbval-check-output)"
    assert "NBVAL_CHECK_OUTPUT" not in text, "nbval markers are cell tags, not comments learners see"
    assert any("worked-answer" in c.metadata.get("tags", []) for c in nb.cells), \
        "worked answers to the questions (markdown cells tagged worked-answer)"
    for c in nb.cells:
        if c.cell_type == "code":
            assert not any(o.get("output_type") == "error" for o in c.outputs), "saved with an error"


def test_solutions_get_full_marks():
    g = grade_notebook(ROOT / "solutions")
    assert g.max_score > 0 and g.score == g.max_score, g.messages()
    assert {t["name"].split(" · ")[0] for t in g.tests} == set(STEMS)


def test_blank_notebooks_get_zero_each_not_implemented():
    g = grade_notebook(ROOT / "notebooks")
    assert g.score == 0 and g.max_score > 0
    for t in g.tests:
        assert "not implemented yet" in t["output"], t


def test_readme_syllabus_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for stem in STEMS:
        assert stem in readme, f"README.md does not mention {stem}"
