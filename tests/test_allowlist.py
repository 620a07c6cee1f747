"""The learner's process sees an allowlist: Python, NumPy, the learner-side grader modules, a
private /tmp — and nothing of the course, of other learners or of the grader's own state.

The checks are generic: from inside a call, walk the whole visible file system and read every
/proc entry that can be read there, and compare with what is on the host by identity (device
and inode: a bind mount keeps them), by name and by content; read the call's own memory and
look for the instructor's code in it.  They run where the grader builds the view (root, mount
namespaces); elsewhere the refusal test of the no-view mode applies (test_readable_*).
"""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader import nbfile
from grader.sandbox import host
from grader.sandbox.host import LearnerError, Sandbox
from grader.sandbox.procs import children_of
from tests.grading import ROOT, notebook, solution_cells
from tests.test_mistakes_04_gradient_checking import centred

ROOTED = hasattr(os, "geteuid") and os.geteuid() == 0


def _view_or_skip(sb):
    sb.start()
    if not (sb.isolation or {}).get("view"):
        pytest.skip("no allowlist view here: " + str((sb.isolation or {}).get("why_no_view", "not root")))


def walk_probe(nb):
    """Every path visible to learner code (lstat'ed), the text of every readable /proc entry of
    every visible process, and what could be written outside /tmp."""
    import os
    seen, texts, writable, pids = [], [], [], []
    stack = ["/"]
    while stack:
        d = stack.pop()
        try:
            names = os.listdir(d)
        except OSError:
            continue
        for n in names:
            p = os.path.join(d, n)
            if p == "/proc":
                continue
            try:
                st = os.lstat(p)
            except OSError:
                continue
            seen.append((p, st.st_dev, st.st_ino, st.st_size))
            if os.access(p, os.W_OK) and not p.startswith(("/tmp", "/dev/")):
                writable.append(p)
            if (st.st_mode & 0o170000) == 0o040000:
                stack.append(p)
    for top in os.listdir("/proc"):
        base = os.path.join("/proc", top)
        if top.isdigit():
            pids.append(int(top))
        entries = [base]
        if os.path.isdir(base) and not os.path.islink(base):
            try:
                entries = [os.path.join(base, e) for e in os.listdir(base)]
            except OSError:
                entries = []
        for e in entries:
            try:
                if os.path.islink(e):
                    texts.append(e + " -> " + os.readlink(e))
                elif os.path.isdir(e):
                    for sub in os.listdir(e):
                        q = os.path.join(e, sub)
                        texts.append(q + " -> " + os.readlink(q) if os.path.islink(q) else q)
                elif not e.endswith(("/mem", "/pagemap", "/kcore", "/kmsg", "/clear_refs")):
                    with open(e, "rb") as f:
                        texts.append(e + ": " + f.read(1 << 16).decode(errors="replace"))
            except (OSError, ValueError, RuntimeError):
                pass
    return {"seen": seen, "proc": "\n".join(texts), "writable": writable, "pids": pids,
            "uid": os.getuid(), "me": os.getpid()}


