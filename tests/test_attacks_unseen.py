"""Attacks no earlier test tried, each judged by outcome: the attacked exercise scores no more
than an honest control, and honest work keeps its marks.

The attacks read generically whatever learner code can reach (closures, gc referents, the
callers' frames, the bytes of its own process), so they stay meaningful when the probes or
the sandbox change.
"""
import json
import os

import pytest

from grader import nbfile
from grader.sandbox.host import Sandbox
from tests.grading import ROOT, notebook, run_grader

ROOTED = hasattr(os, "geteuid") and os.geteuid() == 0
GC_STEM = "04_gradient_checking"

# A dropout_gradient_check that runs no gradient check: it gathers every object reachable from
# the callables it is given and from its callers' frames, and, from any arrays it finds there,
# tells the correct pairs (their d is the mask of default_rng(seed) times forward's scale) from
# the wrong ones; it also writes itself a plausible call log wherever it finds one.
INTROSPECT = '''def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    import gc, sys
    import numpy as np
    x = np.asarray(x)
    keep = np.random.default_rng(seed).random(x.shape) >= p
    state = repr(np.random.default_rng(seed).bit_generator.state)
    seen, todo, found = set(), [forward, backward], {}
    frame = sys._getframe(1)
    while frame is not None:
        todo.append(dict(frame.f_locals))
        frame = frame.f_back
    for _ in range(5):
        nxt = []
        for o in todo:
            if id(o) in seen or isinstance(o, (str, bytes, int, float, type)):
                continue
            seen.add(id(o))
            if isinstance(o, dict):
                if "forward" in o and isinstance(o.get("forward"), dict):
                    o["forward"][(True, "True", float(p), state)] = 2 * x.size + 1
                if "d" in o and "b" in o and isinstance(o.get("d"), np.ndarray) and o["d"].shape == x.shape:
                    found[id(o)] = o
            for c in getattr(o, "__closure__", None) or ():
                try:
                    nxt.append(c.cell_contents)
                except ValueError:
                    pass
            if not isinstance(o, np.ndarray):
                nxt.extend(gc.get_referents(o))
        todo = nxt
    ours = [o for o in found.values() if any(o is c.cell_contents for c in (backward.__closure__ or ())
                                             if isinstance(c.cell_contents, dict))]
    for case in ours or list(found.values())[:1]:
        s = (1 - p) ** -case.get("a_train", 1)
        ok = not np.any(case["b"]) and np.array_equal(case["d"], keep * s) and \\
            (case.get("a_train"), case.get("a_eval")) in ((1, 0), (0, 1))
        return 1e-12 if ok else 1.0
    return 1.0
'''


# The control: a check that calls forward as the contract says, then says "wrong" to every pair
# (it flags every wrong backward and misses the correct ones).
LAZY = """def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    forward(np.asarray(x), p, train=True, rng=np.random.default_rng(seed))
    return 1.0
"""


def _gc_score(data):
    return sum(t["score"] for t in data["tests"] if "dropout_gradient_check" in t["name"])


def _grade_only(folder, tmp_path, name):
    out = tmp_path / f"{name}.json"
    proc = run_grader([folder, "--json", out, "--only", "dropout_gradient_check"], timeout=600)
    assert proc.returncode == 0, proc.stderr
    return json.loads(out.read_text())


def test_a_check_that_reads_what_its_callables_hold_scores_no_more_than_a_lazy_one(tmp_path):
    """Finding: the layers handed to dropout_gradient_check carried, in their closures, which
    case is correct; a check reading them (and faking its call log) scored full marks without
    computing a gradient.  What tells the cases apart now lives in another process."""
    blank = [c for c in nbfile.code_cells(ROOT / "notebooks" / f"{GC_STEM}.ipynb") if c]
    folders = {"attack": blank + [INTROSPECT], "control": blank + [LAZY]}   # the solutions' 10/10: test_mistakes_04
    scores = {}
    for name, cells in folders.items():
        (tmp_path / name).mkdir()
        notebook(tmp_path / name / f"{GC_STEM}.ipynb", cells)
        scores[name] = _gc_score(_grade_only(tmp_path / name, tmp_path, name))
    assert scores["attack"] <= scores["control"] and 0 < scores["control"] < 10, scores


# ---------------------------------------------------------------- the stub shortcut
IMPL = ("def _impl(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
        "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) >= p\n\n\n")
