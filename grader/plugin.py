"""The pytest plugin behind `python -m grader`.  Inert until given a submission:

    python -m pytest -p grader.plugin --grader-submission notebooks/ grader/

Options (all namespaced --grader-*): --grader-submission PATH (repeatable; a notebook or a
folder of notebooks), --grader-seed N, --grader-only EXERCISE, --grader-json FILE
(Gradescope results.json), --grader-one-notebook (use the single notebook for every
exercise: how the inline check() grades a kernel's cells), --grader-timeout S (per call),
--grader-submission-timeout S (all calls of the submission), --grader-memory MIB,
--grader-visibility V (Gradescope visibility of every test without a visibility marker),
and, for batch grading, --grader-uid, --grader-hide, --grader-unreadable, --grader-label.

Markers: exercise(name), points(n), visibility(v) (Gradescope: visible, hidden,
after_due_date, after_published).
"""
import time
from pathlib import Path

import numpy as np
import pytest

from grader import nbfile, report, submission
from grader.sandbox import GraderBug, LearnerError, Limits, Sandbox, default_hide

GRADER_DIR = Path(__file__).resolve().parent
SESSION = pytest.StashKey()


def pytest_addoption(parser):
    g = parser.getgroup("grader", "dropout course grader")
    g.addoption("--grader-submission", action="append", default=[], metavar="PATH",
                help="a learner's notebook or folder of notebooks to grade (activates the plugin)")
    g.addoption("--grader-seed", type=int, default=0, metavar="N",
                help="seed for the grading draws (default 0: the same scores on every run)")
    g.addoption("--grader-only", default=None, metavar="EXERCISE",
                help="grade only these exercises or notebooks (comma-separated; e.g. bernoulli_mask, 01)")
    g.addoption("--grader-json", default=None, metavar="FILE", help="write Gradescope results.json")
    g.addoption("--grader-one-notebook", action="store_true",
                help="grade every exercise from the single notebook given")
    g.addoption("--grader-timeout", type=float, default=5.0, metavar="S",
                help="wall-clock limit per call into learner code (default 5 s)")
    g.addoption("--grader-submission-timeout", type=float, default=0, metavar="S",
                help="wall-clock limit for all calls of the submission (default: none)")
    g.addoption("--grader-memory", type=int, default=2048, metavar="MIB",
                help="address space per learner process (default 2048 MiB)")
    g.addoption("--grader-visibility", default=None, metavar="V",
                help="Gradescope visibility of tests that have no visibility marker")
    g.addoption("--grader-uid", type=int, default=None, help="run learner code as this leased uid")
    g.addoption("--grader-hide", action="append", default=[], metavar="PATH",
                help="a path the learner's process should not see")
    g.addoption("--grader-unreadable", action="append", default=[], metavar="STEM=WHY",
                help="a notebook of the submission that could not be read, and why")
    g.addoption("--grader-label", default=None, help="how messages name the submission's folder")


def pytest_configure(config):
    config.addinivalue_line("markers", "points(n): points the check is worth (default 1)")
    config.addinivalue_line("markers", "exercise(name): the exercise (function) a check grades")
    config.addinivalue_line("markers", "visibility(v): Gradescope visibility of the check's result "
                            "(visible, hidden, after_due_date, after_published)")
    if config.getoption("grader_submission", None):
        session = GradingSession(config)
        config.stash[SESSION] = session
        config.pluginmanager.register(session, "grader-session")


