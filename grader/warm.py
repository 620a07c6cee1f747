"""A warm grader for check(): one grading worker per kernel, so that a check() costs what its
calls into learner code cost, not the start of a grader and of a learner process.

The notebook's set-up cell calls start_grader(): it starts `python -m grader.warm FD` in the
background and returns at once.  The worker imports the grader and NumPy, loads every check
file, and keeps ONE learner process ready (grader.sandbox.Sandbox spawned with no notebooks:
it has set its limits — and as root entered its view and dropped to its uid — and waits,
having read no learner text; the notebooks go to it only when a check() asks).  Each
check() then sends its request — the cells this kernel ran and the exercise, nothing else —
over a socketpair (never a port: only the kernel holds the other end), and the worker grades
it with the same code as the cold path (grader.cli.main on the same one-notebook file, with
the same options), so the result dict and the feedback are the same; after answering, it
readies the next learner process.  Reference work is done once per worker
(grader.reference.once), as in a batch's worker.

What is trusted, and what is not.  The learner's code runs in the kernel too: it can reach
the kernel's end of the socket and send the worker anything.  The worker therefore trusts
nothing the kernel sends beyond what the cold path trusts (which runs `python -m grader` on
whatever the kernel hands it): a request is read as JSON (no pickle) within a size
limit, must be {"id": int, "cells": [str, ...], "exercise": str}, and is graded in the sandbox like any
submission; the answer goes back to the kernel, where the learner could forge it anyway.
Requests and answers are JSON in length-prefixed frames (grader.sandbox.codec's framing).
check() is self-study; the final grade reads the saved notebook, never this worker.

Robustness.  The worker ends when the kernel ends (it watches its parent; a kernel restart is
a new process, which starts a new worker), and ends every learner process it started.  If
the worker died, hangs (no acknowledgement within ACK_SECONDS), or belongs to another
process (the kernel forked), or no longer grades as a fresh grader would (the grader's
settings in the environment, its files or the solutions changed since it started), check()
says so in one line, grades the cold way, and starts a new worker for the next check().
GRADER_WARM=0 in the environment: no worker, every check() starts `python -m grader` as
before.  A browser kernel (no processes) grades in process, as before (grader.inline).
"""
import contextlib
import functools
import io
import json
import os
import select
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFF_ENV = "GRADER_WARM"
ACK_SECONDS = 60.0        # a request is acknowledged within this (the worker may be warming up)
ANSWER_SECONDS = 300.0    # as the cold path's limit
MAX_REQUEST = 64 * 2**20 + (1 << 20)   # one notebook's worth (grader.nbfile.MAX_BYTES) and a margin
MAX_RESTARTS = 3          # workers started again in one kernel before check() stays cold
# what the worker reads from its environment when it starts: a change since means a new worker
ENV_PREFIXES = ("GRADER_", "DROPOUT_", "PYTHONPATH", "OPENBLAS_", "MKL_", "OMP_")


class WorkerGone(Exception):
    """The worker cannot answer (the message says why, in one line)."""


def _env_key(env):
    return tuple(sorted((k, v) for k, v in env.items() if k.startswith(ENV_PREFIXES)))


def _code_key():
    """What the worker loaded once and the cold path reads afresh: the grader's modules and
    checks, and the reference solutions (an author editing them gets a new worker)."""
    files = sorted((ROOT / "grader").rglob("*.py")) + sorted((ROOT / "solutions").glob("*.ipynb"))
    key = []
    for f in files:
        try:
            st = f.stat()
        except OSError:
            continue
        key.append((str(f), st.st_mtime_ns, st.st_size))
    return tuple(key)


def _same_setting(w):
    """None when the worker grades as a fresh grader would now; else why not."""
    if w.env_key != _env_key(os.environ):
        return "the grader's settings in the environment changed"
    if w.code_key != _code_key():
        return "the grader's files or the solutions changed"
    return None


