"""Hostile submissions in one batch: each is scored as it deserves, the others are unharmed,
nothing the grader or the user wrote is lost or forged, and no learner process survives.

One batch (python -m grader SUBMISSIONS --out RESULTS --jobs 2) holds correct submissions
next to ones that loop, eat memory, exit, flood output, monkeypatch NumPy, return objects
that would run code if unpickled, print fake results, try to write results.json, try to
kill the grader, leave background processes behind (also setsid + double fork), fork-bomb,
hang while loading, and uploads that are not readable at all.  Some attacks only make
sense (or are only safe to try) when the grader runs as root, as on CI and Gradescope:
learner code then runs as an unprivileged uid of its own.
"""
import contextlib
import csv
import ctypes
import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.grading import ROOT, notebook

ROOTED = hasattr(os, "geteuid") and os.geteuid() == 0
STEM = "01_bernoulli_mask"
MAX = 13
MARK = f"hostile-{os.getpid()}-bg"   # in the command line of every background process

SETUP = "import numpy as np"
VALIDATE = "    if not 0 <= p <= 1:\n        raise ValueError(f'p must be in [0, 1], got {p}')\n"
CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n" + VALIDATE +
           "    rng = np.random.default_rng() if rng is None else rng\n"
           "    return rng.random(shape) >= p\n")
ALL_KEPT = "def bernoulli_mask(shape, p, rng=None):\n" + VALIDATE + "    return np.ones(shape, dtype=bool)\n"


def with_body(body, tail="    rng = np.random.default_rng() if rng is None else rng\n"
                         "    return rng.random(shape) >= p\n"):
    """A bernoulli_mask that runs `body` (indented code) first, then answers correctly."""
    return "def bernoulli_mask(shape, p, rng=None):\n" + VALIDATE + body + tail


WRONG_TAIL = "    return np.ones(shape, dtype=bool)\n"   # the same answers as ALL_KEPT

# A program to leave running: in the learner's view the only one is Python itself; without a
# view, a Python installed in a private home (pyenv in /root) cannot be run by the learner's uid
SLEEPER = ('prog, args = (sys.executable, ["-I", "-S", "-c", "import time; time.sleep(600)"]) '
           'if os.access(sys.executable, os.X_OK) else ("/bin/sleep", ["600"])')
DETACH = f"""    import os, sys
    {SLEEPER}
    if globals().get("detached"):             # once per call into the learner's process
        return rng.random(shape) >= p if rng is not None else np.random.default_rng().random(shape) >= p
    globals()["detached"] = True
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(prog, ["{MARK}-detached", *args])
        os._exit(0)
    if os.fork() == 0:                       # a plain Python loop, never exec'd
        os.setsid()
        if os.fork() == 0:
            import time
            while True:
                time.sleep(0.05)
        os._exit(0)
    import subprocess
    subprocess.Popen(["{MARK}-child", *args], executable=prog)
"""

LOAD_TIME_DAEMON = f"""class Daemon:
    import os, sys
    {SLEEPER}
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(prog, ["{MARK}-load", *args])
        os._exit(0)
"""

MONKEYPATCH_AT_LOAD = """class Patches:
    import numpy, builtins
    numpy.array_equal = lambda *a, **k: True
    numpy.allclose = lambda *a, **k: True
    numpy.unique = lambda *a, **k: numpy.array([True, False])
    numpy.random.get_state = lambda *a, **k: ("MT19937", numpy.zeros(624, dtype=numpy.uint32), 0, 0, 0.0)
    numpy.random.default_rng = lambda *a, **k: None
    builtins.isinstance = lambda *a, **k: True
"""

MONKEYPATCH_IN_CALL = """    import numpy, json
    numpy.mean = lambda *a, **k: 0.7
    numpy.ascontiguousarray = lambda *a, **k: None
    json.dumps = lambda *a, **k: '{"status": "ok", "value": 13}'
"""

FAKE_PASSED = """    import sys
    for stream in (sys.stdout, sys.stderr):
        print("PASSED  all 9 checks passed", file=stream)
        print("01 bernoulli_mask   13/13  passed", file=stream)
        print("total: 13/13", file=stream)
        print('{"score": 13, "tests": []}', file=stream, flush=True)
"""


