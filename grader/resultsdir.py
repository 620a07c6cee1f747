"""A class's results folder, written as grading goes, so that nothing graded is ever lost.

    RESULTS/batch.json                      what was asked: settings, the class's submissions
                                            (with their place in the whole class), the shard
    RESULTS/learners/<name>/grading.json    the worker's answer for one learner (its records),
                                            written as soon as it arrives
    RESULTS/learners/<name>/results.json    Gradescope's format, for the learner
    RESULTS/summary.csv, summary.json       written last, from the files above

A batch writes into a private folder beside RESULTS (.RESULTS.partial-*) and renames it at
the end.  If the end fails (a full disk, a folder turned read-only, a crash), every learner's
files are still there: `python -m grader.merge --out RESULTS FOLDER` writes the summary from
them without grading again, and `python -m grader ... --out RESULTS --resume` grades only what
is missing.  Several shards' folders merge the same way into one class (grader/merge.py).

Each folder a run makes (the partial folder, its temporary work folder) holds an `owner` file
naming the process; the next run removes what a killed run left (sweep()).
"""
import ctypes
import json
import os
import shutil
import socket
import tempfile
import urllib.parse
from pathlib import Path

from grader import nbfile, output, text
from grader.publish import classlist

OWNER = ".owner"
FORMAT = 1
# settings that must agree between a run and the one it resumes, or between shards
SAME = ("seed", "timeout", "submission_timeout", "memory", "only", "visibility")
# record kinds that are the grader's failures, not the learner's: re-graded by --resume, and a
# batch holding any exits 4 (add the kind the sandbox gives a learner process killed from outside)
GRADER_KINDS = {"grader_error", "interrupted"}   # not the learner's doing: graded again by --resume


# ---------------------------------------------------------------- who made a folder
def _start_time(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()
    except (OSError, IndexError):
        return ""


def claim(folder):
    """Mark folder as this process's (on this machine: another may share the folder)."""
    pid = os.getpid()
    (Path(folder) / OWNER).write_text(f"{pid} {socket.gethostname()} {_start_time(pid)}\n")


def owner_alive(folder):
    """Is the process that made folder still running?  True when it cannot be known (a folder
    made on another machine, or with an owner file this version did not write)."""
    try:
        pid, host, start = ((Path(folder) / OWNER).read_text().split() + ["", ""])[:3]
        pid = int(pid)
    except (OSError, ValueError):
        return True
    if host != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or _start_time(pid) == start


def partials(out):
    """Folders a batch writing `out` left beside it (newest first)."""
    out = Path(out)
    found = [p for p in out.parent.glob(f".{out.name}.partial-*") if p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def graded_in(folder):
    return sorted(Path(folder).glob("learners/*/grading.json"))


def sweep(out, temp=None):
    """Remove what killed runs left: their temporary work folders, and their partial folders
    beside `out` that hold no result.  Partial folders with results are kept (--resume).
    Returns lines saying what was done."""
    lines, removed = [], 0
    for p in Path(temp or tempfile.gettempdir()).glob("grader-batch-*"):
        if p.is_dir() and not p.is_symlink() and (p / OWNER).exists() and not owner_alive(p):
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
    for p in partials(out):
        if (p / OWNER).exists() and owner_alive(p):
            continue
        n = len(graded_in(p))
        if n == 0:
            shutil.rmtree(p, ignore_errors=True)
            removed += 1
        else:
            lines.append(f"note: a stopped run left {n} learners' results in {p}: add --resume to "
                         "continue from them (or delete that folder)")
    if removed:
        lines.insert(0, f"note: removed {removed} temporary folder{'s' if removed != 1 else ''} "
                     "left by an earlier run that was killed")
    return lines


# ---------------------------------------------------------------- what a folder holds
def _quote(path):
    """A learner's path as batch.json keeps it: every character a terminal or an XML reader could
    choke on (escapes, control characters, direction overrides; and %) percent-encoded, so the
    file holds nothing a report must not, and the exact path comes back (_unquote)."""
    return "".join(ch if ch != "%" and text.clean(ch) == ch else urllib.parse.quote(ch, safe="")
                   for ch in str(path))


def _unquote(path):
    return urllib.parse.unquote(path)


def save_batch(folder, meta):
    meta = dict(meta, format=FORMAT, entries=[[k, ident, _quote(src)] for k, ident, src in meta["entries"]],
                paths=[_quote(p) for p in meta.get("paths", [])])
    output.write_json(Path(folder) / "batch.json", meta)


def load_batch(folder):
    try:
        meta = json.loads((Path(folder) / "batch.json").read_text())
    except (OSError, ValueError):
        raise nbfile.BadInput(f"{folder} holds no batch's results (no readable batch.json)") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise nbfile.BadInput(f"{folder}/batch.json was written by another version of the grader")
    meta["entries"] = [[k, ident, _unquote(src)] for k, ident, src in meta.get("entries", [])]
    meta["paths"] = [_unquote(p) for p in meta.get("paths", [])]
    return meta


def save_answer(folder, ident, answer, visibility):
    """One learner's files, as soon as their answer arrives."""
    d = Path(folder) / "learners" / ident
    d.mkdir(parents=True, exist_ok=True)
    output.write_json(d / "results.json", classlist.learner_results(answer, visibility))
    output.write_json(d / "grading.json", answer)   # last: its presence means "graded"


def load_answers(folder):
    """{learner: answer} of every learner graded in folder."""
    answers = {}
    for f in graded_in(folder):
        try:
            answers[f.parent.name] = json.loads(f.read_text())
        except (OSError, ValueError):
            continue   # half-written by a killed run: graded again
    return answers


def grader_failed(answer):
    """The grader (not the learner) failed on this submission: it must be graded again."""
    return bool(answer.get("error")) or any(r.get("kind") in GRADER_KINDS for r in answer.get("records", []))


def write_summary(folder, entries, answers, settings, seconds, roster=None):
    """summary.json, summary.csv and gradebook.csv from the learners' answers (joined with the
    roster, when the batch was given one); returns the summary."""
    summary = classlist.summarize(entries, answers, settings, seconds, roster)
    output.write_json(Path(folder) / "summary.json", summary)
    for name, body in classlist.csv_files(summary).items():
        output.write_text(Path(folder) / name, body)
    return summary


def open_up(folder):
    """mkdtemp made the folder private; give it the permissions the user's umask asks for."""
    mask = os.umask(0)
    os.umask(mask)
    for dirpath, _dirnames, filenames in os.walk(folder):
        os.chmod(dirpath, 0o777 & ~mask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~mask)


def rename_noreplace(src, dst):
    """rename(2) that never replaces dst (renameat2 RENAME_NOREPLACE where available)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        if fn(-100, os.fsencode(src), -100, os.fsencode(dst), 1) == 0:
            return
        err = ctypes.get_errno()
        if err not in (38, 22):  # ENOSYS, EINVAL: not supported here
            raise OSError(err, os.strerror(err), str(dst))
    except (AttributeError, OSError) as e:
        if isinstance(e, OSError) and e.errno not in (None, 38, 22):
            raise
    if os.path.lexists(dst):
        raise FileExistsError(17, "File exists", str(dst))
    os.rename(src, dst)


def publish(folder, out):
    """Rename the finished folder to out (never over anything); the folder the results are in."""
    (Path(folder) / OWNER).unlink(missing_ok=True)
    open_up(folder)
    try:
        rename_noreplace(folder, out)
    except FileExistsError:
        return Path(folder)
    return Path(out)
