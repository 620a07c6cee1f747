"""How fast is grading, and how fast is the course's dropout?  One run, one machine, ratios.

    python -m grader.benchmark              # all three parts (a few minutes)
    python -m grader.benchmark --only a,c   # some of them
    python -m grader.benchmark --submissions 100 --jobs 2 --runs 5

(a) grading one complete submission (solutions/) with `python -m grader` against executing
    the same notebooks through a Jupyter kernel with nbclient (their check() cells made
    no-ops, so only the notebooks' own code runs: the floor of every kernel-based grader)
    — target: < 1.5 s; the CPU seconds of that grading and of each notebook graded alone
    (the grader and every process it started); and one check() as a notebook calls it, cold (a fresh grader) and warm
    (the set-up cell's background grader, grader.warm) — target: warm < 0.2 s;
(b) a realistic class of N submissions — complete (solutions/), blank (notebooks/, as handed
    out), partial (01-02 done, the rest as handed out) and buggy (the solutions with one real
    mistake, in one notebook) in the ratio 4:2:1:3 —
    graded with `python -m grader DIR --out ... --jobs J`, side by side with nbclient merely
    executing ONE complete submission; the ratio nbclient / class is printed — target >= 1
    for 100 submissions with --jobs 2;
(c) the reference inverted dropout (dropout_forward_inverted from the solutions, and
    dropout_backward) on 10 million float32 elements against a plain NumPy copy of the
    array (the memory-bound floor) and, when PyTorch is installed, against
    torch.nn.functional.dropout — targets: forward >= 4x faster than torch on the CPU, the
    cache <= 1 byte per element, extra memory <= 2.3x the input, float32 in and out.

Whole commands are timed from outside (wall clock, median of --runs after one warm-up);
kernels in-process (median of --runs after a warm-up).  The machine's load is printed:
other jobs running at the same time make every number worse.  Not a test: nothing fails.
"""
import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GRADER_DIR = Path(__file__).resolve().parent
ROOT = GRADER_DIR.parent
SOLUTIONS = ROOT / "solutions"
NBCLIENT_SCRIPT = r"""
import json, sys, time
t0 = time.perf_counter()
import nbformat
from nbclient import NotebookClient
for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    # only the notebook's own code: check() is made a no-op right AFTER every cell that imports
    # it (the set-up cell re-imports the real one, so a no-op defined before it would be replaced)
    inert = "check = lambda *args, **kwargs: None"
    cells = []
    for cell in nb.cells:
        cells.append(cell)
        if cell.cell_type == "code" and "import check" in cell.source:
            cells.append(nbformat.v4.new_code_cell(inert))
    nb.cells = cells
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(__import__("pathlib").Path(path).parent)}}).execute()
"""


def machine():
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import numpy
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} CPUs, {platform.system()} {platform.release()}, Python "
            f"{platform.python_version()}, NumPy {numpy.__version__}; load average {load:.1f} at the start"
            + (" (busy: expect slower numbers)" if load > 0.5 * (os.cpu_count() or 1) else ""))


def wall(cmd, runs, env=None, cwd=ROOT):
    """Median wall-clock seconds of a command (after one warm-up run), and the last result."""
    times, proc = [], None
    for i in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or [""]
            raise RuntimeError(f"exit status {proc.returncode}: {last[0][-300:]}")
        if i:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), proc


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def part_a(runs):
    notebooks = sorted(str(p) for p in SOLUTIONS.glob("*.ipynb"))
    if not notebooks:
        print("(a) skipped: no notebooks in solutions/")
        return
    print(f"(a) one complete submission: {len(notebooks)} notebook(s) in solutions/")
    k = None
    try:
        g, proc = wall([sys.executable, "-m", "grader", "solutions/", "--json", os.devnull], runs, _env())
    except RuntimeError as e:
        print(f"    python -m grader solutions/ failed ({e})")
        return
    total = [ln for ln in proc.stdout.splitlines() if ln.startswith("total:")]
    print(f"    python -m grader solutions/          {g:6.2f} s   ({total[0] if total else '?'})")
    per_notebook(runs)
    try:
        import nbclient  # noqa: F401
        import nbformat  # noqa: F401
    except ImportError:
        print("    nbclient/nbformat not installed: no kernel comparison")
        return
    try:
        # the kernel floor runs no grader: check() inert, and no background grader started
        k, _ = wall([sys.executable, "-c", NBCLIENT_SCRIPT, *notebooks], max(1, runs // 2),
                    {**_env(), "GRADER_WARM": "0"})
    except RuntimeError as e:
        print(f"    nbclient could not execute the notebooks ({e}): no kernel comparison")
        return
    print(f"    nbclient, executing the notebooks     {k:6.2f} s")
    print(f"    -> grading is {k / g:.1f}x faster than merely executing; {g:.2f} s (target < 1.5 s)")
    imports()
    check_call(runs)
    return k


def cpu_seconds(cmd):
    """CPU seconds of a command and of every process it started (the learner's included)."""
    before = os.times()
    subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True)
    after = os.times()
    return (after.children_user - before.children_user) + (after.children_system - before.children_system)


