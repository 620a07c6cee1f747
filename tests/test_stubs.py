"""The handed-out-stub shortcut: read as text in time linear in the cells, and only ever a
saving — a name is reported "not implemented" without running only when nothing in the
notebook can give it another value; when in doubt the call runs."""
import time

import pytest

from grader import nbfile, stubs
from grader.engine import reference_source
from tests.grading import ROOT, grade_notebook, notebook, solution_cells

STUB = 'def f(x):\n    """Doc,\n    two lines."""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n'
KLASS = ("class L:\n    \"\"\"A layer.\"\"\"\n\n    def __init__(self, p):\n        # YOUR CODE HERE\n"
         "        raise NotImplementedError()\n\n    def forward(self, x):\n        raise NotImplementedError()\n")


def test_handed_out_stub_cells_are_stubs():
    assert stubs.stub_names([STUB, KLASS]) == {"f", "L"}
    assert stubs.stub_names(["# a comment\n\n" + STUB + "\n\n" + STUB.replace("f(", "g(")]) == {"f", "g"}


@pytest.mark.parametrize("cells", [
    [STUB, "def f(x):\n    return x\n"],                               # redefined later
    ["def f(x):\n    return x\n", STUB + "print(f(1))\n"],              # stub cell with other code
    [STUB, "f = lambda x: x\n"],
    [STUB, "from mine import f\n"],
    [STUB, "if True:\n    def f(x):\n        return x\n"],              # an indented definition
    [STUB, "for f in [abs]:\n    pass\n"],
    [STUB, "globals()['f'] = abs\n"],                                    # a name never written
    [STUB, "exec('f = abs')\n"],
    [STUB, "def g():\n    global f\n    f = abs\ng()\n"],
    [STUB, "import builtins\n"],
    [STUB, "from numpy import *\n"],
    [STUB, "\uff46 = abs\n"],                                            # fullwidth f: NFKC is f
    [STUB, "NotImplementedError = ValueError\n"],                         # the stub raises another
    ["def deco(fn):\n    return abs\n", "@deco\n" + STUB],                 # a decorated stub (14.13)
    ["@deco\n" + STUB],
    ["def g(x):\n    return x\n\n\n" + STUB.replace("def f(x):", "def f(x=g(1)):")],  # code in a default
    [STUB.replace("def f(x):", "async def f(x):")],
    ["s = '''\n" + STUB + "'''\n"],                                      # a stub inside a string
    [STUB.replace("    raise", "    return 1\n    raise")],
    [STUB.replace("()", "() if x else None")],
    ["def f(x):\n    if x:\n        raise NotImplementedError\n    return x\n"],
    # the stub __init__ left above the learner's own: Python keeps the last (14.13)
    [KLASS.replace("    def forward", "    def __init__(self, p):\n        self.p = p\n\n    def forward")],
    [KLASS.replace("class L:", "class L(Base):")],
    [KLASS.replace("    def forward(self, x):\n        raise NotImplementedError()\n", "")
     .replace("__init__", "forward")],                                  # no __init__: L() works
])
def test_anything_that_may_bind_the_name_is_not_a_stub(cells):
    assert not stubs.stub_names(cells) & {"f", "L"}, cells


def test_the_course_notebooks_as_handed_out():
    """A blank notebook's exercises are all stubs (its demo cells, handed out byte for byte,
    may call them); the solutions have none; editing a demo cell that names a stub turns the
    shortcut off for that name."""
    for nb in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        blank = nbfile.code_cells(nb)
        found = stubs.notebook_stubs(ROOT, nb.stem, blank)
        assert found, nb.name
        assert stubs.notebook_stubs(ROOT, nb.stem, nbfile.code_cells(ROOT / "solutions" / nb.name)) == set()
    blank = nbfile.code_cells(ROOT / "notebooks" / "01_bernoulli_mask.ipynb")
    assert stubs.notebook_stubs(ROOT, "01_bernoulli_mask", blank) == {"bernoulli_mask"}
    edited = [c.replace("bernoulli_mask(10, 0.3, a)", "bernoulli_mask(10, 0.4, a)") for c in blank]
    assert edited != blank
    assert stubs.notebook_stubs(ROOT, "01_bernoulli_mask", edited) == set()


