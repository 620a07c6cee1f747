"""How one grading runs.  Everything that grades — the command line, class batches,
Gradescope's run_autograder, check() in a notebook and grader.grade() — calls grade() here.

    records = grade(submission, config)

1. The check files for the expected notebooks are found (grader/checks/test_NN_name.py, one per
   notebook, matching stems) and each check function is collected with its marks
   (exercise, points, visibility) — imports by grader.checks' loader (optimize=0 whatever the
   interpreter's flags, probes verified), no test session.  grader/pytest_plugin.py runs the
   same checks as pytest tests, with the same records (Check.record, outcome).
2. One learner process is started for the submission (grader.sandbox.Sandbox): it loads
   nothing of the grader's but the probes it is sent, and answers each call from a fork.
   From the command line, with two cores, the notebooks are split into two lanes: a forked
   copy of the grader takes about half of them, with a learner process of its own.
3. Each check runs here, in the grader's process, with a `learner` handle: it asks the
   learner's process for raw results (learner.call / learner.timed), computes reference
   results itself (learner.solution), and asserts.  Its outcome becomes one record.  In a
   class batch, the plain calls the last grading made are made ahead, in one call per
   notebook (Ahead), and a check's call takes its answer from there when it asks the same.
4. The learner's process and everything it started are ended before anything is returned,
   so nothing is published while learner code still runs.

Where fork and resource limits are missing (native Windows), only a learner grading their own
work may ask for config.unsandboxed (check(), grader.grade()): learner code then runs without
limits, and every report says so (UNSANDBOXED).  Batches, Gradescope and the command line
refuse to grade without the sandbox.

The processes, in one picture (each line started by the one above it; nothing outlives its parent's
call, and learner code runs only at the bottom, under the limits, never in a grader process):

    python -m grader PATH                 the grader: reads each notebook once (grader.submission),
    |                                     runs every check, publishes (grader.publish); as root it
    |                                     first re-execs itself (grader.launch) with its arguments
    |                                     moved into the environment
    +- second lane (a fork of the grader) with a core to spare: grades about half the notebooks
    |  +- learner process, as below       side by side, sends back their records (grade(lanes=2))
    +- learner process (grader.sandbox)   limits set first; holds Python, NumPy and the learner's
       +- a fork per notebook / timed call cells; runs no grader code but the probes it is sent;
          +- what learner code starts     each call answered from a fork (a notebook's runner, or
                                          a fork of its own when timed), killed with all it started

    check() in a notebook                 kernel -> its background grader (grader.warm, started by
                                          the set-up cell: grader imported, checks loaded, a learner
                                          process waiting under its limits with no learner text)
                                          -> grade() -> as above; without one, kernel ->
                                          `python -m grader --one-notebook` -> as above

    python -m grader SUBMISSIONS --out R  the batch parent (grader.batch): finds the uploads,
    |                                     writes each learner's results as they come, the summary last
    +- worker 1..N (grader.workers)       stages one upload at a time (grader.uploads) and grades
       |                                  it with grade() here
       +- learner process, one per submission at a time -> forks -> what learner code starts
                                          (as above; the worker may keep a warm template
                                          process that starts them faster)

    Gradescope's run_autograder           python -m grader.gradescope: stages the upload
                                          (grader.uploads), then as for one PATH

A record is a dict: notebook, exercise, name (the check's first docstring paragraph),
check (its function name), number, max_score, score, status (passed/failed), kind (None,
failed, or a LearnerError kind, or grader_error), message; visibility when set.
"""
import ast
import hashlib
import importlib
import inspect
import json
import os
import signal
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from grader import nbfile, release, submission
from grader.checks import probes
from grader.config import DEFAULT, GRADER_DIR
from grader.sandbox import codec, host
from grader.sandbox.host import KEEP_CHILDREN, GraderBug, LearnerError, Limits, Sandbox, default_hide
from grader.text import MAX_MESSAGE, clean

CHECKS_DIR = GRADER_DIR / "checks"
UNSANDBOXED = ("unsandboxed self-study mode: this machine cannot sandbox learner code (no fork or "
               "resource limits), so your code ran without time or memory limits; fine for checking "
               "your own work, never for grading others'")