def writer(out, json_path):
    return f"""    import os, json
    if globals().get("written"):              # once per call into the learner's process
        return np.ones(shape, dtype=bool)
    globals()["written"] = True
    fake = json.dumps({{"score": {MAX}, "tests": [{{"name": "forged", "score": {MAX}, "max_score": {MAX},
                        "status": "passed", "output": "forged"}}]}})
    targets = ["results.json", "../results.json", "/tmp/results.json", {str(out)!r} + "/summary.csv",
               {str(out)!r} + "/learners/writer/results.json", {str(out)!r} + "/summary.json",
               {str(Path(out).parent / "sentinel.txt")!r}, {str(json_path)!r},
               "/autograder/results/results.json"]
    for pid in os.listdir("/proc"):               # look for the grader's --out / --json arguments
        try:
            args = open(f"/proc/{{pid}}/cmdline", "rb").read().decode().split("\\0")
        except Exception:
            continue
        for flag in ("--out", "--json"):
            if flag in args[:-1]:
                targets.append(args[args.index(flag) + 1])
    for t in targets:
        try:
            os.makedirs(os.path.dirname(os.path.abspath(t)), exist_ok=True)
            with open(t, "w") as f:
                f.write(fake)
        except Exception:
            pass
"""


KILLER = """    import os, signal
    mine = os.getpid()
    for pid in os.listdir("/proc"):
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read()
        except Exception:
            continue
        if pid.isdigit() and b"grader" in cmd and int(pid) != mine:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except Exception:
                pass
    for attack in (lambda: os.kill(os.getppid(), signal.SIGKILL),
                   lambda: os.killpg(os.getpgid(os.getppid()), signal.SIGKILL),
                   lambda: os.kill(-1, signal.SIGKILL)):
        try:
            attack()
        except Exception:
            pass
"""

FORK_BOMB = """    import os, time
    for _ in range(5000 if shape == () else 0):   # one call (nothing a call leaves reaches the next)
        try:
            if os.fork() == 0:
                time.sleep(600)
                os._exit(0)
        except OSError:
            break
"""


def evil_returns(marker):
    return f"""class Evil:
    def __reduce__(self):
        return (open, ({str(marker)!r}, "w"))


def bernoulli_mask(shape, p, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p")
    if p < 0.2:
        return np.array([Evil()], dtype=object)
    if p < 0.5:
        class Sneaky(np.ndarray):
            def __reduce__(self):
                return (open, ({str(marker)!r}, "w"))
        return np.zeros(shape, bool).view(Sneaky)
    return Evil()
"""


# name -> (cells after the setup cell, expected score: a number, or the name of a twin whose
# score it must equal, words expected in the problems column or None, root only?).
# VALIDATE runs before each attack, so the check "raises ValueError for p outside [0, 1]"
# (1 point) still passes unless an earlier call left the function broken (a time-out or
# a crash of the process stops further calls to that function).
def cases(tmp_path, out, json_path):
    marker = tmp_path / "unpickled.txt"
    c = {
        "good": ([CORRECT], MAX, None, False),
        "good_twin": ([CORRECT], MAX, None, False),
        "all_kept": ([ALL_KEPT], "all_kept", None, False),
        "loops": ([with_body("    while True:\n        pass\n")], 0, "timeout", False),
        "memory_hog": ([with_body("    hog = []\n    while True:\n        hog.append(np.empty(50 * 2**20 // 8))\n")],
                       1, "memory", False),
        "sys_exit": ([with_body("    import sys\n    sys.exit(0)\n")], 1, "crashed", False),
        "os_exit": ([with_body("    import os\n    os._exit(3)\n")], 0, "crashed", False),
        "floods_output": ([with_body("    print('x' * 5_000_000)\n")], 1, "output limit", False),
        "floods_at_load": (["class Noise:\n    print('y' * 5_000_000)\n", CORRECT], MAX, None, False),
        "monkeypatches_numpy": ([MONKEYPATCH_AT_LOAD, with_body(MONKEYPATCH_IN_CALL, WRONG_TAIL)],
                                "all_kept", None, False),
        "unpickle_bomb": ([evil_returns(marker)], 1, None, False),
        "fake_passed": ([with_body(FAKE_PASSED, WRONG_TAIL)], "all_kept", None, False),
        "background": ([LOAD_TIME_DAEMON, with_body(DETACH)], MAX, None, False),
        "hangs_loading": (["class Stuck:\n    while True:\n        try:\n            while True:\n"
                           "                pass\n        except BaseException:\n            pass\n",
                           CORRECT], 0, "timeout", False),
        "writer": ([with_body(writer(out, json_path), WRONG_TAIL)], "all_kept", None, True),
        "killer": ([with_body(KILLER)], 0, "crashed", True),
        "fork_bomb": ([with_body(FORK_BOMB)], MAX, None, True),
    }
    return {k: v for k, v in c.items() if ROOTED or not v[3]}, marker


