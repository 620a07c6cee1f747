"""The grader's side of the sandbox: starts the learner's process and asks it questions.

Learner code never runs here.  A child process (grader/sandbox/learner.py) loads the learner's
definitions; each question is a *probe* — a small trusted function whose source is
sent to the child — run in a fork with time, memory and output limits (its notebook's
runner for untimed calls, a fork of its own for timed ones; see learner.py).  Only
plain data comes back (grader.codec); this process compares it with the contract.

When the grader runs as root, the child drops to an unprivileged uid of its own (leased
from a pool, see UidLease) after loading Python and NumPy: every process of that uid is
then the submission's, and all of them are killed when its grading ends.
"""
import ast
import inspect
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from grader import text as _text
from grader.config import DEFAULT
from grader.sandbox import codec, ipc
from grader.sandbox.procs import children_of, pids_of_uid

PACKAGE_ROOT = Path(__file__).resolve().parent.parent.parent   # the folder holding grader/
LEARNER_SCRIPT = Path(__file__).resolve().parent / "learner.py"
UNPRIVILEGED_UID = 65534  # nobody: the fallback when no uid of our own can be leased
UID_BASE = int(os.environ.get("GRADER_UID_BASE", "60500"))
UID_COUNT = 256
LEASE_DIR = Path("/run/dropout-grader")


@dataclass
class Limits:
    """The sandbox's limits, in its own units; the defaults are grader.config's."""
    seconds: float = DEFAULT.timeout            # wall clock per call
    mem: int = DEFAULT.memory << 20             # bytes of address space per process
    output: int = DEFAULT.output                # bytes of printed output per call (and per file)
    cell_seconds: float = DEFAULT.cell_seconds  # per definition while loading a notebook
    start_seconds: float = DEFAULT.start_seconds  # loading all notebooks
    nproc: int = DEFAULT.nproc                  # processes (and threads) of a submission, as root
    submission_seconds: float = DEFAULT.submission_timeout  # all calls of one submission (0: none)

    @classmethod
    def of(cls, config):
        return cls(seconds=config.timeout, mem=int(config.memory) << 20, output=config.output,
                   cell_seconds=config.cell_seconds,
                   start_seconds=min(config.start_seconds, config.submission_timeout or 1e9),
                   nproc=config.nproc, submission_seconds=config.submission_timeout or 0)


class LearnerError(Exception):
    """Learner code misbehaved: kind is one of not_found, not_implemented, broken, raised,
    contract, timeout, crash, exit, memory, output, skipped, interrupted (killed from outside,
    twice: not the learner's doing; the submission should be graded again)."""

    def __init__(self, kind, function, message):
        # bounded and cleaned where learner text enters (an answer can be forged)
        kind, function, message = _text.name(kind), _text.name(function), _text.message(message)
        super().__init__(message)
        self.kind, self.function, self.message = kind, function, message


class GraderBug(Exception):
    """A probe failed in a way that is not the learner's doing."""


SOURCES = {}   # probe function -> its source (the same for every submission a process grades)


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


NO_RUNNER_ENV = "GRADER_NO_RUNNER"   # =1: every call in a fork of its own (no runner per notebook)
NO_SANDBOX_ENV = "GRADER_NO_SANDBOX"   # =1: behave as where fork and resource limits are missing


def sandbox_available():
    """Can learner code be sandboxed here (fork, resource limits: Linux, macOS, WSL)?"""
    if os.environ.get(NO_SANDBOX_ENV) == "1":
        return False
    try:
        import resource  # noqa: F401
    except ImportError:
        return False
    return hasattr(os, "fork")


class NoSandbox(Exception):
    """Grading others' work needs the sandbox, which this machine cannot give."""


def is_root():
    return hasattr(os, "geteuid") and os.geteuid() == 0 and os.environ.get("GRADER_KEEP_ROOT") != "1"