def per_notebook(runs):
    """Median CPU seconds of grading all of solutions/, and of grading each notebook alone
    (--only NN: each pays the fixed cost of a grader and a learner process again)."""
    base = [sys.executable, "-m", "grader", "solutions/"]
    whole = statistics.median(cpu_seconds(base) for _ in range(runs))
    alone = [f"{nb.name[:2]} {statistics.median(cpu_seconds(base + ['--only', nb.name[:2]]) for _ in range(runs)):.2f}"
             for nb in sorted(SOLUTIONS.glob("*.ipynb"))]
    print(f"    CPU-s, all notebooks {whole:.2f}; each graded alone: {', '.join(alone)}")


CHECK_SCRIPT = r"""
import contextlib, io, sys, time
sys.path.insert(0, sys.argv[1])
from grader import warm
from grader.inline import check
from grader.nbfile import code_cells
cells = [c for c in code_cells(sys.argv[2]) if c]
def timed():
    t = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        check("bernoulli_mask", cells=cells)
    return time.perf_counter() - t
print("COLD", timed())          # no worker: a fresh python -m grader
warm.start(force=True)          # what the set-up cell starts
timed()                         # the first call may wait for the worker's warm-up
time.sleep(1)                   # a learner's next check() comes after some typing: by then the
print("WARM", timed())          # worker has readied the next learner process (back to back: +0.1-0.3 s)
"""


def check_call(runs):
    """One check() as a notebook cell calls it (the kernel already warm), in seconds: cold (a
    fresh `python -m grader`) and warm (the set-up cell's worker, grader.warm; a later call)."""
    times = {"COLD": [], "WARM": []}
    for _ in range(runs + 1):
        nb = str(SOLUTIONS / "01_bernoulli_mask.ipynb")
        out = subprocess.run([sys.executable, "-c", CHECK_SCRIPT, str(ROOT), nb],
                             capture_output=True, text=True, env=_env()).stdout
        for line in out.splitlines():
            if line.split()[:1] in (["COLD"], ["WARM"]):
                times[line.split()[0]].append(float(line.split()[1]))
    for key, target in (("COLD", ""), ("WARM", "   (target < 0.2 s)")):
        if len(times[key]) > 1:
            t = statistics.median(times[key][1:])
            print(f"    check(\"bernoulli_mask\") in a kernel, {key.lower()}  {t:6.2f} s{target}")


def imports():
    """What the grading process imports, and how long that takes (it must not import nbformat)."""
    code = ("import sys, time; t = time.perf_counter(); import grader.cli, grader.engine; "
            "print(time.perf_counter() - t); print(' '.join(m for m in ('nbformat', 'jsonschema', "
            "'IPython', 'matplotlib', 'nbclient') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**_env(), "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
                         capture_output=True, text=True).stdout.split("\n")
    heavy = out[1].strip() if len(out) > 1 else "?"
    print(f"    the grader's imports (NumPy, the engine and command line): {float(out[0]):.2f} s; "
          f"heavy modules loaded: {heavy or 'none (no nbformat, IPython, matplotlib)'}")


BUGS = {  # notebook -> a cell appended to the solution: one classic mistake per exercise
    "01": "def bernoulli_mask(shape, p, rng=None):\n    rng = np.random.default_rng() if rng is None else rng\n"
          "    return rng.random(shape) < p\n",
    "02": "def dropout_forward_inverted(x, p, train=True, rng=None):\n    rng = np.random.default_rng() "
          "if rng is None else rng\n    m = rng.random(x.shape) >= p\n    return x * m, m\n",
    "03": "def dropout_backward(dout, cache):\n    return dout\n",
    "04": "def relative_error(a, b):\n    return float(np.max(a - b) / np.max(np.abs(a) + np.abs(b)))\n",
    "05": "",
    "06": "def mc_dropout_predict(net, x, T=100):\n    net.eval()\n    y = net.forward(x)\n"
          "    return y, np.zeros_like(y)\n",
}


MIX = ("complete",) * 4 + ("blank",) * 2 + ("partial",) + ("buggy",) * 3   # 40:20:10:30 of 100


def kind_of(i):
    return MIX[i % len(MIX)]


