"""check() for notebook cells and grade() for Python: both run `python -m grader` in a
separate process, so learner code never shares a process with the grading.  check() asks the
kernel's background grader instead when the set-up cell started one (grader.warm: the same
grading, without starting a grader and a learner process each time).

Where no process can be started — a browser kernel (JupyterLite, Pyodide) — check() grades
in the kernel's own process, without the sandbox, and says so (the unsandboxed self-study
path; never used to grade anyone else).

One source of truth: check() grades what this kernel ran (the cells as typed, magics
included, in the order they were run), while the final grade reads the saved notebook.  It
says so in one line and, when it can find the saved file (Jupyter tells the kernel its path),
warns when the two differ: unsaved edits, or cells run out of order.  Cell magics (%%time,
%%timeit, %%capture) are read by the same rule as the final grade's (grader.sandbox.learner).
"""
import ast
import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IN_PROCESS = ("in-process self-study mode: this kernel cannot start processes (a browser kernel such as "
              "JupyterLite), so your code was checked in the notebook's own process, without time or memory "
              "limits; fine for checking your own work, never for grading others'")


class GradingError(Exception):
    """The grader refused the input (the message is its one-line reason)."""


def browser_kernel():
    """Is this a kernel that cannot start processes (Pyodide/JupyterLite: emscripten, WASI)?"""
    return sys.platform in ("emscripten", "wasi") or (not hasattr(os, "fork") and sys.platform != "win32")


def _run(args, timeout=600):
    with tempfile.TemporaryDirectory(prefix="grader-call-") as d:
        out = Path(d) / "results.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
        proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args), "--json", str(out)],
                              cwd=d, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0 or not out.exists():
            raise GradingError(_refusal(proc.stderr, proc.returncode))
        return json.loads(out.read_text())


def _refusal(stderr, status):
    """The grader's one-line reason, from what it wrote on stderr."""
    return (stderr.strip().splitlines() or [f"exit status {status}"])[-1].removeprefix("grader: ")


def grade(*paths, only=None, seed=None, course=None):
    """Grade notebooks (paths to notebooks or folders); returns Gradescope's results.json dict.
    Defaults (seed, limits) are grader.config's, as on the command line."""
    args = [os.path.abspath(p) for p in paths] + (["--only", only] if only else []) \
        + (["--seed", str(seed)] if seed is not None else []) \
        + (["--course", str(course)] if course else []) + ["--self-study"]
    return _run(args)


# ---------------------------------------------------------------- in the kernel's own process
class InProcessSandbox:
    """What grader.engine asks of a Sandbox, answered in this process: the learner's
    definitions are loaded and each probe run by grader.sandbox.learner's own functions (the
    unsandboxed path), without a process, a fork, limits or time-outs."""

    def __init__(self, notebooks, limits=None, uid=None, hide=(), server=None, course=None, unsandboxed=True):
        from grader.sandbox import learner
        self.learner, self.notebooks, self.limits = learner, notebooks, limits
        self.course = str(course) if course else None
        self.isolation = {"uid": None, "unsandboxed": True, "in_process": True}
        self.summary = None
        self.broken = {}

    def spawn(self):
        pass

    def start(self):
        if self.summary is None:
            lm = self.learner
            if self.limits is not None:
                lm.LIMITS.update({"mem": self.limits.mem, "output": self.limits.output,
                                  "seconds": self.limits.seconds, "cell_seconds": self.limits.cell_seconds})
            if self.course and self.course not in sys.path:
                sys.path.insert(0, self.course)
            lm.STATE["course"], lm.STATE["work"] = self.course, os.getcwd()
            lm.snapshot_modules()
            self.summary = {"notebooks": {}}
        return self.summary

    def call(self, stem, probe, uses=(), timeout=None, mem=None, helpers=(), cpu=False, callbacks=None,
             **kwargs):
        import signal

        from grader.sandbox.host import SOURCES, answer_value, probe_source, run_callback
        self.start()
        for f in (probe, *helpers):
            if f not in SOURCES:
                SOURCES[f] = probe_source(f)
        req = {"op": "call", "stem": stem, "probe_src": "\n\n".join(SOURCES[f] for f in (*helpers, probe)),
               "probe_name": probe.__name__, "kwargs": kwargs, "uses": list(uses)}
        lm = self.learner
        if not hasattr(signal, "setitimer"):   # a browser kernel: no timers for the definitions
            lm.signal = _NoTimers()
        # the probe's proxies (nb.proxy) reach the callbacks through the same encoding as over a pipe
        lm.STATE["local_cb"] = (lambda frame: run_callback(callbacks, frame)) if callbacks else None
        try:
            info = lm.serve_unsandboxed(req, self.notebooks)
        finally:
            lm.STATE["local_cb"] = None
        return answer_value(info["frame"], uses, float(info.get("seconds") or 0.0) if cpu else None)

    def close(self):
        return None


