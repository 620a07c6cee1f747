"""Calls do not leak into each other: whatever process serves consecutive calls of a notebook
(a runner per notebook, see grader/sandbox/learner.py), each call sees the process-global
state a fresh process would, a call that leaves something that cannot be put back (a thread,
a process, a lowered limit) ends the process that served it, and whole-array code gets the
vectorisation points in the unsandboxed self-study mode too."""
import numpy as np
import pytest

from grader.config import DEFAULT
from grader.engine import grade
from grader.sandbox.host import Sandbox, sandbox_available
from tests.grading import ROOT

pytestmark = pytest.mark.skipif(not sandbox_available(), reason="needs the sandbox (fork, resource limits)")

MESS = '''import numpy as np
import math, os, random, signal, sys, threading, time, warnings

def mess(kind):
    if kind == "seterr":
        np.seterr(all="raise")
    elif kind == "warnings":
        warnings.simplefilter("error")
    elif kind == "np.random":
        np.random.seed(123)
        np.random.random(7)
    elif kind == "random":
        random.seed(5)
    elif kind == "module attribute":
        np.mean = lambda *a, **k: 42.0
        math.pi = 3
        np.my_cache = [1]
    elif kind == "sys.modules":
        sys.modules["numpy.linalg"] = None
        import decimal
    elif kind == "cwd":
        os.chdir("/")
    elif kind == "environment":
        os.environ["LEARNER_VAR"] = "1"
        os.environ.pop("HOME", None)
    elif kind == "signal handler":
        signal.signal(signal.SIGUSR1, lambda *a: None)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.setitimer(signal.ITIMER_REAL, 100)
    elif kind == "sys.path":
        sys.path.insert(0, "/nowhere")
    elif kind == "recursion limit":
        sys.setrecursionlimit(60)
    elif kind == "umask":
        os.umask(0o777)
    elif kind == "open file":
        globals()["kept"] = open("/dev/null")
    elif kind == "print options":
        np.set_printoptions(precision=1)
    elif kind == "thread":
        threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
    elif kind == "process":
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
    elif kind == "lowered limit":
        import resource
        resource.setrlimit(resource.RLIMIT_NOFILE, (50, 50))
    return 0
'''

RESTORED = ["seterr", "warnings", "np.random", "random", "module attribute", "sys.modules", "cwd",
            "environment", "signal handler", "sys.path", "recursion limit", "umask", "open file",
            "print options"]
ENDS_THE_PROCESS = ["thread", "process", "lowered limit"]


