"""The learner's view of the machine: an allowlist, not a list of things to hide.

Run as a script by the grader (grader.sandbox.host), as root, with one argument: the plan
(JSON, from plan() below).  Standard library only; it never reads a course file, a notebook
or anything the learner wrote.  Each step is one function:

1. enter_namespaces()  new mount, pid, IPC, UTS and network namespaces
2. fork               the child is process 1 of the new pid namespace (learner code can never
                      signal it); this process waits for it and passes on its exit status
3. join_cgroup()      the child enters the submission's control group, so the CPU time of
                      every process it ever starts is counted, reaped or not
4. build_root()       an empty tmpfs holding only read-only binds of the plan's paths (the
                      Python runtime and standard library, the system libraries they and NumPy
                      load, the NumPy package, the learner-side grader modules), /dev/null,
                      /dev/zero, /dev/urandom, a fresh /proc and a private empty /tmp
5. pivot()            that tmpfs becomes /; the old root is detached
6. exec the interpreter on learner.py: a fresh process image, nothing of this one survives;
   learner.py then sets its limits, drops to the leased uid and only then reads the cells.

Where a step cannot be done (no CAP_SYS_ADMIN, e.g. Docker's default profile), learner.py is
exec'd in place, without a view, and says so (the grader then checks that the learner's uid
can read nothing of the course: see host.readable_by).
"""
import ctypes
import json
import os
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x4000000, 0x8000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
PR_SET_PDEATHSIG = 1
SYSCALLS = {"x86_64": {"pivot_root": 155, "keyctl": 250}, "aarch64": {"pivot_root": 41, "keyctl": 219}}
NR = SYSCALLS.get(os.uname().machine, {})
LIB_DIR = "/grader-learner"     # where the staged learner-side modules appear in the view
DEV_NODES = ("null", "zero", "urandom")


class ViewError(OSError):
    """A step of building the view failed (the grader then runs without one)."""


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    libc.syscall.restype = ctypes.c_long
    return libc


LIBC = None


def _check(ok, what):
    if not ok:
        err = ctypes.get_errno()
        raise ViewError(err, f"{what}: {os.strerror(err)}")


def mount(src, dst, fstype=None, flags=0, data=None):
    enc = (lambda s: None if s is None else os.fsencode(s))
    _check(LIBC.mount(enc(src), enc(dst), enc(fstype), flags, enc(data)) == 0, f"mount {dst}")


# ---------------------------------------------------------------- the steps
def enter_namespaces():
    _check(LIBC.unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET) == 0,
           "unshare")
    mount(None, "/", None, MS_REC | MS_PRIVATE)   # nothing we mount reaches the host


def join_cgroup(procs_file):
    """Enter the submission's control group (made by the grader): CPU time of every process
    started from here on is counted there, whether or not anyone reaps it."""
    if not procs_file:
        return False
    try:
        with open(procs_file, "w") as f:
            f.write("0")
        return True
    except OSError:
        return False


def bind(src, dst, writable=False):
    """A read-only (unless writable) bind of src at dst: a file onto a file, a folder onto a folder."""
    if os.path.isdir(src):
        os.makedirs(dst, 0o755, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(dst), 0o755, exist_ok=True)
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644))
    mount(src, dst, None, MS_BIND | MS_REC)
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | (0 if writable else MS_RDONLY | MS_NODEV)
    mount(None, dst, None, flags)


def graft(root, path, bound, depth=0):
    """Make `path` exist under root as it does on the host: symbolic links on the way are
    copied as links, the real file or folder at the end is bound read-only."""
    if depth > 16:
        raise ViewError(40, f"too many links: {path}")
    cur = "/"
    parts = [p for p in os.path.normpath(path).split("/") if p]
    for i, part in enumerate(parts):
        nxt = os.path.join(cur, part)
        if nxt in bound:
            return
        inside = root + nxt
        if os.path.islink(nxt):
            target = os.readlink(nxt)
            if not os.path.lexists(inside):
                os.makedirs(os.path.dirname(inside), 0o755, exist_ok=True)
                os.symlink(target, inside)
            real = os.path.normpath(os.path.join(cur, target))
            return graft(root, os.path.join(real, *parts[i + 1:]), bound, depth + 1)
        cur = nxt
    if cur != "/" and os.path.exists(cur):
        bind(cur, root + cur)
        bound.add(cur)


