"""The grader's pytest plugin for runs in this folder (`python -m pytest --pyargs grader.checks
--submission PATH`); inert without --submission.  See grader/checks/conftest.py.

Also: how the project's tests share out over processes with pytest-xdist (`python -m pytest -n 2`,
as `.ci/run` does).  Items that must run in one process go to one worker together:
- the cells of one notebook under nbval (they share one kernel, each cell needs the ones above,
  so they also keep their order);
- the tests of a module that share a module-scoped fixture (a mistake table's one grading batch,
  a class batch, a built wheel): split over two processes, the fixture would be built twice.
  Which tests share one is read from the module's source (the fixtures each test asks for by
  name, and the fixtures those ask for), so that a module with two batches runs them on both
  workers at once.
Every other test is handed out on its own, to whichever worker is free.  Without -n, nothing
changes; an explicit --dist other than load is left alone."""
import ast
import functools
from pathlib import Path

import pytest

from grader.checks.conftest import pytest_addoption  # noqa: F401 - registers grader.pytest_plugin

ROOT = Path(__file__).resolve().parent


def _fixture_scope(func):
    """(scope, autouse) of a function decorated with pytest.fixture, or None."""
    for deco in func.decorator_list:
        call = deco if isinstance(deco, ast.Call) else None
        target = call.func if call else deco
        if getattr(target, "attr", getattr(target, "id", "")) != "fixture":
            continue
        kw = {k.arg: k.value.value for k in (call.keywords if call else ())
              if isinstance(k.value, ast.Constant)}
        return kw.get("scope", "function"), bool(kw.get("autouse"))
    return None


@functools.cache
def shared_fixtures(path):
    """{test function name: the name of the group of module-scoped fixtures it needs} for the test
    module at `path`; tests that need none are left out.  Fixtures that one test needs together
    are one group (built in one process, they are built once)."""
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return {}
    funcs = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    fixtures = {f.name: _fixture_scope(f) for f in funcs if _fixture_scope(f)}
    wide = {name for name, (scope, _) in fixtures.items() if scope != "function"}
    if not wide:
        return {}
    autouse = {name for name, (_, auto) in fixtures.items() if auto}
    args = {f.name: {a.arg for a in f.args.args + f.args.kwonlyargs} for f in funcs}

    def needs(name, seen=()):
        """The module-scoped fixtures that asking for `name` builds."""
        if name in seen or name not in args:
            return set()
        found = {name} & wide
        for arg in args[name] & set(fixtures):
            found |= {arg} & wide | needs(arg, (*seen, name))
        return found

    tests = {f.name: needs(f.name) | set().union(*(needs(a) | ({a} & wide) for a in autouse))
             for f in funcs if f.name.startswith("test")}
    groups = []                                           # sets of fixtures built together
    for used in tests.values():
        joined = [g for g in groups if g & used]
        groups = [g for g in groups if not g & used] + [set(used).union(*joined)] if used else groups
    return {name: "+".join(sorted(next(g for g in groups if g & used)))
            for name, used in tests.items() if used}


def work_unit(nodeid, root=ROOT):
    """What a test is handed out with: its notebook, the tests sharing its module-scoped
    fixtures, or nothing (itself alone)."""
    path, _, rest = nodeid.partition("::")
    if path.endswith(".ipynb"):
        return path
    if path.endswith(".py"):
        group = shared_fixtures(Path(root) / path).get(rest.split("::")[-1].split("[")[0])
        if group:
            return f"{path}::{group}"
    return nodeid


@pytest.hookimpl(optionalhook=True)   # pytest-xdist's hook: without xdist installed, never called
def pytest_xdist_make_scheduler(config, log):
    if config.option.dist != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        """xdist's loadscope (a whole work unit to a free worker, the largest first), with the
        units of work_unit()."""

        def _split_scope(self, nodeid):
            return work_unit(nodeid, config.rootpath)

    return Scheduling(config, log)
