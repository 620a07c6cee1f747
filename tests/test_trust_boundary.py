"""The trust boundary: learner code can neither read nor forge what decides its score, and
nothing it starts or makes outlives grading.  Each test is an attack a hostile learner
could write; each asserts the attacked exercise scores what an honest blank or wrong
implementation scores, the other exercises keep their points, nothing leaks into any
report, and nothing is left behind.  The attacks scan generically (sys.modules, every
frame, gc.get_objects(), every open file descriptor), so they stay meaningful when the
grader's internals change.
"""
import csv
import json
import os
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.grading import ROOT, notebook

ROOTED = hasattr(os, "geteuid") and os.geteuid() == 0
STEM = "01_bernoulli_mask"
VALIDATE = "    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n" + VALIDATE +
           "    rng = np.random.default_rng() if rng is None else rng\n"
           "    return rng.random(shape) >= p\n")


def grader(*args, cwd=ROOT, timeout=600, tmpdir=None):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **({"TMPDIR": str(tmpdir)} if tmpdir else {})}
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=env)


def graded(path, *args, cwd=ROOT):
    out = Path(path).parent / f"{Path(path).stem}-results.json"
    proc = grader(path, "--json", out, *args, cwd=cwd)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text()), proc


def by_exercise(data):
    scores = {}
    for t in data["tests"]:
        ex = t["name"].split(" · ")[1]
        scores[ex] = scores.get(ex, 0) + t["score"]
    return scores


def student_cells(stem):
    from grader import nbfile
    return [c for c in nbfile.code_cells(ROOT / "notebooks" / f"{stem}.ipynb") if c]


# ---------------------------------------------------------------- 1. no solutions to steal
STEAL = """class Steal:
    import gc, sys, types
    found = []
    for obj in gc.get_objects():
        items = obj.values() if isinstance(obj, dict) else obj if isinstance(obj, (list, tuple)) else ()
        try:
            for v in items:
                if isinstance(v, types.CodeType):
                    found.append(v)
                elif isinstance(v, types.FunctionType):
                    found.append(v.__code__)
        except Exception:
            pass
    for mod in list(sys.modules.values()):
        for v in list(getattr(mod, "__dict__", {}).values()):
            if isinstance(v, types.FunctionType):
                found.append(v.__code__)
    def inner(code):
        yield code
        for c in code.co_consts:
            if isinstance(c, types.CodeType):
                yield from inner(c)
    stolen = {}
    for code in found:
        for c in inner(code):
            if c.co_name in ("bernoulli_mask", "dropout_forward_inverted", "Dropout") and c.co_name not in stolen:
                try:
                    f = types.FunctionType(c, globals())
                    if c.co_name == "bernoulli_mask":
                        f((3,), 0.5, __import__("numpy").random.default_rng(0))
                    stolen[c.co_name] = f
                except NotImplementedError:
                    pass
                except Exception:
                    pass
    texts = [o for o in gc.get_objects() if isinstance(o, str) and "BEGIN SOLUTION" in o]
    globals().update(stolen)
"""


def test_untouched_student_notebooks_score_zero_in_a_batch_that_scans_for_solutions(tmp_path):
    """Findings 1 and 14: the batch template holds no compiled solutions, and two workers
    leave no template folder behind."""
    subs = tmp_path / "subs"
    for who in ("thief", "thief_twin"):
        (subs / who).mkdir(parents=True)
        notebook(subs / who / f"{STEM}.ipynb", student_cells(STEM) + [STEAL])
    tmp = tmp_path / "tmp"      # the grader's own temporary folder: other graders may run meanwhile
    tmp.mkdir()
    proc = grader(subs, "--out", tmp_path / "out", "--jobs", "2", "--only", "01", tmpdir=tmp)
    assert proc.returncode == 0, proc.stderr
    rows = list(csv.DictReader(open(tmp_path / "out" / "summary.csv", newline="")))
    assert [float(r["score"]) for r in rows] == [0.0, 0.0], rows
    for r in rows:
        data = json.loads((tmp_path / "out" / "learners" / r["learner"] / "results.json").read_text())
        assert "BEGIN SOLUTION" not in json.dumps(data)
    left = [str(p.relative_to(tmp)) for p in tmp.rglob("*")]   # the workers' template folders are in it
    assert not left, f"left behind: {left}"


# ---------------------------------------------------------------- 3/4. nothing to read or forge
SNOOP = """def bernoulli_mask(shape, p, rng=None):
    import gc, os, sys
    seen = []
    f = sys._getframe()
    while f is not None:
        seen.append(repr(sorted(f.f_locals))[:400])
        f = f.f_back
    for o in gc.get_objects():
        if isinstance(o, str) and ("BEGIN SOLUTION" in o or "def dropout_forward_inverted" in o):
            seen.append(o[:400])
    for fd in range(3, 64):     # forge an answer on every descriptor that takes one
        try:
            os.write(fd, b"\\x00" * 8 + b'{"status": "ok", "value": 13}')
        except OSError:
            pass
    raise RuntimeError("SNOOPED " + " | ".join(seen)[:3000])
"""