GLOBALS = 'operator.attrgetter("__glo" "bals__")(_impl)["bernoulli" "_mask"] = _impl'
# definition-time code that binds the stub's name without spelling it or any trigger word
BINDERS = [
    "class Install:\n    import operator\n    " + GLOBALS + "\n",
    "import operator\n\n\ndef hook(f):\n    " + GLOBALS + "\n    return f\n\n\n@hook\ndef g(x):\n    return x\n",
    "import operator\n\n\ndef hook(f):\n    " + GLOBALS + "\n\n\ndef g(x=hook(1)):\n    return x\n",
    "import operator\n\n\ndef hook(f):\n    " + GLOBALS + "\n\n\ndef g(x: hook(1)):\n    return x\n",
    "import operator\n\n\ndef hook(f):\n    " + GLOBALS + "\n\n\nK = [\n    np.frompyfunc(hook, 1, 0)(1),\n]\n",
]


def test_working_code_bound_at_definition_time_is_never_taken_for_the_stub(tmp_path):
    """The shortcut may only save time: a stub whose name the learner's definition-time code
    rebinds (class body, decorator, default, annotation, a value that calls), spelled so that
    no text search finds it, is graded by running it — and scores full marks."""
    from grader import stubs
    from tests.grading import grade_notebook
    blank = [c for c in nbfile.code_cells(ROOT / "notebooks" / "01_bernoulli_mask.ipynb") if c]
    assert stubs.notebook_stubs(ROOT, "01_bernoulli_mask", blank + [IMPL]) == {"bernoulli_mask"}
    for binder in BINDERS:
        assert stubs.notebook_stubs(ROOT, "01_bernoulli_mask", blank + [IMPL + binder]) == set(), binder
    graded = grade_notebook(notebook(tmp_path / "01_bernoulli_mask.ipynb", blank + [IMPL + BINDERS[0]]),
                            only="bernoulli_mask")
    assert graded.score == 13, graded


# ---------------------------------------------------------------- nothing outlives its call
def leave_probe(nb):
    """Leave something in every place a later call of the same submission could look: files
    (the private /tmp, the working folder, the shared folders), SysV shared memory and message
    queues, a POSIX message queue, keys in the session and user keyrings."""
    import ctypes
    import os
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    left = []
    for path in ("/tmp/left", "left", "/var/tmp/left-call", "/dev/shm/left-call"):
        try:
            with open(path, "w") as f:
                f.write("left by an earlier call")
            left.append(path)
        except OSError:
            pass
    left.append(("shm", libc.shmget(0x1e57, 4096, 0o1600)))
    left.append(("msg", libc.msgget(0x1e58, 0o1600)))
    try:
        rt = ctypes.CDLL("librt.so.1", use_errno=True)
        left.append(("mq", rt.mq_open(b"/left-call", os.O_CREAT | os.O_RDWR, 0o600, None)))
    except OSError:
        pass
    nr = {"x86_64": 248, "aarch64": 217}.get(os.uname().machine)   # add_key
    if nr:
        for ring in (-3, -4, -5):   # session, user, user session
            left.append(("key", ring, libc.syscall(nr, b"user", b"left-call", b"secret", 6, ring)))
    return left


def find_probe(nb):
    """What of it a later call finds."""
    import ctypes
    import os
    libc = ctypes.CDLL(None, use_errno=True)
    found = [p for p in ("/tmp/left", "left", "/var/tmp/left-call", "/dev/shm/left-call") if os.path.exists(p)]
    found += [k for k, key in (("shm", 0x1e57), ("msg", 0x1e58))
              if (libc.shmget if k == "shm" else libc.msgget)(key, 0, 0) >= 0]
    try:
        rt = ctypes.CDLL("librt.so.1", use_errno=True)
        if rt.mq_open(b"/left-call", os.O_RDWR, 0, None) >= 0:
            found.append("mq")
    except OSError:
        pass
    libc.syscall.restype = ctypes.c_long
    buf = ctypes.create_string_buffer(64)
    nr = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)   # keyctl
    try:
        with open("/proc/keys") as f:
            ids = [int(ln.split()[0], 16) for ln in f if "left-call" in ln]
    except OSError:
        ids = []
    found += [f"key {i}" for i in ids if nr and libc.syscall(nr, 11, i, buf, 64) >= 0]   # KEYCTL_READ
    return found