class Learner:
    """A test's handle on one notebook of the submission (see Sandbox.call)."""

    def __init__(self, session, stem):
        self._session, self.stem = session, stem

    def call(self, probe, uses=(), timeout=None, mem=None, helpers=(), **kwargs):
        s = self._session
        if self.stem not in s.notebooks:
            raise LearnerError("missing", uses[0] if uses else "", s.missing_message(self.stem))
        timeout = s.budget(timeout, uses)
        return s.sandbox().call(self.stem, probe, uses=uses, timeout=timeout, mem=mem,
                                helpers=helpers, **kwargs)

    def timed(self, probe, uses=(), timeout=None, **kwargs):
        """(value, CPU seconds) of one probe call: the CPU time of the fork that ran it and of
        everything it started, measured outside the learner's reach (see Sandbox.call)."""
        return self.call(probe, uses, timeout=timeout, cpu=True, **kwargs)

    def solution(self, name):
        """The instructor's `name` from solutions/<this notebook>.ipynb, defined here, in the
        grader's own process (never in the learner's): to time it, or to compute a reference
        result from the same inputs the learner's code got."""
        return reference_function(self.stem, name)

    def seed(self, k=0):
        """A grading seed: fixed for a given --grader-seed, different for each k."""
        return int(np.random.SeedSequence([self._session.seed, k]).generate_state(1)[0])

    def rng(self, k=0):
        return np.random.default_rng(self.seed(k))

    def reference(self, *names):
        """Source of the instructor's definitions of `names` (plus the imports they need), from
        solutions/<this notebook>.ipynb — the single source.  Send it to a probe as a string and
        exec it there into a namespace of its own, e.g. to time the learner against it."""
        return reference_source(self.stem, names)


_REFERENCE = {}


def reference_function(stem, name):
    if (stem, name) not in _REFERENCE:
        ns = {"__name__": f"reference_{stem}"}
        exec(compile(reference_source(stem, (name,)), f"<solutions/{stem}>", "exec"), ns)
        _REFERENCE[(stem, name)] = ns[name]
    return _REFERENCE[(stem, name)]


def reference_source(stem, names):
    import ast
    path = GRADER_DIR.parent / "solutions" / f"{stem}.ipynb"
    cells = nbfile.code_cells(path)
    found, imports = {}, [("np", "import numpy as np")]
    for src in cells:
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and not ast.unparse(node).startswith(
                    ("from grader", "import grader", "import matplotlib", "from matplotlib")):
                imports += [((a.asname or a.name).split(".")[0], ast.unparse(node)) for a in node.names]
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                found[node.name] = node
    missing = [n for n in names if n not in found]
    if missing:
        raise RuntimeError(f"{path.name} defines no {', '.join(missing)}")
    # only the imports the definitions use: the sandbox may not be able to import the others
    # (e.g. the setup cell's pathlib once the child has dropped its privileges)
    used = {n.id for d in found.values() for n in ast.walk(d) if isinstance(n, ast.Name)}
    needed = [imp for name, imp in imports if name in used]
    return "\n".join(dict.fromkeys(needed)) + "\n\n" + "\n\n".join(ast.unparse(found[n]) for n in names)


@pytest.fixture(scope="module")
def learner(request):
    session = request.config.stash.get(SESSION, None)
    if session is None:
        pytest.skip("grader checks run through `python -m grader PATH` (or -p grader.plugin "
                    "--grader-submission PATH)")
    return Learner(session, Path(str(request.path)).stem[len("test_"):])


def _docline(item):
    doc = getattr(item.function, "__doc__", None) or item.name
    name = " ".join(doc.strip().split("\n\n")[0].split())
    if hasattr(item, "callspec"):
        name += f" [{item.callspec.id}]"
    return name


def _exercise(item):
    m = item.get_closest_marker("exercise")
    return m.args[0] if m else item.module.__name__


def _points(item):
    m = item.get_closest_marker("points")
    return float(m.args[0]) if m else 1.0