class _NoTimers:
    """The few parts of `signal` that loading a notebook uses, as no-ops (Pyodide has no timers)."""
    SIGALRM, ITIMER_REAL, SIG_DFL = 14, 0, 0

    def signal(self, *a):
        return None

    def setitimer(self, *a):
        return None


def grade_in_process(path, exercise):
    """Grade one exercise of the notebook at `path` in this process (a browser kernel)."""
    from grader import engine, nbfile
    from grader.config import DEFAULT
    from grader.publish import report
    config = DEFAULT.with_(only=exercise, unsandboxed=True)
    try:
        engine.check_only(exercise)
        sub = engine.load([path], config, one_notebook=True)
    except nbfile.BadInput as e:
        raise GradingError(str(e)) from None
    real, engine.Sandbox = engine.Sandbox, InProcessSandbox
    try:
        records = engine.grade(sub, config)
    finally:
        engine.Sandbox = real
    return report.gradescope(records)


# ---------------------------------------------------------------- one source of truth
def _kernel_cells():
    """The cells this kernel ran, as typed (magics included), in the order they were run."""
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None:
        return None
    raw = getattr(getattr(ip, "history_manager", None), "input_hist_raw", None)
    cells = raw if raw else ip.user_ns.get("In", [])
    return [c for c in cells[1:] if isinstance(c, str)]


def saved_notebook():
    """The saved notebook this kernel belongs to, when Jupyter says (JupyterLab/Notebook 7 set
    JPY_SESSION_NAME and __session__, VS Code __vsc_ipynb_file__); else None."""
    candidates = [os.environ.get("JPY_SESSION_NAME")]
    try:
        from IPython import get_ipython
        ip = get_ipython()
        if ip is not None:
            candidates = [ip.user_ns.get("__vsc_ipynb_file__"), ip.user_ns.get("__session__")] + candidates
    except ImportError:
        pass
    for c in candidates:
        if isinstance(c, str) and c.endswith(".ipynb"):
            p = Path(c) if Path(c).is_absolute() else Path.cwd() / c
            if not p.is_file():
                p = Path.cwd() / Path(c).name   # a path relative to Jupyter's root, not the kernel's folder
            if p.is_file():
                return p
    return None


def definitions(cells):
    """{name: its last definition} as the grader reads cells in this order: the top-level
    functions and classes of each cell, magics handled by the grader's own rule."""
    out = {}
    for src in cells:
        out.update(_cell_definitions(src))
    return out


@functools.lru_cache(maxsize=4096)
def _cell_definitions(src):
    """((name, its definition dumped), ...) of one cell, in order; each cell is parsed once
    per kernel (the saved file's cells are mostly the kernel's, and come back every check())."""
    from grader.sandbox.learner import _strip_magics
    try:
        tree = ast.parse(_strip_magics(src))
    except (SyntaxError, ValueError):
        return ()
    return tuple((node.name, ast.dump(node)) for node in tree.body
                 if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)))


def differences(kernel_cells, saved_cells):
    """Names the final grade (the saved file) would read differently from this kernel."""
    mine, saved = definitions(kernel_cells), definitions(saved_cells)
    return sorted(n for n in set(mine) | set(saved) if mine.get(n) != saved.get(n))