def build_root(root, plan):
    """The new root: an empty tmpfs with only what the plan grants."""
    mount("tmpfs", root, "tmpfs", MS_NOSUID | MS_NODEV, "size=16m,nr_inodes=4096,mode=755")
    os.makedirs(root + "/tmp", 0o755, exist_ok=True)   # first: what the plan grants may live under /tmp
    mount("tmpfs", root + "/tmp", "tmpfs", MS_NOSUID | MS_NODEV,
          f"size={int(plan.get('tmp_bytes', 64 << 20))},nr_inodes=4096,mode=1777")
    bound = set()
    for path in sorted(plan["paths"], key=lambda p: p.count("/")):   # folders before what is in them
        graft(root, path, bound)
    for path in plan.get("empty", ()):   # e.g. the base interpreter's own site-packages
        if os.path.isdir(root + path):
            empty_over(root, path, [p for p in plan["paths"] if p.startswith(path + "/")])
    bind(plan["lib"], root + LIB_DIR)
    for name in DEV_NODES:
        bind(f"/dev/{name}", f"{root}/dev/{name}", writable=True)
    os.makedirs(root + "/proc", 0o555, exist_ok=True)
    mount("proc", root + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)


def empty_over(root, path, granted):
    """Lay an empty folder over `path` (bound as part of a larger grant), keeping only what the
    plan grants inside it: NumPy installed into the base interpreter's own site-packages stays,
    the other packages there do not."""
    mount("tmpfs", root + path, "tmpfs", MS_NOSUID | MS_NODEV, f"size=64k,nr_inodes={64 + 16 * len(granted)},mode=755")
    for inner in granted:
        bind(inner, root + inner)
    mount(None, root + path, None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def pivot(root):
    """The new root becomes /, the old one is detached (gone from this mount namespace)."""
    os.chdir(root)
    _check("pivot_root" in NR and LIBC.syscall(NR["pivot_root"], b".", b".") == 0, "pivot_root")
    _check(LIBC.umount2(b".", MNT_DETACH) == 0, "detach the old root")
    os.chdir("/")
    mount(None, "/", None, MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def exec_learner(plan, view):
    """Replace this process with a fresh interpreter running learner.py."""
    script = os.path.join(LIB_DIR if view else plan["lib"], "learner.py")
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp" if view else os.getcwd(),
           "TMPDIR": "/tmp" if view else os.getcwd(), "LANG": "C.UTF-8",
           "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1"}
    args = [plan["python"], "-I", "-S", script, json.dumps(view)]
    os.execve(plan["python"], args, env)


# ---------------------------------------------------------------- one learner process
def _wait_and_pass_on(pid):
    """Wait for process 1 of the namespace; end as it ended (by the same signal, if any)."""
    import signal
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 70)


def main(plan):
    global LIBC
    LIBC = _libc()
    try:
        enter_namespaces()
    except (ViewError, OSError) as e:
        exec_learner(plan, {"view": False, "why": f"no namespaces here ({e.strerror or e})"})
    pid = os.fork()
    if pid:
        _wait_and_pass_on(pid)
    view = {"view": False}
    try:
        LIBC.prctl(PR_SET_PDEATHSIG, 9, 0, 0, 0)   # ends with the process that waits for it
        cgroup = join_cgroup(plan.get("cgroup_procs"))
        fd = None
        if cgroup and plan.get("cgroup_usage"):
            fd = os.open(plan["cgroup_usage"], os.O_RDONLY)
            os.set_inheritable(fd, True)
        root = plan["root"]
        build_root(root, plan)
        pivot(root)
        LIBC.sethostname(b"learner", 7)
        view = {"view": True, "path": plan["path"], "cgroup_fd": fd, "cgroup": plan.get("cgroup_kind")}
    except (ViewError, OSError) as e:
        os.write(2, f"no view: {e}\n".encode())
        os._exit(71)
    exec_learner(plan, view)


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