# ---------------------------------------------------------------- processes
def become_subreaper():
    """Orphans of learner processes re-parent to us, so none can outlive grading."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _reap_children():
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def end_process(proc):
    """SIGKILL a started process (a Popen or alike) and its process group; wait for it."""
    if proc.returncode is None:   # not reaped yet, so its pid is still its own
        for target in (lambda: os.killpg(proc.pid, signal.SIGKILL), proc.kill):
            try:
                target()
            except OSError:
                pass
    proc.wait()


KEEP_CHILDREN = set()   # our children that are not learner processes (parallel grading runners)


def kill_tree(keep=()):
    """Kill our child processes (orphans re-parent to us: we are a subreaper) and theirs,
    until none is left; `keep` and KEEP_CHILDREN are children that are ours to keep."""
    for _ in range(200):
        kids = [k for k in children_of(os.getpid()) if k not in keep and k not in KEEP_CHILDREN]
        if not kids:
            return
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        for k in kids:
            try:
                os.waitpid(k, 0)
            except (ChildProcessError, OSError):
                pass


def _leased(uid):
    """A uid that only learner code of ours uses (never `nobody`, never when not root)."""
    return uid is not None and uid != UNPRIVILEGED_UID and is_root()


def as_uid(uid, action):
    """Run action() in a forked helper that has become uid (no groups); its bytes result
    (at most 4000) comes back; nothing when it fails."""
    rd, wr = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(rd)
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
            os.write(wr, (action() or b"")[:4000])
        except BaseException:  # noqa: BLE001
            pass
        os._exit(0)
    os.close(wr)
    with os.fdopen(rd, "rb") as f:
        out = f.read()
    os.waitpid(pid, 0)
    return out


def _kill_all_of_mine():
    os.kill(-1, signal.SIGKILL)


def kill_uid(uid, patience=5.0):
    """Kill every process of uid (a uid leased for learner code, never a shared one):
    a helper becomes that uid and calls kill(-1), which in one atomic sweep reaches every
    process of the uid but itself — fork bombs included.  Repeats until /proc shows none."""
    if not _leased(uid):
        return True
    end = time.monotonic() + patience
    while True:
        _reap_children()
        if not pids_of_uid(uid):
            return True
        if time.monotonic() > end:
            return False
        as_uid(uid, _kill_all_of_mine)
        time.sleep(0.002)


def _clear_my_keyrings():
    import ctypes

    from grader.sandbox.view import NR
    libc = ctypes.CDLL(None, use_errno=True)
    for ring in (-4, -5):        # KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING
        libc.syscall(NR["keyctl"], 7, ring)   # KEYCTL_CLEAR


def clear_keyrings(uid):
    """Empty the kernel keyrings that belong to uid itself (its user keyring and user session
    keyring outlive its processes; the next submission graded with that uid could read them):
    a helper becomes uid and calls keyctl(KEYCTL_CLEAR) on both."""
    if _leased(uid):
        as_uid(uid, _clear_my_keyrings)


SHARED_WRITABLE = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")   # mqueue: POSIX message queues


def scrub_files(uid):
    """Delete what a leased uid left in the world-writable folders (when the learner's
    process had no private /tmp): the next submission graded with that uid must not see it."""
    import shutil
    if not _leased(uid):
        return
    for d in SHARED_WRITABLE:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
            except OSError:
                pass


# ---------------------------------------------------------------- unprivileged uids
class UidLease:
    """A uid for learner code that no account and no other grader uses right now.

    The pool is GRADER_UID_BASE (default 60500) .. +255: uids with no passwd or group entry
    (checked), outside the ranges Debian and systemd hand out dynamically.  A lease is an
    exclusive flock on /run/dropout-grader/uid-N.lock (root-only folder), released when the
    holder exits, so parallel graders on one machine never share a uid."""

    def __init__(self, uid, fd):
        self.uid, self._fd = uid, fd

    @classmethod
    def acquire(cls):
        """A lease, or None when not root or no uid is free (callers then use `nobody`)."""
        if not is_root():
            return None
        import fcntl
        import grp
        import pwd
        try:
            LEASE_DIR.mkdir(mode=0o700, exist_ok=True)
            st = LEASE_DIR.lstat()
            if st.st_uid != 0 or st.st_mode & 0o022 or not LEASE_DIR.is_dir() or LEASE_DIR.is_symlink():
                return None
        except OSError:
            return None
        for uid in range(UID_BASE, UID_BASE + UID_COUNT):
            try:
                pwd.getpwuid(uid)
                continue       # a real account: never ours
            except KeyError:
                pass
            try:
                grp.getgrgid(uid)
                continue
            except KeyError:
                pass
            try:
                fd = os.open(LEASE_DIR / f"uid-{uid}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            except OSError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            kill_uid(uid)   # leftovers of a grader that died holding this uid
            clear_keyrings(uid)
            return cls(uid, fd)
        return None

    def release(self):
        if self._fd is not None:
            kill_uid(self.uid)
            scrub_files(self.uid)
            clear_keyrings(self.uid)
            os.close(self._fd)
            self._fd = None


def default_hide(course=None):
    """What a learner's process must never see (it is never in the allowlist view; without a
    view, readable_by checks that the learner's uid cannot read it): the reference solutions
    and, on Gradescope, the results folder, the submission and its metadata (earlier scores)."""
    from grader.config import course_root
    try:
        course = Path(course) if course else course_root()
        solutions = [str(course / "solutions")]
    except Exception:  # noqa: BLE001 - no course: nothing of it to hide
        solutions = []
    return solutions + ["/autograder/results", "/autograder/submission",
                        "/autograder/submission_metadata.json"]


# ---------------------------------------------------------------- the allowlist view
VIEW_SCRIPT = Path(__file__).resolve().parent / "view.py"
# all of the grader the learner's process holds
LEARNER_SIDE = ("learner.py", "codec.py", "ipc.py", "leftovers.py", "procs.py")
SYSTEM_LIB_DIRS = ("/lib", "/lib64", "/usr/lib", "/usr/lib64", "/usr/local/lib")
NO_NAMESPACES_ENV = "GRADER_NO_NAMESPACES"   # =1: as where no mount namespace can be made
_PLAN = {}


def _elf_interpreter(path):
    """The program loader named in an ELF executable (PT_INTERP), or None."""
    import struct
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2:
                return None
            phoff, = struct.unpack_from("<Q", head, 32)
            phentsize, phnum = struct.unpack_from("<HH", head, 54)
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ptype, _flags, offset, _va, _pa, filesz = struct.unpack("<IIQQQQ", f.read(40))
                if ptype == 3:
                    f.seek(offset)
                    return f.read(filesz).rstrip(b"\0").decode()
    except (OSError, struct.error, UnicodeDecodeError):
        return None
    return None


def view_paths():
    """What the learner's process may see, computed once: the interpreter and its loader, the
    standard library, the system libraries this (NumPy-importing) process has mapped, and
    the NumPy package.  Returns (paths, empty folders to lay over them, sys.path entries)."""
    if _PLAN:
        return _PLAN["paths"], _PLAN["empty"], _PLAN["path"], _PLAN["python"]
    import ctypes  # noqa: F401 - its library is mapped, as in the learner's process
    import sysconfig

    import numpy
    python = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
    base = {"base": sys.base_prefix, "platbase": sys.base_exec_prefix, "installed_base": sys.base_prefix,
            "installed_platbase": sys.base_exec_prefix}
    stdlib = {os.path.realpath(sysconfig.get_paths(vars=base)[k]) for k in ("stdlib", "platstdlib")}
    numpy_dir = os.path.realpath(os.path.dirname(numpy.__file__))
    site = os.path.dirname(numpy_dir)
    paths = {python, numpy_dir, *stdlib}
    if os.path.isdir(numpy_dir + ".libs"):
        paths.add(numpy_dir + ".libs")
    interp = _elf_interpreter(python)
    if interp:
        paths.add(interp)
    if os.path.exists("/etc/ld.so.cache"):
        paths.add("/etc/ld.so.cache")
    try:
        with open("/proc/self/maps") as f:
            mapped = {ln.split(None, 5)[5].strip() for ln in f if len(ln.split(None, 5)) == 6}
    except OSError:   # no /proc (macOS): no view either
        mapped = set()
    for m in mapped:
        if not m.startswith("/") or ".so" not in os.path.basename(m) or not os.path.isfile(m):
            continue
        real = os.path.realpath(m)
        if any(real.startswith(p + os.sep) for p in paths if os.path.isdir(p)) or "-packages/" in real:
            continue   # granted already, or another package this process happens to have loaded
        folder = os.path.dirname(real)
        system = (folder in SYSTEM_LIB_DIRS or folder.startswith(tuple(d + "/" for d in SYSTEM_LIB_DIRS))) \
            and "python" not in folder and "-packages" not in folder
        paths.add(folder if system else real)   # a system library folder, or just the file
    empty = sorted(os.path.join(d, sub) for d in stdlib for sub in ("site-packages", "dist-packages")
                   if os.path.isdir(os.path.join(d, sub)))
    _PLAN.update(paths=sorted(paths), empty=empty, path=[site], python=python)
    return _PLAN["paths"], _PLAN["empty"], _PLAN["path"], _PLAN["python"]


def stage_learner_side(folder):
    """Copy the learner-side modules (and nothing else of the grader) into folder/lib."""
    import shutil
    lib = os.path.join(folder, "lib")
    os.mkdir(lib, 0o755)
    os.chmod(lib, 0o755)
    for name in LEARNER_SIDE:
        shutil.copyfile(LEARNER_SCRIPT.parent / name, os.path.join(lib, name))
        os.chmod(os.path.join(lib, name), 0o644)
    return lib


def namespaces_wanted():
    return os.environ.get(NO_NAMESPACES_ENV) != "1" and sys.platform.startswith("linux")


class CpuGroup:
    """A control group per submission (cgroup v1 cpuacct, or v2), made by the grader as root:
    the learner's process enters it before anything else, so the CPU time of every process
    and thread it ever starts is counted, reaped or not.  None where no hierarchy is writable."""

    def __init__(self, path, kind):
        self.path, self.kind = path, kind
        self.procs = os.path.join(path, "cgroup.procs")
        self.usage = os.path.join(path, "cpuacct.usage" if kind == "v1" else "cpu.stat")

    @classmethod
    def create(cls):
        if os.environ.get("GRADER_NO_CGROUP") == "1" or not is_root():
            return None
        base = cls._hierarchy()
        if base is None:
            return None
        path, kind = base
        cls._sweep(path)
        for _ in range(3):
            name = f"dropout-grader-{os.getpid()}-{time.monotonic_ns()}"
            try:
                os.mkdir(os.path.join(path, name), 0o755)
                group = cls(os.path.join(path, name), kind)
                return group if os.path.exists(group.usage) else group.remove() or None
            except FileExistsError:
                continue
            except OSError:
                return None
        return None

    @staticmethod
    def _hierarchy():
        """(folder of our own control group, "v1"/"v2") for CPU accounting, or None."""
        try:
            with open("/proc/self/mountinfo") as f:
                mounts = [ln.split() for ln in f]
            with open("/proc/self/cgroup") as f:
                ours = [ln.rstrip("\n").split(":", 2) for ln in f]
        except OSError:
            return None
        for m in mounts:
            sep = m.index("-")
            fstype, opts = m[sep + 1], m[sep + 3].split(",") if len(m) > sep + 3 else []
            if fstype == "cgroup" and "cpuacct" in opts:
                rel = next((c[2] for c in ours if "cpuacct" in c[1].split(",")), None)
                if rel is not None:
                    return os.path.join(m[4], rel.lstrip("/")), "v1"
        for m in mounts:
            sep = m.index("-")
            if m[sep + 1] == "cgroup2":
                rel = next((c[2] for c in ours if c[0] == "0"), None)
                if rel is not None:
                    return os.path.join(m[4], rel.lstrip("/")), "v2"
        return None

    @staticmethod
    def _sweep(path):
        """Remove the empty groups of graders that ended without removing theirs (killed)."""
        try:
            names = [n for n in os.listdir(path) if n.startswith("dropout-grader-")]
        except OSError:
            return
        for name in names:
            owner = name.split("-")[2]
            if owner.isdigit() and int(owner) != os.getpid() and not os.path.exists(f"/proc/{owner}"):
                try:
                    os.rmdir(os.path.join(path, name))   # fails while it holds a process: kept
                except OSError:
                    pass

    def remove(self):
        """Remove the group once its processes are gone (they are killed before)."""
        for _ in range(200):
            try:
                os.rmdir(self.path)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.005)


def _every_path(roots, limit=200000):
    """Every path under roots (found with this process's rights), up to limit."""
    out = []
    for root in roots:
        for d, _dirs, files in os.walk(root):
            out.append(d)
            out.extend(os.path.join(d, f) for f in files)
            if len(out) > limit:
                return out
    return out


def _first_readable(paths):
    """The first of paths this process can read (a file it can open, a folder it can list)."""
    for p in paths:
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                os.listdir(p)
            else:
                os.close(os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)))
            return p
        except OSError:
            continue
    return None


