"""Writing what the grader produces without ever damaging the host.

Regular files (and new ones) are written to a temporary file beside them and renamed over
them: a reader never sees half a file.  Anything else that already exists at the path — a
character or block device (/dev/null), a FIFO, a terminal, /dev/stdout, /dev/stderr,
/dev/fd/N — is written directly, never renamed over, never truncated, never removed.  A
symbolic link is followed: the file it names is what gets written (the link stays).
Sockets and folders are refused with one line, before grading starts (check()).
"""
import json
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

from grader import nbfile

_FD = re.compile(r"^/(?:dev/fd|proc/self/fd)/(\d+)$")
_STD = {"/dev/stdout": 1, "/dev/stderr": 2, "/dev/stdin": 0}


def _fd_of(path):
    """The open descriptor a path like /dev/stdout or /dev/fd/3 names, else None."""
    text = os.path.abspath(str(path))
    if text in _STD:
        return _STD[text]
    m = _FD.match(text)
    return int(m.group(1)) if m else None


def check(path, what="--json"):
    """BadInput (one line) unless results can be written to path; run before grading."""
    path = Path(path)
    if _fd_of(path) is not None:
        return
    try:
        st = os.stat(path)   # follows links: what would be written
    except FileNotFoundError:
        real = Path(os.path.realpath(path))
        if not real.parent.is_dir():
            raise nbfile.BadInput(f"{what} {path}: folder {real.parent} does not exist") from None
        if not os.access(real.parent, os.W_OK | os.X_OK):
            raise nbfile.BadInput(f"{what} {path}: folder {real.parent} is not writable") from None
        return
    except OSError as e:
        raise nbfile.BadInput(f"{what} {path}: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise nbfile.BadInput(f"{what} {path} is a folder: give a file name")
    if stat.S_ISSOCK(st.st_mode):
        raise nbfile.BadInput(f"{what} {path} is a socket: the grader writes only files, devices and FIFOs")
    if stat.S_ISREG(st.st_mode):
        real = Path(os.path.realpath(path))
        if not os.access(real.parent, os.W_OK | os.X_OK):
            raise nbfile.BadInput(f"{what} {path}: folder {real.parent} is not writable")
    elif not os.access(path, os.W_OK):
        raise nbfile.BadInput(f"{what} {path} is not writable")


def write_text(path, text):
    """Write text (UTF-8) to path as described above."""
    data = text.encode("utf-8")
    fd = _fd_of(path)
    if fd is not None:
        if fd == 1:
            sys.stdout.flush()
        elif fd == 2:
            sys.stderr.flush()
        _write_all(fd, data)
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        if stat.S_ISDIR(st.st_mode) or stat.S_ISSOCK(st.st_mode):
            check(path)   # raises the one-line reason
        out = os.open(path, os.O_WRONLY | os.O_NOCTTY | getattr(os, "O_CLOEXEC", 0))
        try:
            if not stat.S_ISREG(os.fstat(out).st_mode):
                _write_all(out, data)
                return
        finally:
            os.close(out)
    real = Path(os.path.realpath(path))   # a link: its target is replaced, the link stays
    tmp = tempfile.NamedTemporaryFile("wb", dir=real.parent, prefix=f".{real.name}.", delete=False)
    try:
        with tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        mode = stat.S_IMODE(st.st_mode) if st is not None else 0o666 & ~_umask()
        os.chmod(tmp.name, mode)
        os.replace(tmp.name, real)
    except BaseException:
        Path(tmp.name).unlink(missing_ok=True)
        raise


def write_json(path, data):
    write_text(path, json.dumps(data, indent=2) + "\n")


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