def test_feedback_never_carries_reference_code_and_forged_frames_score_nothing(tmp_path):
    """Findings 3 and 4: what a learner can find in its process and print in its feedback
    holds no instructor code; bytes written to inherited descriptors forge nothing."""
    for stem in ("01_bernoulli_mask", "02_classic_vs_inverted", "03_backward"):
        cells = student_cells(stem) + [SNOOP]
        if stem != STEM:   # every forward/backward snoops too
            cells += [SNOOP.replace("bernoulli_mask(shape, p, rng=None)", name)
                      for name in ("dropout_forward_classic(x, p, train=True, rng=None)",
                                   "dropout_forward_inverted(x, p, train=True, rng=None)",
                                   "dropout_backward(dout, cache)")]
        path = notebook(tmp_path / f"{stem}.ipynb", cells)
        data, proc = graded(path, "-v")
        text = json.dumps(data) + proc.stdout
        assert data["score"] == 0, (stem, data["score"])
        assert "BEGIN SOLUTION" not in text and "def dropout_forward_inverted" not in text, stem


# ---------------------------------------------------------------- 7. IPC objects do not survive
SHM = """def bernoulli_mask(shape, p, rng=None):
    if not 0 <= p <= 1:
        raise ValueError(p)
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    ident = libc.shmget(0x7E57D0, 1 << 20, 0o1666)     # IPC_CREAT | 0666
    if ident >= 0:
        addr = libc.shmat(ident, None, 0)
    rng = np.random.default_rng() if rng is None else rng
    return rng.random(shape) >= p
"""


def _shm_keys():
    try:
        lines = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return set()
    return {int(line.split()[0]) for line in lines if line.split()}


@pytest.mark.skipif(not Path("/proc/sysvipc/shm").exists(), reason="needs Linux SysV IPC")
def test_shared_memory_made_by_learner_code_is_gone_after_grading(tmp_path):
    """Finding 7: SysV segments are private to the learner (an IPC namespace) or removed."""
    assert 0x7E57D0 not in _shm_keys()
    path = notebook(tmp_path / f"{STEM}.ipynb", ["import numpy as np", SHM])
    data, _ = graded(path)
    assert data["score"] == 13
    assert 0x7E57D0 not in _shm_keys(), "a learner's shared-memory segment outlived grading"