def nb_in(folder, cells):
    """A notebook 01 with these cells in folder (created)."""
    Path(folder).mkdir(parents=True, exist_ok=True)
    return notebook(Path(folder) / f"{STEM}.ipynb", cells)


def build(subs, tmp_path, out, json_path):
    subs.mkdir()
    todo, marker = cases(tmp_path, out, json_path)
    for name, (cells, *_rest) in todo.items():
        nb_in(subs / name / "work", [SETUP, *cells])
    # uploads that cannot be used
    (subs / "garbage.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    (subs / "bad_json").mkdir()
    (subs / "bad_json" / f"{STEM}.ipynb").write_text('{"cells": [')
    with zipfile.ZipFile(subs / "traversal.zip", "w") as z:
        z.writestr(f"../../escaped/{STEM}.ipynb", "{}")
        z.writestr(f"/abs/{STEM}.ipynb", "{}")
        link = zipfile.ZipInfo(f"link/{STEM}.ipynb")
        link.external_attr = (0o120777 << 16)
        z.writestr(link, "/etc/passwd")
    with zipfile.ZipFile(subs / "zip_bomb.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{STEM}.ipynb", b"0" * (70 * 2**20))
    with zipfile.ZipFile(subs / "zipped_good.zip", "w") as z:
        z.write(subs / "good" / "work" / f"{STEM}.ipynb", f"my-work/notebooks/{STEM}.ipynb")
    (subs / "symlinked").symlink_to(ROOT / "grader")
    (subs / "link_inside").mkdir()
    (subs / "link_inside" / f"{STEM}.ipynb").symlink_to(subs / "good" / "work" / f"{STEM}.ipynb")
    return todo, marker


def grader(*args, timeout=600):
    return subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})