def source_note(kernel_cells, notebook):
    """The one line saying what was graded, and a warning when the saved file differs."""
    head = "graded: the cells this kernel ran, in the order you ran them; your grade reads the saved notebook"
    if notebook is None:
        return [head + " (not found here to compare: save, then Restart Kernel and Run All Cells before you hand in)"]
    from grader import nbfile
    try:
        saved = nbfile.code_cells(notebook)
    except Exception:  # noqa: BLE001 - an unreadable file is the final grade's to report
        return [head + f" ({Path(notebook).name} could not be read to compare)"]
    diff = differences(kernel_cells, saved)
    if not diff:
        return [head + f" ({Path(notebook).name}: the same definitions)"]
    names = ", ".join(diff[:4]) + (f" and {len(diff) - 4} more" if len(diff) > 4 else "")
    return [head + ".",
            f"⚠ {Path(notebook).name} as saved differs from what this kernel ran ({names}): unsaved edits, "
            "or cells run out of order. Your grade will read the saved file: save it, then Restart Kernel "
            "and Run All Cells, and check again."]


# ---------------------------------------------------------------- check()
def kernel_notebook(cells):
    """The notebook (JSON text) that check() grades: the kernel's cells, in the order run."""
    return json.dumps({"nbformat": 4, "nbformat_minor": 5, "metadata": {},
                       "cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [],
                                  "execution_count": None} for c in cells]})


def _grade_cells(cells, exercise, in_process=False):
    """results.json (a dict) of grading `exercise` on the cells as one notebook: in this
    process (a browser kernel), by this kernel's warm grader (grader.warm) when the set-up
    cell started one, else by a fresh `python -m grader` — the same grading every way."""
    if not in_process:
        from grader import warm
        answered = warm.grade(cells, exercise)
        if answered is not None:
            status, stderr, res = answered
            if status != 0 or res is None:
                raise GradingError(_refusal(stderr, status))
            return res
    with tempfile.TemporaryDirectory(prefix="grader-check-") as d:
        path = Path(d) / "kernel.ipynb"
        path.write_text(kernel_notebook(cells))
        if in_process:
            return grade_in_process(path, exercise)
        return _run(check_argv(path, exercise), timeout=300)


def check_argv(path, exercise):
    """check()'s options for `python -m grader` (the exercise joined to its option: whatever
    it holds, it is never read as another option)."""
    return [str(path), "--one-notebook", f"--only={exercise}", "--self-study"]


def check(exercise, cells=None, notebook=None):
    """Grade one exercise from the cells run so far in this kernel; print a short report.

    Returns nothing (so the cell shows only the report); grade() gives results as data.
    cells / notebook: the cells to grade and the saved notebook to compare with (default:
    this kernel's history and the notebook Jupyter names)."""
    kernel = cells is None
    cells = _kernel_cells() if cells is None else cells
    if cells is None:
        print("check() works inside Jupyter; from a shell run: python -m grader notebooks/")
        return
    notebook = saved_notebook() if notebook is None and kernel else notebook
    in_process = browser_kernel()
    try:
        res = _grade_cells(cells, exercise, in_process)
    except GradingError as e:
        print(f"✗ could not check {exercise}: {e}")
        return
    except subprocess.TimeoutExpired:
        print(f"✗ checking {exercise} took more than 5 minutes and was stopped")
        return
    tests = res["tests"]
    counted = [t for t in tests if t["max_score"] > 0 or t["status"] == "passed"]
    failed = [t for t in counted if t["status"] != "passed"]
    got, top = res["score"], sum(t["max_score"] for t in tests)
    head = f"{exercise}: {len(counted) - len(failed)} of {len(counted)} checks passed ({got:g}/{top:g} points)"
    if in_process:
        print("⚠ " + IN_PROCESS)
    elif res.get("output", "").startswith("⚠"):
        print(res["output"].split("\n")[0])
    print(("✓ " if not failed else "✗ ") + head)
    for t in tests:
        name = t["name"].split(" · ", 2)[-1]
        if t["status"] == "passed":
            print(f"  ✓ {name}")
        elif t not in counted:   # a note worth nothing here (e.g. checked only at grading)
            print(f"  – {name}: {t['output'].strip().splitlines()[0] if t['output'].strip() else ''}")
        else:
            print(f"  ✗ {name}")
            for line in t["output"].strip().splitlines():
                print(f"      {line}")
    if kernel or notebook is not None:
        for line in source_note(cells, notebook):
            print(line)