CHECKS_PACKAGE = "grader.checks"


# ---------------------------------------------------------------- the checks
def check_files():
    """{stem: path} of every check file, in notebook order."""
    return {f.stem[len("test_"):]: f for f in sorted(CHECKS_DIR.glob("test_[0-9][0-9]_*.py"))}


def course_stems():
    """{'01': '01_bernoulli_mask', ...}"""
    return {stem[:2]: stem for stem in check_files()}


def _marks(obj):
    marks = getattr(obj, "pytestmark", [])
    return marks if isinstance(marks, list) else [marks]


def _mark(name, *owners):
    """The closest mark called `name` (function, then class, then module): its args."""
    for owner in owners:
        for m in _marks(owner):
            if getattr(m, "name", None) == name:
                return m.args
    return None


class Check:
    """One check: a function of the check file receiving `learner`."""

    def __init__(self, stem, module, func, cls=None):
        self.stem, self.func, self.cls = stem, func, cls
        owners = (func, cls, module) if cls else (func, module)
        self.exercise = (_mark("exercise", *owners) or [module.__name__])[0]
        self.points = float((_mark("points", *owners) or [1])[0])
        vis = _mark("visibility", *owners)
        self.visibility = vis[0] if vis else None
        doc = inspect.getdoc(func) or func.__name__
        self.title = " ".join(doc.split("\n\n")[0].split())
        self.name = func.__name__

    def run(self, learner):
        if self.cls is None:
            return self.func(learner)
        return self.func(self.cls(), learner)   # a fresh instance per check, as pytest does

    def record(self, number, outcome, visibility=None):
        """The record of this check, numbered `number` (e.g. '01.3'), given its outcome
        (status, kind, message: see outcome()); visibility: the config's, if the check has none."""
        status, kind, message = outcome
        rec = {"notebook": self.stem, "exercise": self.exercise, "name": self.title, "check": self.name,
               # a check the student release cannot run is a note worth nothing there
               "number": number, "max_score": 0.0 if kind == release.KIND else self.points,
               "score": self.points if status == "passed" else 0.0,
               "status": status, "kind": kind, "message": clean(message, MAX_MESSAGE)}
        if self.visibility or visibility:
            rec["visibility"] = self.visibility or visibility
        return rec


PASSED = ("passed", None, "")


def outcome(error):
    """(status, kind, message) of a check that raised `error` (an Exception)."""
    if isinstance(error, LearnerError):
        return "failed", error.kind, error.message
    if isinstance(error, release.NotInRelease):   # the student release lacks a reference result
        return "failed", release.KIND, str(error)
    if isinstance(error, AssertionError):
        return "failed", "failed", str(error) or "check failed"
    if isinstance(error, GraderBug):
        return "failed", "grader_error", ("the grader could not run this check — please report it to "
                                          "your instructor: " + str(error).splitlines()[0])
    return "failed", "grader_error", (f"the grader could not run this check ({type(error).__name__}: "
                                      f"{error}) — please report it to your instructor")


def _line(obj):
    """Where obj is written: a function's first line; a class's first method's."""
    if inspect.isfunction(obj):
        return obj.__code__.co_firstlineno
    lines = [f.__code__.co_firstlineno for f in vars(obj).values() if inspect.isfunction(f)]
    return min(lines, default=0)


_COLLECTED = {}


def collect(stem):
    """The checks of one notebook, in the order they are written (imported once per process)."""
    if stem not in _COLLECTED:
        module = importlib.import_module(f"{CHECKS_PACKAGE}.test_{stem}")
        found = []
        for name, obj in vars(module).items():
            if name.startswith("test_") and inspect.isfunction(obj):
                found.append((_line(obj), 0, Check(stem, module, obj)))
            elif name.startswith("Test") and inspect.isclass(obj) and getattr(obj, "__test__", True):
                methods = [f for m, f in inspect.getmembers(obj, inspect.isfunction) if m.startswith("test_")]
                for f in sorted(methods, key=_line):
                    found.append((_line(obj), _line(f), Check(stem, module, f, obj)))
        _COLLECTED[stem] = [c for _, _, c in sorted(found, key=lambda t: (t[0], t[1]))]
    return _COLLECTED[stem]