def test_nothing_a_call_leaves_is_found_by_the_next_call():
    """Each call is a fresh fork, and must stay one: files, IPC objects and keys that a call
    leaves would let a later call of the same submission behave differently (e.g. a cached
    result read by a timed call, whose fixed-cost run did the work).  Skipped objects: the
    ones this machine does not let learner code make at all."""
    with Sandbox({"x": ["def f(x):\n    return x"]}) as sb:
        left = sb.call("x", leave_probe)
        found = sb.call("x", find_probe)
    made = [x for x in left if not isinstance(x, tuple) or x[-1] >= 0]
    assert len(made) >= 3, left
    assert found == [], (found, left)


def prlimit_probe(nb):
    """The limits this call started with; then change those of every process of ours it can
    (the serving process too)."""
    import os
    import resource
    start = [resource.getrlimit(w) for w in (resource.RLIMIT_NOFILE, resource.RLIMIT_STACK, resource.RLIMIT_MSGQUEUE)]
    for pid in [int(d) for d in os.listdir("/proc") if d.isdigit()]:
        for which in (resource.RLIMIT_NOFILE, resource.RLIMIT_STACK, resource.RLIMIT_MSGQUEUE):
            try:
                resource.prlimit(pid, which, (77, resource.prlimit(pid, which)[1]))
            except (OSError, ValueError):
                pass
    return start


def test_a_call_cannot_change_the_limits_the_next_call_starts_with():
    with Sandbox({"x": ["def f(x):\n    return x"]}) as sb:
        before = sb.call("x", prlimit_probe)
        after = sb.call("x", prlimit_probe)
    assert after == before and 77 not in [soft for soft, _hard in before]


# ---------------------------------------------------------------- ... even when calls share a runner
# Consecutive untimed calls of a notebook are served by one process, the notebook's runner
# (grader/sandbox/learner.py); the learner's process, which runs no learner code, says which
# runner served each call (Sandbox.served).  The two tests above pass because a call that
# leaves something ends its runner, not because every call gets a fresh process:
def nothing_probe(nb):
    return 0


def test_the_calls_above_share_a_runner_when_the_first_leaves_nothing():
    """The positive control of the two tests above: the same two calls, the first leaving
    nothing, are served by one runner; leaving something (or changing a limit) ends it."""
    for first in (nothing_probe, find_probe):
        with Sandbox({"x": ["def f(x):\n    return x"]}) as sb:
            sb.call("x", first)
            served = sb.served
            sb.call("x", find_probe)
            assert served["runner"] is not None and sb.served["runner"] == served["runner"], (served, sb.served)
            assert sb.served["call"] == served["call"] + 1 and sb.served["left"] == []
            for attack in (leave_probe, prlimit_probe):
                runner = sb.served["runner"]
                sb.call("x", attack)
                assert sb.served["runner"] == runner and sb.served["left"], sb.served
                assert sb.call("x", find_probe) == [] and sb.served["runner"] not in (runner, None)