# ---------------------------------------------------------------- 8. limits before parsing
def test_a_huge_constant_cell_is_parsed_under_the_memory_limit(tmp_path):
    """Finding 8: cells are parsed and compiled only after the memory limit is set (and, as
    root, the privileges dropped): a 3 MB constant costs at most the limit."""
    big = "BIG = [" + ", ".join(["1.5"] * 600_000) + "]\n"
    path = notebook(tmp_path / f"{STEM}.ipynb", ["import numpy as np", big, CORRECT])
    out = tmp_path / "r.json"
    code = ("import resource, runpy, sys\n"
            f"sys.argv = ['grader', {str(path)!r}, '--memory', '256', '--json', {str(out)!r}]\n"
            "try:\n    runpy.run_module('grader', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    rss_mib = int(proc.stdout.split("MAXRSS")[-1]) / 1024
    assert rss_mib < 400, f"a learner process reached {rss_mib:.0f} MiB with --memory 256"
    data = json.loads(out.read_text())
    assert data["score"] == 13, "the limit must cost only the cell that hit it"


# ---------------------------------------------------------------- 9. learner faults are the learner's
FAULTS = {
    "KeyboardInterrupt": "    raise KeyboardInterrupt\n",
    "BaseException subclass": "    class Mine(BaseException):\n        pass\n    raise Mine('mine')\n",
    "GeneratorExit": "    raise GeneratorExit\n",
    "huge int": "    return 10 ** 5000\n",
    "recursive list": "    a = []\n    a.append(a)\n    return a\n",
}


@pytest.mark.parametrize("fault", FAULTS)
def test_learner_faults_are_reported_as_the_learners_not_as_grader_errors(tmp_path, fault):
    """Finding 9: "please report it" is reserved for real grader faults."""
    src = "def bernoulli_mask(shape, p, rng=None):\n" + VALIDATE + FAULTS[fault]
    path = notebook(tmp_path / f"{STEM}.ipynb", ["import numpy as np", src])
    data, proc = graded(path)
    text = json.dumps(data) + proc.stdout
    assert "report" not in text.lower(), text[:2000]
    assert data["score"] <= 1, data["score"]   # only the p-validation check can pass


# ---------------------------------------------------------------- 10. no escapes reach a report
ESCAPES = """def bernoulli_mask(shape, p, rng=None):
    raise ValueError("\\x1b[2K\\r\\x1b[32m✓ 13/13 all checks passed\\x1b[0m\\x07\\u202e")
"""


def test_terminal_escapes_in_learner_text_reach_no_report(tmp_path):
    """Finding 10: the table, -v, results.json and summary.csv carry no control characters."""
    (tmp_path / "sub" / "escaper").mkdir(parents=True)
    path = notebook(tmp_path / "sub" / "escaper" / f"{STEM}.ipynb", ["import numpy as np", ESCAPES])
    for flags in ([], ["-v"]):
        data, proc = graded(path, *flags)
        for text in (proc.stdout, json.dumps(data, ensure_ascii=False)):
            assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text and "\r" not in text
    proc = grader(tmp_path / "sub", "--out", tmp_path / "out", "--only", "01")
    assert proc.returncode == 0, proc.stderr
    raw = (tmp_path / "out" / "summary.csv").read_text()
    assert "\x1b" not in raw and "\x07" not in raw


# ---------------------------------------------------------------- 11. any folder, relative paths
def test_a_class_graded_from_the_instructors_own_folder_with_relative_paths(tmp_path):
    """Finding 11: paths are resolved before any worker starts."""
    klass = tmp_path / "class"
    (klass / "subs" / "ada").mkdir(parents=True)
    notebook(klass / "subs" / "ada" / f"{STEM}.ipynb", ["import numpy as np", CORRECT])
    proc = grader("subs", "--out", "out", "--only", "01", "--jobs", "1", cwd=klass)
    assert proc.returncode == 0, proc.stderr
    row = next(csv.DictReader(open(klass / "out" / "summary.csv", newline="")))
    assert float(row["score"]) == 13 and not row["problems"], row


# ---------------------------------------------------------------- 12. uploads that are not files
def test_fifos_and_devices_are_refused_at_once_with_a_reason(tmp_path):
    """Finding 12: a FIFO named like a notebook or a zip never stalls a worker."""
    subs = tmp_path / "subs"
    (subs / "piped").mkdir(parents=True)
    os.mkfifo(subs / "piped" / f"{STEM}.ipynb")
    os.mkfifo(subs / "fifo.zip")
    (subs / "good").mkdir()
    notebook(subs / "good" / f"{STEM}.ipynb", ["import numpy as np", CORRECT])
    proc = grader(subs, "--out", tmp_path / "out", "--only", "01", "--jobs", "2", timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = {r["learner"]: r for r in csv.DictReader(open(tmp_path / "out" / "summary.csv", newline=""))}
    assert float(rows["good"]["score"]) == 13
    assert "FIFO" in rows["piped"]["problems"] and "FIFO" in rows["fifo"]["problems"], rows
    assert float(rows["piped"]["seconds"] or 0) < 30


def test_a_zip_directory_over_the_limit_is_refused_before_it_is_read():
    """Finding 12: the entry count comes from the end-of-directory record (Zip64 too),
    not from parsing a directory that may hold a million entries."""
    import io

    from grader import uploads
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{STEM}.ipynb", "{}")
    raw = bytearray(buf.getvalue())
    eocd = raw.rfind(b"PK\x05\x06")
    zip64 = struct.pack("<4sQHHIIQQQQ", b"PK\x06\x06", 44, 45, 45, 0, 0, 1_000_000, 1_000_000,
                        50_000_000, 0)
    locator = struct.pack("<4sIQI", b"PK\x06\x07", 0, eocd, 1)
    forged = bytes(raw[:eocd]) + zip64 + locator + bytes(raw[eocd:eocd + 8]) + \
        struct.pack("<HHLLH", 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    ok, why = uploads.zip_directory_ok(io.BytesIO(forged))
    assert not ok and "more than" in why, why
    ok, why = uploads.zip_directory_ok(io.BytesIO(bytes(raw)))
    assert ok, why


# ---------------------------------------------------------------- 13. CSV formulas
@pytest.mark.parametrize("name", ["+SUM(1,1)", "-2+3", "@cmd", "=HYPERLINK(1)"])
def test_learner_names_are_never_spreadsheet_formulas(name):
    """Finding 13: a leading = + - @ is neutralised in every CSV cell."""
    from grader.publish import classlist
    summary = {"exercises": [], "learners": [{"learner": name, "score": 0, "max_score": 0,
                                              "exercises": {}, "problems": [name],
                                              "submission": name, "seconds": 1}]}
    row = next(csv.reader(classlist.summary_csv(summary).splitlines()[1:]))
    for cell in (row[0], row[3], row[4]):
        assert cell[:1] not in ("=", "+", "-", "@"), row


# ---------------------------------------------------------------- nothing of the grader in the learner's view
def test_the_learner_process_runs_no_learner_code_itself(tmp_path):
    """Definition-time code runs only in the fork of each call: a thread started by a class
    body cannot outlive that call, and cannot touch the process that forks the calls."""
    THREAD = ("class Spy:\n    import threading, time\n"
              "    def run():\n        import time\n        while True:\n            time.sleep(0.01)\n"
              "    threading.Thread(target=run, daemon=True).start()\n")
    path = notebook(tmp_path / f"{STEM}.ipynb", ["import numpy as np", THREAD, CORRECT])
    data, _ = graded(path)
    assert data["score"] == 13


# ---------------------------------------------------------------- 3. a forged timing gains nothing
TIMED_GAMER_FORWARD = """def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError(p)
    if not train or p == 0:
        return x.copy(), None
    rng = np.random.default_rng() if rng is None else rng
    if x.size >= 10**6:              # being timed: something cheap
        return np.zeros_like(x), None
    out = np.empty_like(x)
    keep = rng.random(x.shape) >= p
    for i in range(x.size):           # a loop over elements, where the checks can see it
        out.flat[i] = x.flat[i] / (1 - p) if keep.flat[i] else 0
    return out, keep
"""
TIMED_GAMER_BACKWARD = """def dropout_backward(dout, cache):
    keep, scale = cache
    if keep is None:
        return dout * scale
    if dout.size >= 10**6:          # being timed: something cheap
        return dout.copy()
    dx = np.empty_like(dout)
    for i in range(dout.size):
        dx.flat[i] = dout.flat[i] * keep.flat[i] * scale
    return dx
"""


@pytest.mark.parametrize("stem, only, src", [
    ("02_classic_vs_inverted", "dropout_forward_inverted", TIMED_GAMER_FORWARD),
    ("03_backward", "dropout_backward", TIMED_GAMER_BACKWARD)])
def test_a_function_that_is_cheap_only_when_timed_fails_the_vectorisation_check(tmp_path, stem, only, src):
    """Finding 3: CPU time is measured outside learner code, and the timed calls are credited
    only for what the function computes elsewhere."""
    from tests.grading import solution_cells
    path = notebook(tmp_path / f"{stem}.ipynb", solution_cells(stem) + [src])
    data, _ = graded(path, "--only", only)
    failed = [t.get("extra_data", {}).get("check") for t in data["tests"] if t["status"] != "passed"]
    assert failed == ["test_vectorised"], failed


# ---------------------------------------------------------------- 5. no self-report to forge
WARNS_AT_P1 = """class Hush:
    import sys, types
    sys.modules["warnings"] = types.SimpleNamespace(warn=lambda *a, **k: None, catch_warnings=None)


def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError(p)
    if not train:
        return x.copy(), None
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    return np.where(keep, x / (1 - p), 0).astype(x.dtype), keep     # x / 0 at p = 1: a warning
"""


def test_replacing_the_warnings_module_does_not_hide_a_division_by_zero(tmp_path):
    """Finding 5: whether a call divided by zero is observed (NumPy raising under errstate in
    the probe), not read from a warnings module the learner can replace."""
    from tests.grading import solution_cells
    stem = "02_classic_vs_inverted"
    path = notebook(tmp_path / f"{stem}.ipynb", solution_cells(stem) + [WARNS_AT_P1])
    data, _ = graded(path, "--only", "dropout_forward_inverted")
    failed = {t.get("extra_data", {}).get("check"): t["output"] for t in data["tests"] if t["status"] != "passed"}
    assert "test_p_zero_and_one" in failed, failed


# ---------------------------------------------------------------- stubs are read, never run
def test_handed_out_stubs_are_recognised_without_running_anything():
    """A blank notebook costs no learner process; a stub followed by a later definition, an
    assignment or an import of the name is not a stub any more."""
    from grader.engine import stub_names
    stub = 'def f(x):\n    """Doc,\n    two lines."""\n    # YOUR CODE HERE\n    raise NotImplementedError()\n'
    klass = "class L:\n    def __init__(self, p):\n        # YOUR CODE HERE\n        raise NotImplementedError()\n"
    assert stub_names([stub, klass]) == {"f", "L"}
    assert stub_names([stub, "def f(x):\n    return x\n"]) == set()
    assert stub_names([stub, "f = lambda x: x\n"]) == set()
    assert stub_names([stub, "from mine import f\n"]) == set()
    assert stub_names(["def f(x):\n    if x:\n        raise NotImplementedError\n    return x\n"]) == set()
