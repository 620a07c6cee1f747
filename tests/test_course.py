"""The course as shipped: notebooks/ is generated from solutions/ and leaks nothing; the
grader gives the solutions full marks and the blank notebooks zero; the README lists them."""
import os
import re
import subprocess
import sys

import nbformat
import pytest

from grader import generate
from tests.grading import ROOT

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


# The grader gives the solutions full marks and the blank notebooks zero, every check "not
# implemented": tests/test_pytest_front_end.py, with both front ends on the whole course.


def test_readme_syllabus_lists_every_notebook():
    readme = (ROOT / "README.md").read_text()
    for stem in STEMS:
        assert stem in readme, f"README.md does not mention {stem}"


_BLOCK_FRAMEWORKS = '''
import importlib.abc, importlib.machinery, sys

class _Refuse(importlib.abc.Loader):
    def create_module(self, spec):
        raise ModuleNotFoundError(f"No module named {spec.name!r}", name=spec.name)

    def exec_module(self, module):
        pass

class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("keras", "jax", "jaxlib", "torch", "tensorflow"):
            return importlib.machinery.ModuleSpec(name, _Refuse())
        return None

sys.meta_path.insert(0, _Finder())
'''


def test_notebook_07_runs_all_without_keras(tmp_path):
    """Run All on 07 where keras, jax and torch cannot be imported: no cell fails, the NumPy
    exercises' checks pass, and every skipped Keras cell says how to enable it."""
    nbclient = pytest.importorskip("nbclient")
    (tmp_path / "sitecustomize.py").write_text(_BLOCK_FRAMEWORKS)
    nb = nbformat.read(str(ROOT / "solutions" / "07_dropout_in_frameworks.ipynb"), as_version=4)
    env_path = os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path          # inherited by the kernel nbclient starts
    try:
        nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                                resources={"metadata": {"path": str(ROOT / "solutions")}}).execute()
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = old
    text = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    assert "Keras is not installed" in text and "pip install keras jax" in text
    assert "PyTorch not installed" in text
    for name in ("convert_rate", "keras_dropout", "to_keras_weights"):
        assert re.search(rf"✓ {name}: (\d+) of \1 checks passed", text), f"{name}'s check did not pass without Keras"
    skipped = text.count("this Keras cell is skipped")
    assert skipped >= 4, f"expected the Keras-only cells to be skipped, saw {skipped}"