def test_a_handed_out_cell_that_execs_what_another_cell_defines_turns_the_shortcut_off():
    demo = "exec(SOURCE, globals())\n"
    handed_out = {demo: stubs.bound_names(demo) | stubs._mentions(demo, ())}
    assert stubs.stub_names([STUB, demo], handed_out) == {"f"}
    assert stubs.stub_names([STUB, "SOURCE = 'f = ab' + 's'\n", demo], handed_out) == set()


@pytest.mark.parametrize("line", [
    "def f(\n", "def f(x):\n", "class A:\n", "    def __init__(self):\n", '"""\n', "@d\n",
    "x = 1\n", "\uff46" * 60 + "\n", "def f(x):\n    '''doc\n", "f(" * 40 + "\n",
])
def test_one_megabyte_cell_is_scanned_in_linear_time(line):
    """14.6: 70 kB of `def f(` lines took 37 s (quadratic).  One pass now: 1 MB of any line
    in well under 2 s, and 4 MB in about 4 times as long (not 16)."""
    cells = [STUB, line * (2**20 // len(line))]
    t0 = time.perf_counter()
    stubs.stub_names(cells)
    stubs.stub_cell(cells[1])
    assert time.perf_counter() - t0 < 2.0, line


def test_many_stub_names_cost_no_more_than_a_few():
    """Each stub name is searched for in the other cells: their number is bounded."""
    many = "".join(f"def f{i}(x):\n    raise NotImplementedError()\n" for i in range(20000))
    t0 = time.perf_counter()
    assert stubs.stub_names([many, "x = 1\n" * 100000]) == set()
    assert time.perf_counter() - t0 < 2.0
    few = "".join(f"def f{i}(x):\n    raise NotImplementedError()\n" for i in range(stubs.MAX_STUBS))
    assert len(stubs.stub_names([few, "x = 1\n"])) == stubs.MAX_STUBS


def _graded_01(tmp_path, cells):
    return grade_notebook(notebook(tmp_path / "01_bernoulli_mask.ipynb", cells), only="bernoulli_mask")


def test_a_decorated_stub_that_works_is_graded_as_working(tmp_path):
    """14.13, by outcome: the handed-out stub under a decorator returning the learner's own
    working function gets the marks of the working function."""
    blank = nbfile.code_cells(ROOT / "notebooks" / "01_bernoulli_mask.ipynb")
    own = reference_source(ROOT, "01_bernoulli_mask", ("bernoulli_mask",)).replace(
        "def bernoulli_mask(", "def _mine(")
    deco = own + "\n\n\ndef use_mine(_stub):\n    return _mine\n"
    cells = []
    for c in blank:
        if stubs.stub_cell(c) == ["bernoulli_mask"]:
            cells += [deco, "@use_mine\n" + c]
        else:
            cells.append(c)
    assert stubs.notebook_stubs(ROOT, "01_bernoulli_mask", cells) == set()
    graded = _graded_01(tmp_path, cells)
    assert graded.score == graded.max_score > 0, graded


def test_a_class_with_the_stub_init_above_its_own_is_graded_as_working(tmp_path):
    """14.13, by outcome: Python keeps the last __init__ of a class body."""
    stem = "05_dropout_in_a_network"
    cells = solution_cells(stem)
    i = next(i for i, c in enumerate(cells) if c.startswith("class Dropout"))
    stub_init = ("    def __init__(self, p, rng=None):\n        # YOUR CODE HERE\n"
                 "        raise NotImplementedError()\n\n")
    cells[i] = cells[i].replace("    def __init__(", stub_init + "    def __init__(", 1)
    assert cells[i].count("def __init__(") == 2
    graded = grade_notebook(notebook(tmp_path / f"{stem}.ipynb", cells), only="Dropout")
    assert graded.score == graded.max_score > 0, graded


# ---------------------------------------------------------------- the shortcut: no learner process
def _grade_spied(monkeypatch, folder, shortcut=True):
    """The records of grading `folder` in this process, and the learner processes it started
    and the calls it sent them (counted where they are made: Sandbox.spawn and Sandbox.call)."""
    from grader import engine
    from grader.config import DEFAULT
    from grader.sandbox import host
    spawned, calls = [], []
    spawn, call = host.Sandbox.spawn, host.Sandbox.call

    def spy_spawn(self):
        spawned.append(self)
        return spawn(self)

    def spy_call(self, stem, probe, **kw):
        calls.append((stem, probe.__name__))
        return call(self, stem, probe, **kw)
    with monkeypatch.context() as m:
        m.setattr(host.Sandbox, "spawn", spy_spawn)
        m.setattr(host.Sandbox, "call", spy_call)
        if not shortcut:
            m.setattr(engine, "shortcut", lambda *a: None)
        records = engine.grade(engine.load([folder]), DEFAULT)
    return records, spawned, calls


def test_a_blank_submission_starts_no_learner_process(monkeypatch):
    """Every notebook as handed out (pasted stubs included: 03's forwards, 07's Dropout, 05's
    handed-out MLP on the stub Dropout): no learner process is started and no call made, and
    every record is the one the learner's process gives (its probes' own messages, e.g. 03's
    "paste your two forward functions")."""
    records, spawned, calls = _grade_spied(monkeypatch, ROOT / "notebooks")
    assert spawned == [] and calls == []
    assert records and all(r["status"] == "failed" and r["kind"] == "not_implemented" for r in records)
    assert any("paste your two forward functions" in r["message"] for r in records)
    real, spawned, calls = _grade_spied(monkeypatch, ROOT / "notebooks", shortcut=False)
    assert spawned and calls
    assert records == real


def test_pasted_stubs_beside_a_scratch_cell_are_answered_without_a_process(monkeypatch, tmp_path):
    """A notebook with a cell of the learner's own (inert: the stubs stay stubs): the calls
    whose names are all still the handed-out stubs are answered here, with the same records."""
    stem = "03_backward"
    blank = nbfile.code_cells(ROOT / "notebooks" / f"{stem}.ipynb")
    notebook(tmp_path / f"{stem}.ipynb", blank + ["scratch = 1\n"])
    found = stubs.shortcut(ROOT, stem, blank + ["scratch = 1\n"])
    assert not found.whole and {"dropout_backward", "dropout_forward_inverted"} <= found.fixed
    records, spawned, calls = _grade_spied(monkeypatch, tmp_path)
    assert calls == [] and any("paste your two forward" in r["message"] for r in records)
    real, _, calls = _grade_spied(monkeypatch, tmp_path, shortcut=False)
    assert calls and records == real


def test_a_stub_cell_of_the_learners_own_is_never_run_by_the_grader():
    """The shortcut stands only for stubs the course's own cells define: a stub-shaped cell
    that differs from the handed-out one (here, another signature) is the learner's text, left
    to the learner's process."""
    stem = "01_bernoulli_mask"
    blank = nbfile.code_cells(ROOT / "notebooks" / f"{stem}.ipynb")
    edited = [c.replace("def bernoulli_mask(", "def bernoulli_mask(extra, ") if stubs.stub_cell(c) else c
              for c in blank]
    assert edited != blank and stubs.notebook_stubs(ROOT, stem, edited) == {"bernoulli_mask"}
    assert stubs.shortcut(ROOT, stem, edited) is None
    assert stubs.shortcut(ROOT, stem, blank).whole
