"""No student notebook hands out the solution of a graded exercise.

A graded exercise is every top-level function or class of a solution notebook whose
definition holds a `### BEGIN SOLUTION` region (the generator stubs those regions).  In
every student notebook (notebooks/*.ipynb), each definition of such a name, anywhere in
any code cell, must be a stub: every function that is graded — or, for a class, every
method that holds a solution region in some solution notebook — must end every call in
`raise NotImplementedError`.  A working copy of an exercise given out in a later notebook
(for the demonstrations there) is a leak: pasted into the graded notebook it scores full
marks.  The check reads the notebooks with `ast`; it never runs them.
"""
import ast
import json
from pathlib import Path

import pytest

from grader import generate

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
STUDENTS = sorted((ROOT / "notebooks").glob("*.ipynb"))
DEFS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def code_cells(path):
    """[(cell number from 1, source)] of the code cells of a notebook."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, cell in enumerate(nb["cells"], start=1):
        if cell["cell_type"] == "code":
            src = cell["source"]
            out.append((i, "".join(src) if isinstance(src, list) else src))
    return out


def parse(source):
    """The cell as a module; IPython magics and shell lines are blanked first."""
    lines = ["" if ln.lstrip().startswith(("%", "!")) else ln for ln in source.split("\n")]
    return ast.parse("\n".join(lines))


def holds_region(node, spans):
    """True if one of the 0-based line spans of solution regions lies inside node."""
    first, last = node.lineno - 1, node.end_lineno - 1
    if getattr(node, "decorator_list", None):
        first = min(first, min(d.lineno for d in node.decorator_list) - 1)
    # a region that opens inside the definition (comments such as the END marker are not
    # part of the tree, so the region may end after the node's last statement), or one
    # that holds the whole definition
    return any(first < b <= last for b, e in spans) or any(b <= first and last <= e for b, e in spans)


def graded_exercises():
    """{name: {"where": {solution notebooks}, "methods": {method names with a region}}}."""
    graded = {}
    for path in SOLUTIONS:
        for _, src in code_cells(path):
            spans = generate.regions(src.split("\n"), f"{path.name}: ")
            if not spans:
                continue
            for node in parse(src).body:
                if not isinstance(node, DEFS) or not holds_region(node, spans):
                    continue
                entry = graded.setdefault(node.name, {"where": set(), "methods": set(),
                                                      "class": isinstance(node, ast.ClassDef)})
                entry["where"].add(path.stem)
                if isinstance(node, ast.ClassDef):
                    entry["methods"] |= {m.name for m in node.body
                                         if isinstance(m, DEFS[:2]) and holds_region(m, spans)}
    return graded


def is_not_implemented(stmt):
    """`raise NotImplementedError` or `raise NotImplementedError(...)`."""
    if not isinstance(stmt, ast.Raise) or stmt.exc is None:
        return False
    exc = stmt.exc.func if isinstance(stmt.exc, ast.Call) else stmt.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def can_finish(stmt):
    """True if stmt could end the call other than by raising: a return or yield in it
    (nested functions, lambdas and classes excluded)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return False
    todo = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, (ast.Return, ast.Yield, ast.YieldFrom)):
            return True
        todo += [c for c in ast.iter_child_nodes(node)
                 if not isinstance(c, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef))]
    return False


def is_stub(fn):
    """Every call of fn ends in `raise NotImplementedError`: the raise is a statement of the
    body itself, and nothing before it can return (code before it is the given part)."""
    for stmt in fn.body:
        if is_not_implemented(stmt):
            return True
        if can_finish(stmt) or isinstance(stmt, ast.Raise):
            return False
    return False


def working_parts(node, entry):
    """What in this definition of a graded name is not a stub (empty list: it is a stub)."""
    if isinstance(node, ast.ClassDef):
        methods = {m.name: m for m in node.body if isinstance(m, DEFS[:2])}
        bad = [f"{node.name}.{name}" for name, m in methods.items()
               if name in entry["methods"] and not is_stub(m)]
        # a method assigned in the class body (forward = something) is not a stub either
        for stmt in node.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                bad += [f"{node.name}.{t.id} (assigned)" for t in targets
                        if isinstance(t, ast.Name) and t.id in entry["methods"]]
        return bad
    if not entry["class"] and isinstance(node, DEFS[:2]):
        return [] if is_stub(node) else [node.name]
    kind = "class" if isinstance(node, ast.ClassDef) else "function"
    return [f"{node.name} (a {kind} where the exercise is a {'class' if entry['class'] else 'function'})"]