class GradingSession:
    def __init__(self, config):
        self.config = config
        opt = config.getoption
        self.seed = opt("grader_seed")
        self.only = opt("grader_only")
        self.stems = nbfile.course_stems(GRADER_DIR)
        self.records = []
        self.t0 = time.monotonic()
        self.label = opt("grader_label")
        self.isolation = None
        prepared = config.pluginmanager.get_plugin("grader-prepared")
        self._keep_open, deadline = False, None
        if prepared is not None:
            self.sub, self._sandbox, self.limits = prepared.submission, prepared.sandbox, prepared.limits
            self._keep_open, deadline = prepared.keep_open, prepared.deadline
        else:
            self.limits = Limits(seconds=opt("grader_timeout"), mem=opt("grader_memory") << 20,
                                 submission_seconds=opt("grader_submission_timeout"))
            unreadable = dict(u.split("=", 1) for u in opt("grader_unreadable"))
            try:
                self.sub = submission.load(opt("grader_submission"), self.stems,
                                           opt("grader_one_notebook"), unreadable)
            except nbfile.BadInput as e:
                raise pytest.UsageError(str(e)) from None
            self._sandbox = None
        self.notebooks, self.paths, self.expected = self.sub.notebooks, self.sub.paths, self.sub.expected
        self.deadline = deadline or (time.monotonic() + self.limits.submission_seconds
                                     if self.limits.submission_seconds else None)

    def missing_message(self, stem):
        if stem in self.sub.unreadable:
            return f"notebook {stem}.ipynb could not be read: {self.sub.unreadable[stem]}"
        where = self.label or self.sub.folder
        return f"notebook {stem}.ipynb was not found" + (f" in {where}" if where else "")

    def budget(self, timeout, uses):
        """The call's time limit within what is left of the submission's."""
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            raise LearnerError("timeout", uses[0] if uses else "",
                               f"not run: grading of this submission stopped at its time limit of "
                               f"{self.limits.submission_seconds:g} s")
        return min(float(timeout or self.limits.seconds), left)

    def sandbox(self):
        if self._sandbox is None:
            opt = self.config.getoption
            self._sandbox = Sandbox(self.notebooks, self.limits, uid=opt("grader_uid"),
                                    hide=default_hide() + opt("grader_hide"))
        self._sandbox.start()
        return self._sandbox

    # -- selection
    def pytest_collection_modifyitems(self, config, items):
        keep, drop = [], []
        for item in items:
            stem = Path(str(item.path)).stem[len("test_"):]
            wanted = stem in self.expected and submission.selected(self.only, stem, _exercise(item))
            (keep if wanted else drop).append(item)
        if drop:
            config.hook.pytest_deselected(items=drop)
            items[:] = keep

    # -- results
    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        rep = outcome.get_result()
        if not (rep.when == "call" or (rep.when == "setup" and not rep.passed)):
            return
        stem = Path(str(item.path)).stem[len("test_"):]
        rec = {"notebook": stem, "exercise": _exercise(item), "name": _docline(item),
               "max_score": _points(item), "score": 0.0, "status": "failed", "kind": None,
               "message": "", "nodeid": item.nodeid, "check": item.name,
               "number": f"{stem[:2]}.{sum(r['notebook'] == stem for r in self.records) + 1}"}
        vis = item.get_closest_marker("visibility")
        if vis or self.config.getoption("grader_visibility"):
            rec["visibility"] = vis.args[0] if vis else self.config.getoption("grader_visibility")
        if rep.passed:
            rec.update(status="passed", score=rec["max_score"])
        elif rep.skipped:
            rec.update(kind="grader_error", message="check skipped: " + str(rep.longrepr[-1]))
        else:
            e = call.excinfo.value if call.excinfo else None
            if isinstance(e, LearnerError):
                rec.update(kind=e.kind, message=e.message)
            elif isinstance(e, AssertionError):
                rec.update(kind="failed", message=str(e) or "check failed")
            elif isinstance(e, GraderBug):
                rec.update(kind="grader_error", message="the grader could not run this check — "
                           "please report it to your instructor: " + str(e).splitlines()[0])
            else:
                rec.update(kind="grader_error", message=f"the grader could not run this check "
                           f"({type(e).__name__}: {e}) — please report it")
            rep.longrepr = rec["message"]
        self.records.append(rec)

    @pytest.hookimpl(tryfirst=True)   # before JUnit XML is written: learner processes first gone
    def pytest_sessionfinish(self, session):
        if self._sandbox is not None:
            self.isolation = self._sandbox.isolation
            if not self._keep_open:
                self._sandbox.close()   # every learner process is gone before results are written
        path = self.config.getoption("grader_json")
        if path:
            report.write_json_atomic(path, report.gradescope(self.records, time.monotonic() - self.t0))