def heap_probe(nb, needles):
    """Search this call's own readable memory for any needle (given byte-shifted, decoded
    only after the memory is copied, so the needles themselves are not found)."""
    import ctypes
    import re
    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)   # PR_SET_DUMPABLE: learner code may do it too
    chunks = []
    with open("/proc/self/maps") as f:
        maps = f.read().splitlines()
    with open("/proc/self/mem", "rb", buffering=0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or (len(parts) > 5 and parts[5].startswith(("/", "[vvar", "[vsyscall"))):
                continue   # files are checked by the walk; only anonymous memory (heap, stacks) here
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            try:
                mem.seek(lo)
                chunks.append(mem.read(hi - lo))
            except (OSError, ValueError, OverflowError):
                pass
    blob = b"\0".join(chunks)
    found = []
    for shifted in needles:
        needle = bytes((b - 1) % 256 for b in shifted.encode("latin-1"))
        if re.search(re.escape(needle), blob):
            found.append(len(needle))
    return {"found": found, "bytes": len(blob)}


ENVIRONMENT = os.path.realpath(sys.prefix)   # the grader's Python: a .venv in the course folder is not the course


def _course_inodes(*roots):
    ids = {}
    for root in roots:
        for d, dirs, files in os.walk(root):
            dirs[:] = [n for n in dirs if os.path.realpath(os.path.join(d, n)) != ENVIRONMENT]
            for n in dirs + files:
                p = os.path.join(d, n)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                ids[(st.st_dev, st.st_ino)] = p
    return ids


@pytest.mark.skipif(not ROOTED, reason="the allowlist view is built when the grader runs as root")
def test_nothing_of_the_course_or_of_other_learners_is_visible_from_a_call(tmp_path):
    other = tmp_path / "subs" / "someone-else"
    other.mkdir(parents=True)
    notebook(other / "01_bernoulli_mask.ipynb", ["SECRET_OF_ANOTHER_LEARNER = 1"])
    cells = ["import numpy as np", "from data.load import load_dataset", "from grader import check",
             "def f(x):\n    return x"]
    with Sandbox({"01_bernoulli_mask": cells}, hide=host.default_hide(ROOT)) as sb:
        _view_or_skip(sb)
        got = sb.call("01_bernoulli_mask", walk_probe, timeout=120)
    assert got["uid"] != 0
    course = _course_inodes(ROOT, tmp_path / "subs", host.PACKAGE_ROOT / "grader")
    same = [(p, course[(dev, ino)]) for p, dev, ino, _size in got["seen"] if (dev, ino) in course]
    assert same == []
    # nor a copy: no visible file has the name and size of a course file (solutions/….ipynb, .git/…)
    copies = {(os.path.basename(p), os.lstat(p).st_size) for p in course.values()
              if os.path.isfile(p) and os.lstat(p).st_size > 64 and "/grader/sandbox/" not in p}
    assert not [p for p, _d, _i, size in got["seen"] if (os.path.basename(p), size) in copies]
    names = {p for p, _d, _i, _s in got["seen"]}
    in_course = [p for p in names if str(ROOT) in p and not p.startswith(ENVIRONMENT)   # NumPy's own path is
                 and not ENVIRONMENT.startswith(p + os.sep)]                           # granted, and the folders to it
    assert not [p for p in names if p.endswith(".ipynb") or "someone-else" in p] + in_course
    proc = got["proc"].replace(ENVIRONMENT, "<the grader's Python>")
    for bad in (str(ROOT), "someone-else", "SECRET_OF_ANOTHER_LEARNER", "pytest", "solutions"):
        assert bad not in proc, bad
    assert got["writable"] == []
    assert set(got["pids"]) <= {1, got["me"]} | set(range(got["me"], got["me"] + 8))


def _needles():
    """Distinctive lines of the instructor's solutions (not in the handed-out notebooks)."""
    out = []
    public = "\n".join(c for nb in sorted((ROOT / "notebooks").glob("*.ipynb")) for c in nbfile.code_cells(nb))
    public += "\n".join(p.read_text() for p in sorted((ROOT / "grader").rglob("*.py")))   # probes travel
    for path in sorted((ROOT / "solutions").glob("*.ipynb")):
        for cell in nbfile.code_cells(path):
            inside = cell.split("### BEGIN SOLUTION")[1:]
            for part in inside:
                for line in part.split("### END SOLUTION")[0].splitlines():
                    line = line.strip()
                    if len(line) >= 28 and line not in public:
                        out.append(line.encode())
    assert len(out) > 10
    return [bytes((b + 1) % 256 for b in n).decode("latin-1") for n in out]


@pytest.mark.skipif(not ROOTED, reason="the allowlist view is built when the grader runs as root")
def test_no_solution_text_in_the_memory_of_a_call(tmp_path):
    cells = [c for c in nbfile.code_cells(ROOT / "notebooks" / "02_classic_vs_inverted.ipynb") if c]
    with Sandbox({"02_classic_vs_inverted": cells}, hide=host.default_hide(ROOT)) as sb:
        _view_or_skip(sb)
        got = sb.call("02_classic_vs_inverted", heap_probe, needles=_needles(), timeout=120, mem=2 << 30)
    assert got["bytes"] > 1 << 20 and got["found"] == []
    # the probe finds what is there: the same search, with one needle in the learner's own cell
    needles = _needles()
    mine = bytes((b - 1) % 256 for b in needles[0].encode("latin-1")).decode("latin-1")
    with Sandbox({"02_classic_vs_inverted": cells + [f"# {mine}"]}) as sb:
        control = sb.call("02_classic_vs_inverted", heap_probe, needles=needles, timeout=120, mem=2 << 30)
    assert control["found"]


def _pid1(sb):
    return children_of(sb.proc.pid)[0]


def pid_probe(nb):
    import os
    return os.getpid()


@pytest.mark.skipif(not ROOTED, reason="the view's learner process is process 1 of a pid namespace only as root")
def test_a_learner_process_killed_from_outside_is_run_again_then_reported_as_interrupted():
    with Sandbox({"01_bernoulli_mask": ["def f(x):\n    return x"]}) as sb:
        _view_or_skip(sb)
        assert sb.call("01_bernoulli_mask", pid_probe) >= 2
        os.kill(_pid1(sb), signal.SIGKILL)
        assert sb.call("01_bernoulli_mask", pid_probe, uses=("f",)) >= 2   # re-run once: answered
        sb.retries = 0
        os.kill(_pid1(sb), signal.SIGKILL)
        with pytest.raises(LearnerError) as e:
            sb.call("01_bernoulli_mask", pid_probe, uses=("f",))
        assert e.value.kind == "interrupted" and "not your code" in e.value.message


KILL_SELF = "def f(x):\n    import os, signal\n    os.kill(os.getpid(), signal.SIGKILL)\n"


def call_f_probe(nb):
    return nb.fn("f")(1)


def test_a_function_that_kills_its_own_process_is_the_learners_crash():
    with Sandbox({"01_bernoulli_mask": [KILL_SELF]}) as sb:
        with pytest.raises(LearnerError) as e:
            sb.call("01_bernoulli_mask", call_f_probe, uses=("f",))
    assert e.value.kind == "crash" and "SIGKILL" in e.value.message


@pytest.mark.skipif(not ROOTED, reason="the view's learner process is process 1 of a pid namespace only as root")
def test_honest_work_keeps_full_marks_when_its_learner_process_is_killed_from_outside_once(tmp_path):
    """The whole course's solutions, graded while a watcher kills the learner process once."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = tmp_path / "r.json"
    proc = subprocess.Popen([sys.executable, "-m", "grader", str(ROOT / "solutions"), "--json", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    end = time.monotonic() + 120
    time.sleep(1.5)   # into the grading
    while killed is None and proc.poll() is None and time.monotonic() < end:
        for view in children_of(proc.pid):   # the grader's child: view.py, waiting for process 1
            for one in children_of(view):
                try:
                    with open(f"/proc/{one}/cmdline", "rb") as f:
                        is_learner = b"learner.py" in f.read()
                except OSError:
                    continue
                if is_learner and killed is None:
                    os.kill(one, signal.SIGKILL)
                    killed = one
        time.sleep(0.05)
    _stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    import json
    data = json.loads(out.read_text())
    assert killed is not None
    assert data["score"] == sum(t["max_score"] for t in data["tests"]) > 0, \
        [t for t in data["tests"] if t["status"] != "passed"]


def test_a_hang_in_one_notebook_is_not_assumed_in_another():
    """The same function name in two notebooks are two functions."""
    hang = "def f(x):\n    while True:\n        pass\n"
    fine = "def f(x):\n    return x\n"
    with Sandbox({"a": [hang], "b": [fine]}) as sb:
        with pytest.raises(LearnerError) as e:
            sb.call("a", call_f_probe, uses=("f",), timeout=1)
        assert e.value.kind == "timeout"
        assert sb.call("b", call_f_probe, uses=("f",)) == 1
        with pytest.raises(LearnerError) as e:
            sb.call("a", call_f_probe, uses=("f",))
        assert e.value.message.startswith("not run")


def unusable_probe(nb):
    raise RuntimeError("a value the check cannot use")


def test_an_answer_the_check_cannot_use_is_the_learners_problem_in_its_words():
    with Sandbox({"01_bernoulli_mask": ["def f(x):\n    return x"]}) as sb:
        with pytest.raises(LearnerError) as e:
            sb.call("01_bernoulli_mask", unusable_probe, uses=("f",))
    assert e.value.kind == "contract" and "report" not in e.value.message and "grader" not in e.value.message
    assert "f" in e.value.message


def test_solutions_graded_from_another_folder_keep_full_marks(tmp_path):
    out = tmp_path / "r.json"
    proc = subprocess.run([sys.executable, "-m", "grader", str(ROOT / "solutions"), "--json", str(out),
                           "--only", "01,04"], cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    import json
    data = json.loads(out.read_text())
    assert data["score"] == sum(t["max_score"] for t in data["tests"]) > 0


SIGCHLD_LOOP = """def dropout_forward_inverted(x, p, train=True, rng=None):
    import mmap, os, signal, time
    if not 0 <= p <= 1:
        raise ValueError(p)
    if not train or p == 0:
        return x.copy(), None
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    flat, kept = x.ravel(), keep.ravel()
    shared = mmap.mmap(-1, flat.nbytes + 8)
    out = np.frombuffer(shared, dtype=x.dtype, count=flat.size, offset=8)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)   # the kernel reaps the child: no rusage for it
    if os.fork() == 0:
        for i in range(flat.size):                   # a per-element loop, in the child
            out[i] = flat[i] / (1 - p) if kept[i] else 0
        shared[:8] = b"finished"
        os._exit(0)
    while shared[:8] != b"finished":
        time.sleep(0.002)
    return out.reshape(x.shape).copy(), keep