def known_exercises():
    names = []
    for stem in check_files():
        names += [c.exercise for c in collect(stem) if c.exercise not in names]
    return names


# ---------------------------------------------------------------- what a check holds
class Learner:
    """A check's handle on one notebook of the submission."""

    def __init__(self, run, stem, timeout=None, mem=None):
        self._run, self.stem = run, stem
        self._timeout, self._mem = timeout, mem

    def limited(self, timeout=None, mem=None):
        """This handle with other limits for its calls: timeout (seconds of wall clock, within
        what is left of the submission's) and mem (bytes of address space); default: the config's.
        learner.limited(timeout=20).call(probe, uses, **inputs)."""
        return Learner(self._run, self.stem, timeout=timeout, mem=mem)

    def call(self, probe, uses=(), helpers=(), callbacks=None, **inputs):
        """Run probe(nb, **inputs) in a fork of the learner's process; its raw result.
        uses: the learner's names the probe calls; helpers: trusted functions sent with it;
        callbacks: {name: callable run here, in the grader}: the probe's nb.proxy(name) stands
        for it, and holds nothing but its name (every call is a round trip to this process).
        Every other keyword is one of the probe's inputs (limits: see limited())."""
        return self._call(probe, uses, helpers, False, inputs, callbacks)

    def timed(self, probe, uses=(), helpers=(), callbacks=None, **inputs):
        """(value, CPU seconds) of one probe call: the CPU time of the fork that ran it and of
        everything it started, measured by the process that forked it (no learner code)."""
        return self._call(probe, uses, helpers, True, inputs, callbacks)

    def _call(self, probe, uses, helpers, cpu, inputs, callbacks=None):
        probes.check_call(probe, helpers, inputs)
        run = self._run
        if self.stem not in run.sub.notebooks:
            raise LearnerError("missing", uses[0] if uses else "", run.missing_message(self.stem))
        shortcut = run.shortcut(self.stem)   # exercises still as handed out: no learner process
        # (not for a name that already hung or crashed in the learner's process: it says so)
        if shortcut is not None and not any((self.stem, n) in run._sandbox.broken for n in uses):
            answer = shortcut.call(probe, uses, helpers, cpu, inputs, callbacks)
            if answer is not NOT_TAKEN:
                return answer
        if not cpu and callbacks is None:   # a plain call: perhaps made ahead (see Ahead)
            answer = run.ahead.answer(self.stem, probe, uses, helpers, inputs)
            if answer is not NOT_TAKEN:
                return answer
        return run.sandbox().call(self.stem, probe, uses=uses, timeout=run.budget(self._timeout, uses),
                                  mem=self._mem, helpers=helpers, cpu=cpu, callbacks=callbacks, **inputs)

    def call_each(self, probe, runs, helpers=(), callbacks=None):
        """probe(nb, **run) for each run in ONE call of the learner's process (each_call: each
        run with the learner's definitions loaded afresh, as in a call of its own): per run, its
        value or the LearnerError a call of its own would raise; None when the call failed as a
        whole (a time-out, a crash, memory, output, an answer of another form), and the caller
        then calls for each run on its own, so that a failing run costs only the checks that use
        it.  The call names no learner function (uses=()): its failure marks none as hung."""
        try:
            answers = self.call(each_call, (), helpers=(*helpers, probe), callbacks=callbacks,
                                calls=[[probe.__name__, run] for run in runs])
        except LearnerError:
            return None
        return each_answer(answers, len(runs))

    def solution(self, name):
        """The instructor's `name` from solutions/<this notebook>.ipynb, defined in the
        grader's own process (never the learner's): to time it, or to compute a reference
        result from the inputs the learner's code got."""
        return reference_function(self._run.course, self.stem, name)

    def seed(self, k=0):
        """A grading seed: fixed for a given config.seed, different for each k."""
        return int(np.random.SeedSequence([self._run.config.seed, k]).generate_state(1)[0])

    def rng(self, k=0):
        return np.random.default_rng(self.seed(k))


_REFERENCE = {}


