"""The grading pool of a class batch: long-lived worker processes, each grading one staged
upload at a time with grader.engine.grade, and run_batch(), which hands them the jobs.

    python -m grader.workers        a worker (started by run_batch; jobs and answers are
                                    frames on its stdin and stdout, grader/sandbox/codec.py)

A worker stages each upload itself (grader.uploads), grades it, removes what it staged and
answers with the records.  A worker that dies is restarted and its job given once more; a
second death, or grading that outlasts the submission's budget, is the grader's failure (a
status in the learner's row, never a score).  The reference solutions can be graded first
(run_batch's `reference`): unless they get full marks, Refused.  Workers end with the batch
parent, even when it is killed (PR_SET_PDEATHSIG), and keep every temporary folder inside the
batch's own, so nothing outlives it.
"""
import ctypes
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from grader import engine, resultsdir, signals, text, uploads
from grader.config import Config
from grader.publish import classlist
from grader.sandbox import codec
from grader.sandbox.host import (
    UidLease,
    ZygoteServer,
    become_subreaper,
    end_process,
    is_root,
    kill_tree,
    kill_uid,
)

GRADER_DIR = Path(__file__).resolve().parent
REFERENCE = "(reference solutions)"   # the sanity check's job id: never a learner folder name
PR_SET_PDEATHSIG = 1
PARENT_ENV = "_GRADER_BATCH_PARENT"


# ---------------------------------------------------------------- the worker process
def worker_main():
    """A long-lived worker: reads jobs (frames on stdin), grades each with the engine in this
    process, answers with the records (frames on stdout).  It ends with its parent: when the
    batch is killed, this process gets SIGTERM and ends its learner processes and folders."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    signal.signal(signal.SIGTERM, _exit_now)
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the batch parent decides when to stop
    _die_with_parent()
    become_subreaper()
    stems = engine.course_stems()
    for stem in stems.values():
        engine.collect(stem)   # warm: the checks are imported once per worker
    server = ZygoteServer()
    try:
        _serve_jobs(proto_in, proto_out, stems, server)
    finally:
        server.close()
        kill_tree()


def _exit_now(signum, frame):
    raise SystemExit(128 + signum)


def _die_with_parent():
    """SIGTERM when the batch parent dies (even by SIGKILL), so that nothing outlives it."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    if str(os.getppid()) != os.environ.get(PARENT_ENV, str(os.getppid())):
        raise SystemExit(0)   # the parent died before the line above


def _serve_jobs(proto_in, proto_out, stems, server):
    while True:
        frame = codec.read_frame(proto_in)
        if frame is None:
            return
        job = codec.decode(frame)
        if job.get("op") == "stop":
            return
        t0 = time.monotonic()
        answer = {"id": job["id"], "records": [], "notes": [], "unreadable": {}, "fatal": None,
                  "isolation": None, "error": None}
        folder = Path(job["stage"])
        try:
            folder.mkdir(mode=0o700)
            staged = uploads.stage(job["source"], folder, stems)
            answer.update(text.clean_all(dict(notes=staged.notes, unreadable=staged.unreadable,
                                              fatal=staged.fatal, near=staged.near)))
            if staged.fatal is None:
                config = Config(**job["config"])
                info = {}
                answer["records"] = engine.grade(staged.submission(stems), config, label="your submission",
                                                 uid=job.get("uid"), server=server, info=info)
                answer["isolation"] = info.get("isolation")
        except Exception as e:  # noqa: BLE001 - reported in the learner's row
            answer["error"] = text.clean(f"{type(e).__name__}: {e}", text.MAX_MESSAGE)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        answer["seconds"] = round(time.monotonic() - t0, 3)
        codec.write_frame(proto_out, codec.encode(answer))


class Worker:
    def __init__(self, slot, uid, work):
        self.slot, self.uid = slot, uid
        self.log = str(Path(work) / f"worker-{slot}.log")
        self.tmp = str(Path(work) / "tmp")   # the worker's (and its sandboxes') temporary folders
        self.job = None
        self.proc = None
        self.start()

    def start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(GRADER_DIR.parent)] + [
            x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
        env.pop("_GRADER_ARGV", None)
        env["TMPDIR"] = self.tmp
        env[PARENT_ENV] = str(os.getpid())
        fd = os.open(self.log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        with open(fd, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "grader.workers"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err,
                                         env=env, cwd=os.path.dirname(self.log), start_new_session=True,
                                         close_fds=True)
        self.fd = self.proc.stdout.fileno()

    def send(self, job):
        self.job = job
        self.started = time.monotonic()
        codec.write_frame(self.proc.stdin.fileno(), codec.encode(job))

    def receive(self):
        """The answer to the current job (the worker has something to read)."""
        frame = codec.read_frame(self.fd, deadline=time.monotonic() + 30)
        if frame is None:
            raise EOFError
        return codec.decode(frame)

    def kill(self, keep=()):
        end_process(self.proc)
        kill_uid(self.uid)
        kill_tree(keep=keep)
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def ask_to_stop(self):
        try:
            codec.write_frame(self.proc.stdin.fileno(), codec.encode({"op": "stop"}))
            self.proc.stdin.close()
        except OSError:
            pass

    def wait_stopped(self):
        """After ask_to_stop: the worker cleans up (its template, its folders) and exits."""
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def log_tail(self):
        try:
            with open(self.log, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log) - 2000))
                lines = f.read().decode(errors="replace").strip().splitlines()
            return lines[-1][:200] if lines else ""
        except OSError:
            return ""


