"""check()'s warm grader (grader.warm): one grading worker per kernel, started by the set-up
cell.  It must give the same results as the cold path (a fresh `python -m grader`), fall back
to it with one line when the worker is dead, hung or another process's, accept nothing but a
check request, and end — with every process it started — when its kernel ends."""
import json
import os
import signal
import struct
import subprocess
import sys
import time

import pytest

from grader import inline, warm
from grader.nbfile import code_cells
from grader.sandbox.procs import children_of
from tests.grading import ROOT, solution_cells

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the warm grader needs processes")

SWAPPED_01 = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
              "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) < p\n")


def _blank(stem):
    return [c for c in code_cells(ROOT / "notebooks" / f"{stem}.ipynb") if c]


def _buggy_01():
    return [SWAPPED_01 if "def bernoulli_mask" in c else c for c in solution_cells("01_bernoulli_mask")]


@pytest.fixture
def worker():
    w = warm.start(force=True)
    assert w is not None
    yield w
    warm.stop()


def _descendants(pid):
    out, todo = [], [pid]
    while todo:
        kids = children_of(todo.pop())
        out += kids
        todo += kids
    return out


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def _wait_gone(pids, seconds=15):
    end = time.monotonic() + seconds
    while time.monotonic() < end and any(_alive(p) for p in pids):
        time.sleep(0.1)
    return [p for p in pids if _alive(p)]


def _comparable(res):
    """A results dict without what differs between any two runs (how long grading took)."""
    return {k: v for k, v in res.items() if k != "execution_time"}


def _cold(cells, exercise):
    real = warm._STATE["wanted"]
    warm._STATE["wanted"] = False
    try:
        return inline._grade_cells(cells, exercise)
    finally:
        warm._STATE["wanted"] = real


# ---------------------------------------------------------------- the same grading
@pytest.mark.parametrize("name, cells", [("solution", lambda: solution_cells("01_bernoulli_mask")),
                                         ("blank", lambda: _blank("01_bernoulli_mask")),
                                         ("buggy", _buggy_01)])
def test_warm_and_cold_give_identical_results(worker, name, cells):
    cells = cells()
    warm_res = inline._grade_cells(cells, "bernoulli_mask")
    assert worker.asked >= 1, "the worker did not grade"
    cold_res = _cold(cells, "bernoulli_mask")
    assert _comparable(warm_res) == _comparable(cold_res)
    passed = [t["status"] == "passed" for t in warm_res["tests"]]
    assert {"solution": all(passed), "blank": not any(passed), "buggy": any(passed) and not all(passed)}[name]


def test_another_notebook_with_a_timed_check_agrees_warm_twice_and_cold(worker):
    """Another notebook (reference work memoised in the worker): the second warm answer is
    still the cold one."""
    cells = solution_cells("03_backward")
    first = inline._grade_cells(cells, "dropout_backward")
    again = inline._grade_cells(cells, "dropout_backward")
    cold = _cold(cells, "dropout_backward")
    assert _comparable(first) == _comparable(again) == _comparable(cold)
    assert first["score"] == sum(t["max_score"] for t in first["tests"]) > 0


def test_check_is_answered_by_the_worker_from_its_ready_learner_process(worker, capsys):
    cells = solution_cells("01_bernoulli_mask")
    for _ in range(2):
        inline.check("bernoulli_mask", cells=cells)
        out = capsys.readouterr().out
        assert out.startswith("✓ bernoulli_mask: 9 of 9 checks passed"), out[:300]
        assert worker.ready, "the learner process kept ready was not used"
    assert worker.asked == 2 and warm._STATE["worker"] is worker


