"""python -m grader PATH... — grade a learner's notebooks and print a table.

Exit status: 0 whenever grading ran (whatever the score); 2 for unusable input
(one line on stderr, no traceback); 3 if the grader itself failed.
"""
import argparse
import os
import sys
import time
from pathlib import Path

from grader import nbfile, report

GRADER_DIR = Path(__file__).resolve().parent


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise nbfile.BadInput(f"{message} (see python -m grader --help)")


def parser():
    p = _Parser(prog="python -m grader", description="Grade the dropout course's notebooks.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a notebook, or a folder of notebooks (a copy of notebooks/)")
    p.add_argument("--json", metavar="FILE", help="also write Gradescope's results.json to FILE")
    p.add_argument("--junitxml", metavar="FILE", help="also write JUnit XML (pytest's own)")
    p.add_argument("--only", metavar="EXERCISE", help="grade one exercise, e.g. bernoulli_mask")
    p.add_argument("--seed", type=int, default=0, help="seed for the grading draws (default 0)")
    p.add_argument("--timeout", type=float, default=5.0, metavar="S",
                   help="wall-clock limit per call into learner code (default 5)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every check and its message")
    p.add_argument("--one-notebook", action="store_true", help=argparse.SUPPRESS)
    return p


def resolve(paths, stems, one_notebook=False):
    """Check every path before any grading starts; BadInput names the first problem."""
    for p in map(Path, paths):
        if not p.exists():
            raise nbfile.BadInput(f"no such file or folder: {p}")
        if p.is_dir():
            nbs = sorted(p.glob("*.ipynb"))
            if not nbs:
                raise nbfile.BadInput(f"no notebooks (.ipynb) in folder {p}")
            course = [f for f in nbs if nbfile.stem_for(f, stems)]
            if not course:
                raise nbfile.BadInput(f"no course notebooks in {p} (expected names like "
                                      f"{next(iter(stems.values()))}.ipynb)")
            for f in course:
                nbfile.code_cells(f)
        else:
            if p.suffix != ".ipynb":
                raise nbfile.BadInput(f"{p} is not a notebook (.ipynb)")
            nbfile.code_cells(p)
            if not one_notebook and not nbfile.stem_for(p, stems):
                raise nbfile.BadInput(f"{p.name} is not a course notebook (expected a name starting "
                                      f"with a number, like {next(iter(stems.values()))}.ipynb)")


class _Collector:
    records = None

    def pytest_sessionfinish(self, session):
        from grader.plugin import SESSION
        s = session.config.stash.get(SESSION, None)
        self.records = s.records if s else []


def run(paths, json_path=None, junitxml=None, only=None, seed=0, timeout=5.0, one_notebook=False):
    """Grade and return the list of test records (see grader.report)."""
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    import pytest
    args = ["-c", str(GRADER_DIR / "grading.ini"), "--rootdir", str(GRADER_DIR),
            "--grader-seed", str(seed), "--grader-timeout", str(timeout)]
    for p in paths:
        args += ["--grader-submission", str(p)]
    if json_path:
        args += ["--grader-json", str(json_path)]
    if only:
        args += ["--grader-only", only]
    if one_notebook:
        args.append("--grader-one-notebook")
    if junitxml:
        args += ["--junitxml", str(junitxml), "-o", "junit_family=xunit1"]
    args += [str(f) for f in sorted(GRADER_DIR.glob("test_[0-9][0-9]_*.py"))]
    col = _Collector()
    rc = pytest.main(args, plugins=[col])
    if col.records is None or rc not in (0, 1, 5):
        raise RuntimeError(f"pytest ended with status {rc}")
    return col.records


def main(argv=None):
    t0 = time.monotonic()
    try:
        a = parser().parse_args(argv)
        stems = nbfile.course_stems(GRADER_DIR)
        resolve(a.paths, stems, a.one_notebook)
        if a.only and a.only not in known_exercises():
            raise nbfile.BadInput(f"no exercise called {a.only!r} (known: {', '.join(known_exercises())})")
    except nbfile.BadInput as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    try:
        records = run(a.paths, a.json, a.junitxml, a.only, a.seed, a.timeout, a.one_notebook)
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