"""


def test_a_loop_in_children_reaped_by_the_kernel_is_not_vectorised(tmp_path):
    from tests.test_trust_boundary import graded
    stem = "02_classic_vs_inverted"
    path = notebook(tmp_path / f"{stem}.ipynb", solution_cells(stem) + [SIGCHLD_LOOP])
    data, _ = graded(path, "--only", "dropout_forward_inverted")
    failed = [t.get("extra_data", {}).get("check") for t in data["tests"] if t["status"] != "passed"]
    assert "test_vectorised" in failed, failed


def test_a_hanging_forward_in_02_does_not_cost_a_correct_backward_in_03_its_points(tmp_path):
    """Scores never depend on which notebooks are graded together."""
    from tests.test_trust_boundary import graded
    loop = ("def dropout_forward_inverted(x, p, train=True, rng=None):\n"
            "    rng = np.random.default_rng() if rng is None else rng\n"
            "    keep = rng.random(x.shape) >= p\n    out = np.zeros_like(x)\n"
            "    for i in range(x.size):                 # slow enough to time out on 1e6 elements\n"
            "        for _ in range(50):\n            out.flat[i] = x.flat[i] / (1 - p) if keep.flat[i] else 0\n"
            "    return out, keep\n")
    notebook(tmp_path / "02_classic_vs_inverted.ipynb", solution_cells("02_classic_vs_inverted") + [loop])
    notebook(tmp_path / "03_backward.ipynb", solution_cells("03_backward"))
    whole, _ = graded(tmp_path, "--only", "02,03", "--timeout", "2")
    alone, _ = graded(tmp_path, "--only", "03", "--timeout", "2")

    def backward(data):
        return sum(t["score"] for t in data["tests"] if "dropout_backward" in t["name"])
    assert [t["status"] for t in whole["tests"] if "timeout" in str(t.get("output", "")) or
            "did not finish" in str(t.get("output", ""))], "the loop did not time out in 02"
    assert backward(whole) == backward(alone) == 11


def test_without_a_view_the_learner_can_be_refused_when_it_could_read_the_course():
    """Checked as the learner's uid: readable means it could open the file, whatever the bits say."""
    import shutil
    import tempfile
    top = Path(tempfile.mkdtemp(prefix="course-"))   # in /tmp itself: every parent can be passed through
    try:
        course = top / "course"
        (course / "solutions").mkdir(parents=True)
        (course / "solutions" / "01.ipynb").write_text("{}")
        for p, mode in ((top, 0o755), (course, 0o755), (course / "solutions", 0o755),
                        (course / "solutions" / "01.ipynb", 0o644)):
            os.chmod(p, mode)
        uid = 60499 if ROOTED else os.getuid()
        problem = host.readable_by(uid, [course])
        assert problem and str(course) in problem and "\n" not in problem
        assert ("chmod -R go-rwx " + str(course)) in problem if ROOTED else "root" in problem
        if ROOTED:
            os.chmod(course, 0o700)
            assert host.readable_by(uid, [course]) is None
            os.chmod(course, 0o711)   # passable but not listable: the known names are still readable
            assert "solutions" in host.readable_by(uid, [course])
    finally:
        shutil.rmtree(top)