def state(nb):
    """What a call sees of the process-global state (read from the real modules)."""
    import math
    import os
    import random
    import resource
    import signal
    import sys
    import warnings
    real = sys.modules["numpy"]
    return {"pid": os.getpid(), "err": sorted(real.geterr().items()),
            "filters": [str(f[0]) for f in warnings.filters], "np.random": float(real.random.random()),
            "random": random.random(), "mean": float(real.mean([1.0, 3.0])), "pi": math.pi,
            "attrs": sorted(vars(real)), "modules": sorted(sys.modules), "cwd": os.getcwd(),
            "env": sorted(os.environ.items()), "usr1": str(signal.getsignal(signal.SIGUSR1)),
            "int": str(signal.getsignal(signal.SIGINT)), "timer": signal.getitimer(signal.ITIMER_REAL)[0],
            "path": list(sys.path), "recursion": sys.getrecursionlimit(), "umask": os.umask(0o022),
            "fds": sorted(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else [],
            "print": real.get_printoptions()["precision"],
            "tasks": len(os.listdir("/proc/self/task")) if os.path.isdir("/proc/self/task") else 1,
            "nofile": list(resource.getrlimit(resource.RLIMIT_NOFILE))}


def do(nb, kind):
    return nb.fn("mess")(kind)


def pid(nb):
    import os
    return os.getpid()


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox({"nb": [MESS]}) as sb:
        yield sb


@pytest.mark.parametrize("kind", RESTORED)
def test_state_a_call_changes_is_back_for_the_next_call(sandbox, kind):
    before = sandbox.call("nb", state)
    runner = sandbox.served["runner"]
    assert sandbox.call("nb", do, uses=("mess",), kind=kind) == 0
    after = sandbox.call("nb", state)
    assert after == before, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    # put back, not hidden by a fresh process: the three calls were served by one runner
    # (as the learner's process says, which runs no learner code)
    assert runner is not None and sandbox.served["runner"] == runner, sandbox.served


@pytest.mark.parametrize("kind", ENDS_THE_PROCESS)
def test_a_call_that_leaves_what_cannot_be_put_back_ends_its_process(sandbox, kind):
    before = sandbox.call("nb", state)
    runner = sandbox.served["runner"]
    assert sandbox.call("nb", do, uses=("mess",), kind=kind) == 0
    assert sandbox.served["runner"] == runner and sandbox.served["left"], sandbox.served
    after = sandbox.call("nb", state)
    assert sandbox.served["runner"] not in (None, runner), sandbox.served
    assert after["tasks"] == 1 and after["nofile"] == before["nofile"]
    fresh = ("pid", "random")   # the random module seeds itself from the OS in each new process
    assert {k: v for k, v in after.items() if k not in fresh} == {k: v for k, v in before.items() if k not in fresh}


def test_a_timed_call_runs_in_a_process_of_its_own(sandbox):
    first, second = sandbox.call("nb", pid), sandbox.call("nb", pid)
    runner = sandbox.served["runner"]
    timed, cpu = sandbox.call("nb", pid, cpu=True)
    assert sandbox.served is None   # no runner: a fork of its own
    assert timed not in (first, second) and cpu >= 0
    sandbox.call("nb", pid)
    assert sandbox.served["runner"] not in (None, runner)   # no runner was alive while it ran


def test_unsandboxed_whole_array_code_gets_the_vectorisation_points():
    from dataclasses import replace

    from grader import engine
    sub = engine.load([ROOT / "solutions" / "02_classic_vs_inverted.ipynb"], one_notebook=True)
    records = [r for r in grade(sub, replace(DEFAULT, unsandboxed=True, only="02"))
               if r["notebook"] == "02_classic_vs_inverted"]
    timing = [r for r in records if r["check"] == "test_vectorised"]
    assert timing and all(r["status"] == "passed" for r in timing), [r["message"] for r in timing]
    assert sum(r["score"] for r in records) == sum(r["max_score"] for r in records)


def test_answers_do_not_depend_on_which_process_served_them(monkeypatch):
    """The same calls, served by a runner and by a fork per call: the same answers."""
    cells = [MESS, "def f(x):\n    return np.asarray(x) * np.random.random()\n"]

    def answers():
        out = []
        with Sandbox({"nb": cells}) as sb:
            for kind in RESTORED:
                sb.call("nb", do, uses=("mess",), kind=kind)
                out.append(sb.call("nb", scaled, uses=("f",), x=np.arange(3.0)))
        return out
    monkeypatch.setenv("GRADER_NO_RUNNER", "1")
    forks = answers()
    monkeypatch.delenv("GRADER_NO_RUNNER")
    runner = answers()
    assert all(np.array_equal(a, b) for a, b in zip(forks, runner))


def scaled(nb, x):
    return nb.fn("f")(x)


HOG = '''import os
import numpy as np

def hog(kind):
    if kind == "memory":
        return np.ones(2**34, dtype=np.uint8).sum()
    if kind == "exit":
        os._exit(3)
    return 0
'''


def use_hog(nb, kind):
    return nb.fn("hog")(kind)


@pytest.mark.parametrize("kind", ["memory", "exit"])
def test_a_call_that_hits_a_limit_or_ends_its_runner_is_answered_by_a_fresh_fork(monkeypatch, kind):
    """Its verdict must not depend on what earlier calls left in the runner's memory: the
    call is run again in a fork of its own, whose answer counts — the same as without runners."""
    def answer():
        with Sandbox({"nb": [HOG]}) as sb:
            sb.call("nb", use_hog, uses=("hog",), kind="nothing")
            try:
                sb.call("nb", use_hog, uses=("hog",), kind=kind)
            except Exception as e:  # noqa: BLE001 - LearnerError: compared below
                return (type(e).__name__, getattr(e, "kind", None), str(e)), sb.served
        raise AssertionError("no error")
    with_runner, served = answer()
    assert served["again"] is True and served["runner"] is not None, served
    monkeypatch.setenv("GRADER_NO_RUNNER", "1")
    without, served = answer()
    assert served is None and with_runner == without


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_every_record_is_the_same_with_and_without_runners(monkeypatch, folder):
    """Scores, statuses and messages of a whole grading do not depend on which process served
    the calls: runners, or a fork per call (GRADER_NO_RUNNER=1)."""
    from grader import engine
    sub = engine.load(sorted((ROOT / folder).glob("*.ipynb")))
    with_runners = grade(sub, DEFAULT)
    monkeypatch.setenv("GRADER_NO_RUNNER", "1")
    assert grade(sub, DEFAULT) == with_runners
