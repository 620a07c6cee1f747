"""check() for notebook cells and grade() for Python: both run `python -m grader` in a
separate process, so learner code never shares a process with the grading."""
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class GradingError(Exception):
    """The grader refused the input (the message is its one-line reason)."""


def _run(args, timeout=600):
    with tempfile.TemporaryDirectory(prefix="grader-call-") as d:
        out = Path(d) / "results.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
        proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args), "--json", str(out)],
                              cwd=d, capture_output=True, text=True, timeout=timeout, env=env)
        if proc.returncode != 0 or not out.exists():
            msg = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
            raise GradingError(msg.removeprefix("grader: "))
        return json.loads(out.read_text())


def grade(*paths, only=None, seed=None, course=None):
    """Grade notebooks (paths to notebooks or folders); returns Gradescope's results.json dict.
    Defaults (seed, limits) are grader.config's, as on the command line."""
    args = [os.path.abspath(p) for p in paths] + (["--only", only] if only else []) \
        + (["--seed", str(seed)] if seed is not None else []) \
        + (["--course", str(course)] if course else []) + ["--self-study"]
    return _run(args)


def _kernel_cells():
    try:
        from IPython import get_ipython
    except ImportError:
        return None
    ip = get_ipython()
    if ip is None:
        return None
    return [c for c in ip.user_ns.get("In", [])[1:] if isinstance(c, str)]


def check(exercise, cells=None):
    """Grade one exercise from the cells run so far in this kernel; print a short report.

    Returns nothing (so the cell shows only the report); grade() gives results as data."""
    cells = _kernel_cells() if cells is None else cells
    if cells is None:
        print("check() works inside Jupyter; from a shell run: python -m grader notebooks/")
        return
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [],
                     "execution_count": None} for c in cells]}
    with tempfile.TemporaryDirectory(prefix="grader-check-") as d:
        path = Path(d) / "kernel.ipynb"
        path.write_text(json.dumps(nb))
        try:
            res = _run([path, "--one-notebook", "--only", exercise, "--self-study"], timeout=300)
        except GradingError as e:
            print(f"✗ could not check {exercise}: {e}")
            return
        except subprocess.TimeoutExpired:
            print(f"✗ checking {exercise} took more than 5 minutes and was stopped")
            return
    tests = res["tests"]
    failed = [t for t in tests if t["status"] != "passed"]
    got, top = res["score"], sum(t["max_score"] for t in tests)
    head = f"{exercise}: {len(tests) - len(failed)} of {len(tests)} checks passed ({got:g}/{top:g} points)"
    if res.get("output", "").startswith("⚠"):
        print(res["output"].split("\n")[0])
    print(("✓ " if not failed else "✗ ") + head)
    for t in tests:
        name = t["name"].split(" · ", 2)[-1]
        if t["status"] == "passed":
            print(f"  ✓ {name}")
        else:
            print(f"  ✗ {name}")
            for line in t["output"].strip().splitlines():
                print(f"      {line}")
