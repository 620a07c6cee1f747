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
    p.add_argument("--only", metavar="EXERCISE", help="grade one exercise, e.g. bernoulli_mask; or "
                   "a notebook (01, or 01_bernoulli_mask); or several, separated by commas")
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
                   help="submissions graded in parallel (default: the number of CPUs); for one "
                   "learner: notebooks graded in parallel")
    g.add_argument("--replace", action="store_true",
                   help="if DIR exists, move it aside to DIR.previous-<time> (nothing is deleted)")
    p.add_argument("-v", "--verbose", action="store_true", help="show every check and its message")
    p.add_argument("--one-notebook", action="store_true", help=argparse.SUPPRESS)
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


class _Collector:
    records = None
    isolation = None

    def pytest_sessionfinish(self, session):
        from grader.plugin import SESSION
        s = session.config.stash.get(SESSION, None)
        self.records = s.records if s else []
        self.isolation = getattr(s, "isolation", None)


class _Prepared:
    """The submission and its already started sandbox, handed to the plugin.  keep_open: the
    sandbox serves further sessions (parallel runners) and is closed by run(), not the plugin;
    deadline: the submission's time budget ends then (time.monotonic()), for every session."""
    __name__ = "grader-prepared"

    def __init__(self, submission, sandbox, limits, keep_open=False, deadline=None):
        self.submission, self.sandbox, self.limits = submission, sandbox, limits
        self.keep_open, self.deadline = keep_open, deadline


def test_files(expected, only=None):
    """The check files for the expected notebooks (and, with only, holding a selected check)."""
    from grader.submission import selected
    out = []
    for f in sorted(GRADER_DIR.glob("test_[0-9][0-9]_*.py")):
        stem = f.stem[len("test_"):]
        if stem in expected and any(selected(only, stem, e) for e in exercises_in(f)):
            out.append(f)
    return out


def run(paths, json_path=None, junitxml=None, only=None, seed=0, timeout=5.0, one_notebook=False,
        submission_timeout=0, memory=2048, visibility=None, uid=None, hide=(), unreadable=None,
        label=None, collector=None, server=None, jobs=1):
    """Grade and return the list of test records (see grader.report).

    The learner's process is started first, so that its start-up (Python, NumPy) overlaps
    with pytest's import here.  With jobs > 1 the notebooks' check files are shared out
    among that many processes (see _parallel).  uid/hide/unreadable/label/server are for
    batch grading."""
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    from grader import submission
    from grader.sandbox import Limits, Sandbox, default_hide
    stems = nbfile.course_stems(GRADER_DIR)
    sub = submission.load(paths, stems, one_notebook, unreadable)
    limits = Limits(seconds=timeout, mem=int(memory) << 20, submission_seconds=submission_timeout or 0)
    if submission_timeout:
        limits.start_seconds = min(limits.start_seconds, submission_timeout)

    def new_sandbox():
        return Sandbox(sub.notebooks, limits, uid=uid, hide=default_hide() + list(hide), server=server)
    sandbox = new_sandbox()
    if set(sub.notebooks) & set(sub.expected):
        sandbox.spawn()
    files = test_files(sub.expected, only)
    import pytest  # noqa: F401 - meanwhile the learner's process starts
    args = ["-c", str(GRADER_DIR / "grading.ini"), "--rootdir", str(GRADER_DIR),
            "--grader-seed", str(seed), "--grader-timeout", str(timeout), *LEAN]
    for p in paths:
        args += ["--grader-submission", str(p)]
    if only:
        args += ["--grader-only", only]
    if one_notebook:
        args.append("--grader-one-notebook")
    if visibility:
        args += ["--grader-visibility", visibility]
    if label:
        args += ["--grader-label", label]
    jobs = max(1, min(int(jobs or 1), len(files)))
    if jobs > 1:
        t0 = time.monotonic()
        records, isolation = _parallel(args, files, jobs, sub, sandbox, new_sandbox, limits, junitxml)
        if collector is not None:
            collector.records, collector.isolation = records, isolation
        if json_path:
            report.write_json_atomic(json_path, report.gradescope(records, time.monotonic() - t0))
        return records
    if json_path:
        args += ["--grader-json", str(json_path)]
    if junitxml:
        args += ["--junitxml", str(junitxml), "-o", "junit_family=xunit1"]
    col = collector or _Collector()
    try:
        _session(args + [str(f) for f in files or sorted(GRADER_DIR.glob("test_[0-9][0-9]_*.py"))],
                 col, _Prepared(sub, sandbox, limits))
    finally:
        sandbox.close()
    return col.records


def _session(args, col, prepared):
    import pytest
    rc = pytest.main(args, plugins=[col, prepared])
    if col.records is None or rc not in (0, 1, 5):
        raise RuntimeError(f"pytest ended with status {rc}")
    return col.records