def reference_function(course, stem, name):
    """The instructor's definition of `name`, compiled and run in this (trusted) process; in
    the student release, which holds no instructor code, its recorded results (grader.release)."""
    if release.ACTIVE:
        return release.Replayer(stem, name)
    key = (str(course), stem, name)
    if key not in _REFERENCE:
        ns = {"__name__": f"solution_{stem}"}
        exec(compile(reference_source(course, stem, (name,)), f"<solutions/{stem}>", "exec"), ns)
        _REFERENCE[key] = ns[name]
    return _REFERENCE[key]


def reference_source(course, stem, names):
    """Source of the instructor's definitions of `names` plus the imports they use."""
    path = Path(course) / "solutions" / f"{stem}.ipynb"
    found, imports = {}, [("np", "import numpy as np")]
    for src in nbfile.code_cells(path):
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
        raise GraderBug(f"{path.name} defines no {', '.join(missing)}")
    used = {n.id for d in found.values() for n in ast.walk(d) if isinstance(n, ast.Name)}
    needed = [imp for name, imp in imports if name in used]
    return "\n".join(dict.fromkeys(needed)) + "\n\n" + "\n\n".join(ast.unparse(found[n]) for n in names)


# ---------------------------------------------------------------- handed-out stubs
from grader.stubs import NOT_TAKEN, shortcut, stub_names  # noqa: E402,F401 - read as text, linear (see there)


# ---------------------------------------------------------------- one grading
class Run:
    """The state of one grading: the submission, its learner process, its time budget."""

    def __init__(self, sub, config, label=None, uid=None, server=None):
        self.sub, self.config, self.label = sub, config, label
        self._stubs = {}
        self.course = config.root()
        self.limits = Limits.of(config)
        self.deadline = time.monotonic() + config.submission_timeout if config.submission_timeout else None
        hide = default_hide(self.course) + list(config.hide)
        self._sandbox = Sandbox(sub.notebooks, self.limits, uid=uid, hide=hide, server=server,
                                course=self.course, unsandboxed=config.unsandboxed)
        self.ahead = Ahead(self)

    def shortcut(self, stem):
        if stem not in self._stubs:
            self._stubs[stem] = shortcut(self.course, stem, self.sub.notebooks.get(stem, []))
        return self._stubs[stem]

    def start(self):
        stems = set(self.sub.notebooks) & set(self.sub.expected)
        # its start-up overlaps with the grader's own; not for notebooks all as handed out
        if stems and not all(getattr(self.shortcut(s), "whole", False) for s in stems):
            self._sandbox.spawn()

    def sandbox(self):
        self._sandbox.start()
        return self._sandbox

    def missing_message(self, stem):
        if stem in self.sub.unreadable:
            return f"notebook {stem}.ipynb could not be read: {self.sub.unreadable[stem]}"
        where = self.label or self.sub.folder
        msg = f"notebook {stem}.ipynb was not found" + (f" in {where}" if where else "")
        if stem in self.sub.near:
            msg += f" (found {self.sub.near[stem]}: name it {stem}.ipynb)"
        return msg

    def budget(self, timeout, uses):
        """The call's time limit within what is left of the submission's."""
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0.05:
            raise LearnerError("timeout", uses[0] if uses else "",
                               f"not run: grading of this submission stopped at its time limit of "
                               f"{self.config.submission_timeout:g} s")
        return min(float(timeout or self.limits.seconds), left)

    def close(self):
        isolation = self._sandbox.isolation
        self._sandbox.close()
        self.ahead.remember()
        return isolation