def leave_one(nb, kind):
    """Leave one thing a later call of the same process could find or feel."""
    import ctypes
    import os
    import sys
    import threading
    import time
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if kind == "file in /tmp":
        open("/tmp/left-one", "w").close()
    elif kind == "file in the working folder":
        open("left-one", "w").close()
    elif kind == "folder tree in /tmp":
        os.makedirs("/tmp/left-dir/deeper")
        open("/tmp/left-dir/deeper/left-one", "w").close()
    elif kind == "SysV semaphore":
        assert libc.semget(0x1e59, 1, 0o1600) >= 0
    elif kind in ("key in the user keyring", "key only its possessor may see"):
        nr_add, nr_ctl = {"x86_64": (248, 250), "aarch64": (217, 219)}[os.uname().machine]
        ring = -4 if kind == "key in the user keyring" else -3
        key = libc.syscall(nr_add, b"user", b"left-one", b"secret", 6, ring)
        assert key >= 0
        if ring == -3:
            libc.syscall(nr_ctl, 5, key, 0x3f000000)   # KEYCTL_SETPERM: its possessor only
    elif kind == "limit of the parent":
        import resource
        resource.prlimit(os.getppid(), resource.RLIMIT_NOFILE, (55, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
    elif kind == "lowered hard limit":
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    elif kind == "detached process":
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                time.sleep(60)
            os._exit(0)
        os.wait()
    elif kind == "thread":
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    elif kind == "POSIX timer":
        timer = ctypes.c_void_p()
        assert libc.timer_create(1, None, ctypes.byref(timer)) == 0   # CLOCK_MONOTONIC, SIGALRM
        assert libc.timer_settime(timer, 0, (ctypes.c_long * 4)(0, 0, 100, 0), None) == 0
    elif kind == "CPU affinity":
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    elif kind == "priority":
        os.nice(3)
    elif kind == "process name":
        libc.prctl(15, b"renamed", 0, 0, 0)   # PR_SET_NAME
    elif kind == "a runner that says it put everything back":
        main = sys.modules["__main__"]
        for cls in vars(main).values():
            if isinstance(cls, type) and hasattr(cls, "restore"):
                cls.restore = lambda self, *a, **k: []
        open("/tmp/left-one", "w").close()
    return 0


def look(nb):
    """What of leave_one's leftovers a call finds or feels."""
    import ctypes
    import os
    import resource
    libc = ctypes.CDLL(None, use_errno=True)
    uid = os.getuid()
    procs = 0
    for d in os.listdir("/proc"):
        try:
            procs += d.isdigit() and os.stat(f"/proc/{d}").st_uid == uid
        except OSError:
            pass
    with open("/proc/self/comm") as f:
        name = f.read()
    libc.syscall.restype = ctypes.c_long
    nr = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)   # keyctl
    try:   # keys it can read (an unlinked key stays listed until the kernel collects it)
        with open("/proc/keys") as f:
            ids = [int(ln.split()[0], 16) for ln in f if "left-one" in ln]
    except OSError:
        ids = []
    keys = sum(bool(nr) and libc.syscall(nr, 11, i, ctypes.create_string_buffer(64), 64) >= 0 for i in ids)
    return {"files": [p for p in ("/tmp/left-one", "left-one", "/tmp/left-dir") if os.path.lexists(p)],
            "sem": libc.semget(0x1e59, 0, 0) >= 0, "keys": keys, "processes": procs,
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE)), "affinity": sorted(os.sched_getaffinity(0)),
            "nice": os.nice(0), "name": name, "tasks": len(os.listdir("/proc/self/task"))}


LEFTOVERS = ["file in /tmp", "file in the working folder", "folder tree in /tmp", "SysV semaphore",
             "key in the user keyring", "key only its possessor may see", "limit of the parent",
             "lowered hard limit", "detached process", "thread", "POSIX timer", "CPU affinity", "priority",
             "process name", "a runner that says it put everything back"]


@pytest.mark.parametrize("view", [True, False], ids=["view", "no view"])
@pytest.mark.parametrize("kind", LEFTOVERS)
def test_a_call_that_leaves_anything_ends_its_runner_and_the_next_call_finds_nothing(kind, view, monkeypatch):
    """Judged from outside the runner: the learner's process saw what the call left, ended the
    runner (removing what it left), and the next call, in a fresh one, finds and feels none of it;
    in the allowlist view and without one (the shared /tmp, where other users write too)."""
    if kind == "CPU affinity" and len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one CPU: no affinity to change")
    if not view:
        if not ROOTED:
            pytest.skip("without root there is no view to go without")
        monkeypatch.setenv("GRADER_NO_NAMESPACES", "1")
    with Sandbox({"x": ["def f(x):\n    return x"]}) as sb:
        before = sb.call("x", look)
        runner = sb.served["runner"]
        assert runner is not None, sb.served
        assert sb.call("x", leave_one, kind=kind) == 0
        assert sb.served["runner"] == runner and sb.served["left"], sb.served
        after = sb.call("x", look)
        assert sb.served["runner"] not in (None, runner), sb.served
    assert after == before


def leave_later(nb):
    """Nothing left when the call ends, and a runner that says it put everything back; a file
    written by a signal handler once the call has been answered (an interval timer)."""
    import signal
    import sys
    for cls in vars(sys.modules["__main__"]).values():
        if isinstance(cls, type) and hasattr(cls, "restore"):
            cls.restore = lambda self, *a, **k: []

    def write(*_):
        open("/tmp/left-one", "w").close()
    signal.signal(signal.SIGALRM, write)
    signal.setitimer(signal.ITIMER_REAL, 0.05)
    return 0


def test_what_a_runner_leaves_between_its_calls_is_not_found_by_the_next_call():
    import time
    with Sandbox({"x": ["def f(x):\n    return x"]}) as sb:
        before = sb.call("x", look)
        runner = sb.served["runner"]
        sb.call("x", leave_later)
        assert sb.served["runner"] == runner
        time.sleep(0.5)
        after = sb.call("x", look)
        assert sb.served["runner"] not in (None, runner), sb.served
    assert after == before
