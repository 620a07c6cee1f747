"""python -m grader PATH... — grade a learner's notebooks and print a table.
python -m grader SUBMISSIONS --out RESULTS — grade a whole class (see grader/batch.py).

Exit status: 0 whenever grading ran (whatever the score); 2 for unusable input
(one line on stderr, no traceback); 3 if the grader itself failed.
"""
import argparse
import json
import os
import sys
import time
from pathlib import Path

from grader import nbfile, report

GRADER_DIR = Path(__file__).resolve().parent
ARGV_ENV = "_GRADER_ARGV"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
# pytest plugins grading never needs; unraisableexception alone costs a full gc.collect()
# (about 30 ms with NumPy and pytest loaded) at the end of every session
LEAN = ["-p", "no:unraisableexception", "-p", "no:threadexception", "-p", "no:doctest",
        "-p", "no:pastebin", "-p", "no:stepwise"]


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise nbfile.BadInput(f"{message} (see python -m grader --help)")


def parser():
    p = _Parser(prog="python -m grader", description="Grade the dropout course's notebooks: one "
                "learner's (a notebook, or a folder of notebooks), or a whole class with --out.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a notebook, or a folder of notebooks (a copy of notebooks/); with --out: "
                   "also a folder of submissions (one subfolder or .zip per learner)")
    p.add_argument("--json", metavar="FILE", help="also write Gradescope's results.json to FILE")
    p.add_argument("--junitxml", metavar="FILE", help="also write JUnit XML (pytest's own)")
    p.add_argument("--only", metavar="EXERCISE", help="grade one exercise, e.g. bernoulli_mask")
    p.add_argument("--seed", type=int, default=0, help="seed for the grading draws (default 0)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="wall-clock limit per call into learner code (default 5)")
    p.add_argument("--submission-timeout", type=float, default=None, metavar="S",
                   help="wall-clock limit for all of one submission's calls (default: none for one "
                   "learner, 120 with --out)")
    p.add_argument("--memory", type=int, default=2048, metavar="MIB",
                   help="address space per learner process (default 2048)")
    p.add_argument("--visibility", choices=VISIBILITIES, default=None,
                   help="Gradescope visibility of every test in results.json (default: unset = visible)")
    g = p.add_argument_group("grading a class")
    g.add_argument("--out", metavar="DIR", help="grade every submission in PATH and write "
                   "DIR/summary.csv, DIR/summary.json and DIR/learners/<name>/results.json; DIR "
                   "must not exist yet")
    g.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="submissions graded in parallel (default: the number of CPUs)")
    g.add_argument("--replace", action="store_true",
                   help="if DIR exists, move it aside to DIR.previous-<time> (nothing is deleted)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every check and its message")
    p.add_argument("--one-notebook", action="store_true", help=argparse.SUPPRESS)
    return p


def resolve(paths, stems, one_notebook=False):
    """Check every path before any grading starts; BadInput names the first problem."""
    from grader.submission import read_cells
    for p in map(Path, paths):
        if not p.exists():
            raise nbfile.BadInput(f"no such file or folder: {p}")
        if p.is_dir():
            nbs = sorted(p.glob("*.ipynb"))
            if not nbs:
                from grader import batch
                if batch.submissions_in(p):
                    raise nbfile.BadInput(f"{p} holds submissions (subfolders or .zip files): grade "
                                          f"them all with --out RESULTS_DIR")
                raise nbfile.BadInput(f"no notebooks (.ipynb) in folder {p}")
            course = [f for f in nbs if nbfile.stem_for(f, stems)]
            if not course:
                raise nbfile.BadInput(f"no course notebooks in {p} (expected names like "
                                      f"{next(iter(stems.values()))}.ipynb)")
            for f in course:
                read_cells(f)
        else:
            if p.suffix != ".ipynb":
                raise nbfile.BadInput(f"{p} is not a notebook (.ipynb)")
            read_cells(p)
            if not one_notebook and not nbfile.stem_for(p, stems):
                raise nbfile.BadInput(f"{p.name} is not a course notebook (expected a name starting "
                                      f"with a number, like {next(iter(stems.values()))}.ipynb)")


class _Collector:
    records = None
    isolation = None

    def pytest_sessionfinish(self, session):
        from grader.plugin import SESSION
        s = session.config.stash.get(SESSION, None)
        self.records = s.records if s else []
        self.isolation = getattr(s, "isolation", None)


class _Prepared:
    """The submission and its already started sandbox, handed to the plugin."""
    __name__ = "grader-prepared"

    def __init__(self, submission, sandbox, limits):
        self.submission, self.sandbox, self.limits = submission, sandbox, limits