def _learner_processes(worker, seconds=30, other_than=()):
    """The learner processes under the worker, once there is one not in other_than."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        found = []
        for pid in _descendants(worker.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"learner.py" in f.read() and _alive(pid):
                        found.append(pid)
            except OSError:
                pass
        if set(found) - set(other_than):
            return found
        time.sleep(0.05)
    return []


def test_the_learner_process_that_answered_ends_once_the_answer_is_sent(worker, capsys):
    """Its teardown comes after the answer (off check()'s path), yet before the next learner
    process is readied: one learner process at a time, and the next check() is answered."""
    cells = solution_cells("01_bernoulli_mask")
    [first] = _learner_processes(worker)   # readied before any request
    inline.check("bernoulli_mask", cells=cells)
    assert _wait_gone([first]) == [], "the learner process that graded was left running"
    after = _learner_processes(worker, other_than=[first])
    assert len(after) == 1 and first not in after, after
    inline.check("bernoulli_mask", cells=cells)
    assert capsys.readouterr().out.count("✓ bernoulli_mask: 9 of 9") == 2 and worker.ready


def test_an_unknown_exercise_is_refused_in_one_line_as_cold(worker, capsys):
    inline.check("no_such_exercise", cells=["x = 1"])
    out = capsys.readouterr().out
    assert out.startswith("✗ could not check no_such_exercise: no exercise called 'no_such_exercise'"), out
    assert len(out.strip().splitlines()) == 1 and worker.asked == 1


# ---------------------------------------------------------------- falling back
def test_a_dead_worker_costs_one_line_and_is_started_again(worker, capsys):
    cells = solution_cells("01_bernoulli_mask")
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    inline.check("bernoulli_mask", cells=cells)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "⚠ the background grader stopped: this check ran the slow way, and a new background " \
                     "grader is starting", out[:3]
    assert out[1].startswith("✓ bernoulli_mask: 9 of 9 checks passed")
    new = warm._STATE["worker"]
    assert new is not None and new is not worker and new.alive()
    inline.check("bernoulli_mask", cells=cells)
    out = capsys.readouterr().out
    assert out.startswith("✓ bernoulli_mask: 9 of 9") and new.asked == 1


def test_a_hung_worker_costs_one_line(worker, capsys, monkeypatch):
    inline._grade_cells(["x = 1"], "bernoulli_mask")   # warmed up: it acknowledges at once
    monkeypatch.setattr(warm, "ACK_SECONDS", 2.0)
    os.kill(worker.proc.pid, signal.SIGSTOP)
    try:
        t0 = time.monotonic()
        inline.check("bernoulli_mask", cells=solution_cells("01_bernoulli_mask"))
        out = capsys.readouterr().out.splitlines()
    finally:
        if worker.proc.returncode is None:
            os.kill(worker.proc.pid, signal.SIGCONT)
    assert out[0].startswith("⚠ the background grader did not answer: this check ran the slow way"), out[:3]
    assert out[1].startswith("✓ bernoulli_mask: 9 of 9")
    assert time.monotonic() - t0 < 60
    assert _wait_gone([worker.proc.pid]) == []


def test_a_fork_of_the_kernel_does_not_use_its_parents_worker(worker):
    cells = solution_cells("01_bernoulli_mask")
    inline._grade_cells(["x = 1"], "bernoulli_mask")
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:   # the child: report what check() printed, then leave without tear-down
        try:
            os.close(rd)
            import contextlib
            import io
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                inline.check("bernoulli_mask", cells=cells)
            warm.stop()
            os.write(wr, buf.getvalue().encode())
        finally:
            os._exit(0)
    os.close(wr)
    got = b""
    while chunk := os.read(rd, 65536):
        got += chunk
    os.close(rd)
    os.waitpid(pid, 0)
    out = got.decode().splitlines()
    assert out[0].startswith("⚠ this process is a fork of the kernel that started the background grader"), out[:3]
    assert out[1].startswith("✓ bernoulli_mask: 9 of 9")
    # the parent's worker was neither used nor ended by the fork
    assert worker.alive() and worker.asked == 1 and warm._STATE["worker"] is worker
    assert inline._grade_cells(cells, "bernoulli_mask")["score"] == 13


def test_after_repeated_failures_check_stays_cold(worker, capsys, monkeypatch):
    monkeypatch.setitem(warm._STATE, "restarts", warm.MAX_RESTARTS)
    os.kill(worker.proc.pid, signal.SIGKILL)
    worker.proc.wait(timeout=10)
    cells = solution_cells("01_bernoulli_mask")
    inline.check("bernoulli_mask", cells=cells)
    out = capsys.readouterr().out.splitlines()
    assert "check() starts the grader each time now" in out[0] and out[1].startswith("✓ bernoulli_mask")
    assert warm._STATE["worker"] is None
    inline.check("bernoulli_mask", cells=cells)
    assert capsys.readouterr().out.startswith("✓ bernoulli_mask")


def test_switched_off_by_the_environment(monkeypatch):
    monkeypatch.setenv(warm.OFF_ENV, "0")
    assert warm.start(force=True) is None and warm.grade(["x = 1"], "bernoulli_mask") is None


def test_outside_a_kernel_the_set_up_cell_starts_nothing():
    """A script running the set-up cell (no Jupyter kernel) does not start a worker."""
    warm.start_grader()
    assert warm._STATE["worker"] is None


# ---------------------------------------------------------------- what the worker accepts
def _raw(worker, data):
    worker.sock.sendall(data)


@pytest.mark.parametrize("request_bytes", [
    json.dumps({"id": 1, "cells": "x = 1", "exercise": "bernoulli_mask"}).encode(),   # not a list
    json.dumps({"id": 1, "cells": [1], "exercise": "bernoulli_mask"}).encode(),
    json.dumps({"id": 1, "cells": [], "exercise": "bernoulli_mask", "argv": ["--out", "/"]}).encode()[:-1] + b"x",
    b"\x80\x04pickle",
])
def test_anything_but_a_check_request_ends_the_worker_and_nothing_else(worker, request_bytes):
    _raw(worker, struct.pack(">Q", len(request_bytes)) + request_bytes)
    assert worker.proc.wait(timeout=30) == 0
    assert warm.grade(["x = 1"], "bernoulli_mask") is None   # one line, and a new worker
    assert warm._STATE["worker"] is not worker


def test_a_huge_announced_request_is_refused_without_reading_it(worker):
    _raw(worker, struct.pack(">Q", 1 << 40))
    assert worker.proc.wait(timeout=30) == 0


def test_the_worker_is_not_started_by_hand():
    proc = subprocess.run([sys.executable, "-m", "grader.warm"], capture_output=True, text=True, cwd=ROOT,
                          timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------- nothing outlives the kernel
KERNEL = """
import sys, time
sys.path.insert(0, {root!r})
from grader import warm
from grader.sandbox.procs import children_of
w = warm.start(force=True)
end = time.monotonic() + 60
while time.monotonic() < end and not children_of(w.proc.pid):
    time.sleep(0.05)
print(w.proc.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM])
def test_the_worker_and_its_learner_process_end_with_the_kernel(how):
    kernel = subprocess.Popen([sys.executable, "-c", KERNEL.format(root=str(ROOT))], stdout=subprocess.PIPE,
                              text=True, cwd=ROOT)
    try:
        pid = int(kernel.stdout.readline())
        procs = [pid] + _descendants(pid)
        assert len(procs) >= 2, "the worker keeps a learner process ready"
        kernel.send_signal(how)
        kernel.wait(timeout=30)
        assert _wait_gone(procs) == [], "left behind after the kernel ended"
    finally:
        kernel.kill()
        kernel.wait()