def test_every_path_of_the_view_exists_and_none_is_the_course():
    paths, _empty, path, python = host.view_paths()
    assert os.path.exists(python) and all(os.path.exists(p) for p in paths)
    assert not [p for p in paths if p.startswith(str(ROOT)) and not os.path.realpath(p).startswith(ENVIRONMENT)]
    numpy_site = path[0]
    assert not [p for p in paths if p.startswith(numpy_site + "/") and not Path(p).name.startswith("numpy")]


def key_probe(nb, add):
    """Add a key to the uid's own keyring (add) or look for it: the serial, or an errno."""
    import ctypes
    import os
    nr = {"x86_64": (248, 250), "aarch64": (217, 219)}.get(os.uname().machine)
    if nr is None:
        return "no syscall numbers"
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    if add:
        got = libc.syscall(nr[0], b"user", b"left-by-a-learner", b"answers", 7, -4)   # add_key to @u
    else:
        got = libc.syscall(nr[1], 10, -4, b"user", b"left-by-a-learner", 0)           # KEYCTL_SEARCH @u
    return int(got) if got >= 0 else -ctypes.get_errno()


@pytest.mark.skipif(not ROOTED, reason="a uid of the learner's own is leased only as root")
def test_a_key_left_in_the_uids_keyring_is_gone_for_the_next_submission():
    lease = host.UidLease.acquire()
    if lease is None:
        pytest.skip("no uid to lease")
    try:
        with Sandbox({"01_bernoulli_mask": ["x = 1"]}, uid=lease.uid) as sb:
            added = sb.call("01_bernoulli_mask", key_probe, add=True)
            if not isinstance(added, int) or added < 0:
                pytest.skip(f"no kernel keyrings here ({added})")
            assert sb.call("01_bernoulli_mask", key_probe, add=False) < 0   # nor its own next call's
        with Sandbox({"01_bernoulli_mask": ["x = 1"]}, uid=lease.uid) as sb:
            assert sb.call("01_bernoulli_mask", key_probe, add=False) < 0        # not its submission
    finally:
        lease.release()