def view_possible():
    """Whether the allowlist view can be built on this machine (root, and new mount and pid
    namespaces allowed): asked of a forked child that tries, so nothing here changes."""
    if os.environ.get(NO_NAMESPACES_ENV) == "1" or os.geteuid() != 0 or not hasattr(os, "fork"):
        return False
    import ctypes
    pid = os.fork()
    if pid == 0:   # the child: try, and say so by its exit status
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            os._exit(0 if libc.unshare(0x20000 | 0x20000000) == 0 else 1)   # CLONE_NEWNS | CLONE_NEWPID
        except BaseException:  # noqa: BLE001 - whatever happens, the child only exits
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


ALLOW_READABLE_ENV = "GRADER_ALLOW_READABLE"   # =1: grade without a view although learner code can read them


def exposure_refusal(roots):
    """Before grading others' work: None where the view will be built (or the instructor set
    GRADER_ALLOW_READABLE=1, accepting what a learner could read: the batch then warns);
    otherwise the one line readable_by gives when learner code (as a uid of the grader's
    range) could read any of roots (the course, the submissions)."""
    if os.environ.get(ALLOW_READABLE_ENV) == "1" or view_possible():
        return None
    uid = UID_BASE if os.geteuid() == 0 else os.getuid()
    return readable_by(uid, roots)