def test_in_a_real_kernel_check_uses_the_worker_the_set_up_cell_started():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = ROOT / "notebooks" / "01_bernoulli_mask.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    upto = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.startswith("check("))
    nb.cells = nb.cells[: upto + 1] + [nbformat.v4.new_code_cell(
        "from grader import warm\nw = warm._STATE['worker']\nprint(w.proc.pid, w.asked, w.ready)")]
    client = nbclient.NotebookClient(nb, timeout=120, resources={"metadata": {"path": str(path.parent)}})
    with client.setup_kernel():
        for i, cell in enumerate(nb.cells):
            client.execute_cell(cell, i)
        kernel_pid = client.km.provisioner.process.pid
        pid, asked, ready = nb.cells[-1].outputs[0]["text"].split()
        procs = [int(pid)] + _descendants(int(pid))
        assert children_of(kernel_pid).count(int(pid)) == 1
    assert (asked, ready) == ("1", "True")
    assert "not implemented yet" in "".join(o.get("text", "") for o in nb.cells[upto].outputs)
    assert _wait_gone(procs) == [], "left behind after the kernel ended"


def test_every_set_up_cell_starts_the_warm_grader():
    for folder in ("solutions", "notebooks"):
        for path in sorted((ROOT / folder).glob("[0-9][0-9]_*.ipynb")):
            setup = next(c for c in code_cells(path) if "from grader import check" in c)
            assert "from grader.warm import start_grader" in setup and "\nstart_grader()" in setup, path


def test_an_interrupted_check_leaves_a_new_worker_for_the_next(worker, capsys):
    """Interrupting the kernel while the worker grades: its answer would come late, so the
    worker is ended and a new one started; the next check() is answered by it, no line."""
    import threading
    cells = solution_cells("01_bernoulli_mask")
    inline._grade_cells(["x = 1"], "bernoulli_mask")   # warmed up
    os.kill(worker.proc.pid, signal.SIGSTOP)   # so that the interrupt comes while check() waits
    timers, read = [], worker._read

    def read_then_interrupt(deadline):   # the request is sent: Ctrl-C comes while the answer is awaited
        if not timers:                    # (a fixed delay from before check() raced a loaded machine)
            timers.append(threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)))
            timers[0].start()
        return read(deadline)
    worker._read = read_then_interrupt
    with pytest.raises(KeyboardInterrupt):
        inline.check("bernoulli_mask", cells=cells)
    assert len(timers) == 1, "check() did not ask the background grader"
    timers[0].join()
    capsys.readouterr()
    new = warm._STATE["worker"]
    assert new is not worker and new.alive() and _wait_gone([worker.proc.pid]) == []
    inline.check("bernoulli_mask", cells=cells)
    assert capsys.readouterr().out.startswith("✓ bernoulli_mask: 9 of 9") and new.asked == 1