# ---------------------------------------------------------------- the batch
class Refused(Exception):
    """The batch cannot grade fairly (the reference solutions fail under these limits)."""


class GraderBroken(Exception):
    """Every worker dies before answering, or grading the reference solutions fails for the
    grader's reasons: the grader, not the class, is broken.  The message is one line."""


def _failed(ident, why):
    return {"id": ident, "records": [], "fatal": None, "notes": [], "unreadable": {}, "error": why}


def _reference_verdict(answer):
    """None if the reference solutions got full marks, else why not (one line)."""
    records = answer.get("records") or []
    got, top = sum(r["score"] for r in records), sum(r["max_score"] for r in records)
    if answer.get("error") or answer.get("fatal") or not records:
        return answer.get("error") or answer.get("fatal") or "nothing was graded"
    if got == top:
        return None
    first = next(r for r in records if r["status"] != "passed")
    msg = " ".join(first["message"].split())[:160]
    return f"they get {got:g}/{top:g} ({first['notebook'][:2]} {first['exercise']}: {msg})"


def run_batch(entries, jobs, settings, progress=None, hide=(), on_answer=None, reference=None):
    """Grade entries [(id, source)] with `jobs` workers; {id: answer}.  on_answer(id, answer)
    is called as each answer arrives.  reference: a folder of solutions graded first (Refused
    unless they get full marks).  Every process and temporary folder is gone on return, also
    when interrupted."""
    become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="grader-batch-"))
    resultsdir.claim(work)
    os.chmod(work, 0o711)       # learner code (another uid) may enter its temporary folder
    (work / "tmp").mkdir(mode=0o711)
    os.chmod(work / "tmp", 0o711)
    leases = []
    if is_root():
        for _ in range(jobs):
            lease = UidLease.acquire()
            if lease is None:
                break
            leases.append(lease)
    queue = ([(REFERENCE, reference)] if reference else []) + list(entries)
    jobs = max(1, min(jobs, len(queue)))
    uids = [lease.uid for lease in leases] + [None] * jobs
    hard = settings["config"]["submission_timeout"] + 60 + 30
    pending = list(enumerate(queue))
    answers, retried = {}, set()
    workers, finished, deaths, served = [], False, 0, 0

    def done(ident, answer, problem=None):
        nonlocal served
        if ident == REFERENCE:
            if answer.get("error"):
                raise GraderBroken(f"the grader failed on the reference solutions ({answer['error']})")
            why = _reference_verdict(answer)
            if why:
                raise Refused(why)
            return
        served += not answer.get("error")
        answers[ident] = answer
        if on_answer:
            on_answer(ident, answer)
        if progress:
            progress.update(done=True, problem=problem if problem is not None else bool(
                answer.get("fatal") or answer.get("error") or classlist.problems(answer)))

    try:
        for slot in range(jobs):
            workers.append(Worker(slot, uids[slot], work))
        idle = list(workers)
        while pending or any(w.job for w in workers):
            while idle and pending:
                n, (ident, src) = pending.pop(0)
                w = idle.pop(0)
                cfg = dict(settings["config"], hide=tuple(hide))
                job = dict(id=ident, source=str(src), stage=str(work / f"s{n}"),
                           uid=w.uid if is_root() else None, config=cfg)
                try:
                    w.send(job)
                except OSError:
                    w.kill(keep=[x.proc.pid for x in workers if x is not w])
                    w.start()
                    w.send(job)
            busy = {w.fd: w for w in workers if w.job}
            ready = select.select(list(busy), [], [], 0.5)[0]
            for fd in ready:
                w = busy[fd]
                ident = w.job["id"]
                try:
                    answer = w.receive()
                except (EOFError, TimeoutError, codec.CodecError, OSError):
                    why = w.log_tail()
                    w.kill(keep=[x.proc.pid for x in workers if x is not w])
                    deaths += 1
                    if served == 0 and deaths > 2 * len(workers):
                        raise GraderBroken("the grader's worker processes keep dying ("
                                           f"{why or 'they exit without a word'})") from None
                    w.start()
                    if ident not in retried:
                        retried.add(ident)
                        pending.insert(0, (len(queue) + len(retried), (ident, w.job["source"])))
                        w.job = None
                        idle.append(w)
                        continue
                    answer = _failed(ident, "the grader's worker process ended while grading this "
                                     f"submission (not your code){': ' + why if why else ''}")
                w.job = None
                idle.append(w)
                done(ident, answer)
            now = time.monotonic()
            for w in workers:
                if w.job and now - w.started > hard:
                    ident = w.job["id"]
                    w.kill(keep=[x.proc.pid for x in workers if x is not w])
                    w.start()
                    w.job = None
                    idle.append(w)
                    done(ident, _failed(ident, f"grading did not finish within {hard:g} s and was "
                                        "stopped (not your code)"), problem=True)
            if progress:
                progress.update()
        finished = True
    except BaseException:
        signals.ignore()   # a second Ctrl-C must not stop the clean-up below
        raise
    finally:
        if finished:   # every worker cleans up after itself before any is killed
            for w in workers:
                w.ask_to_stop()
            for w in workers:
                w.wait_stopped()
        for w in workers:   # what is left (all of it, when interrupted)
            w.kill(keep=[x.proc.pid for x in workers if x is not w and x.proc.poll() is None])
        for lease in leases:
            lease.release()    # kills anything left of that uid
        kill_tree()
        shutil.rmtree(work, ignore_errors=True)
    return answers


if __name__ == "__main__":
    worker_main()