def readable_by(uid, roots):
    """Where no view can be built: one line saying which of roots (course, submissions,
    results) learner code running as uid could read, with the command that fixes it; None
    when it can read none of them.  Checked as that uid (a forked helper), not by reading
    permission bits."""
    roots = [Path(r).resolve() for r in roots if r and Path(r).exists()]
    if not roots:
        return None
    paths = _every_path(roots)
    if uid == os.getuid() or os.geteuid() != 0:
        found = _first_readable(paths)
        return None if found is None else (
            f"learner code would run as you (uid {uid}) and could read {found}: grade others' work as "
            "root (e.g. sudo), where it runs as a uid of its own in a view of only Python and NumPy")
    found = as_uid(uid, lambda: (_first_readable(paths) or "").encode(errors="replace")).decode(errors="replace")
    if not found:
        return None
    top = next((r for r in roots if found == str(r) or found.startswith(str(r) + os.sep)), roots[0])
    return f"learner code would run as uid {uid} and could read {found}; make it private first: chmod -R go-rwx {top}"


# ---------------------------------------------------------------- a template to fork from
class ZygoteServer:
    """A process starter for batch grading (grader/sandbox/learner.py --server): forks each
    submission's learner process, which at once execs a fresh interpreter (the view, then
    learner.py), and adopts and kills the orphans of a dead one.  One per worker, serving one
    sandbox at a time."""

    def __init__(self):
        import socket
        self.tmp = tempfile.mkdtemp(prefix="grader-template-")
        os.chmod(self.tmp, 0o700)
        self.sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        with open(os.path.join(self.tmp, "template.err"), "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", str(LEARNER_SCRIPT), "--server",
                 str(theirs.fileno())], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, cwd=self.tmp, env=_scrubbed_env(self.tmp), start_new_session=True,
                pass_fds=[theirs.fileno()])
        theirs.close()
        self.dead = False

    def alive(self):
        return not self.dead and self.proc.poll() is None

    def _ask(self, req, fds=(), timeout=30):
        """One request, one answer: each a codec-encoded message on the socket."""
        import socket
        try:
            self.sock.settimeout(timeout)
            socket.send_fds(self.sock, [codec.encode(req)], list(fds))
            data = self.sock.recv(65536)
            if not data:
                raise EOFError
            return codec.decode(data)
        except (OSError, EOFError, ValueError):
            self.dead = True
            return None

    def spawn(self, cwd, err_fd, argv, env):
        """A _ServerProc running argv whose stdin/stdout are pipes to us, or None if the
        template is gone."""
        to_child, from_child = codec.pipe(), codec.pipe()
        ans = self._ask({"op": "spawn", "cwd": cwd, "argv": argv, "env": env},
                        (to_child[0], from_child[1], err_fd))
        os.close(to_child[0])
        os.close(from_child[1])
        if not ans:
            os.close(to_child[1])
            os.close(from_child[0])
            return None
        return _ServerProc(self, ans["pid"], to_child[1], from_child[0])

    def wait(self, pid, timeout):
        ans = self._ask({"op": "wait", "pid": pid, "timeout": timeout}, timeout=timeout + 30)
        return ans.get("status") if ans else 0

    def kill_all(self):
        self._ask({"op": "kill"})

    def close(self):
        try:
            self.sock.close()
            self.proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):
            pass
        end_process(self.proc)
        import shutil
        shutil.rmtree(self.tmp, ignore_errors=True)


