"""The grader's side of the sandbox: starts the learner's process and asks it questions.

Learner code never runs here.  A child process (grader/_child.py) loads the learner's
definitions; each question is a *probe* — a small trusted function whose source is
sent to the child — run in a fresh fork with time, memory and output limits.  Only
plain data comes back (grader.codec); this process compares it with the contract.
"""
import ast
import inspect
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

from grader import codec

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
UNPRIVILEGED_UID = 65534  # nobody


@dataclass
class Limits:
    seconds: float = 5.0          # wall clock per call
    mem: int = 2 << 30            # bytes of address space per call
    output: int = 1 << 20         # bytes of printed output per call
    cell_seconds: float = 2.0     # per definition while loading a notebook
    start_seconds: float = 30.0   # loading all notebooks


class LearnerError(Exception):
    """Learner code misbehaved: kind is one of not_found, not_implemented, broken, raised,
    contract, timeout, crash, exit, memory, output, skipped."""

    def __init__(self, kind, function, message):
        super().__init__(message)
        self.kind, self.function, self.message = kind, function, message


class GraderBug(Exception):
    """A probe failed in a way that is not the learner's doing."""


def probe_source(func):
    """The source of a probe function without its decorators (it runs in the child)."""
    src = textwrap.dedent(inspect.getsource(func))
    tree = ast.parse(src)
    node = tree.body[0]
    node.decorator_list = []
    return ast.unparse(node)