# ---------------------------------------------------------------- the kernel's side
class Worker:
    """The kernel's handle on its grading worker."""

    def __init__(self):
        self.owner = os.getpid()
        self.env_key, self.code_key = _env_key(os.environ), _code_key()
        self.lock = threading.Lock()   # one request at a time, whatever thread asks
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + [x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "grader.warm", str(theirs.fileno())], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tempfile.gettempdir(), env=env,
                pass_fds=[theirs.fileno()],
                start_new_session=True)   # the kernel's Ctrl-C is not for it; it watches the kernel itself
        except BaseException:
            self.sock.close()
            raise
        finally:
            theirs.close()
        self.asked, self.ready = 0, False

    def mine(self):
        return self.owner == os.getpid()

    def alive(self):
        return self.proc.poll() is None

    def ask(self, cells, exercise):
        """(exit status, stderr text, results dict or None) of grading, as the cold path gives."""
        with self.lock:
            return self._ask(cells, exercise)

    def _ask(self, cells, exercise):
        self.asked += 1
        payload = json.dumps({"id": self.asked, "cells": list(cells), "exercise": str(exercise)}).encode()
        if len(payload) > MAX_REQUEST:
            raise WorkerGone("the request is too large for the background grader")
        try:
            self.sock.settimeout(ACK_SECONDS)
            self.sock.sendall(struct.pack(">Q", len(payload)) + payload)
            ack = self._read(time.monotonic() + ACK_SECONDS)
            if ack.get("ack") != self.asked:
                raise WorkerGone("the background grader answered out of turn")
            ans = self._read(time.monotonic() + ANSWER_SECONDS)
        except (TimeoutError, socket.timeout):
            raise WorkerGone("the background grader did not answer") from None
        except OSError as e:
            raise WorkerGone(f"the background grader could not be reached ({e.strerror or e})") from None
        status, results = ans.get("status"), ans.get("results")
        if ans.get("id") != self.asked or not isinstance(status, int) or not isinstance(results, (dict, type(None))):
            raise WorkerGone("the background grader sent an answer that cannot be read")
        self.ready = ans.get("ready") is True   # graded by the learner process kept ready
        return status, str(ans.get("stderr", "")), results

    def _read(self, deadline):
        from grader.sandbox import codec
        try:
            frame = codec.read_frame(self.sock.fileno(), deadline=deadline, limit=MAX_REQUEST)
        except codec.CodecError:
            raise WorkerGone("the background grader sent an answer that cannot be read") from None
        if frame is None:
            raise WorkerGone("the background grader stopped")
        try:
            msg = json.loads(bytes(frame))
        except ValueError:
            raise WorkerGone("the background grader sent an answer that cannot be read") from None
        if not isinstance(msg, dict):
            raise WorkerGone("the background grader sent an answer that cannot be read")
        return msg

    def close(self):
        """End the worker (it ends its learner processes) and forget it."""
        if not self.mine():
            return   # a fork's copy: the worker belongs to the parent
        try:
            self.sock.close()
        except OSError:
            pass
        from grader.sandbox.host import end_process
        try:
            self.proc.terminate()   # SIGTERM: it closes its learner process first
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        end_process(self.proc)


_STATE = {"worker": None, "restarts": 0, "wanted": False}


def enabled():
    """A worker needs processes and a Unix socketpair (not native Windows, not a browser kernel)."""
    from grader.inline import browser_kernel
    return os.environ.get(OFF_ENV, "1") != "0" and os.name == "posix" and hasattr(socket, "AF_UNIX") \
        and not browser_kernel()


def _in_kernel():
    ip = sys.modules.get("IPython")
    try:
        return ip is not None and ip.get_ipython() is not None
    except Exception:  # noqa: BLE001 - no usable IPython: not a kernel
        return False


def start(force=False):
    """Start this kernel's worker in the background, unless one is running (returns at once).
    Only in a Jupyter kernel, where check() runs, unless force."""
    if not enabled() or not (force or _in_kernel()):
        return None
    _STATE["wanted"] = True
    w = _STATE["worker"]
    if w is not None and w.mine() and w.alive() and _same_setting(w) is None:
        return w
    if w is not None:
        w.close()
    _STATE["worker"] = None
    try:
        _STATE["worker"] = Worker()
    except OSError as e:   # no process could be started: every check() starts the grader
        _STATE["wanted"] = False
        print(f"⚠ check()'s background grader could not start ({e.strerror or e}): each check() "
              "starts the grader, more slowly")
    return _STATE["worker"]