class _ServerProc:
    """The few parts of subprocess.Popen that Sandbox uses, for a process forked by the template."""

    def __init__(self, server, pid, stdin_fd, stdout_fd):
        self.server, self.pid, self.returncode = server, pid, None
        self.stdin, self.stdout = open(stdin_fd, "wb", buffering=0), open(stdout_fd, "rb", buffering=0)

    def poll(self):
        if self.returncode is None:
            self.returncode = self.server.wait(self.pid, 0)
        return self.returncode

    def wait(self, timeout=None):
        if self.returncode is None:
            self.returncode = self.server.wait(self.pid, 30 if timeout is None else timeout)
            if self.returncode is None and timeout is not None:
                raise subprocess.TimeoutExpired("learner process", timeout)
        return self.returncode

    def kill(self):
        try:
            os.kill(self.pid, signal.SIGKILL)
        except OSError:
            pass


# ---------------------------------------------------------------- the sandbox
def answer_value(body, uses=(), cpu=None):
    """The value of a probe's answer frame (with cpu seconds given: (value, cpu)), or the
    LearnerError it reports.  Also used by check()'s in-process path (grader.inline)."""
    what = ", ".join(uses) or "your code"
    try:
        ans = codec.decode(body)
        status = ans["status"]
    except (codec.CodecError, TypeError, KeyError):
        raise LearnerError("contract", uses[0] if uses else "",
                           f"{what} sent an answer the grader cannot read") from None
    if status == "ok":
        return (ans.get("value"), cpu) if cpu is not None else ans.get("value")
    if status == "learner":
        raise LearnerError(str(ans.get("kind", "raised")), str(ans.get("function", "")),
                           str(ans.get("message", "")))
    # "probe_error" (the check could not use what the learner's code gave it) or anything
    # forged: told in the learner's terms, never as the grader's own failure
    detail = str(ans.get("message", ""))[:300] if isinstance(ans, dict) else ""
    raise LearnerError("contract", uses[0] if uses else "", f"the check could not use what {what} gave it"
                       + (f" ({detail})" if detail else "") + "; follow the exercise's contract "
                       "(argument and return types, shapes)")