# ---------------------------------------------------------------- calls made ahead
# A class batch grades submission after submission with the same checks, which ask the same
# questions: the plain calls each notebook's checks made in the last grading in this process
# (_PLANS) are made again, ahead, in ONE call of the next submission's learner process
# (each_call: each with the learner's definitions loaded afresh and NumPy's global state as a
# call of its own finds it), and a check's learner.call takes its answer from there when its
# probe, helpers and inputs are the same, once.  Only a saving of calls, never of a verdict: a
# call nobody asks for again costs its CPU time, one with other inputs (a check that asks
# something else of this learner) is a call of its own, and answers are kept only when the
# call ahead came back whole and left nothing behind (process 1's word: no file, thread,
# process or global state its runner could not put back), else every check calls on its own.
# It names no learner function (uses=()): its failure marks none as hung, and a name that hung
# since is reported as hung.  Not for a notebook with stubs left (the stub shortcut) nor for
# timed calls or calls with call-backs.  The plan goes to the next learner's process, inputs
# included: a check builds a plain call's inputs from the grader's seeds and its constants, never
# from what a learner's code returned (every check of the course does; README, Authoring).
_PLANS = {}        # (stem, checks selected, seed) -> [(probe, helpers, inputs, key)]: the last grading's plain calls
PLAN_CALLS = 64    # a notebook whose checks made more is not planned (a learner's odd path)
PLAN_BYTES = 1 << 20   # a call with more bytes of arrays is not planned: its call costs little beside them


def each_call(nb, calls):
    """The probe called `name` on each (name, inputs) in turn, each with the learner's
    definitions loaded afresh (nb.fresh()); its value, or the failure a call of its own would
    report ([kind, function, message]).  Running out of memory or output ends them all."""
    out = []
    for i, (name, inputs) in enumerate(calls):
        try:
            out.append({"value": globals()[name](nb.fresh() if i else nb, **inputs)})
        except (nb.Raised, nb.Failure) as e:
            failure = e.failure() if isinstance(e, nb.Raised) else e
            if failure.kind in ("memory", "output"):
                raise
            out.append({"failed": [failure.kind, failure.function, failure.message]})
    return out


def each_answer(answers, n):
    """each_call's answers for n calls as [value or LearnerError], None if they are not that."""
    if not (isinstance(answers, list) and len(answers) == n):
        return None
    out = []
    for ans in answers:
        if isinstance(ans, dict) and "value" in ans:
            out.append(ans["value"])
        elif isinstance(ans, dict) and isinstance(ans.get("failed"), list) and len(ans["failed"]) == 3:
            out.append(LearnerError(*(str(v) for v in ans["failed"])))
        else:
            return None
    return out


def _call_key(probe, helpers, inputs):
    text = codec.encode(dict(sorted(inputs.items())))
    return probe.__name__, tuple(h.__name__ for h in helpers), hashlib.blake2b(text, digest_size=20).digest()


def _array_bytes(v):
    if isinstance(v, np.ndarray):
        return v.nbytes
    if isinstance(v, (list, tuple)):
        return sum(_array_bytes(x) for x in v)
    if isinstance(v, dict):
        return sum(_array_bytes(x) for x in v.values())
    return 0


class Ahead:
    """One grading's calls made ahead: {stem: {call key: [value or LearnerError]}}, and the
    calls it made."""

    def __init__(self, run):
        self.run, self.answers, self.made = run, {}, {}
        self.which = (run.config.only, run.config.seed)   # the same checks, the same inputs

    def answer(self, stem, probe, uses, helpers, inputs):
        """The answer made ahead for this call (its value; a LearnerError it reports is raised),
        or NOT_TAKEN; the call is recorded for the next grading's plan."""
        if _array_bytes(inputs) > PLAN_BYTES:
            return NOT_TAKEN
        try:
            key = _call_key(probe, helpers, inputs)
        except codec.CodecError:
            return NOT_TAKEN   # the call itself says what is wrong
        self.made.setdefault(stem, []).append((probe, tuple(helpers), inputs, key))
        if stem not in self.answers:
            self.answers[stem] = self._call_ahead(stem)
        if not self.answers[stem] or any((stem, n) in self.run._sandbox.broken for n in uses):
            return NOT_TAKEN
        got = self.answers[stem].get(key)
        if not got:
            return NOT_TAKEN
        value = got.pop(0)
        if isinstance(value, LearnerError):
            raise value
        return value

    def _call_ahead(self, stem):
        plan = _PLANS.get((stem, *self.which))
        sandbox = self.run._sandbox
        if not plan or self.run.shortcut(stem) is not None or not isinstance(sandbox, host.Sandbox) \
                or sandbox.unsandboxed:
            return {}   # (where calls run in one process, without a runner, nothing is saved)
        funcs = {}
        for probe, helpers, _, _ in plan:
            for f in (*helpers, probe):
                if funcs.setdefault(f.__name__, f) is not f:
                    return {}   # two functions of one name: they cannot both be sent
        calls = [[probe.__name__, inputs] for probe, _, inputs, _ in plan]
        try:
            probes.check_call(each_call, list(funcs.values()), {"calls": calls})
            answers = self.run.sandbox().call(stem, each_call, uses=(), timeout=self.run.budget(None, ()),
                                   helpers=tuple(funcs.values()), calls=calls)
        except (LearnerError, GraderBug):
            return {}
        served, values = sandbox.served or {}, each_answer(answers, len(plan))
        if served.get("left") or served.get("again") or values is None:
            return {}
        table = {}
        for (_, _, _, key), value in zip(plan, values):
            table.setdefault(key, []).append(value)
        return table

    def remember(self):
        """The calls of this grading become the plan of the next one in this process."""
        for stem, made in self.made.items():
            if self.run.shortcut(stem) is None and len(made) <= PLAN_CALLS:
                _PLANS[(stem, *self.which)] = made