@pytest.mark.skipif(not ROOTED, reason="the learner's uid differs from the grader's only as root")
def test_without_a_view_a_killed_learner_process_leaves_the_graders_scratch_folder_alone(monkeypatch):
    monkeypatch.setenv(host.NO_NAMESPACES_ENV, "1")
    with Sandbox({"01_bernoulli_mask": ["def f(x):\n    return x"]}) as sb:
        assert sb.call("01_bernoulli_mask", pid_probe) > 1 and not sb.isolation["view"]
        os.kill(sb.proc.pid, signal.SIGKILL)
        assert sb.call("01_bernoulli_mask", call_f_probe, uses=("f",)) == 1   # run again
        sb.retries = 0
        os.kill(sb.proc.pid, signal.SIGKILL)
        with pytest.raises(LearnerError) as e:   # without a pid namespace, not known to be from outside
            sb.call("01_bernoulli_mask", pid_probe, uses=("f",))
        assert e.value.kind == "crash"
        assert os.path.isdir(sb.tmp) and os.stat(sb.tmp).st_uid == 0
        assert sb.call("01_bernoulli_mask", call_f_probe, uses=("g",)) == 1   # a new learner process


def proxy_probe(nb, n):
    """What learner code can learn from a proxy: its closure, its globals' names; and what
    calling it does (the Generator it is given comes back advanced as on the grader's side)."""
    import numpy as np
    f = nb.proxy("layer")
    rng = np.random.default_rng(3)
    outs = [f(np.arange(3.0), rng=rng) for _ in range(n)]
    return {"out": outs[-1], "after": rng.random(), "closure": [c.cell_contents for c in f.__closure__ or ()],
            "defaults": f.__defaults__, "kwdefaults": f.__kwdefaults__}