def _parent(pid):
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
        return int(stat.rsplit(b")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def survivors():
    """Processes left by learner code: by marker (anywhere: the marker names this test process),
    or by the sandbox's own script (forks of it) among this process's descendants -- those of
    other graders running at the same time (another test worker) are theirs to account for.
    Grade inside adopting_orphans(), or what the grader leaves behind is not a descendant."""
    child = str(ROOT / "grader" / "sandbox" / "learner.py").encode()
    me, found = os.getpid(), []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{d}/cmdline").read_bytes()
            state = Path(f"/proc/{d}/stat").read_bytes().rsplit(b")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if state == b"Z":
            continue
        if MARK.encode() in cmd or (child in cmd and _descends_from(int(d), me)):
            found.append((int(d), cmd.replace(b"\0", b" ")[:120]))
    return found


def _descends_from(pid, ancestor):
    seen = set()
    while pid and pid not in seen:
        if pid == ancestor:
            return True
        seen.add(pid)
        pid = _parent(pid)
    return False


@contextlib.contextmanager
def adopting_orphans():
    """While inside, this process is a child subreaper (Linux prctl PR_SET_CHILD_SUBREAPER):
    whatever its children leave running -- setsid and double forks included -- is reparented
    to it instead of to init, so survivors() finds it as a descendant.  On leaving, the
    adopted orphans that have died are reaped; the live ones are left for survivors() to name."""
    libc = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None
    before = set(_children(os.getpid()))
    if libc is not None:
        libc.prctl(36, 1, 0, 0, 0)         # PR_SET_CHILD_SUBREAPER
    try:
        yield
    finally:
        if libc is not None:
            libc.prctl(36, 0, 0, 0, 0)
        for pid in set(_children(os.getpid())) - before:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def _children(pid):
    return [int(d) for d in os.listdir("/proc") if d.isdigit() and _parent(d) == pid]


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hostile")
    out, json_path = tmp / "results", tmp / "single.json"
    (tmp / "sentinel.txt").write_text("the instructor's notes")
    todo, marker = build(tmp / "subs", tmp, out, json_path)
    with adopting_orphans():
        t0 = time.monotonic()
        proc = grader(tmp / "subs", "--out", out, "--jobs", "2", "--timeout", "3", "--only", "01",
                      "--submission-timeout", "10", "--memory", "768")
        seconds = time.monotonic() - t0
        time.sleep(0.2)
        left = survivors()
    return {"tmp": tmp, "out": out, "proc": proc, "todo": todo, "marker": marker,
            "seconds": seconds, "survivors": left, "json_path": json_path}


def rows(batch):
    with open(batch["out"] / "summary.csv", newline="") as f:
        return {r["learner"]: r for r in csv.DictReader(f)}


def test_the_batch_finishes_and_writes_every_row(batch):
    proc = batch["proc"]
    assert proc.returncode == 0, proc.stderr
    r = rows(batch)
    expected = set(batch["todo"]) | {"garbage", "bad_json", "traversal", "zip_bomb", "zipped_good",
                                     "symlinked", "link_inside"}
    assert set(r) == expected
    assert batch["seconds"] < 120, f"the batch took {batch['seconds']:.0f} s"
    assert sorted(p.name for p in batch["out"].iterdir()) == ["batch.json", "gradebook.csv", "learners", "summary.csv",
                                                              "summary.json"]
    assert sorted(p.name for p in (batch["out"] / "learners").iterdir()) == sorted(expected)


def test_each_submission_gets_the_score_it_deserves(batch):
    r = rows(batch)
    for name, (_cells, want, words, _root) in batch["todo"].items():
        got = float(r[name]["score"])
        target = float(r[want]["score"]) if isinstance(want, str) else want
        assert got == target, (name, got, target, r[name]["problems"])
        if words:
            assert words in r[name]["problems"], (name, r[name]["problems"])
    assert float(r["all_kept"]["score"]) < MAX


def test_unusable_uploads_score_zero_with_a_reason(batch):
    r = rows(batch)
    reasons = {"garbage": "not a readable zip file", "bad_json": "not valid notebook JSON",
               "traversal": "no course notebooks found", "zip_bomb": "larger than 64 MiB",
               "symlinked": "symbolic link", "link_inside": "symbolic link"}
    for name, words in reasons.items():
        # no score (a blank cell, never a 0) and a status saying why (issue 17)
        assert r[name]["score"] == "" and r[name]["status"] and words in r[name]["problems"], (name, r[name])
    assert float(r["zipped_good"]["score"]) == MAX, r["zipped_good"]["problems"]
    assert not (batch["tmp"] / "escaped").exists() and not Path("/abs").exists()
    notes = json.loads((batch["out"] / "learners" / "traversal" / "results.json").read_text())["output"]
    assert "unsafe path" in notes and "symbolic link" in notes


def test_nothing_is_ever_unpickled_and_the_codec_says_why(batch):
    assert not batch["marker"].exists()
    res = json.loads((batch["out"] / "learners" / "unpickle_bomb" / "results.json").read_text())
    outputs = " ".join(t["output"] for t in res["tests"])
    assert "cannot read" in outputs, outputs


def test_no_learner_process_survives(batch):
    assert batch["survivors"] == []


def test_printed_fakes_and_forged_files_change_nothing(batch):
    out, r = batch["out"], rows(batch)
    for name in ("fake_passed", "writer", "monkeypatches_numpy"):
        if name not in batch["todo"]:
            continue
        res = json.loads((out / "learners" / name / "results.json").read_text())
        assert res["score"] == float(r["all_kept"]["score"]) < MAX
        assert all(t["name"] != "forged" for t in res["tests"])
    assert (batch["tmp"] / "sentinel.txt").read_text() == "the instructor's notes"
    summary = json.loads((out / "summary.json").read_text())
    assert [x["learner"] for x in summary["learners"]] == sorted(r, key=list(r).index)
    assert sorted(p.name for p in batch["tmp"].iterdir()) == ["results", "sentinel.txt", "subs"]


@pytest.mark.skipif(not ROOTED, reason="learner code runs as another user only when the grader is root")
def test_learner_code_ran_as_another_user_that_could_not_see_the_results_path(batch):
    summary = json.loads((batch["out"] / "summary.json").read_text())
    iso = summary["isolation"]
    assert iso["uid"] != 0 and iso["sweep"] == "uid"
    spy = with_body("""    import os
    seen = []
    for pid in os.listdir("/proc"):
        try:
            seen.append(open(f"/proc/{pid}/cmdline", "rb").read().decode(errors="replace"))
        except Exception:
            pass
        for what in ("environ", "cwd"):
            try:
                seen.append(str(open(f"/proc/{pid}/environ", "rb").read()) if what == "environ"
                            else os.readlink(f"/proc/{pid}/cwd"))
            except Exception:
                pass
    raise ValueError(" | ".join(seen))
""")
    tmp = batch["tmp"]
    nb_in(tmp / "spy", [SETUP, spy])
    secret = tmp / "secret-place"
    proc = grader(tmp / "spy", "--out", secret, "--jobs", "1", "--only", "01")
    assert proc.returncode == 0, proc.stderr
    text = (secret / "learners" / "spy" / "results.json").read_text()
    assert "raised ValueError" in text and str(secret) not in text and "secret-place" not in text


def test_single_learner_json_cannot_be_forged(tmp_path):
    json_path = tmp_path / "results.json"
    nb = nb_in(tmp_path, [SETUP, with_body(writer(tmp_path / "nowhere", json_path), WRONG_TAIL)])
    proc = grader(nb, "--json", json_path, "--timeout", "2")
    assert proc.returncode == 0, proc.stderr
    res = json.loads(json_path.read_text())
    assert res["score"] < MAX and all(t["name"] != "forged" for t in res["tests"])
    assert not (tmp_path / "nowhere").exists() or not ROOTED


def test_existing_results_are_never_overwritten(tmp_path):
    subs = tmp_path / "subs"
    nb_in(subs / "ann", [SETUP, CORRECT])
    out = tmp_path / "results"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    proc = grader(subs, "--out", out, "--only", "01")
    assert proc.returncode == 2 and "already exists" in proc.stderr and proc.stderr.count("\n") == 1
    assert (out / "mine.txt").read_text() == "keep me"
    proc = grader(subs, "--out", out, "--replace", "--only", "01")
    assert proc.returncode == 0, proc.stderr
    aside = [p for p in tmp_path.iterdir() if p.name.startswith("results.previous-")]
    assert len(aside) == 1 and (aside[0] / "mine.txt").read_text() == "keep me"
    assert (out / "summary.csv").exists() and not list(tmp_path.glob(".results.partial-*"))


@pytest.mark.skipif(not ROOTED, reason="the unprivileged uid exists only when the grader is root")
def test_without_namespaces_the_uid_still_contains_everything(tmp_path):
    """As in a container without CAP_SYS_ADMIN: no private /tmp, no hidden paths.  A file one
    submission leaves in /tmp is gone before the next one (same worker, same uid) runs."""
    leftover = f"/tmp/{MARK}-leftover"
    leaves = with_body(f"    open({leftover!r}, 'w').write('answers')\n")
    finds = with_body(f"    import os\n    if os.path.exists({leftover!r}):\n        return np.ones(shape, bool)\n")
    for name, cells in {"a_leaves": [leaves], "b_finds": [finds], "c_background": [LOAD_TIME_DAEMON, with_body(DETACH)],
                        "d_killer": [with_body(KILLER)], "e_good": [CORRECT]}.items():
        nb_in(tmp_path / "subs" / name, [SETUP, *cells])
    with adopting_orphans():
        proc = subprocess.run([sys.executable, "-m", "grader", str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                               "--jobs", "1", "--timeout", "3", "--only", "01"], cwd=ROOT, capture_output=True,
                              text=True, env={**os.environ, "PYTHONPATH": str(ROOT), "GRADER_NO_NAMESPACES": "1",
                                              "GRADER_ALLOW_READABLE": "1"}, timeout=300)
        time.sleep(0.2)
        left = survivors()
    assert proc.returncode == 0, proc.stderr
    r = rows({"out": tmp_path / "out"})
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["isolation"]["private_tmp"] is False
    assert {k: float(v["score"]) for k, v in r.items()} == {
        "a_leaves": MAX, "b_finds": MAX, "c_background": MAX, "d_killer": 0, "e_good": MAX}
    assert not os.path.exists(leftover) and left == []


@pytest.mark.skipif(not ROOTED, reason="as root: the learner's uid is one of the grader's range")
def test_without_a_view_a_batch_over_a_readable_course_is_refused_with_the_command(tmp_path):
    """No mount namespace (as in Docker without CAP_SYS_ADMIN): learner code would read whatever
    its uid can.  A course checkout readable by others is refused in one line naming the
    chmod to run, before anything is graded; nothing is written."""
    nb_in(tmp_path / "subs" / "a", [SETUP, CORRECT])
    os.chmod(ROOT, os.stat(ROOT).st_mode | 0o005)   # as a checkout made with umask 022 is
    proc = subprocess.run([sys.executable, "-m", "grader", str(tmp_path / "subs"), "--out", str(tmp_path / "out"),
                           "--only", "01"], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "GRADER_NO_NAMESPACES": "1"}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "chmod -R go-rwx" in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()