def run_check(check, learner):
    """One check -> its outcome: (status, kind, message)."""
    try:
        check.run(learner)
    except Exception as e:  # noqa: BLE001 - a learner's mistake, or a bug in the check itself
        return outcome(e)
    return PASSED


def selected_checks(sub, only):
    """[(stem, Check)] to run: the expected notebooks' checks, narrowed by --only."""
    out = []
    for stem in check_files():
        if stem in sub.expected:
            out += [(stem, c) for c in collect(stem) if submission.selected(only, stem, c.exercise)]
    return out


def grade(sub, config=DEFAULT, label=None, uid=None, server=None, info=None, lanes=1):
    """Grade a Submission (grader.submission.load) and return its records.  info, a dict,
    receives how learner code was isolated.  lanes: with 2 (one learner's submission from the
    command line, on a Linux machine with a core to spare), the notebooks are split between this
    process and a forked copy of it, each with a learner process of its own (its own uid and
    control group), graded side by side; the records are the same, in the same order."""
    stems = [s for s in check_files() if s in sub.expected]
    forks = sys.platform.startswith("linux")   # a fork of a process that holds threads is safe there
    # a time budget for the whole submission (--submission-timeout) is spent in notebook order by
    # one lane: two would let later notebooks run when one lane's ran out, another score
    split = lanes > 1 and forks and not (config.only or config.unsandboxed or config.submission_timeout)
    groups = split_lanes(stems, lanes) if split else [stems]
    if len(groups) < 2:
        return [r for _, r in _grade_lane(sub, config, label, uid, server, info)]
    lane = _Lane(sub, config, label, groups[1])
    try:
        mine = _grade_lane(_narrowed(sub, groups[0]), config, label, uid, server, info)
        theirs, isolation = lane.result()
    finally:
        lane.stop()
    if info is not None and info.get("isolation") is None:
        info["isolation"] = isolation
    by_stem = {}
    for stem, record in mine + theirs:
        by_stem.setdefault(stem, []).append(record)
    return [r for stem in stems for r in by_stem.get(stem, [])]


def _grade_lane(sub, config, label, uid, server, info):
    """[(stem, record)] of sub's checks, graded here with one learner process."""
    run = Run(sub, config, label=label, uid=uid, server=server)
    pairs, count = [], {}
    try:
        run.start()   # the learner's process starts while the checks are imported
        checks = selected_checks(sub, config.only)
        learners = {}
        for stem, check in checks:
            learner = learners.setdefault(stem, Learner(run, stem))
            count[stem] = count.get(stem, 0) + 1
            pairs.append((stem, check.record(f"{stem[:2]}.{count[stem]}", run_check(check, learner),
                                             config.visibility)))
    finally:
        isolation = run.close()   # every learner process is gone before anything is published
    if info is not None:
        info["isolation"] = isolation
    return pairs


# ---------------------------------------------------------------- two lanes for one submission
# CPU seconds of each notebook's checks on solutions/, the grader's and the learner's (a warm
# grader, no calls made ahead, this repository's 2-core machine, median of 3): only to balance
# the lanes; any split gives the same records.
LANE_COST = {"01": 0.15, "02": 0.7, "03": 0.37, "04": 0.5, "05": 0.3, "06": 0.15, "07": 0.14}