def make_class(folder, n):
    """n submissions, complete, blank, partial and buggy in the ratio 4:2:1:3; {kind: count}.
    A buggy one has one real mistake, in one notebook (the notebooks taken in turn)."""
    from grader import nbfile
    solutions = sorted(SOLUTIONS.glob("*.ipynb"))
    buggy_stems = [nb.name[:2] for nb in solutions if BUGS.get(nb.name[:2])]
    kinds = {k: 0 for k in dict.fromkeys(MIX)}
    for i in range(n):
        kind = kind_of(i)
        kinds[kind] += 1
        bug = buggy_stems[kinds["buggy"] % len(buggy_stems)] if kind == "buggy" and buggy_stems else None
        d = folder / f"learner{i:03d}"
        d.mkdir(parents=True)
        for nb in solutions:
            handed_out = ROOT / "notebooks" / nb.name
            blank = kind == "blank" or (kind == "partial" and nb.name[:2] not in ("01", "02"))
            if blank and handed_out.exists():
                shutil.copy(handed_out, d / nb.name)
            elif nb.name[:2] == bug:
                cells = [c for c in nbfile.code_cells(nb) if c] + [BUGS[bug]]
                (d / nb.name).write_text(json.dumps({
                    "nbformat": 4, "nbformat_minor": 5, "metadata": {},
                    "cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [],
                               "execution_count": None} for c in cells]}))
            else:
                shutil.copy(nb, d / nb.name)
    return kinds


def part_b(n, jobs, nbclient_seconds=None):
    if not list(SOLUTIONS.glob("*.ipynb")):
        print("(b) skipped: no notebooks in solutions/")
        return
    with tempfile.TemporaryDirectory(prefix="grader-bench-") as tmp:
        subs = Path(tmp) / "submissions"
        kinds = make_class(subs, n)
        print(f"(b) a class of {n}: " + ", ".join(f"{v} {k}" for k, v in kinds.items())
              + f", graded with --jobs {jobs}")
        out = Path(tmp) / "results"
        t0 = time.perf_counter()
        before = os.times()
        proc = subprocess.run([sys.executable, "-m", "grader", str(subs), "--out", str(out), "--jobs",
                               str(jobs)], cwd=tmp, env=_env(), capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        after = os.times()
        if proc.returncode != 0:
            print(f"    failed: {proc.stderr.strip()[-300:]}")
            return
        cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
        summary = json.loads((out / "summary.json").read_text())
        per = {}
        for r in summary["learners"]:
            kind = kind_of(int(r["learner"][-3:]))
            per.setdefault(kind, []).append(r["seconds"] or 0.0)
    print(f"    {seconds:6.1f} s for {n} submissions ({cpu / n:.2f} CPU-s each); per submission "
          + ", ".join(f"{k} {statistics.median(v):.2f} s" for k, v in per.items()))
    if nbclient_seconds:
        print(f"    nbclient executing ONE complete submission: {nbclient_seconds:.1f} s -> ratio "
              f"{nbclient_seconds / seconds:.2f} (goal >= 1 for 100 with --jobs 2)")
    else:
        print("    (run part a too for the side-by-side ratio with nbclient)")


# ---------------------------------------------------------------- (c) the reference dropout
REFERENCE = {"dropout_forward_inverted": "02_classic_vs_inverted", "dropout_backward": "03_backward"}


def reference():
    """The instructor's dropout_forward_inverted and dropout_backward (grader.engine's loader
    of the single source), and the notebooks they come from; a name the solutions lack is
    left out."""
    from grader import engine
    fns, where = {}, {}
    for name, stem in REFERENCE.items():
        try:
            fns[name] = engine.reference_function(ROOT, stem, name)
            where[name] = f"{stem}.ipynb"
        except (engine.GraderBug, OSError, engine.nbfile.BadInput):
            pass
    return fns, where


def stand_in():
    """The e1 variant of the performance notes, used only when the solutions lack dropout."""
    import numpy as np

    def dropout_forward_inverted(x, p, train=True, rng=None):
        if not train:
            return x, (None, 1.0)
        rng = np.random.default_rng() if rng is None else rng
        keep = rng.random(x.shape, dtype=np.float32) >= p
        out = np.multiply(x, keep, out=np.empty_like(x))
        out *= x.dtype.type(1 / (1 - p))
        return out, (keep, 1 / (1 - p))

    def dropout_backward(dout, cache):
        keep, scale = cache
        dx = np.multiply(dout, keep, out=np.empty_like(dout))
        dx *= dout.dtype.type(scale)
        return dx
    return dropout_forward_inverted, dropout_backward


def _median_time(f, runs):
    f()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _nbytes(obj, seen=None):
    import numpy as np
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes if obj.base is None else 0
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o, seen) for o in obj)
    if isinstance(obj, dict):
        return sum(_nbytes(o, seen) for o in obj.values())
    return 0