def test_a_proxy_holds_nothing_but_its_name_and_each_call_is_counted_on_the_graders_side():
    import numpy as np
    secret = np.array([7.0, 8.0, 9.0])
    calls = []

    def layer(x, rng=None):   # grader-side: holds the secret, counts its calls
        calls.append(1)
        return x * secret + rng.random()

    with Sandbox({"01_bernoulli_mask": ["x = 1"]}) as sb:
        got = sb.call("01_bernoulli_mask", proxy_probe, callbacks={"layer": layer}, n=3)
    rng = np.random.default_rng(3)
    for _ in range(3):
        want = np.arange(3.0) * secret + rng.random()
    assert np.array_equal(got["out"], want) and got["after"] == rng.random()
    assert got["closure"] == ["layer"] and got["defaults"] is None and got["kwdefaults"] is None
    assert len(calls) == 3


def signal_one_probe(nb):
    """Learner code sends every kind of signal to the process that serves its calls."""
    import os
    import signal
    import time
    sent = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(1, sig)
            sent.append(int(sig))
        except OSError:
            pass
    time.sleep(0.2)
    return sent


@pytest.mark.skipif(not ROOTED, reason="the view's learner process is process 1 of a pid namespace only as root")
def test_learner_code_cannot_signal_the_process_that_serves_its_calls():
    with Sandbox({"01_bernoulli_mask": ["def f(x):\n    return x"]}) as sb:
        _view_or_skip(sb)
        assert len(sb.call("01_bernoulli_mask", signal_one_probe)) == 5     # sent, and ignored:
        assert sb.call("01_bernoulli_mask", call_f_probe, uses=("f",)) == 1
        assert sb.retries == 2                                               # nothing was restarted


# ---------------------------------------------------------------- what higher-order functions get
# A learner function that is handed callables (dropout_gradient_check's forward and backward,
# mc_dropout_predict's net, numerical_gradient's f) looks at everything it can reach from them
# and from its own process — closures, __dict__, gc.get_referents, gc.get_objects, the frames
# above it, its own memory through /proc/self/mem — for the grader's data (the layer's
# derivative, the network's random generator, the test function's coefficients).  It raises if
# it finds any; otherwise it does the honest thing.  It must keep full marks, as an honest
# control does: nothing is within its reach.
SEARCH = '''
def _reachable(roots):
    """Every object reachable from roots (closures, attributes, referents), and every object the
    garbage collector tracks, and every frame's locals above this one."""
    import gc
    import sys
    seen, stack = {}, list(roots) + list(gc.get_objects())
    frame = sys._getframe(1)
    while frame is not None:
        stack += list(frame.f_locals.values())
        frame = frame.f_back
    while stack and len(seen) < 200_000:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen[id(obj)] = obj
        for attr in ("__closure__", "__dict__", "__wrapped__", "__self__", "__func__"):
            try:
                stack.append(getattr(obj, attr))
            except Exception:
                pass
        if type(obj).__name__ == "cell":
            try:
                stack.append(obj.cell_contents)
            except ValueError:
                pass
        stack += gc.get_referents(obj)
    return list(seen.values())


def _in_memory(first, second):
    """Whether the bytes first + second appear contiguously anywhere in this process's memory
    (the needle is never built here: only its two halves exist apart)."""
    import re
    found = False
    with open("/proc/self/maps") as maps, open("/proc/self/mem", "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            if "r" not in parts[1] or (len(parts) > 5 and parts[5].startswith("[v")):
                continue
            lo, hi = (int(v, 16) for v in parts[0].split("-"))
            try:
                mem.seek(lo)
                chunk = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            for m in re.finditer(re.escape(first), chunk):
                if chunk[m.end():m.end() + len(second)] == second:
                    found = True
    return found
'''