def start_grader():
    """For the notebook's set-up cell: start check()'s grader now, in the background, so that
    each check() answers in a fraction of a second.  Without it check() still works."""
    start()


def stop():
    """End this kernel's worker, if any (check() then starts `python -m grader` each time)."""
    w, _STATE["worker"], _STATE["wanted"] = _STATE["worker"], None, False
    if w is not None:
        w.close()


def grade(cells, exercise):
    """(status, stderr, results) from this kernel's worker; None when there is none to ask
    (never started, or given up on: the cold path grades).  When the worker failed, one line
    says so, a new one is started for the next check(), and None is returned."""
    w = _STATE["worker"]
    if w is None or not _STATE["wanted"] or not enabled():
        return None
    why, failed = None, False   # only a worker that failed counts towards MAX_RESTARTS
    if not w.mine():
        why = "this process is a fork of the kernel that started the background grader"
    elif (changed := _same_setting(w)) is not None:
        why = changed
    elif not w.alive():
        why, failed = "the background grader stopped", True
    if why is None:
        try:
            return w.ask(cells, exercise)
        except WorkerGone as e:
            why, failed = str(e), True
        except BaseException:   # the learner interrupted the kernel: its answer would come late
            w.close()
            _STATE["worker"] = None
            start(force=True)   # a new worker for the next check(), in the background
            raise
    w.close()
    _STATE["worker"] = None
    if failed and _STATE["restarts"] >= MAX_RESTARTS:
        _STATE["wanted"] = False
        print(f"⚠ {why}; it was started again {MAX_RESTARTS} times already, so check() starts the grader "
              "each time now")
        return None
    _STATE["restarts"] += failed
    print(f"⚠ {why}: this check ran the slow way, and a new background grader is starting")
    start(force=True)
    return None


# ---------------------------------------------------------------- the worker's side
class _Ready:
    """The one learner process kept ready: spawned with no notebooks, with the arguments the
    engine would give it; handed to the engine (as its Sandbox) when they match.  As root, the
    worker leases one uid for its life, as a batch's worker does (grader.workers), instead of
    one per check()."""

    def __init__(self):
        self.sandbox, self.args, self.used, self.lease = None, None, 0, None
        self.later = []   # the graded learner processes, ended once the answer is sent

    def _uid(self):
        from grader.sandbox.host import UidLease, is_root
        if self.lease is None and is_root():
            self.lease = UidLease.acquire()
        return self.lease.uid if self.lease is not None else None

    def spawn(self):
        """Ready a learner process; where none can be (no course folder, no sandbox), the next
        grading starts its own and reports what stops it, as the cold path does."""
        try:
            self._spawn()
        except Exception:  # noqa: BLE001 - the grading itself says what is wrong, in one line
            self.sandbox = None

    def _spawn(self):
        from grader.config import DEFAULT
        from grader.sandbox.host import Limits, Sandbox, default_hide, sandbox_available
        config = DEFAULT if sandbox_available() else DEFAULT.with_(unsandboxed=True)
        course = config.root()
        kw = dict(uid=None, hide=default_hide(course) + list(config.hide), server=None, course=course,
                  unsandboxed=config.unsandboxed)
        limits = Limits.of(config)
        sb = Sandbox(None, limits, **{**kw, "uid": self._uid()})
        sb.spawn()
        self.sandbox, self.args = sb, (limits, kw)

    def take(self, notebooks, limits=None, **kw):
        """The engine's Sandbox(...): the ready process when it was made the same way.  The
        engine's close() of it only queues it: end_graded() ends it after the answer is sent."""
        from grader.sandbox.host import Sandbox
        sb, self.sandbox = self.sandbox, None
        if sb is not None and not (self.args == (limits, kw) and sb.proc is not None and sb.proc.poll() is None):
            sb.close()
            sb = None
        if sb is not None:
            sb.load(notebooks)
            self.used += 1
        else:
            sb = Sandbox(notebooks, limits, **{**kw, "uid": self._uid() if kw.get("uid") is None else kw["uid"]})
        sb.close = functools.partial(self.later.append, sb)   # its calls are over; only the teardown waits
        return sb

    def end_graded(self):
        """End the learner processes of the last grading (before the next is spawned: they
        share the leased uid, whose processes an ending kills)."""
        from grader.sandbox.host import Sandbox
        while self.later:
            Sandbox.close(self.later.pop())

    def close(self):
        self.end_graded()
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
        if self.lease is not None:
            self.lease.release()
            self.lease = None


