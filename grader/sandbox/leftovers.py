"""What a process serving learner calls left behind, seen from outside it (Linux).

The learner's process (learner.py, process 1 of the view) serves consecutive untimed calls of a
notebook with one forked process, the notebook's runner.  After each call it asks this module
whether the call left anything a later call could find, and ends the runner if so (the next
call then starts from a fresh fork, after the clean-up of learner.forget_call).  Everything here
is read by process 1, which runs no learner code, never by the runner: what the runner says
about itself is learner code's word.

Leftovers(pid, ...) takes a baseline before any learner code runs in the runner;
.changed() lists what differs since (empty: nothing):

- files: an inotify watch on every folder learner code may write in (the private /tmp of the
  view and every folder below it on the same file system; without a view the work folder,
  the shared folders /tmp, /var/tmp, /dev/shm, /run/lock, /dev/mqueue and the folders of
  their first level): any entry created, removed, renamed, written or changed (without a view,
  in the shared folders: only entries our uid owns, since other users write there too).  An
  event queue that overflowed counts as a change;
- SysV shared memory, semaphores and message queues of our uid (/proc/sysvipc; all of them in
  the view's private IPC namespace);
- keys: the uid's key count and bytes (/proc/key-users, which counts keys no keyring listing
  shows) and the serials of the keys we may view (/proc/keys);
- resource limits: the runner's (prlimit) and this process's own (a call may prlimit either);
- the runner as the kernel sees it (/proc/PID/status and stat): threads, umask, signal
  dispositions, mask and pending signals, seccomp filters, capabilities, no-new-privileges,
  CPU affinity, name, process group, session, priority and scheduling policy; its open
  descriptors, working folder and POSIX timers (the runner makes itself dumpable so that
  these are readable by its own uid); its address space grown by more than `growth`;
- processes: any child of the runner, any child of ours other than the runner (what a
  detached grandchild re-parents to, as we are a subreaper).

Not seen (documented limits): without a view, folders deeper than the first level of the
shared folders (the clean-up after a fork sweeps only their top level too); a key added while
another key of the uid, unlinked earlier, is being collected (the kernel collects them
asynchronously, so counts that fall are not leftovers); what a call keeps in the runner's own
memory (see learner.Hygiene, and the README's threat model).

Something that was readable and is not any longer counts as changed; the runner's status,
descriptors and limits must be readable (Unwatchable otherwise: no runner).  Standard library only.
"""
import ctypes
import os
import resource
import struct

if __package__:
    from grader.sandbox.procs import children_of
else:   # next to learner.py, a script (staged copies, in the view)
    from procs import children_of

IN_MODIFY, IN_ATTRIB, IN_CLOSE_WRITE = 0x2, 0x4, 0x8
IN_MOVED_FROM, IN_MOVED_TO, IN_CREATE, IN_DELETE = 0x40, 0x80, 0x100, 0x200
IN_DELETE_SELF, IN_MOVE_SELF, IN_Q_OVERFLOW, IN_IGNORED = 0x400, 0x800, 0x4000, 0x8000
IN_ONLYDIR, IN_DONT_FOLLOW = 0x01000000, 0x02000000
WATCHED = (IN_MODIFY | IN_ATTRIB | IN_CLOSE_WRITE | IN_MOVED_FROM | IN_MOVED_TO | IN_CREATE | IN_DELETE
           | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR | IN_DONT_FOLLOW)
SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")
MAX_FOLDERS = 512
# lines of /proc/PID/status that change by themselves (memory use, scheduling, the uid's
# queued signals, the size of the descriptor table): the rest must stay as they were
VARYING = ("Vm", "Rss", "HugetlbPages", "State", "voluntary_ctxt_switches", "nonvoluntary_ctxt_switches",
           "SigQ", "FDSize", "CoreDumping")
LIMITS = tuple(getattr(resource, n) for n in sorted(dir(resource)) if n.startswith("RLIMIT_"))


class Unwatchable(OSError):
    """The files learner code may write in cannot be watched here: serve no call from a runner."""


def _libc():
    libc = ctypes.CDLL(None, use_errno=True)
    libc.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return libc


