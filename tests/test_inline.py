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


# ---------------------------------------------------------------- where the sandbox is missing
def test_without_a_sandbox_check_works_unsandboxed_and_says_so(monkeypatch, capsys):
    """Native Windows has no fork or resource limits: check() still grades, plainly labelled
    (forced here with GRADER_NO_SANDBOX=1, which the learner's process inherits)."""
    from grader.inline import check
    from grader.nbfile import code_cells
    monkeypatch.setenv("GRADER_NO_SANDBOX", "1")
    cells = [c for c in code_cells(ROOT / "solutions" / "01_bernoulli_mask.ipynb") if c]
    check("bernoulli_mask", cells=cells)
    out = capsys.readouterr().out
    assert out.startswith("⚠ unsandboxed self-study mode"), out[:300]
    assert "✓ bernoulli_mask: 9 of 9 checks passed" in out


def test_without_a_sandbox_the_command_line_batch_and_gradescope_refuse(monkeypatch, tmp_path):
    import json
    import subprocess
    import sys
    env = {**__import__("os").environ, "GRADER_NO_SANDBOX": "1", "PYTHONPATH": str(ROOT)}
    nb = ROOT / "solutions" / "01_bernoulli_mask.ipynb"
    for args in ([str(nb)], [str(ROOT / "solutions"), "--out", str(tmp_path / "out")]):
        proc = subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, text=True,
                              env=env, cwd=tmp_path, timeout=120)
        assert proc.returncode == 2 and "needs the sandbox" in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()
    ag = tmp_path / "ag"
    (ag / "submission").mkdir(parents=True)
    (ag / "results").mkdir()
    (ag / "submission" / nb.name).write_bytes(nb.read_bytes())
    subprocess.run([sys.executable, "-m", "grader.gradescope", "--root", str(ag)], env=env,
                   cwd=tmp_path, capture_output=True, timeout=120)
    data = json.loads((ag / "results" / "results.json").read_text())
    assert data["score"] == 0 and "cannot sandbox" in data["output"]


# ---------------------------------------------------------------- a browser kernel (JupyterLite)
def test_in_a_browser_kernel_check_grades_in_process_and_says_so(monkeypatch, capsys):
    """Pyodide has no processes (subprocess fails with OSError 138) and no timers: simulated
    here, check() still grades, in the kernel's own process, plainly labelled."""
    import signal
    import subprocess
    import sys

    from grader import inline
    from grader.nbfile import code_cells

    def no_processes(*a, **k):
        raise OSError(138, "Not supported")
    monkeypatch.setattr(sys, "platform", "emscripten")
    monkeypatch.setattr(subprocess, "run", no_processes)
    monkeypatch.setattr(subprocess, "Popen", no_processes)
    monkeypatch.delattr(signal, "setitimer")
    cells = [c for c in code_cells(ROOT / "solutions" / "01_bernoulli_mask.ipynb") if c]
    inline.check("bernoulli_mask", cells=cells)
    out = capsys.readouterr().out
    assert out.startswith("⚠ in-process self-study mode"), out[:300]
    assert "✓ bernoulli_mask: 9 of 9 checks passed" in out
    swapped = [c.replace(">= p", "< p") for c in cells]
    inline.check("bernoulli_mask", cells=swapped)
    out = capsys.readouterr().out
    assert "✗ bernoulli_mask" in out and "swapped" in out


# ---------------------------------------------------------------- one source of truth (issue 19)
CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
           "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) >= p\n")
SWAPPED = CORRECT.replace(">= p", "< p")


def _saved(tmp_path, cells):
    from tests.grading import notebook
    return notebook(tmp_path / "01_bernoulli_mask.ipynb", cells)


def _check(capsys, cells, saved):
    from grader.inline import check
    check("bernoulli_mask", cells=cells, notebook=saved)
    return capsys.readouterr().out


def test_check_says_what_it_graded_and_agrees_with_the_saved_file(tmp_path, capsys):
    cells = ["import numpy as np", CORRECT]
    out = _check(capsys, cells, _saved(tmp_path, cells))
    assert "✓ bernoulli_mask" in out and "your grade reads the saved notebook" in out
    assert "the same definitions" in out and "⚠" not in out


def test_an_unsaved_edit_is_named(tmp_path, capsys):
    """13/13 in the kernel, 0/13 in the saved file: the learner is told, with the function."""
    stub = "def bernoulli_mask(shape, p, rng=None):\n    raise NotImplementedError\n"
    out = _check(capsys, ["import numpy as np", CORRECT], _saved(tmp_path, ["import numpy as np", stub]))
    assert "✓ bernoulli_mask" in out
    assert "⚠ 01_bernoulli_mask.ipynb as saved differs from what this kernel ran (bernoulli_mask)" in out
    from grader import grade
    assert grade(tmp_path / "01_bernoulli_mask.ipynb", only="bernoulli_mask")["score"] == 0


def test_cells_run_out_of_order_are_named(tmp_path, capsys):
    """The file defines the right function, then a wrong one below it; the kernel ran the
    right one last (an earlier cell re-run): the final grade reads the file's order."""
    saved = _saved(tmp_path, ["import numpy as np", CORRECT, SWAPPED])
    out = _check(capsys, ["import numpy as np", CORRECT, SWAPPED, CORRECT], saved)
    assert "✓ bernoulli_mask" in out and "differs from what this kernel ran (bernoulli_mask)" in out


@pytest.mark.parametrize("magic", ["%%time", "%%timeit -n1 -r1", "%%capture"])
def test_cell_magics_are_read_the_same_by_check_and_the_final_grade(tmp_path, magic):
    """A kernel's history holds the cell as typed; the grader strips the magic line for both."""
    from tests.grading import notebook
    cell = f"{magic}\n{CORRECT}"
    out = _run_until_check(ROOT / "notebooks" / "01_bernoulli_mask.ipynb", replace=cell) if magic == "%%time" \
        else None
    if out is not None:
        assert "✓ bernoulli_mask" in out, out
    from grader import grade
    from grader.inline import differences
    path = notebook(tmp_path / "01_bernoulli_mask.ipynb", ["import numpy as np", cell])
    res = grade(path, only="bernoulli_mask")
    assert res["score"] == sum(t["max_score"] for t in res["tests"]) > 0
    assert differences(["import numpy as np", cell], ["import numpy as np", CORRECT]) == []