def test_a_kernel_that_cannot_start_processes_keeps_the_cold_path(monkeypatch, capsys):
    """Starting the worker fails (no process can be started): one line, and check() grades."""
    def no_processes(*a, **k):
        raise OSError(11, "Resource temporarily unavailable")
    monkeypatch.setattr(subprocess, "Popen", no_processes)
    assert warm.start(force=True) is None
    assert capsys.readouterr().out.startswith("⚠ check()'s background grader could not start (Resource")
    assert warm.grade(["x = 1"], "bernoulli_mask") is None and warm._STATE["worker"] is None
    warm.stop()


def test_the_ready_learner_process_waits_under_its_limits(worker):
    """The process kept ready has read no learner text, yet its limits are already set (and,
    as root, it already runs as the learner's uid): principle 3 holds before any request."""
    from grader.config import DEFAULT
    end, found = time.monotonic() + 60, None
    while time.monotonic() < end and found is None:
        for pid in _descendants(worker.proc.pid):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if b"learner.py" not in f.read():
                        continue
                with open(f"/proc/{pid}/limits") as f:
                    limits = f.read()
                uid = os.stat(f"/proc/{pid}").st_uid
            except OSError:
                continue
            line = next(ln for ln in limits.splitlines() if ln.startswith("Max address space"))
            if line.split()[3] == str(DEFAULT.memory << 20):
                found = (pid, uid)
        time.sleep(0.1)
    assert found, "no learner process under its memory limit was kept ready"
    if os.geteuid() == 0 and os.environ.get("GRADER_KEEP_ROOT") != "1":
        assert found[1] != 0, "the ready learner process still runs as root"
    assert worker.asked == 0


def test_without_a_course_folder_the_worker_says_what_the_cold_path_says(monkeypatch, tmp_path, capsys):
    """Nothing can be readied (DROPOUT_COURSE names no course): check() still answers with the
    grader's own one line, from the worker, as the cold path would."""
    monkeypatch.setenv("DROPOUT_COURSE", str(tmp_path))
    try:
        w = warm.start(force=True)
        inline.check("bernoulli_mask", cells=["x = 1"])
        warm_out = capsys.readouterr().out
        assert w.asked == 1 and warm._STATE["worker"] is w
    finally:
        warm.stop()
    inline.check("bernoulli_mask", cells=["x = 1"])
    assert warm_out == capsys.readouterr().out
    assert warm_out.startswith("✗ could not check bernoulli_mask: DROPOUT_COURSE=") and len(warm_out.splitlines()) == 1


@pytest.mark.parametrize("change", ["environment", "files"])
def test_a_worker_that_no_longer_grades_as_a_fresh_grader_is_replaced(worker, change, monkeypatch, capsys):
    """The worker loaded the checks and read its settings once: when they change (an author
    editing a check, a GRADER_ setting), check() grades the cold way once and starts anew."""
    cells = solution_cells("01_bernoulli_mask")
    inline._grade_cells(["x = 1"], "bernoulli_mask")
    touched = ROOT / "grader" / "checks" / "test_01_bernoulli_mask.py"
    before, restarts = touched.stat(), warm._STATE["restarts"]
    try:
        if change == "environment":
            monkeypatch.setenv("GRADER_WARM_TEST_SETTING", "1")
        else:
            os.utime(touched, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))
        inline.check("bernoulli_mask", cells=cells)
    finally:
        os.utime(touched, ns=(before.st_atime_ns, before.st_mtime_ns))
    out = capsys.readouterr().out.splitlines()
    why = {"environment": "the grader's settings in the environment changed",
           "files": "the grader's files or the solutions changed"}[change]
    assert out[0] == f"⚠ {why}: this check ran the slow way, and a new background grader is starting", out[:2]
    assert out[1].startswith("✓ bernoulli_mask: 9 of 9") and worker.asked == 1
    assert warm._STATE["worker"] is not worker and _wait_gone([worker.proc.pid]) == []
    assert warm._STATE["restarts"] == restarts, "a change is not a failure: it must not use up the restarts"


@pytest.mark.parametrize("exercise", ["--json=/dev/null", "bernoulli_mask --out x"])
def test_an_exercise_name_is_never_read_as_an_option_warm_or_cold(worker, exercise, capsys):
    inline.check(exercise, cells=["x = 1"])
    warm_out = capsys.readouterr().out
    assert worker.asked == 1
    warm.stop()
    inline.check(exercise, cells=["x = 1"])
    assert warm_out == capsys.readouterr().out
    assert warm_out.startswith(f"✗ could not check {exercise}: no exercise called") and len(warm_out.splitlines()) == 1