HOSTILE_04 = SEARCH + '''

def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    # the derivative of a correct inverted pair, which the grader's layer holds
    keep = np.random.default_rng(seed).random(np.shape(x)) >= p
    vals = [1.0 / (1.0 - p) if k else 0.0 for k in keep.ravel().tolist()]
    half = len(vals) // 2
    first, second = np.array(vals[:half]).tobytes(), np.array(vals[half:]).tobytes()
    found = []
    import os
    if _SEARCHED.get("pid") == os.getpid():   # once per call of the grader's (a fork each)
        return _honest(forward, backward, x, p, seed, h)
    _SEARCHED["pid"] = os.getpid()
    for obj in _reachable([forward, backward]):
        if isinstance(obj, np.ndarray) and obj.shape == keep.shape and obj.dtype == np.float64 \\
                and obj.tobytes() == first + second:
            found.append("an array holding the layer's derivative")
        if isinstance(obj, dict) and {"a_train", "a_eval"} <= set(obj):
            found.append("a layer's case")
    try:
        if _in_memory(first, second):
            found.append("the layer's derivative in this process's memory")
    except OSError:
        pass
    if found:
        raise RuntimeError(f"found {found[0]}")
    return _honest(forward, backward, x, p, seed, h)


_SEARCHED = {}


def _honest(forward, backward, x, p, seed, h):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).uniform(0.5, 1.5, x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, p, True, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
'''

# The finding's attack, without the closures: the mask comes from the seed, the scale from one
# call of forward, the "numerical" gradient is computed by hand.  It tells correct and wrong
# backwards apart, but does not do what the exercise asks (a numerical gradient).
LAZY_04 = '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    keep = np.random.default_rng(seed).random(x.shape) >= p
    out, cache = forward(np.ones(x.shape), p, True, np.random.default_rng(seed))
    scale = float(np.max(out)) if keep.any() else 1.0
    dout = np.random.default_rng(seed + 1).uniform(0.5, 1.5, x.shape)
    return relative_error(backward(dout, cache), keep * scale * dout)
'''

HOSTILE_NG = SEARCH + '''

def numerical_gradient(f, x, h=1e-5):
    # the test function's coefficients (f(x) = sum(c * x**3), sum(c * sin x) + x.Q.x / 2) would
    # give the exact gradient without evaluating f at all
    import gc
    near, stack = [], [f]
    for _ in range(4):
        nxt = []
        for obj in stack:
            for cell in getattr(obj, "__closure__", None) or ():
                nxt.append(cell.cell_contents)
            nxt += list(getattr(obj, "__dict__", {}).values()) + list(gc.get_referents(obj))
        near += nxt
        stack = nxt
    found = [type(o).__name__ for o in near if isinstance(o, np.ndarray) and o.size > 1
             and not (o.shape == np.shape(x) and np.array_equal(o, x))]
    found += ["a test function's case" for o in _reachable([f]) if isinstance(o, dict) and {"c", "x"} <= set(o)
              and isinstance(o["x"], np.ndarray) and o["x"].shape == np.shape(x) and np.array_equal(o["x"], x)]
    if found:
        raise RuntimeError(f"found {found[0]}")
    return _centred(f, x, h)
''' + centred().replace("def numerical_gradient(", "def _centred(")

HOSTILE_06 = SEARCH + '''