def _request(frame):
    """The cells and exercise of a request, or ValueError: nothing else is accepted."""
    req = json.loads(bytes(frame))
    if not (isinstance(req, dict) and isinstance(req.get("cells"), list) and isinstance(req.get("exercise"), str)
            and all(isinstance(c, str) for c in req["cells"]) and isinstance(req.get("id"), int)):
        raise ValueError("not a request")
    return req["id"], req["cells"], req["exercise"]


def _grade(cells, exercise, ready):
    """Grade as the cold path does: the cells as a one-notebook file, `python -m grader`'s
    main with the same options; (status, stderr, results.json or None)."""
    from grader import cli, engine, inline
    here = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="grader-call-") as d:
        path, out = Path(d) / "kernel.ipynb", Path(d) / "results.json"
        path.write_text(inline.kernel_notebook(cells))
        stdout, stderr = io.StringIO(), io.StringIO()
        real, engine.Sandbox = engine.Sandbox, ready.take
        os.chdir(d)
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                status = cli.main(inline.check_argv(path, exercise) + ["--json", str(out)])
        finally:
            engine.Sandbox = real
            os.chdir(here)
        results = json.loads(out.read_text()) if status == 0 and out.exists() else None
    return status, stderr.getvalue(), results


def _watch_parent(parent):
    """End this worker (SIGTERM: grading stops and cleans up) when the kernel is gone."""
    import signal
    while os.getppid() == parent:
        time.sleep(0.2)
    os.kill(os.getpid(), signal.SIGTERM)


def _send(fd, obj):
    from grader.sandbox import codec
    codec.write_frame(fd, json.dumps(obj).encode())


def serve(fd, parent):
    """The worker's loop: warm up, then answer each request, one at a time, until the kernel's
    end of the socket closes or the kernel ends."""
    from grader import engine, signals
    from grader.sandbox import codec
    signals.catch()
    threading.Thread(target=_watch_parent, args=(parent,), daemon=True).start()
    os.set_inheritable(fd, False)
    ready = _Ready()
    try:
        for stem in engine.check_files():
            engine.collect(stem)   # every check file imported and its probes verified, once
        ready.spawn()
        while os.getppid() == parent:
            if not select.select([fd], [], [], 0.5)[0]:
                continue
            try:
                frame = codec.read_frame(fd, deadline=time.monotonic() + ACK_SECONDS, limit=MAX_REQUEST)
            except (codec.CodecError, TimeoutError):
                return   # over the limit, or never finished: not a request check() sends
            if frame is None:
                return
            try:
                rid, cells, exercise = _request(frame)
            except ValueError:
                return
            del frame
            _send(fd, {"ack": rid})
            used = ready.used
            status, err, results = _grade(cells, exercise, ready)
            _send(fd, {"id": rid, "status": status, "stderr": err[-4000:], "results": results,
                       "ready": ready.used > used})
            ready.end_graded()   # off check()'s critical path: the answer is on its way
            if ready.sandbox is None:
                ready.spawn()   # the next check()'s learner process, while the learner reads
    except (KeyboardInterrupt, OSError):
        pass
    finally:
        from grader.signals import ignore
        ignore()
        ready.close()


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1 or not argv[0].isdigit():
        print("grader.warm: started by check() (grader.warm.start_grader), not by hand", file=sys.stderr)
        return 2
    serve(int(argv[0]), os.getppid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
