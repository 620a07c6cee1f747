"""python -m grader PATH... — grade a learner's notebooks and print a table.
python -m grader SUBMISSIONS --out RESULTS — grade a whole class (see grader/batch.py).

Exit status: 0 whenever grading ran (whatever the score); 2 for unusable input or options
(one line on stderr, no traceback); 3 if the grader itself failed; 4 if a class was graded
but some learners could not be, for the grader's reasons (their rows say so; the message
gives the command that finishes the job); 130 on Ctrl-C, 143 on SIGTERM (nothing written).
"""
import argparse
import json
import os
import sys
import time

from grader import __version__, batch, engine, launch, nbfile, output, signals, uploads
from grader.config import (
    BATCH_SUBMISSION_TIMEOUT,
    DEFAULT,
    MIN_MEMORY,
    MIN_SUBMISSION_TIMEOUT,
    MIN_TIMEOUT,
    BadSetting,
    CourseNotFound,
    validate,
)
from grader.publish import report
from grader.sandbox.host import sandbox_available

ARGV_ENV = launch.ARGV_ENV
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise nbfile.BadInput(f"{message} (see python -m grader --help)")


def parser():
    D = DEFAULT
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
                   help=f"wall-clock limit per call into learner code (default {D.timeout:g}; "
                   f"at least {MIN_TIMEOUT:g})")
    p.add_argument("--submission-timeout", type=float, default=None, metavar="S",
                   help=f"wall-clock limit for all of one submission's calls, 0 or at least "
                   f"{MIN_SUBMISSION_TIMEOUT:g} (default: none for one "
                   f"learner, {BATCH_SUBMISSION_TIMEOUT:g} with --out)")
    p.add_argument("--memory", type=int, default=None, metavar="MIB",
                   help=f"address space per learner process (default {D.memory}; at least {MIN_MEMORY})")
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
    g.add_argument("--resume", action="store_true",
                   help="continue the results in DIR (or those a stopped run left beside it): learners "
                   "already graded are kept, the others graded, the summary written again")
    g.add_argument("--no-reference-check", action="store_true",
                   help="do not grade the reference solutions first (they must get full marks under "
                   "the limits chosen, or the batch is refused): for limits known to be fine")
    g.add_argument("--shard", metavar="I/N", default=None,
                   help="grade only share I of N of the class (for several machines; combine the "
                   "shards' folders with python -m grader.merge --out RESULTS DIR...)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every check and its message")
    p.add_argument("--version", action="version", version=f"dropout-from-scratch {__version__}")
    p.add_argument("--one-notebook", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--self-study", action="store_true", help=argparse.SUPPRESS)   # check(), grade()
    return p


def load(paths, one_notebook=False):
    """The learner's Submission: every path checked and every notebook read, once, before any
    grading starts; BadInput names the first problem."""
    for p in paths:
        if os.path.isdir(p) and not any(str(f).endswith(".ipynb") for f in os.listdir(p)) \
                and uploads.submissions_in(p):
            raise nbfile.BadInput(f"{p} holds submissions (subfolders or .zip files): grade "
                                  f"them all with --out RESULTS_DIR")
    return engine.load(paths, one_notebook=one_notebook)


def run(sub, config, json_path=None, junitxml=None, label=None):
    """Grade one learner's Submission (load()) with the engine; write results.json / JUnit if
    asked (grader.output: never over a device, a FIFO or /dev/stdout).  Returns the records."""
    t0 = time.monotonic()
    records = engine.grade(sub, config, label=label, lanes=min(2, config.workers()))   # one learner: two lanes
    seconds = time.monotonic() - t0
    try:   # written after every learner process is gone
        if json_path:
            data = report.gradescope(records, seconds)
            if config.unsandboxed:
                data["output"] = "⚠ " + engine.UNSANDBOXED + "\n\n" + data["output"]
            output.write_json(json_path, data)
        if junitxml:
            output.write_text(junitxml, report.junit(records, seconds))
    except OSError as e:
        raise Unwritten(records, f"{e.filename or json_path or junitxml}: {e.strerror}") from None
    return records


class Unwritten(Exception):
    """Grading ended but a file asked for could not be written; the records are kept."""

    def __init__(self, records, why):
        super().__init__(why)
        self.records = records


def config_from(a, **defaults):
    """The Config for parsed options: the defaults of grader.config, then the options given."""
    return DEFAULT.with_(**defaults).with_(
        seed=a.seed, timeout=a.timeout, submission_timeout=a.submission_timeout, memory=a.memory,
        jobs=a.jobs, only=a.only, visibility=a.visibility, course=a.course)


def check_options(a, config):
    """One line (BadInput) for the first option no grading can use."""
    if a.jobs is not None and a.jobs < 1:
        raise nbfile.BadInput(f"--jobs must be at least 1 (got {a.jobs})")
    try:
        validate(config if a.out is None or a.submission_timeout is not None
                 else config.with_(submission_timeout=BATCH_SUBMISSION_TIMEOUT))
    except BadSetting as e:
        raise nbfile.BadInput(str(e)) from None
    engine.check_only(a.only)
    if a.out is None:
        for flag in ("shard", "resume", "replace", "no_reference_check"):
            if getattr(a, flag):
                raise nbfile.BadInput(f"--{flag.replace('_', '-')} is for grading a class, with --out")
        for flag, path in (("--json", a.json), ("--junitxml", a.junitxml)):
            if path:
                output.check(path, flag)


def main(argv=None):
    t0 = time.monotonic()
    launch.hide_arguments(argv)   # done already when started by launch.main
    if argv is None and os.environ.get(ARGV_ENV) is not None:
        try:
            argv = [str(a) for a in json.loads(os.environ.pop(ARGV_ENV))]
        except ValueError:
            argv = None
    signals.catch()
    try:
        a = parser().parse_args(argv)
        try:
            config = config_from(a)
            config.root()
        except CourseNotFound as e:
            raise nbfile.BadInput(str(e)) from None
        if not sandbox_available():
            if a.out or not a.self_study:
                raise nbfile.BadInput("grading needs the sandbox (fork and resource limits: Linux, "
                                      "macOS or WSL), which is missing here; check() in a notebook "
                                      "still works, unsandboxed, for self-study")
            config = config.with_(unsandboxed=True)
        check_options(a, config)
        if a.out:
            return batch.main(a, config)
        sub = load(a.paths, a.one_notebook)
    except nbfile.BadInput as e:
        print(f"grader: {report.clean(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("grader: interrupted; nothing was written", file=sys.stderr)
        return signals.status(e)
    try:
        records = run(sub, config, a.json, a.junitxml)
    except nbfile.BadInput as e:
        print(f"grader: {report.clean(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print("grader: interrupted; nothing was written", file=sys.stderr)
        return signals.status(e)
    except Unwritten as e:   # the scores are still shown
        print(report.details(e.records) if a.verbose else report.table(e.records))
        print(f"grader: graded, but could not write {e} (the table above has the scores)", file=sys.stderr)
        return 3
    except Exception as e:  # noqa: BLE001 - the one place a grader bug is reported
        print(f"grader: internal error, please report it: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    if not records:
        print("grader: nothing was graded (no checks matched)", file=sys.stderr)
        return 2
    if config.unsandboxed:
        print("⚠ " + engine.UNSANDBOXED)
    print(report.details(records) if a.verbose else report.table(records))
    print(f"graded in {time.monotonic() - t0:.1f} s")
    return 0


def course_stems():
    return engine.course_stems()


def known_exercises():
    """Exercise names of every check file, in order."""
    return engine.known_exercises()


def check_only(only):
    """BadInput unless every item of --only names an exercise or a notebook."""
    engine.check_only(only)