def mc_dropout_predict(net, x, T):
    found = []
    for obj in _reachable([net, type(net), net.forward, net.train]):
        if isinstance(obj, np.random.Generator) or type(obj).__name__ in ("GradingNet", "BatchDropout"):
            found.append(type(obj).__name__)
        elif isinstance(obj, np.ndarray) and obj.ndim == 2 and obj.shape[0] == obj.shape[1] == 16:
            found.append("a weight matrix of the network")
    if found:
        raise RuntimeError(f"found {found[0]}")
    was = net.training
    net.train()
    passes = np.stack([net.forward(x) for _ in range(T)])
    if not was:
        net.eval()
    return passes.mean(axis=0), passes.std(axis=0)
'''


def test_what_a_higher_order_function_gets_holds_nothing_of_the_graders():
    """The hostile functions find nothing and keep full marks, as their honest controls (the
    solutions, full marks in every mistake table and tests/test_pytest_front_end.py) do; the
    lazy check (no numerical gradient) scores less."""
    from tests.grading import grade_variants
    got04 = grade_variants("04_gradient_checking", "dropout_gradient_check", {"hostile": HOSTILE_04, "lazy": LAZY_04})
    got06 = grade_variants("06_mc_dropout", "mc_dropout_predict", {"hostile": HOSTILE_06})
    got_ng = grade_variants("04_gradient_checking", "numerical_gradient", {"hostile": HOSTILE_NG})
    for got in (got04, got06, got_ng):
        assert "found" not in got["hostile"].messages(), got["hostile"].messages()
        assert got["hostile"].max_score > 0 and got["hostile"].score == got["hostile"].max_score, \
            got["hostile"].messages()
    lazy = got04["lazy"]
    assert lazy.score < lazy.max_score == got04["hostile"].max_score, lazy.messages()
    assert lazy.failed_checks() == ["test_keeps_dropout_on_with_one_mask"], lazy.messages()
    assert "numerical_gradient(f, x, h)" in lazy.first_message(), lazy.first_message()


VIEW_PROBE = """
import json, os, sys
sys.path.insert(0, sys.argv[1])
import view
plan = json.loads(sys.argv[2])
view.LIBC = view._libc()
view.enter_namespaces()
view.build_root(plan["root"], plan)
site = plan["root"] + plan["empty"][0]
print(json.dumps(sorted(os.listdir(site))))
"""


@pytest.mark.skipif(not ROOTED, reason="the view is built only as root")
def test_numpy_installed_in_the_base_interpreters_own_site_packages_stays_visible(tmp_path):
    """Without a virtualenv, NumPy lives in the standard library's site-packages, which the view
    empties (other packages must not show): the granted package is put back inside it, alone."""
    stdlib = tmp_path / "lib" / "python3"
    site = stdlib / "site-packages"
    for pkg in ("numpy", "numpy.libs", "someone_elses_package"):
        (site / pkg).mkdir(parents=True)
        (site / pkg / "__init__.py").write_text("")
    lib = tmp_path / "learner-lib"
    lib.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    plan = {"paths": [str(stdlib), str(site / "numpy"), str(site / "numpy.libs")],
            "empty": [str(site)], "lib": str(lib), "root": str(root)}
    import json
    got = subprocess.run([sys.executable, "-c", VIEW_PROBE, str(Path(host.__file__).parent), json.dumps(plan)],
                         capture_output=True, text=True, timeout=60)
    if got.returncode and "unshare" in got.stderr:
        pytest.skip("no mount namespaces here")
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout) == ["numpy", "numpy.libs"]


def test_the_base_interpreter_grades_when_numpy_is_installed_into_it(tmp_path):
    """An instructor grading with a system or pyenv Python (NumPy in its own site-packages, no
    virtualenv) gets the same marks as from a virtualenv."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("these tests run on the base interpreter already")
    base = getattr(sys, "_base_executable", sys.executable)
    if subprocess.run([base, "-c", "import numpy"], capture_output=True).returncode:
        pytest.skip("the base interpreter has no NumPy of its own here")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([base, "-m", "grader", str(ROOT / "solutions" / "01_bernoulli_mask.ipynb")],
                         capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert out.returncode == 0 and "total: 13/13" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