def run(paths, json_path=None, junitxml=None, only=None, seed=0, timeout=5.0, one_notebook=False,
        submission_timeout=0, memory=2048, visibility=None, uid=None, hide=(), unreadable=None,
        label=None, collector=None, server=None):
    """Grade and return the list of test records (see grader.report).

    The learner's process is started first, so that its start-up (Python, NumPy) overlaps
    with pytest's import here.  uid/hide/unreadable/label are for batch grading."""
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    from grader import submission
    from grader.sandbox import Limits, Sandbox, default_hide
    stems = nbfile.course_stems(GRADER_DIR)
    sub = submission.load(paths, stems, one_notebook, unreadable)
    limits = Limits(seconds=timeout, mem=int(memory) << 20, submission_seconds=submission_timeout or 0)
    if submission_timeout:
        limits.start_seconds = min(limits.start_seconds, submission_timeout)
    sandbox = Sandbox(sub.notebooks, limits, uid=uid, hide=default_hide() + list(hide), server=server)
    wanted = set(sub.notebooks) & set(sub.expected)
    if wanted:
        sandbox.spawn()
    import pytest
    args = ["-c", str(GRADER_DIR / "grading.ini"), "--rootdir", str(GRADER_DIR),
            "--grader-seed", str(seed), "--grader-timeout", str(timeout), *LEAN]
    for p in paths:
        args += ["--grader-submission", str(p)]
    if json_path:
        args += ["--grader-json", str(json_path)]
    if only:
        args += ["--grader-only", only]
    if one_notebook:
        args.append("--grader-one-notebook")
    if visibility:
        args += ["--grader-visibility", visibility]
    if label:
        args += ["--grader-label", label]
    if junitxml:
        args += ["--junitxml", str(junitxml), "-o", "junit_family=xunit1"]
    args += [str(f) for f in sorted(GRADER_DIR.glob("test_[0-9][0-9]_*.py"))]
    col = collector or _Collector()
    try:
        rc = pytest.main(args, plugins=[col, _Prepared(sub, sandbox, limits)])
    finally:
        sandbox.close()
    if col.records is None or rc not in (0, 1, 5):
        raise RuntimeError(f"pytest ended with status {rc}")
    return col.records


def _hide_arguments(argv):
    """As root, learner code runs as another user who can read every process's command line
    (/proc/PID/cmdline) but not its environment: start again with the arguments moved into
    the environment, so that where results are written is not visible."""
    if argv is not None or os.environ.get(ARGV_ENV) is not None:
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0) or os.environ.get("GRADER_KEEP_ROOT") == "1":
        return
    if len(sys.argv) <= 1 or not hasattr(sys, "orig_argv"):
        return
    head = sys.orig_argv[:len(sys.orig_argv) - (len(sys.argv) - 1)]
    if "-m" not in head:
        return
    env = dict(os.environ)
    env[ARGV_ENV] = json.dumps(sys.argv[1:])
    env["PYTHONPATH"] = os.pathsep.join([str(GRADER_DIR.parent)] + [
        x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
    try:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *head[1:]], env)
    except OSError:
        return


def main(argv=None):
    t0 = time.monotonic()
    _hide_arguments(argv)
    if argv is None and os.environ.get(ARGV_ENV) is not None:
        try:
            argv = [str(a) for a in json.loads(os.environ.pop(ARGV_ENV))]
        except ValueError:
            argv = None
    try:
        a = parser().parse_args(argv)
        if a.out:
            from grader import batch
            return batch.main(a)
        stems = nbfile.course_stems(GRADER_DIR)
        resolve(a.paths, stems, a.one_notebook)
        if a.only and a.only not in known_exercises():
            raise nbfile.BadInput(f"no exercise called {a.only!r} (known: {', '.join(known_exercises())})")
    except nbfile.BadInput as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    try:
        records = run(a.paths, a.json, a.junitxml, a.only, a.seed, a.timeout, a.one_notebook,
                      a.submission_timeout or 0, a.memory, a.visibility)
    except Exception as e:  # noqa: BLE001 - the one place a grader bug is reported
        print(f"grader: internal error, please report it: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    if not records:
        print("grader: nothing was graded (no checks matched)", file=sys.stderr)
        return 2
    print(report.details(records) if a.verbose else report.table(records))
    print(f"graded in {time.monotonic() - t0:.1f} s")
    return 0


def known_exercises():
    """Exercise names, read from the test files' markers without importing them."""
    import re
    names = []
    for f in sorted(GRADER_DIR.glob("test_[0-9][0-9]_*.py")):
        for n in re.findall(r"""mark\.exercise\(\s*["'](\w+)["']""", f.read_text()):
            if n not in names:
                names.append(n)
    return names