class FileWatch:
    """An inotify instance watching every folder learner code may write in.  Created by
    process 1 (its descriptor is closed in the runner before any learner code runs)."""

    def __init__(self, work, view, uid=None):
        """work: our working folder (the process's current one), where the call's output is
        captured; view: whether /tmp is the view's private one."""
        self.uid = os.getuid() if uid is None else uid
        self.view = view
        self.work = os.path.realpath(work)
        libc = _libc()
        fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:
            raise Unwatchable(ctypes.get_errno(), "inotify_init1")
        self.fd, self.wds = fd, {}
        try:   # the work folder by ".": our working folder, whose parents the uid may not search
            wd = libc.inotify_add_watch(fd, b".", WATCHED)
            if wd < 0:
                raise Unwatchable(ctypes.get_errno(), f"cannot watch {self.work}")
            self.wds[wd] = (self.work, True)
            for root in ("/tmp",) if view else SHARED_FOLDERS:
                self._watch_tree(libc, root, depth=None if view else 1)
        except BaseException:
            self.close()
            raise

    def _watch_tree(self, libc, root, depth):
        """Watch root and the folders below it on the same file system (depth levels, None:
        all), those we may write in; read-only binds (other file systems) are skipped."""
        try:
            dev = os.stat(root, follow_symlinks=False).st_dev
        except OSError:
            return
        todo = [(os.path.realpath(root), 0)]
        while todo:
            path, level = todo.pop()
            try:
                st = os.stat(path, follow_symlinks=False)
            except OSError:
                continue
            if st.st_dev != dev or path == self.work:
                continue
            if os.access(path, os.W_OK):
                if len(self.wds) >= MAX_FOLDERS:
                    raise Unwatchable(0, f"more than {MAX_FOLDERS} folders to watch")
                wd = libc.inotify_add_watch(self.fd, os.fsencode(path), WATCHED)
                if wd < 0:
                    raise Unwatchable(ctypes.get_errno(), f"inotify_add_watch {path}")
                private = self.view or path == self.work
                self.wds[wd] = (path, private)
            if depth is not None and level >= depth:
                continue
            try:
                with os.scandir(path) as it:
                    todo.extend((e.path, level + 1) for e in it if e.is_dir(follow_symlinks=False))
            except OSError:
                continue

    def events(self):
        """[(wd, mask, name)] since the last read."""
        out, data = [], b""
        while True:
            try:
                chunk = os.read(self.fd, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            data += chunk
        at = 0
        while at + 16 <= len(data):
            wd, mask, _cookie, size = struct.unpack_from("iIII", data, at)
            name = data[at + 16: at + 16 + size].split(b"\0", 1)[0].decode(errors="replace")
            out.append((wd, mask, name))
            at += 16 + size
        return out

    def changed(self, allowed=("output.txt",)):
        """What the events since the last read say was left: [] if nothing.  In the work folder,
        writing the allowed files (the call's captured output) is not a leftover."""
        found = []
        for wd, mask, name in self.events():
            if mask & IN_Q_OVERFLOW:
                return ["files (too many changes to list)"]
            if wd not in self.wds:
                continue
            path, private = self.wds[wd]
            if mask & IN_IGNORED or (not private and mask & IN_DELETE_SELF):
                continue   # a shared folder someone else removed: nothing of ours left there
            if path == self.work and name in allowed and not mask & ~(IN_MODIFY | IN_CLOSE_WRITE):
                continue
            if not private and name:
                try:   # a shared folder: only what our uid owns is ours
                    if os.stat(os.path.join(path, name), follow_symlinks=False).st_uid != self.uid:
                        continue
                except OSError:
                    continue   # gone again: nothing left
            found.append(f"files ({os.path.join(path, name) if name else path})")
        return sorted(set(found))

    def close(self):
        if self.fd is not None:
            try:
                os.close(self.fd)
            except OSError:
                pass
            self.fd = None


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _status(pid):
    """The lines of /proc/PID/status that stay as they were unless the process changes them."""
    lines = _read(f"/proc/{pid}/status").decode(errors="replace").splitlines()
    return tuple(ln for ln in lines if not ln.startswith(VARYING))


def _vm_size(pid):
    for ln in _read(f"/proc/{pid}/status").decode(errors="replace").splitlines():
        if ln.startswith("VmSize:"):
            return int(ln.split()[1]) * 1024
    raise OSError("no VmSize")


def _stat(pid):
    """Process group, session, terminal, priority, nice, threads, real-time priority, policy."""
    text = _read(f"/proc/{pid}/stat").decode(errors="replace")
    fields = text[text.rindex(")") + 2:].split()   # from field 3 (state) on
    return tuple(fields[i - 3] for i in (5, 6, 7, 18, 19, 20, 40, 41))


def _sysv(uid, everything):
    found = set()
    for kind in ("shm", "sem", "msg"):
        try:
            head, *rows = _read(f"/proc/sysvipc/{kind}").decode().splitlines()
        except OSError:
            continue
        names = head.split()
        for row in rows:
            rec = dict(zip(names, row.split()))
            if everything or rec.get("uid") == str(uid):
                found.add((kind, rec.get("key"), rec.get("shmid") or rec.get("semid") or rec.get("msqid")))
    return frozenset(found)


def _keys(uid):
    """The uid's key counts of /proc/key-users (keys, instantiated keys, keys and bytes charged
    to its quota: every key it owns, listed or not) and the serials of the keys we may view
    (/proc/keys)."""
    counts = ()
    try:
        for ln in _read("/proc/key-users").decode().splitlines():
            if ln.split(":", 1)[0].strip() == str(uid):
                fields = ln.split(":", 1)[1].split()[1:]   # without the usage count (references)
                counts = tuple(int(f.split("/")[0]) for f in fields)
    except (OSError, IndexError, ValueError):
        counts = None
    try:
        serials = frozenset(ln.split(None, 1)[0] for ln in _read("/proc/keys").decode().splitlines() if ln)
    except OSError:
        serials = None
    return counts, serials


def _more_keys(before, now):
    """Whether keys were added: a count grew, or a serial appeared.  Counts also fall by
    themselves (keys unlinked earlier are collected later, asynchronously): nothing left."""
    (counts0, serials0), (counts1, serials1) = before, now
    if (counts0 is None) != (counts1 is None) or (serials0 is None) != (serials1 is None):
        return True
    return any(b > a for a, b in zip(counts0 or (), counts1 or ())) or \
        (len(counts1 or ()) > len(counts0 or ())) or bool((serials1 or set()) - (serials0 or set()))


def _limits(pid):
    return tuple(resource.prlimit(pid, w) for w in LIMITS)


def _own_limits():
    return tuple(resource.getrlimit(w) for w in LIMITS)


def _fds(pid):
    return tuple(sorted(os.listdir(f"/proc/{pid}/fd"), key=int))


def _children(pid):
    return tuple(children_of(pid))


class _Unreadable(tuple):
    """A reading that failed: equal only to the same failure."""


class Leftovers:
    """A baseline of the runner pid (taken before any learner code runs in it) and of what its
    calls could leave; changed() lists what differs now."""

    def __init__(self, pid, files, view, growth=64 * 2**20, uid=None):
        self.pid, self.files, self.view, self.growth = pid, files, view, growth
        self.uid = os.getuid() if uid is None else uid
        self.me = os.getpid()
        self.base = self._snapshot()
        self.size = _vm_size(pid)
        for essential in ("status", "stat", "fds", "limits", "own limits", "processes"):
            if isinstance(self.base[essential], _Unreadable):
                raise Unwatchable(0, f"cannot read the runner's {essential}")

    def _snapshot(self):
        pid, out = self.pid, {}
        probes = {
            "status": lambda: _status(pid), "stat": lambda: _stat(pid), "limits": lambda: _limits(pid),
            "own limits": _own_limits, "fds": lambda: _fds(pid),
            "cwd": lambda: os.readlink(f"/proc/{pid}/cwd"), "timers": lambda: _read(f"/proc/{pid}/timers"),
            "processes": lambda: (_children(pid), tuple(k for k in _children(self.me) if k != pid)),
            "SysV IPC": lambda: _sysv(self.uid, self.view), "keys": lambda: _keys(self.uid),
        }
        for what, probe in probes.items():
            try:
                out[what] = probe()
            except (OSError, ValueError, IndexError) as e:
                out[what] = _Unreadable((type(e).__name__, getattr(e, "errno", None)))
        return out

    def changed(self):
        """What differs from the baseline, as short names ([]: nothing)."""
        now = self._snapshot()
        found = [what for what, before in self.base.items()
                 if (now[what] != before if what != "keys" or isinstance(before, _Unreadable)
                     or isinstance(now[what], _Unreadable) else _more_keys(before, now[what]))]
        try:
            if _vm_size(self.pid) > self.size + self.growth:
                found.append("memory")
        except (OSError, ValueError):
            found.append("memory")
        if self.files is not None:
            found += self.files.changed()
        return found