def _scrubbed_env(tmp):
    return {"PATH": "/usr/bin:/bin", "HOME": tmp, "TMPDIR": tmp, "LANG": "C.UTF-8",
            "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "MPLBACKEND": "Agg"}


def children_of(pid):
    """Process ids whose parent is pid (Linux /proc; empty elsewhere)."""
    kids = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return kids
    for d in names:
        if d.isdigit():
            try:
                stat = Path(f"/proc/{d}/stat").read_bytes().decode(errors="replace")
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    kids.append(int(d))
            except (OSError, ValueError):
                pass
    return kids


def become_subreaper():
    """Orphans of learner processes re-parent to us, so none can outlive grading."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


class Sandbox:
    """One learner's submission: {stem: [cell sources]} loaded in one child process."""

    def __init__(self, notebooks, limits=None, drop_privileges=None):
        self.notebooks = notebooks
        self.limits = limits or Limits()
        if drop_privileges is None:
            drop_privileges = hasattr(os, "geteuid") and os.geteuid() == 0 \
                and os.environ.get("GRADER_KEEP_ROOT") != "1"
        self.uid = UNPRIVILEGED_UID if drop_privileges else None
        self.proc = None
        self.summary = None
        self.broken = {}          # function -> LearnerError that stops further calls
        self.start_error = None
        self._sources = {}
        self.calls = 0

    # -- life cycle
    def start(self):
        if self.proc is not None:
            return self.summary
        self.tmp = tempfile.mkdtemp(prefix="grader-")
        os.chmod(self.tmp, 0o700)
        err = open(os.path.join(self.tmp, "child.err"), "wb")
        become_subreaper()
        self.proc = subprocess.Popen(
            [sys.executable, "-I", str(PACKAGE_ROOT / "grader" / "_child.py"), str(PACKAGE_ROOT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=self.tmp,
            env=_scrubbed_env(self.tmp), start_new_session=True, close_fds=True)
        err.close()
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        lim = self.limits
        init = {"notebooks": self.notebooks, "uid": self.uid,
                "limits": {"mem": lim.mem, "output": lim.output, "seconds": lim.seconds,
                           "cell_seconds": lim.cell_seconds}}
        try:
            codec.write_frame(self._in, codec.encode(init))
            frame = codec.read_frame(self._out, deadline=time.monotonic() + lim.start_seconds)
            if frame is None:
                raise EOFError
            self.summary = codec.decode(frame)
        except TimeoutError:
            self._kill()
            self.start_error = ("timeout", f"loading your notebook took more than {lim.start_seconds:g} s")
        except (EOFError, BrokenPipeError, codec.CodecError):
            self._kill()
            self.start_error = ("crash", "the process that loads your notebook ended before it was ready"
                                + self._child_err())
        return self.summary

    def _child_err(self):
        try:
            text = Path(self.tmp, "child.err").read_text(errors="replace").strip()
        except OSError:
            return ""
        return f" ({text.splitlines()[-1][:200]})" if text else ""

    def _kill(self):
        if self.proc is None:
            return
        for target in (lambda: os.killpg(self.proc.pid, signal.SIGKILL), self.proc.kill):
            try:
                target()
            except OSError:
                pass
        self.proc.wait()
        for k in children_of(os.getpid()):   # orphans re-parented to us
            try:
                os.kill(k, signal.SIGKILL)
                os.waitpid(k, 0)
            except OSError:
                pass

    def close(self):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                codec.write_frame(self._in, codec.encode({"op": "close"}))
                self.proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._kill()
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()

    # -- questions
    def defined(self, stem):
        self.start()
        if self.summary is None:
            return {}
        return self.summary["notebooks"].get(stem, {}).get("defined", {})

    def call(self, stem, probe, uses=(), timeout=None, mem=None, helpers=(), **kwargs):
        """Run probe(nb, **kwargs) in a fresh fork of the learner's process; return its value.

        uses: the learner names the probe calls, so that one that hung or crashed before
        is reported at once instead of costing another time-out.
        helpers: further trusted functions the probe calls (their source is sent along:
        a probe sees only these, numpy as np, and the names in _child.PROBE_GLOBALS).
        """
        self.start()
        for name in uses:
            if name in self.broken:
                first = self.broken[name]
                raise LearnerError(first.kind, name, f"not run: {first.message}")
        if self.start_error:
            raise LearnerError(self.start_error[0], uses[0] if uses else "", self.start_error[1])
        for f in (probe, *helpers):
            if f not in self._sources:
                self._sources[f] = probe_source(f)
        seconds = float(timeout or self.limits.seconds)
        req = {"op": "call", "stem": stem, "probe_src": "\n\n".join(self._sources[f] for f in (*helpers, probe)),
               "probe_name": probe.__name__, "kwargs": kwargs, "timeout": seconds,
               "mem": int(mem or self.limits.mem), "uses": list(uses)}
        self.calls += 1
        try:
            codec.write_frame(self._in, codec.encode(req))
            deadline = time.monotonic() + seconds + 10
            head = codec.read_frame(self._out, deadline=deadline)
            body = codec.read_frame(self._out, deadline=deadline)
            if head is None or body is None:
                raise EOFError
        except (TimeoutError, EOFError, BrokenPipeError, codec.CodecError):
            self._kill()
            self.proc = None
            err = LearnerError("crash", uses[0] if uses else "",
                               "the learner's process stopped answering" + self._child_err())
            self._mark(uses, err)
            raise err from None
        head = codec.decode(head)
        what = ", ".join(uses) or "your code"
        if head["timed_out"]:
            err = LearnerError("timeout", uses[0] if uses else "",
                               f"{what} did not finish within {seconds:g} s — an endless loop, "
                               "or a Python loop over every element?")
            self._mark(uses, err)
            raise err
        if head["oversize"]:
            raise LearnerError("contract", uses[0] if uses else "",
                               f"{what} returned more data than the grader reads "
                               f"({codec.MAX_FRAME // 2**20} MiB)")
        if not body:
            status = head["exit"]
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
                why = " (out of memory?)" if sig == signal.SIGKILL else ""
                msg = f"{what} crashed the process with signal {name}{why}"
            else:
                msg = f"{what} ended the process with exit status {os.WEXITSTATUS(status)} " \
                      "(os._exit or a crash); a function should return or raise"
            err = LearnerError("crash", uses[0] if uses else "", msg)
            self._mark(uses, err)
            raise err
        ans = codec.decode(body)
        if ans["status"] == "ok":
            return ans["value"]
        if ans["status"] == "learner":
            raise LearnerError(ans["kind"], ans.get("function", ""), ans["message"])
        raise GraderBug(f"{probe.__name__}: {ans['message']}\n{ans.get('traceback', '')}")

    def _mark(self, uses, err):
        for name in uses:
            self.broken.setdefault(name, err)