class Sandbox:
    """One learner's submission: {stem: [cell sources]} loaded in one child process.

    uid: run learner code as this uid (the grader must be root); dedicated=True says no
    other process uses it, so it may be swept with kill(-1).  Without uid, a root grader
    leases one (UidLease) or falls back to `nobody`.  As root the learner's process lives in
    the allowlist view (view.py); hide: paths it must not see, kept for readable_by where no
    view can be built.  server: a ZygoteServer to start the learner's process from (batch
    grading)."""

    def __init__(self, notebooks, limits=None, drop_privileges=None, uid=None, hide=(), server=None,
                 course=None, unsandboxed=False):
        self.notebooks = notebooks
        self.unsandboxed = unsandboxed
        if not unsandboxed and not sandbox_available():
            raise NoSandbox("grading needs the sandbox (fork and resource limits: Linux, macOS or "
                            "WSL), which is missing here; check() in a notebook still works, "
                            "unsandboxed, for self-study")
        if unsandboxed:
            drop_privileges, uid, server = False, None, None
        self.course = str(course) if course else None
        self.server = server
        self.limits = limits or Limits()
        if drop_privileges is None:
            drop_privileges = is_root()
        self.drop = drop_privileges
        self._lease = None
        self.uid, self.dedicated = (uid, uid != UNPRIVILEGED_UID) if uid is not None else (None, False)
        self.hide = list(hide)
        self.proc = None
        self.summary = None
        self.isolation = None
        self.broken = {}          # (notebook, function) -> LearnerError that stops further calls
        self.retries = 2          # calls re-run after the learner's process was killed
        self.start_error = None
        self.calls = 0
        self.served = None        # which runner served the last call, and what it found it left (learner.py)
        self.tmp = None
        self.cgroup = None

    # -- life cycle
    def spawn(self):
        """Start the learner's process and send it the notebooks; do not wait (its start-up
        overlaps with the grader's own).  start() waits for it to be ready."""
        if self.proc is not None:
            return
        if self.drop and self.uid is None:
            self._lease = UidLease.acquire()
            self.uid, self.dedicated = (self._lease.uid, True) if self._lease else (UNPRIVILEGED_UID, False)
        if self.tmp is None:
            self.tmp = tempfile.mkdtemp(prefix="grader-")
            os.chmod(self.tmp, 0o700)
        err = open(os.path.join(self.tmp, "child.err"), "wb")
        become_subreaper()
        argv, env = self._command()
        if self.server is not None and self.server.alive():
            self.proc = self.server.spawn(self.tmp, err.fileno(), argv, env)
        if self.proc is None:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err, cwd=self.tmp,
                env=env, start_new_session=True, close_fds=True)
        err.close()
        self._in, self._out = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        codec.widen(self._in, self._out)
        self._t_spawn = time.monotonic()
        lim = self.limits
        settings = {"uid": self.uid if self.drop else None, "dedicated": self.dedicated,
                    "course": self.course if self.unsandboxed else None, "unsandboxed": self.unsandboxed,
                    "limits": {"mem": lim.mem, "output": lim.output, "seconds": lim.seconds,
                               "cell_seconds": lim.cell_seconds, "nproc": lim.nproc,
                               "runner": os.environ.get(NO_RUNNER_ENV) != "1"}}
        self._ipc_before = ipc.snapshot() if not self.dedicated else None
        try:   # the limits first: the learner's process sets them before it reads any cell
            codec.write_frame(self._in, codec.encode(settings))
            if self.notebooks is not None:
                codec.write_frame(self._in, codec.encode({"notebooks": self.notebooks}))
        except (BrokenPipeError, OSError):
            pass   # reported by start()

    def load(self, notebooks):
        """Send the notebooks to a process spawned with notebooks=None, which has set its
        limits and waits, having read no learner text (a warm check() keeps one ready:
        grader.warm); start() then waits for it as for any other."""
        self.notebooks, self._t_spawn = notebooks, time.monotonic()
        try:
            codec.write_frame(self._in, codec.encode({"notebooks": notebooks}))
        except (BrokenPipeError, OSError):
            pass   # reported by start()

    def _command(self):
        """How the learner's process starts: as root, through the allowlist view (view.py,
        then a fresh exec of learner.py inside it); otherwise learner.py, from a staged copy
        of the learner-side modules; unsandboxed, the grader's own learner.py."""
        env = _scrubbed_env(self.tmp)
        if self.unsandboxed:
            return [sys.executable, "-I", str(LEARNER_SCRIPT)], env
        paths, empty, path, python = view_paths()
        if not os.path.isdir(os.path.join(self.tmp, "lib")):
            stage_learner_side(self.tmp)
        lib = os.path.join(self.tmp, "lib")
        if not (self.drop and is_root() and namespaces_wanted()):
            why = "not root" if not (self.drop and is_root()) else f"{NO_NAMESPACES_ENV}=1"
            return [python, "-I", "-S", os.path.join(lib, "learner.py"),
                    json.dumps({"view": False, "why": why, "path": path})], env
        if self.cgroup is None:
            self.cgroup = CpuGroup.create()
        root = os.path.join(self.tmp, "root")
        os.makedirs(root, 0o700, exist_ok=True)
        plan = {"python": python, "paths": paths, "empty": empty, "path": path, "lib": lib, "root": root,
                "tmp_bytes": 64 << 20}
        if self.cgroup is not None:
            plan.update(cgroup_procs=self.cgroup.procs, cgroup_usage=self.cgroup.usage, cgroup_kind=self.cgroup.kind)
        return [python, "-I", "-S", str(VIEW_SCRIPT), json.dumps(plan)], env

    def start(self):
        if self.summary is not None or self.start_error is not None:
            return self.summary
        self.spawn()
        lim = self.limits
        try:
            frame = codec.read_frame(self._out, deadline=self._t_spawn + lim.start_seconds)
            if frame is None:
                raise EOFError
            self.summary = codec.decode(frame)
            self.isolation = self.summary.get("isolation")
        except TimeoutError:
            self._kill()
            self.start_error = ("timeout", f"loading your notebook took more than {lim.start_seconds:g} s")
        except (EOFError, BrokenPipeError, codec.CodecError):
            status = self._exit_status()
            detail = self._child_err()
            self._kill()
            # no learner code runs before the process is ready: killed by a signal, it was from outside
            if status is not None and status < 0:
                if self.retries > 0:
                    self.retries -= 1
                    self.proc = None
                    return self.start()
                self.start_error = ("interrupted", INTERRUPTED)
            else:
                self.start_error = ("crash", "the process that loads your notebook ended before it was ready"
                                    + detail)
        return self.summary

    def _restart(self):
        """A fresh learner process after the last one died (the broken exercise stays broken)."""
        self.proc, self.summary, self.start_error = None, None, None
        self.start()

    def _child_err(self):
        try:
            with open(Path(self.tmp, "child.err"), "rb") as f:
                text = f.read(1 << 16).decode(errors="replace").strip()
        except OSError:
            return ""
        return f" ({text.splitlines()[-1][:200]})" if text else ""

    def _kill(self):
        """End the learner's process and everything it started."""
        if self.proc is None:
            return
        end_process(self.proc)
        if self.dedicated:
            kill_uid(self.uid)
            clear_keyrings(self.uid)   # keyrings belong to the uid, not to a namespace
            if not (self.isolation or {}).get("private_tmp"):
                scrub_files(self.uid)   # the next submission with this uid must not find them
            if not (self.isolation or {}).get("ipc"):
                ipc.remove_of_uid(self.uid)   # SysV objects outlive processes: remove them
        elif getattr(self, "_ipc_before", None) is not None:
            ipc.remove_new(self._ipc_before)
        if isinstance(self.proc, _ServerProc):
            self.server.kill_all()   # orphans re-parented to the template
        kill_tree(keep=(self.server.proc.pid,) if self.server else ())   # orphans re-parented to us
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self):
        if self.proc is not None:
            if self.proc.returncode is None and self.summary is not None:
                try:
                    codec.write_frame(self._in, codec.encode({"op": "close"}))
                    self.proc.wait(timeout=2)
                except (OSError, subprocess.TimeoutExpired):
                    pass
            self._kill()
            self.proc = None
        if self.cgroup is not None:
            self.cgroup.remove()
            self.cgroup = None
        if self._lease is not None:
            self._lease.release()
            self._lease = None
        if self.tmp:
            import shutil
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

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

    def call(self, stem, probe, uses=(), timeout=None, mem=None, helpers=(), cpu=False, callbacks=None,
             **kwargs):
        """Run probe(nb, **kwargs) in a fork of the learner's process (a fresh one when timed, or
        with callbacks; otherwise its notebook's runner, see learner.py); return its value
        (with cpu=True: (value, CPU seconds of the fork and all it started, counted by the
        submission's control group or with process creation refused: see learner.cpu_clock)).

        uses: the learner names the probe calls, so that one that hung or crashed before
        in this notebook is reported at once instead of costing another time-out.
        helpers: further trusted functions the probe calls (their source is sent along:
        a probe sees only these, numpy as np, and the names in learner.PROBE_GLOBALS).

        callbacks: {name: grader-side callable}: the probe's nb.proxy(name) is a function
        whose every call runs that callable here, on what it was given (plain data; a NumPy
        Generator travels as its state and comes back advanced), so what the learner's code
        receives holds no state it could introspect; the callable may count its calls.

        A learner process killed from outside (a signal it did not send: the machine's
        out-of-memory killer, an operator) is re-run once; killed again, the call fails with
        kind "interrupted" (INTERRUPTED), which is not the learner's doing.

        Afterwards self.served says which process served the call, as the learner's process
        (which runs no learner code) reports it: {"runner": n, "call": k, "left": [what the
        call left, which ended the runner], "again": True if a fork of its own answered it
        again}, {"runner": None, "why": ...} when no runner could serve it, None for a call
        in a fork of its own.  For tests and logs: no verdict depends on it.
        """
        for name in uses:
            if (stem, name) in self.broken:
                first = self.broken[(stem, name)]
                raise LearnerError(first.kind, name, f"not run: {first.message}")
        for f in (probe, *helpers):
            if f not in SOURCES:
                SOURCES[f] = probe_source(f)
        seconds = float(timeout or self.limits.seconds)
        req = {"op": "call", "stem": stem, "probe_src": "\n\n".join(SOURCES[f] for f in (*helpers, probe)),
               "probe_name": probe.__name__, "kwargs": kwargs, "timeout": seconds,
               "mem": int(mem or self.limits.mem), "uses": list(uses), "timed": bool(cpu),
               "callbacks": bool(callbacks)}
        self._callbacks = callbacks or {}
        what = ", ".join(uses) or "your code"
        who = uses[0] if uses else ""
        for attempt in (1, 2):
            try:
                head, body = self._ask(req, seconds, who)
            except _Killed as killed:
                if attempt == 1 and self.retries > 0:
                    self.retries -= 1
                    continue
                err = (LearnerError("interrupted", who, INTERRUPTED) if killed.outside else
                       LearnerError("crash", who, f"{what} stopped the learner's process from answering "
                                    "(did it kill its parent process?)" + killed.detail))
                self._mark(stem, uses, err)
                raise err from None
            if not body and head["exit_signal"] == signal.SIGKILL and attempt == 1 and self.retries > 0:
                self.retries -= 1   # killed, not by its time limit: perhaps from outside; once more
                continue
            return self._answer(stem, head, body, uses, what, seconds, cpu)

    def _ask(self, req, seconds, who):
        """Send one call; (head, body) of its answer.  _Killed when the learner's process died."""
        if self.proc is None and self.summary is not None:
            self._restart()
        self.start()
        if self.start_error:
            raise LearnerError(self.start_error[0], who, self.start_error[1])
        self.calls += 1
        frame = codec.encode(req)   # the grader's own request: a CodecError here is a grader bug
        try:
            codec.write_frame(self._in, frame)
            deadline = time.monotonic() + seconds + 10
            while True:
                head = codec.read_frame(self._out, deadline=deadline)
                body = codec.read_frame(self._out, deadline=deadline)
                if head is None or body is None:
                    raise EOFError
                head = codec.decode(head)
                if not (isinstance(head, dict) and head.get("callback")):
                    break
                codec.write_frame(self._in, run_callback(self._callbacks, body))
            if not isinstance(head, dict) or not {"timed_out", "oversize", "exit"} <= set(head):
                raise codec.CodecError("not an answer")
        except (TimeoutError, EOFError, OSError, codec.CodecError):
            status = self._exit_status()
            detail = self._child_err()
            self._kill()
            self.proc = None
            # process 1 of a pid namespace cannot be signalled from inside it: killed by a
            # signal, the view's learner process was killed from outside
            outside = bool((self.isolation or {}).get("pid")) and status is not None and status < 0
            raise _Killed(outside, detail) from None
        self.served = head.get("served")   # process 1's word (it runs no learner code): for tests and logs only
        status = head["exit"]
        head["exit_signal"] = os.WTERMSIG(status) if isinstance(status, int) and os.WIFSIGNALED(status) \
            and not head["timed_out"] and not head["oversize"] else None
        return head, body

    def _exit_status(self):
        """The learner's process's return code (negative: a signal) if it ends within 0.5 s."""
        try:
            return self.proc.wait(timeout=0.5)
        except (subprocess.TimeoutExpired, OSError, ValueError):
            return None

    def _answer(self, stem, head, body, uses, what, seconds, cpu):
        """The call's value, or the LearnerError its answer stands for.  Everything here came
        from the learner's process: a forged or malformed answer is the learner's problem."""
        who = uses[0] if uses else ""
        if head["timed_out"]:
            err = LearnerError("timeout", who, f"{what} did not finish within {seconds:g} s — an endless loop, "
                               "or a Python loop over every element?")
            self._mark(stem, uses, err)
            raise err
        if head["oversize"]:
            raise LearnerError("contract", who, f"{what} returned more data than the grader reads "
                               f"({codec.MAX_FRAME // 2**20} MiB)")
        if not body:
            status = head["exit"] if isinstance(head["exit"], int) else 0
            if os.WIFSIGNALED(status):
                sig = os.WTERMSIG(status)
                name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
                why = " (out of memory?)" if sig == signal.SIGKILL else ""
                msg = f"{what} crashed the process with signal {name}{why}"
            else:
                msg = f"{what} ended the process with exit status {os.WEXITSTATUS(status)} " \
                      "(os._exit or a crash); a function should return or raise"
            err = LearnerError("crash", who, msg)
            self._mark(stem, uses, err)
            raise err
        return answer_value(body, uses, float(head.get("cpu") or 0.0) if cpu else None)

    def _mark(self, stem, uses, err):
        """A function that hung or crashed is not called again in this notebook (only: the
        same name in another notebook is another function, and a score must not depend on
        which notebooks are graded together)."""
        for name in uses:
            self.broken.setdefault((stem, name), err)


GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


def _from_wire(v, gens):
    if isinstance(v, dict) and set(v) == {"__generator__"} and isinstance(v["__generator__"], dict):
        kind = v["__generator__"].get("bit_generator")
        if kind not in GENERATORS:
            raise TypeError(f"a generator of unknown kind {str(kind)[:40]!r}")
        bits = getattr(np.random, kind)()
        bits.state = v["__generator__"]
        gens.append(np.random.Generator(bits))
        return gens[-1]
    if type(v) in (list, tuple):
        return type(v)(_from_wire(x, gens) for x in v)
    if type(v) is dict:
        return {k: _from_wire(x, gens) for k, x in v.items()}
    return v


def run_callback(callbacks, frame):
    """One call of a probe's proxy, run here; the encoded reply.  Everything in the request is
    the learner's: a bad one is answered with an error the learner's code sees."""
    gens = []
    try:
        msg = codec.decode(frame)
        fn = callbacks[str(msg["name"])]
        args = _from_wire(msg["args"], gens)
        kwargs = {str(k): x for k, x in _from_wire(msg["kwargs"], gens).items()}
        value = fn(*args, **kwargs)
        return codec.encode({"value": value, "states": [g.bit_generator.state for g in gens]})
    except Exception as e:  # noqa: BLE001 - what a wrong argument makes the grader-side object raise
        return codec.encode({"error": type(e).__name__, "message": str(e)[:300],
                             "states": [g.bit_generator.state for g in gens]})


INTERRUPTED = ("grading was interrupted (not your code): the learner's process was killed from outside "
               "again after a re-run; grade this submission again")


class _Killed(Exception):
    """The learner's process died while answering; outside: it was killed from outside."""

    def __init__(self, outside, detail):
        super().__init__(detail)
        self.outside, self.detail = outside, detail
