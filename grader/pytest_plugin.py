"""The checks under pytest: a thin front end over grader.engine, inert unless asked.

    python -m pytest --pyargs grader.checks --submission PATH [-k ...] [-x] [--lf] [--pdb] [--junitxml F]

PATH is what `python -m grader PATH` takes: a notebook, or a folder of notebooks (give
--submission several times for several notebooks).  pytest collects the check files of the
notebooks graded (grader/checks/test_NN_name.py) itself: each check is a test item,
file::function or file::Class::method, with pytest's marks (exercise, points, visibility).
Its `learner` fixture is the engine's handle on that notebook of the submission: one sandboxed
learner process serves the whole session, as with the engine, and is ended when the session
ends.  A check's verdict, points and message are the engine's (grader.engine.outcome and
Check.record): a failed item shows the message the learner would read (the traceback with
--tb=long/short/native, or when the grader itself failed), each test case of --junitxml
carries its record as properties, and the terminal summary ends with the engine's table.

Without --submission the check files are skipped at collection, with the reason.  The plugin
is registered by grader/checks/conftest.py (an initial conftest when pytest is pointed at the
package) and, once the grader is installed, by its `pytest11` entry point; it acts only on
the check files of this package.  The check files are loaded by grader.checks' own loader (no
assertion rewriting, optimize=0), so `python -O` changes nothing here either.
"""
import time
import types

import pytest

from grader import engine, nbfile
from grader.checks import HERE as CHECKS_DIR
from grader.checks import install_loader
from grader.config import DEFAULT, CourseNotFound

MARKERS = ("exercise(name): the exercise (a function or class of the notebook) a grader check belongs to",
           "points(n): what a grader check is worth",
           "visibility(v): the Gradescope visibility of a grader check's result")
RECORDS = pytest.StashKey[list]()
SUB = pytest.StashKey[object]()
RUN = pytest.StashKey[object]()
START = pytest.StashKey[float]()
SKIP = ("grader checks run on a submission: python -m pytest --pyargs grader.checks --submission PATH "
        "(a notebook, or a folder of notebooks)")


def pytest_addoption(parser):
    group = parser.getgroup("grader", "the dropout course's grader checks")
    group.addoption("--submission", action="append", metavar="PATH", default=None,
                    help="grade this notebook or folder of notebooks with the checks of grader.checks "
                         "(as python -m grader PATH); may be given several times")
    group.addoption("--grader-json", metavar="FILE", default=None,
                    help="also write the checks' records as Gradescope's results.json to FILE "
                         "(as python -m grader --json FILE)")


def pytest_configure(config):
    for line in MARKERS:
        config.addinivalue_line("markers", line)
    install_loader()   # first in sys.meta_path: the checks are never assertion-rewritten
    config.stash[RECORDS] = []
    config.stash[START] = time.monotonic()


def pytest_sessionstart(session):
    """The submission is read and checked before anything is collected: unusable input is one
    line and exit status 4 (pytest's usage error), as python -m grader's exit status 2."""
    config = session.config
    paths = config.getoption("submission", None)
    if not paths:
        return
    try:
        DEFAULT.root()
        from grader.sandbox.host import sandbox_available
        if not sandbox_available():
            raise nbfile.BadInput("grading needs the sandbox (fork and resource limits: Linux, macOS "
                                  "or WSL), which is missing here")
        config.stash[SUB] = engine.load(paths, DEFAULT)
    except (nbfile.BadInput, CourseNotFound) as e:
        raise pytest.UsageError(f"grader: {e}") from None


def _grading(config):
    """The session's engine Run: its learner process is started by the first check."""
    if RUN not in config.stash:
        config.stash[RUN] = engine.Run(config.stash[SUB], DEFAULT)
        config.stash[RUN].start()
    return config.stash[RUN]


def pytest_sessionfinish(session):
    config = session.config
    run = config.stash.get(RUN, None)
    if run is not None:
        run.close()   # every learner process is gone before anything is written
    path = config.getoption("grader_json", None)
    if path:
        from grader.publish import report
        seconds = time.monotonic() - config.stash[START]
        report.write_json_atomic(path, report.gradescope(config.stash[RECORDS], seconds))


def _stem(path):
    """The notebook stem of a check file of this package (None for any other file)."""
    if path.parent.resolve() == CHECKS_DIR and path.name.startswith("test_") and path.suffix == ".py":
        stem = path.stem[len("test_"):]
        return stem if stem in engine.check_files() else None
    return None


class CheckFile(pytest.Module):
    """A check file: its checks when a submission is given and grades its notebook."""

    def collect(self):
        if not self.config.getoption("submission"):
            return [NoSubmission.from_parent(self, name="checks")]
        if _stem(self.path) not in self.config.stash[SUB].expected:
            return []
        return super().collect()


class NoSubmission(pytest.Item):
    """Stands for a check file's checks when no submission is given: skipped, with the reason."""

    def runtest(self):
        pytest.skip(SKIP)

    def reportinfo(self):
        return self.path, None, f"{self.path.name}: needs --submission"


def pytest_pycollect_makemodule(module_path, parent):
    if _stem(module_path):
        return CheckFile.from_parent(parent, path=module_path)
    return None


def _check(item):
    """(number, engine Check) of a check item; None for any other item."""
    stem = _stem(item.path) if isinstance(item, pytest.Function) else None
    if stem is None:
        return None
    cls = item.cls.__name__ if item.cls else None
    for i, check in enumerate(engine.collect(stem), 1):
        if check.name == item.originalname and (check.cls.__name__ if check.cls else None) == cls:
            return f"{stem[:2]}.{i}", check
    return None


@pytest.fixture
def learner(request):
    """The engine's handle on the notebook of the submission that this check file grades."""
    stem = _stem(request.node.path)
    if stem is None:
        raise pytest.UsageError("the learner fixture belongs to the checks of grader.checks")
    return engine.Learner(_grading(request.config), stem)


def _message_only(item, excinfo):
    """A check's failure shown as its message (set by pytest_runtest_makereport below) without
    pytest's traceback, which costs more than grading the check does; --tb=... shows it."""
    error = excinfo.value
    if item.config.option.tbstyle == "auto" and isinstance(error, Exception):
        _status, kind, message = engine.outcome(error)
        if kind != "grader_error":
            return message
    return pytest.Function.repr_failure(item, excinfo)


def pytest_collection_modifyitems(items):
    for item in items:
        if _check(item) is not None:
            item.repr_failure = types.MethodType(_message_only, item)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    rep = yield
    found = _check(item) if call.when == "call" else None
    if found is None:
        return rep
    error = call.excinfo.value if call.excinfo else None
    if error is not None and not isinstance(error, Exception):
        return rep   # pytest's own outcomes (skip, exit), a KeyboardInterrupt
    number, check = found
    record = check.record(number, engine.PASSED if error is None else engine.outcome(error),
                          DEFAULT.visibility)
    item.config.stash[RECORDS].append(record)
    rep.user_properties += [(k, "" if v is None else str(v)) for k, v in record.items()]
    if error is not None and record["kind"] != "grader_error" and item.config.option.tbstyle == "auto":
        rep.longrepr = record["message"]
    return rep


def pytest_terminal_summary(terminalreporter, config):
    records = config.stash.get(RECORDS, [])
    if records:
        from grader.publish import report
        terminalreporter.write_sep("=", "grader")
        terminalreporter.write_line(report.table(records))