def leaks_in(path, graded):
    """Messages, one per definition of a graded name in the student notebook that works."""
    problems = []
    for number, src in code_cells(path):
        try:
            tree = parse(src)
        except SyntaxError:
            continue                     # a cell that does not parse defines nothing
        for node in ast.walk(tree):
            if isinstance(node, DEFS) and node.name in graded:
                entry = graded[node.name]
                bad = working_parts(node, entry)
                if bad:
                    verb = "has a working body" if len(bad) == 1 else "have working bodies"
                    problems.append(
                        f"{path.name}, cell {number}, line {node.lineno}: {', '.join(bad)} {verb}, "
                        f"but {node.name} is an exercise (solution region in "
                        f"{', '.join(sorted(entry['where']))}) — a student notebook may only carry "
                        "its NotImplementedError stub")
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    if isinstance(t, ast.Name) and t.id in graded:
                        problems.append(f"{path.name}, cell {number}, line {node.lineno}: assigns "
                                        f"the exercise name {t.id} (solution region in "
                                        f"{', '.join(sorted(graded[t.id]['where']))})")
    return problems


GRADED = graded_exercises()


def test_the_solutions_define_graded_exercises():
    # a test that found no exercise would pass vacuously
    assert {"Dropout", "MLP", "mc_dropout_predict", "relative_error"} <= set(GRADED), sorted(GRADED)
    assert {"__init__", "train", "eval", "forward", "backward"} <= GRADED["Dropout"]["methods"]
    assert STUDENTS, "no student notebooks in notebooks/"


@pytest.mark.parametrize("path", STUDENTS, ids=[p.stem for p in STUDENTS])
def test_no_student_notebook_defines_a_working_exercise(path):
    problems = leaks_in(path, GRADED)
    assert not problems, "\n".join(problems)


# ---------------------------------------------------------------- the detector itself
def _defs(src):
    return {n.name: n for n in ast.walk(ast.parse(src)) if isinstance(n, DEFS)}


@pytest.mark.parametrize("src, stub", [
    ("def f(x):\n    '''doc'''\n    # YOUR CODE HERE\n    raise NotImplementedError()\n", True),
    ("def f(x):\n    a = 1\n    b = [a]\n    raise NotImplementedError\n", True),
    ("def f(x):\n    return x\n", False),
    ("def f(x):\n    if x:\n        return x\n    raise NotImplementedError()\n", False),
    ("def f(x):\n    return x\n    raise NotImplementedError()\n", False),
    ("def f(x):\n    try:\n        raise NotImplementedError()\n    except Exception:\n        pass\n", False),
    ("def f(x):\n    raise ValueError()\n    raise NotImplementedError()\n", False),
    ("def f(x):\n    def g():\n        return 1\n    raise NotImplementedError()\n", True),
])
def test_is_stub(src, stub):
    assert is_stub(_defs(src)["f"]) is stub


def test_a_working_method_of_a_graded_class_is_a_leak(tmp_path):
    entry = {"where": {"05_x"}, "methods": {"forward", "backward"}, "class": True}
    stub = "class D:\n    def forward(self, x):\n        raise NotImplementedError()\n" \
           "    def backward(self, d):\n        raise NotImplementedError()\n" \
           "    def extra(self):\n        return 1\n"
    assert working_parts(_defs(stub)["D"], entry) == []
    leaky = stub.replace("def backward(self, d):\n        raise NotImplementedError()",
                         "def backward(self, d):\n        return d")
    assert working_parts(_defs(leaky)["D"], entry) == ["D.backward"]
    nb = {"cells": [{"cell_type": "code", "source": leaky, "metadata": {}, "outputs": []}],
          "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "06_y.ipynb"
    path.write_text(json.dumps(nb))
    [message] = leaks_in(path, {"D": entry})
    assert "D.backward" in message and "05_x" in message
