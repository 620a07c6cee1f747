"""check() inside a real Jupyter kernel whose working folder is notebooks/ (as when a learner
opens a notebook), and grade() from Python."""
import nbformat
import pytest
from nbclient import NotebookClient

from grader import grade
from grader.inline import GradingError
from tests.grading import ROOT


def _run_until_check(path, replace=None):
    nb = nbformat.read(str(path), as_version=4)
    upto = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith("check("))
    nb.cells = nb.cells[: upto + 1]
    if replace:
        for c in nb.cells:
            if c.cell_type == "code" and "def bernoulli_mask" in c.source:
                c.source = replace
    NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(path.parent)}}).execute()
    return "".join(o.get("text", "") for o in nb.cells[upto].outputs)


def test_check_in_a_student_notebook_reports_not_implemented():
    out = _run_until_check(ROOT / "notebooks" / "01_bernoulli_mask.ipynb")
    assert "bernoulli_mask: 0 of" in out and "not implemented yet" in out


def test_check_reports_the_learners_mistake_in_the_kernel():
    swapped = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
               "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) < p\n")
    out = _run_until_check(ROOT / "notebooks" / "01_bernoulli_mask.ipynb", replace=swapped)
    assert "✗ bernoulli_mask" in out and "swapped" in out


def test_grade_from_python():
    res = grade(ROOT / "solutions" / "01_bernoulli_mask.ipynb")
    assert res["score"] == sum(t["max_score"] for t in res["tests"]) > 0
    with pytest.raises(GradingError, match="no such file"):
        grade(ROOT / "nope.ipynb")