def _parallel(args, files, jobs, sub, sandbox, new_sandbox, limits, junitxml):
    """Grade with `jobs` processes: this one and jobs - 1 forks of it (pytest and the checks
    already imported).  Each has its own learner process (its own uid as root) and takes
    check files, largest first, from a shared queue, one pytest session per file.  Records
    and JUnit XML are merged in file order; nothing is written before every runner has
    closed its learner process."""
    import struct
    import tempfile
    from grader import codec
    from grader.sandbox import KEEP_CHILDREN
    order = sorted(range(len(files)), key=lambda i: -files[i].stat().st_size)
    queue_r, queue_w = os.pipe()
    os.write(queue_w, b"".join(struct.pack("<i", i) for i in order))
    os.close(queue_w)
    deadline = time.monotonic() + limits.submission_seconds if limits.submission_seconds else None
    xml_dir = tempfile.mkdtemp(prefix="grader-junit-") if junitxml else None

    def runner(box):
        """Sessions until the queue is empty; {file index: (records, isolation)}."""
        done = {}
        try:
            while True:
                item = os.read(queue_r, 4)
                if len(item) < 4:
                    return done
                (i,) = struct.unpack("<i", item)
                extra = ["--junitxml", os.path.join(xml_dir, f"{i}.xml"), "-o", "junit_family=xunit1"] \
                    if xml_dir else []
                col = _Collector()
                _session(args + extra + [str(files[i])], col,
                         _Prepared(sub, box, limits, keep_open=True, deadline=deadline))
                done[i] = (col.records, box.isolation)
        finally:
            box.close()

    kids = []
    for _ in range(jobs - 1):
        rd, wr = os.pipe()
        pid = os.fork()
        if pid == 0:   # a runner: its own learner process, never the parent's
            os.close(rd)
            code = 0
            try:
                frame = codec.encode({"done": {str(k): v for k, v in runner(new_sandbox()).items()}})
            except BaseException as e:  # noqa: BLE001 - reported by the parent
                frame, code = codec.encode({"error": f"{type(e).__name__}: {e}"}), 1
            try:
                codec.write_frame(wr, frame)
            finally:
                os._exit(code)
        os.close(wr)
        KEEP_CHILDREN.add(pid)
        kids.append((pid, rd))
    try:
        done = runner(sandbox)
    finally:
        answers = []
        for pid, rd in kids:
            try:
                frame = codec.read_frame(rd)
                answers.append(codec.decode(frame) if frame else {"error": "a grading runner ended early"})
            except codec.CodecError as e:
                answers.append({"error": str(e)})
            os.close(rd)
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass   # already collected by a sweep for orphans
            KEEP_CHILDREN.discard(pid)
        os.close(queue_r)
    for a in answers:
        if "error" in a:
            raise RuntimeError(a["error"])
        done.update({int(k): (v[0], v[1]) for k, v in a["done"].items()})
    records = [r for i in sorted(done) for r in done[i][0]]
    isolation = next((v[1] for v in done.values() if v[1]), None)
    if xml_dir:
        _merge_junit([os.path.join(xml_dir, f"{i}.xml") for i in sorted(done)], junitxml)
        import shutil
        shutil.rmtree(xml_dir, ignore_errors=True)
    return records, isolation


def _merge_junit(parts, dest):
    """One JUnit XML file (one testsuite) from several pytest sessions' files."""
    import xml.etree.ElementTree as ET
    root, suite = None, None
    for part in parts:
        if not os.path.exists(part):
            continue
        tree = ET.parse(part).getroot()
        s = tree if tree.tag == "testsuite" else tree.find("testsuite")
        if suite is None:
            root, suite = tree, s
            continue
        for case in list(s):
            suite.append(case)
        for key in ("tests", "errors", "failures", "skipped"):
            suite.set(key, str(int(suite.get(key, 0)) + int(s.get(key, 0))))
        suite.set("time", f"{float(suite.get('time', 0)) + float(s.get('time', 0)):.3f}")
    if root is not None:
        tmp = f"{dest}.tmp{os.getpid()}"
        ET.ElementTree(root).write(tmp, encoding="utf-8", xml_declaration=True)
        os.replace(tmp, dest)


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
        check_only(a.only)
    except nbfile.BadInput as e:
        print(f"grader: {e}", file=sys.stderr)
        return 2
    try:
        records = run(a.paths, a.json, a.junitxml, a.only, a.seed, a.timeout, a.one_notebook,
                      a.submission_timeout or 0, a.memory, a.visibility,
                      jobs=a.jobs or os.cpu_count() or 1)
    except Exception as e:  # noqa: BLE001 - the one place a grader bug is reported
        print(f"grader: internal error, please report it: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    if not records:
        print("grader: nothing was graded (no checks matched)", file=sys.stderr)
        return 2
    print(report.details(records) if a.verbose else report.table(records))
    print(f"graded in {time.monotonic() - t0:.1f} s")
    return 0


def exercises_in(test_file):
    """Exercise names in one check file, read from its markers without importing it."""
    import re
    return list(dict.fromkeys(re.findall(r"""mark\.exercise\(\s*["'](\w+)["']""",
                                         Path(test_file).read_text())))


def known_exercises():
    """Exercise names of every check file, in order."""
    names = []
    for f in sorted(GRADER_DIR.glob("test_[0-9][0-9]_*.py")):
        names += [n for n in exercises_in(f) if n not in names]
    return names


def check_only(only):
    """BadInput unless every item of --only names an exercise or a notebook (stem or number)."""
    if not only:
        return
    stems = nbfile.course_stems(GRADER_DIR)
    known = set(known_exercises()) | set(stems) | set(stems.values())
    for tok in only.replace(" ", "").split(","):
        if tok not in known:
            raise nbfile.BadInput(f"no exercise called {tok!r} (known: {', '.join(known_exercises())}; "
                                  f"or a notebook: {', '.join(sorted(stems))})")