def split_lanes(stems, lanes):
    """stems in at most `lanes` groups of about equal cost (the costliest placed first)."""
    groups, load = [[] for _ in range(lanes)], [0.0] * lanes
    for stem in sorted(stems, key=lambda s: -LANE_COST.get(s[:2], 0.3)):
        i = load.index(min(load))
        groups[i].append(stem)
        load[i] += LANE_COST.get(stem[:2], 0.3)
    return [g for g in groups if g]


def _narrowed(sub, stems):
    """sub with only these notebooks graded (and sent to the learner's process)."""
    keep = set(stems)
    return replace(sub, notebooks={k: v for k, v in sub.notebooks.items() if k in keep},
                   expected={s for s in sub.expected if s in keep})


class _Lane:
    """A forked copy of this grading process that grades some of the notebooks and sends back
    their records (plain data, over a pipe); it runs no learner code itself."""

    def __init__(self, sub, config, label, stems):
        rd, wr = os.pipe()
        self.pid = os.fork()
        if self.pid == 0:   # the lane: grades, answers, ends without running the parent's clean-up
            os.close(rd)
            answer = {}
            try:
                lane_info = {}
                answer["pairs"] = _grade_lane(_narrowed(sub, stems), config, label, None, None, lane_info)
                answer["isolation"] = lane_info.get("isolation")
            except BaseException as e:  # noqa: BLE001 - said to the parent, which reports it
                answer = {"error": f"{type(e).__name__}: {e}"}
            try:
                with os.fdopen(wr, "w") as f:
                    json.dump(answer, f)
            finally:
                os._exit(0)
        os.close(wr)
        self.rd = rd
        KEEP_CHILDREN.add(self.pid)   # not a learner process: this one's clean-up leaves it alone

    def result(self):
        """([(stem, record)], isolation) once the lane is done."""
        with os.fdopen(self.rd, "r") as f:
            self.rd = None
            text = f.read()
        self._reap(block=True)
        try:
            answer = json.loads(text)
        except ValueError:
            raise GraderBug("the second grading lane ended without its records") from None
        if "error" in answer:
            raise GraderBug(f"the second grading lane failed: {answer['error']}")
        return [(stem, record) for stem, record in answer["pairs"]], answer.get("isolation")

    def _reap(self, block):
        if self.pid is None:
            return True
        try:
            done, _ = os.waitpid(self.pid, 0 if block else os.WNOHANG)
        except ChildProcessError:   # reaped already, by a learner process's clean-up (its records are in)
            done = True
        if done:
            KEEP_CHILDREN.discard(self.pid)
            self.pid = None
        return self.pid is None

    def stop(self):
        """End the lane if it still runs (this grading was interrupted): it closes its learner
        process first (SIGTERM: as for Ctrl-C), then, after 10 s, it is killed."""
        if self.rd is not None:
            os.close(self.rd)
            self.rd = None
        if self.pid is None or self._reap(block=False):
            return
        os.kill(self.pid, signal.SIGTERM)
        end = time.monotonic() + 10
        while not self._reap(block=False):
            if time.monotonic() > end:
                os.kill(self.pid, signal.SIGKILL)
                self._reap(block=True)
                return
            time.sleep(0.01)


def load(paths, config=DEFAULT, one_notebook=False):
    """The Submission for notebooks / folders of notebooks, each read once (BadInput if
    unusable).  Uploads (batches, Gradescope) are staged by grader.uploads instead."""
    return submission.load(paths, course_stems(), one_notebook)


def check_only(only):
    """BadInput unless every item of --only names an exercise or a notebook (stem or number)."""
    if not only:
        return
    stems = course_stems()
    known = set(known_exercises()) | set(stems) | set(stems.values())
    for tok in only.replace(" ", "").split(","):
        if tok not in known:
            raise nbfile.BadInput(f"no exercise called {tok!r} (known: {', '.join(known_exercises())}; "
                                  f"or a notebook: {', '.join(sorted(stems))})")
