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

from grader import __version__, nbfile
from grader.config import GRADER_DIR
from grader.publish import report

ARGV_ENV = "_GRADER_ARGV"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise nbfile.BadInput(f"{message} (see python -m grader --help)")


def parser():
    from grader.config import BATCH_SUBMISSION_TIMEOUT
    from grader.config import DEFAULT as D
    p = _Parser(prog="python -m grader", description="Grade the dropout course's notebooks: one "
                "learner's (a notebook, or a folder of notebooks), or a whole class with --out.")
    p.add_argument("paths", nargs="+", metavar="PATH",
                   help="a notebook, or a folder of notebooks (a copy of notebooks/); with --out: "
                   "also a folder of submissions (one subfolder or .zip per learner)")
    p.add_argument("--json", metavar="FILE", help="also write Gradescope's results.json to FILE")
    p.add_argument("--junitxml", metavar="FILE", help="also write JUnit XML (a testcase per check)")
    p.add_argument("--only", metavar="EXERCISE", help="grade one exercise, e.g. bernoulli_mask; or "
                   "a notebook (01, or 01_bernoulli_mask); or several, separated by commas")
    p.add_argument("--seed", type=int, default=None, help=f"seed for the grading draws (default {D.seed})")
    p.add_argument("--timeout", type=float, default=None, metavar="S",
                   help=f"wall-clock limit per call into learner code (default {D.timeout:g})")
    p.add_argument("--submission-timeout", type=float, default=None, metavar="S",
                   help="wall-clock limit for all of one submission's calls (default: none for one "
                   f"learner, {BATCH_SUBMISSION_TIMEOUT:g} with --out)")
    p.add_argument("--memory", type=int, default=None, metavar="MIB",
                   help=f"address space per learner process (default {D.memory})")
    p.add_argument("--course", metavar="DIR", default=None,
                   help="the course folder (holding solutions/ and data/); default: $DROPOUT_COURSE, "
                   "the checkout the grader is in, or the copy installed with it")
    p.add_argument("--visibility", choices=VISIBILITIES, default=None,
                   help="Gradescope visibility of every test in results.json (default: unset = visible)")
    g = p.add_argument_group("grading a class")
    g.add_argument("--out", metavar="DIR", help="grade every submission in PATH and write "
                   "DIR/summary.csv, DIR/summary.json and DIR/learners/<name>/results.json; DIR "
                   "must not exist yet")
    g.add_argument("--jobs", type=int, default=None, metavar="N",
                   help="submissions graded in parallel (default: the number of CPUs)")
    g.add_argument("--roster", metavar="FILE", default=None, help="a CSV naming each submission's "
                   "student id and/or e-mail (columns submission, student_id, email): joined into "
                   "summary.csv and gradebook.csv; people without a submission get a row too")
    g.add_argument("--replace", action="store_true",
                   help="if DIR exists, move it aside to DIR.previous-<time> (nothing is deleted)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every check and its message")
    p.add_argument("--version", action="version", version=f"dropout-from-scratch {__version__}")
    p.add_argument("--one-notebook", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--self-study", action="store_true", help=argparse.SUPPRESS)   # check(), grade()
    return p


def resolve(paths, stems, one_notebook=False):
    """Check every path before any grading starts; BadInput names the first problem."""
    from grader.submission import read_cells
    given = {}

    def once(stem, path):
        if stem in given and given[stem] != path:
            raise nbfile.BadInput(f"{stem} is given twice: {given[stem]} and {path} (grade one at a time)")
        given[stem] = path

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
            for stem, f in nbfile.course_notebooks(p, stems).items():
                once(stem, f)
                read_cells(f)
        else:
            if p.suffix != ".ipynb":
                raise nbfile.BadInput(f"{p} is not a notebook (.ipynb)")
            read_cells(p)
            if not one_notebook and not nbfile.stem_for(p, stems):
                raise nbfile.BadInput(f"{p.name} is not a course notebook (expected a name starting "
                                      f"with a number, like {next(iter(stems.values()))}.ipynb)")
            if not one_notebook:
                once(nbfile.stem_for(p, stems), p)


def run(paths, config, json_path=None, junitxml=None, one_notebook=False, label=None):
    """Grade one learner's notebooks with the engine; write results.json / JUnit if asked.
    Returns the records."""
    from grader import engine
    t0 = time.monotonic()
    sub = engine.load(paths, config, one_notebook)
    records = engine.grade(sub, config, label=label)
    seconds = time.monotonic() - t0
    if json_path:   # written after every learner process is gone
        data = report.gradescope(records, seconds)
        if config.unsandboxed:
            data["output"] = "⚠ " + engine.UNSANDBOXED + "\n\n" + data["output"]
        report.write_json_atomic(json_path, data)
    if junitxml:
        report.write_text_atomic(junitxml, report.junit(records, seconds))
    return records


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
        if os.path.basename(sys.argv[0]) != "dropout-grader":
            return   # not started from the command line (e.g. runpy in a test)
        head = [sys.executable, "-m", "grader"]   # the dropout-grader command, as python -m grader
    env = dict(os.environ)
    env[ARGV_ENV] = json.dumps(sys.argv[1:])
    env["PYTHONPATH"] = os.pathsep.join([str(GRADER_DIR.parent)] + [
        x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
    try:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *head[1:]], env)
    except OSError:
        return


def config_from(a, **defaults):
    """The Config for parsed options: the defaults of grader.config, then the options given."""
    from grader.config import DEFAULT
    return DEFAULT.with_(**defaults).with_(
        seed=a.seed, timeout=a.timeout, submission_timeout=a.submission_timeout, memory=a.memory,
        jobs=a.jobs, only=a.only, visibility=a.visibility, course=a.course)


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
        from grader.config import CourseNotFound
        try:
            config = config_from(a)
            config.root()
        except CourseNotFound as e:
            raise nbfile.BadInput(str(e)) from None
        from grader.sandbox.host import sandbox_available
        if not sandbox_available():
            if a.out or not a.self_study:
                raise nbfile.BadInput("grading needs the sandbox (fork and resource limits: Linux, "
                                      "macOS or WSL), which is missing here; check() in a notebook "
                                      "still works, unsandboxed, for self-study")
            config = config.with_(unsandboxed=True)
        if a.out:
            from grader import batch
            return batch.main(a, config)
        stems = course_stems()
        resolve(a.paths, stems, a.one_notebook)
        check_only(a.only)
    except nbfile.BadInput as e:
        print(f"grader: {report.clean(e)}", file=sys.stderr)
        return 2
    try:
        records = run(a.paths, config, a.json, a.junitxml, a.one_notebook)
    except nbfile.BadInput as e:
        print(f"grader: {report.clean(e)}", file=sys.stderr)
        return 2
    except Exception as e:  # noqa: BLE001 - the one place a grader bug is reported
        print(f"grader: internal error, please report it: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    if not records:
        print("grader: nothing was graded (no checks matched)", file=sys.stderr)
        return 2
    if config.unsandboxed:
        from grader.engine import UNSANDBOXED
        print("⚠ " + UNSANDBOXED)
    print(report.details(records) if a.verbose else report.table(records))
    print(f"graded in {time.monotonic() - t0:.1f} s")
    return 0


def course_stems():
    from grader import engine
    return engine.course_stems()


def known_exercises():
    """Exercise names of every check file, in order."""
    from grader import engine
    return engine.known_exercises()


def check_only(only):
    """BadInput unless every item of --only names an exercise or a notebook."""
    from grader import engine
    engine.check_only(only)