def part_c(runs, n=10_000_000, p=0.3):
    import tracemalloc

    import numpy as np
    fns, where = reference()
    forward, backward = fns.get("dropout_forward_inverted"), fns.get("dropout_backward")
    label = f"the reference from solutions/ ({', '.join(sorted(set(where.values())))})"
    if forward is None or backward is None:
        missing = [m for m, f in (("dropout_forward_inverted", forward), ("dropout_backward", backward)) if f is None]
        print(f"(c) NOTE: solutions/ defines no {' and no '.join(missing)} (expected in "
              "02_classic_vs_inverted.ipynb and 03_backward.ipynb); measuring a stand-in instead "
              "(the e1 variant of the performance notes), NOT the course's reference")
        sf, sb = stand_in()
        forward, backward = forward or sf, backward or sb
        label = "a stand-in (e1)" if not where else label + " with a stand-in for the rest"
    print(f"(c) inverted dropout on {n:,} float32 elements, p = {p}: {label}")
    x = np.random.default_rng(0).standard_normal(n, dtype=np.float32).reshape(10_000, n // 10_000)
    dout = np.random.default_rng(1).standard_normal(x.shape, dtype=np.float32)
    rng = np.random.default_rng(2)
    floor_out = np.empty_like(x)
    t_floor = _median_time(lambda: np.copyto(floor_out, x), runs)
    t_fwd = _median_time(lambda: forward(x, p, True, rng), runs)
    out, cache = forward(x, p, True, rng)
    t_bwd = _median_time(lambda: backward(dout, cache), runs)
    dx = backward(dout, cache)
    del out, cache, dx
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    out, cache = forward(x, p, True, rng)
    dx = backward(dout, cache)
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    ns = 1e9 / n
    print(f"    plain copy (memory floor)   {t_floor * 1e3:7.1f} ms  {t_floor * ns:5.2f} ns/element")
    print(f"    dropout forward             {t_fwd * 1e3:7.1f} ms  {t_fwd * ns:5.2f} ns/element "
          f"= {t_fwd / t_floor:.1f}x the floor")
    print(f"    dropout backward            {t_bwd * 1e3:7.1f} ms  {t_bwd * ns:5.2f} ns/element "
          f"= {t_bwd / t_floor:.1f}x the floor")
    cache_b = _nbytes(cache) / n
    print(f"    cache {cache_b:.2f} bytes/element (target <= 1); extra memory for forward + backward "
          f"with out alive {peak / x.nbytes:.2f}x the input (target <= 2.3); dtype {x.dtype} in, "
          f"{out.dtype} out, {dx.dtype} dx (target float32)")
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        print("    PyTorch is not installed: no comparison with torch.nn.functional.dropout "
              "(pip install torch to add it)")
        return
    xt = torch.from_numpy(x)
    t_torch = _median_time(lambda: F.dropout(xt, p, training=True), runs)
    xg = xt.clone().requires_grad_(True)
    g = torch.from_numpy(dout)

    def torch_fwd_bwd():
        xg.grad = None
        F.dropout(xg, p, training=True).backward(g)
    t_torch_fb = _median_time(torch_fwd_bwd, runs)
    print(f"    torch {torch.__version__} F.dropout forward  {t_torch * 1e3:7.1f} ms  "
          f"{t_torch * ns:5.2f} ns/element ({torch.get_num_threads()} threads); forward + autograd "
          f"backward {t_torch_fb * 1e3:.1f} ms")
    print(f"    -> the numpy forward is {t_torch / t_fwd:.1f}x faster than torch on the CPU "
          f"(target >= 4x); forward + backward {t_torch_fb / (t_fwd + t_bwd):.1f}x")


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m grader.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", default="a,b,c", help="parts to run, e.g. a,c (default a,b,c)")
    p.add_argument("--runs", type=int, default=5, help="timed runs per measurement (default 5)")
    p.add_argument("--submissions", type=int, default=100, help="class size for (b) (default 100)")
    p.add_argument("--jobs", type=int, default=2, help="parallel jobs for (b) (default 2)")
    a = p.parse_args(argv)
    parts = set(a.only.replace(" ", "").split(","))
    print("machine:", machine())
    k = part_a(a.runs) if "a" in parts else None
    if "b" in parts:
        part_b(a.submissions, a.jobs, k)
    if "c" in parts:
        part_c(a.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
