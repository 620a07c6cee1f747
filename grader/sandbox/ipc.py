"""System V IPC objects (shared memory, semaphores, message queues) left by learner code.

They outlive the processes that made them: a segment keeps host memory pinned and the next
submission graded with the same uid could read it.  Where the learner's process got a
private IPC namespace (as root, see _child.isolate) they vanish with it; otherwise the
grader removes them here.  Linux only (reads /proc/sysvipc); elsewhere nothing is found.
Standard library only.
"""
import ctypes
import os
import time

IPC_RMID = 0
KINDS = {"shm": (1, 9), "sem": (1, 4), "msg": (1, 9)}   # column of the id, column of the owner uid


def _objects():
    """[(kind, id, uid, creator pid or None, ctime)] of every SysV object we can see."""
    found = []
    for kind, (id_col, uid_col) in KINDS.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                head, *rows = f.read().splitlines()
        except OSError:
            continue
        names = head.split()
        for row in rows:
            cols = row.split()
            try:
                rec = dict(zip(names, cols))
                found.append((kind, int(cols[id_col]), int(rec.get("uid", cols[uid_col])),
                              int(rec["cpid"]) if "cpid" in rec else None, int(rec.get("ctime", 0))))
            except (ValueError, IndexError, KeyError):
                continue
    return found


def _remove(kind, ident):
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if kind == "shm":
            libc.shmctl(ident, IPC_RMID, None)
        elif kind == "sem":
            libc.semctl(ident, 0, IPC_RMID)
        else:
            libc.msgctl(ident, IPC_RMID, None)
    except (OSError, AttributeError):
        pass


def remove_of_uid(uid):
    """Remove every object owned by uid (a uid leased for learner code only)."""
    for kind, ident, owner, _cpid, _ctime in _objects():
        if owner == uid:
            _remove(kind, ident)


def snapshot():
    """What exists now for our uid, and when: remove_new() spares all of it."""
    uid = os.getuid()
    return {"uid": uid, "t": int(time.time()) - 1,
            "ids": {(k, i) for k, i, owner, _c, _t in _objects() if owner == uid}}


def _alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except OSError:
        return True


def remove_new(before):
    """Remove what our uid created since `before` and whose creator is gone (the learner's
    processes are all ended by then; a live creator is a program of the user's own)."""
    for kind, ident, owner, cpid, ctime in _objects():
        if owner != before["uid"] or (kind, ident) in before["ids"] or ctime < before["t"]:
            continue
        if cpid is not None and _alive(cpid):
            continue
        _remove(kind, ident)
