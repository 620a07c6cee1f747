"""Grade a whole class:  python -m grader SUBMISSIONS --out RESULTS [--jobs N]

SUBMISSIONS is a folder with one subfolder or one .zip file per learner (the subfolder or
zip name is the learner's name), or a single learner's submission.  A learner's notebooks
are found by name (01_*.ipynb, ...) anywhere inside their folder or zip.

RESULTS must not exist (or use --replace, which moves the old folder aside; nothing is
ever deleted).  Everything is written into a private temporary folder next to it, after
every learner process is gone, and renamed to RESULTS at the end:

    RESULTS/summary.csv                     one row per learner: points per exercise, total, problems
    RESULTS/summary.json                    the same, with the grading settings
    RESULTS/learners/<name>/results.json    Gradescope's format, for each learner

Submissions are graded in parallel by long-lived worker processes (--jobs, default the
number of CPUs), each calling grader.engine.grade for one submission at a time; as root,
each worker's learner code runs as a uid of its own.  One bad submission (unreadable, hostile, too slow)
costs only its own row.
"""
import os
import re
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path, PurePosixPath

from grader import nbfile, text
from grader.publish import classlist, report
from grader.sandbox import codec

GRADER_DIR = Path(__file__).resolve().parent
MAX_ZIP_MEMBERS = 20000
MAX_NOTEBOOK_BYTES = 64 * 2**20
MAX_SUBMISSION_BYTES = 256 * 2**20
MAX_WALK_ENTRIES = 20000
MAX_DEPTH = 8
MAX_CENTRAL_DIRECTORY = MAX_ZIP_MEMBERS * 400   # bytes: 46 per entry plus a long name, generously


# ---------------------------------------------------------------- finding submissions
def _skip(name):
    return name.startswith(".") or name in ("__MACOSX", "__pycache__")


def submissions_in(folder):
    """Subfolders and .zip files of folder that may be learners' submissions."""
    out = []
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError:
        return out
    for e in entries:
        if _skip(e.name):
            continue
        if e.is_symlink() or e.is_dir(follow_symlinks=False) or e.name.lower().endswith(".zip"):
            out.append(Path(e.path))
    return out


def learner_id(name, taken):
    base = re.sub(r"[^A-Za-z0-9._@+-]+", "_", name).strip("._")[:80] or "submission"
    ident, n = base, 1
    while ident.lower() in taken:
        n += 1
        ident = f"{base}-{n}"
    taken.add(ident.lower())
    return ident


def discover(paths, stems):
    """[(learner id, source path)] for every submission in paths; BadInput if none."""
    found, taken = [], set()
    for p in map(Path, paths):
        if not p.exists() and not p.is_symlink():
            raise nbfile.BadInput(f"no such file or folder: {p}")
        if p.is_dir() and not p.is_symlink():
            if any(nbfile.stem_for(f, stems) for f in p.glob("*.ipynb")):
                found.append((learner_id(p.resolve().name, taken), p))
                continue
            subs = submissions_in(p)
            if not subs:
                raise nbfile.BadInput(f"no submissions in {p}: expected course notebooks, or one "
                                      "subfolder or .zip file per learner")
            for s in subs:
                stem = s.name[:-4] if s.name.lower().endswith(".zip") else s.name
                found.append((learner_id(stem, taken), s))
        elif p.suffix.lower() in (".zip", ".ipynb"):
            found.append((learner_id(p.stem, taken), p))
        else:
            raise nbfile.BadInput(f"{p} is not a notebook, a .zip file or a folder")
    return found


# ---------------------------------------------------------------- staging one submission
class Staged:
    """A submission's course notebooks copied into a private folder as <stem>.ipynb."""

    def __init__(self, folder):
        self.folder = folder
        self.notes = []          # what the learner should know about their upload
        self.unreadable = {}     # stem -> why
        self.fatal = None        # the whole submission could not be read


def _choose(candidates, stems, staged):
    """candidates: [(parts of the path, key)] -> {stem: key}, the shallowest copy of each."""
    chosen = {}
    def order(c):
        stem = nbfile.stem_for(c[0][-1], stems) or ""
        return len(c[0]), nbfile.exact_first(c[0][-1], stem), c[0]

    for parts, key in sorted(candidates, key=order):
        stem = nbfile.stem_for(parts[-1], stems)
        if stem is None:
            continue
        if stem in chosen:
            staged.notes.append(f"several copies of {stem}.ipynb: graded {'/'.join(chosen[stem][0])}")
            continue
        chosen[stem] = (parts, key)
    return {stem: key for stem, (parts, key) in chosen.items()}


def open_regular(path):
    """A binary file object for path if it is a regular file (not a link, FIFO, device or
    socket); BadInput otherwise.  Opening never blocks (a FIFO would wait for a writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == 40:   # ELOOP: a symbolic link
            raise nbfile.BadInput("it is a symbolic link: not followed") from None
        raise nbfile.BadInput(f"cannot read it ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise nbfile.BadInput(f"it is {kind}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def zip_directory_ok(f):
    """Read the end-of-central-directory record (and Zip64's) ourselves, before zipfile
    allocates anything for the directory: (ok, why).  Entry counts and directory size
    over the limits are refused here."""
    import struct
    size = f.seek(0, 2)
    tail_len = min(size, 22 + 65535)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        return False, "is not a readable zip file (no end of central directory)"
    _sig, _d, _dcd, _n_here, entries, cd_size, _cd_off, _clen = struct.unpack("<4s4H2LH", tail[at:at + 22])
    loc = tail.rfind(b"PK\x06\x07", 0, at)
    if loc >= 0 and at - loc >= 20 and (entries == 0xFFFF or cd_size == 0xFFFFFFFF):
        (z64_off,) = struct.unpack("<Q", tail[loc + 8:loc + 16])
        if z64_off + 56 > size:
            return False, "is not a readable zip file (bad Zip64 record)"
        f.seek(z64_off)
        rec = f.read(56)
        if rec[:4] != b"PK\x06\x06":
            return False, "is not a readable zip file (bad Zip64 record)"
        entries, cd_size = struct.unpack("<QQ", rec[32:48])
    if entries > MAX_ZIP_MEMBERS:
        return False, f"holds more than {MAX_ZIP_MEMBERS} files"
    if cd_size > MAX_CENTRAL_DIRECTORY:
        return False, f"has a central directory larger than {MAX_CENTRAL_DIRECTORY // 2**20} MiB"
    f.seek(0)
    return True, ""


def _copy_limited(src, dst, limit):
    """Copy a file object to dst, refusing more than limit bytes (never trusts headers)."""
    total = 0
    try:
        with open(dst, "wb") as out:
            while True:
                chunk = src.read(1 << 20)
                if not chunk:
                    return total
                total += len(chunk)
                if total > limit:
                    raise nbfile.BadInput(f"larger than {limit // 2**20} MiB")
                out.write(chunk)
    except BaseException:
        Path(dst).unlink(missing_ok=True)
        raise


def stage_folder(src, staged, stems):
    candidates, seen = [], 0
    root = Path(src)
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        rel = Path(dirpath).relative_to(root).parts
        dirnames[:] = sorted(d for d in dirnames if not _skip(d)) if len(rel) < MAX_DEPTH else []
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_WALK_ENTRIES:
                staged.notes.append(f"more than {MAX_WALK_ENTRIES} files: the rest was not searched")
                break
            if _skip(name) or not name.lower().endswith(".ipynb"):
                continue
            path = Path(dirpath, name)
            if path.is_symlink():
                staged.notes.append(f"{'/'.join(rel + (name,))} is a symbolic link: not followed")
                continue
            candidates.append((rel + (name,), path))
        if seen > MAX_WALK_ENTRIES:
            break
    for stem, path in _choose(candidates, stems, staged).items():
        try:
            with open_regular(path) as f:
                _copy_limited(f, Path(staged.folder, f"{stem}.ipynb"), MAX_NOTEBOOK_BYTES)
        except nbfile.BadInput as e:
            staged.unreadable[stem] = str(e)
        except OSError as e:
            staged.unreadable[stem] = f"cannot read it ({e.strerror})"


def stage_zip(src, staged, stems):
    """Read the course notebooks straight out of the zip: nothing else is extracted, names
    in the archive never become paths, symlinks and unsafe names are skipped, and sizes are
    counted while decompressing (zip bombs stop at the limit)."""
    try:
        raw = open_regular(src)
    except nbfile.BadInput as e:
        staged.fatal = f"{Path(src).name}: {e}"
        return
    try:
        ok, why = zip_directory_ok(raw)
        if not ok:
            staged.fatal = f"{Path(src).name} {why}"
            raw.close()
            return
        z = zipfile.ZipFile(raw)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        staged.fatal = f"{Path(src).name} is not a readable zip file ({e})"
        raw.close()
        return
    with raw, z:
        infos = z.infolist()
        if len(infos) > MAX_ZIP_MEMBERS:
            staged.fatal = f"{Path(src).name} holds more than {MAX_ZIP_MEMBERS} files"
            return
        candidates = []
        for info in infos:
            name = info.filename.replace("\\", "/")
            if info.is_dir() or not name.lower().endswith(".ipynb"):
                continue
            parts = PurePosixPath(name).parts
            if stat.S_ISLNK(info.external_attr >> 16):
                staged.notes.append(f"{name} is a symbolic link: ignored")
                continue
            if name.startswith("/") or ".." in parts or re.match(r"^[A-Za-z]:", name):
                staged.notes.append(f"{name} has an unsafe path: ignored")
                continue
            if any(_skip(x) for x in parts):
                continue
            candidates.append((parts, info))
        total = 0
        for stem, info in _choose(candidates, stems, staged).items():
            if info.flag_bits & 0x1:
                staged.unreadable[stem] = "it is encrypted in the zip file"
                continue
            try:
                with z.open(info) as f:
                    total += _copy_limited(f, Path(staged.folder, f"{stem}.ipynb"),
                                           min(MAX_NOTEBOOK_BYTES, MAX_SUBMISSION_BYTES - total))
            except nbfile.BadInput as e:
                staged.unreadable[stem] = str(e)
            except Exception as e:  # noqa: BLE001 - BadZipFile, CRC, zlib.error, unsupported method
                staged.unreadable[stem] = f"it could not be unpacked ({type(e).__name__}: {e})"


def stage(src, folder, stems):
    """Copy a submission's course notebooks into folder; say what could not be used."""
    from grader.submission import read_cells
    staged = Staged(folder)
    src = Path(src)
    if src.is_symlink():
        staged.fatal = f"{src.name} is a symbolic link: not followed"
    elif src.is_dir():
        stage_folder(src, staged, stems)
    elif src.suffix.lower() == ".zip":
        stage_zip(src, staged, stems)
    elif src.suffix.lower() == ".ipynb":
        stem = nbfile.stem_for(src, stems)
        if stem is None:
            staged.fatal = f"{src.name} is not a course notebook"
        else:
            try:
                with open_regular(src) as f:
                    _copy_limited(f, Path(folder, f"{stem}.ipynb"), MAX_NOTEBOOK_BYTES)
            except nbfile.BadInput as e:
                staged.unreadable[stem] = str(e)
    else:
        staged.fatal = f"{src.name} is not a folder, a .zip file or a notebook"
    for nb in sorted(Path(folder).glob("*.ipynb")):
        try:
            read_cells(nb)
        except nbfile.BadInput as e:
            staged.unreadable[nb.stem] = str(e).replace(str(nb), nb.name)
            nb.unlink()
    if staged.fatal is None and not any(Path(folder).glob("*.ipynb")) and not staged.unreadable:
        staged.fatal = "no course notebooks found (expected names like " \
                       f"{next(iter(stems.values()))}.ipynb)" + "".join(f"; {n}" for n in staged.notes)
    return staged


# ---------------------------------------------------------------- the worker process
def worker_main():
    """A long-lived worker: reads jobs (frames on stdin), grades each with the engine in this
    process, answers with the records (frames on stdout)."""
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    from grader import engine
    from grader.sandbox.host import ZygoteServer, become_subreaper
    become_subreaper()
    stems = engine.course_stems()
    for stem in stems.values():
        engine.collect(stem)   # warm: the checks are imported once per worker
    server = ZygoteServer()
    try:
        _serve_jobs(proto_in, proto_out, stems, server)
    finally:
        server.close()


def _serve_jobs(proto_in, proto_out, stems, server):
    from grader import engine
    from grader.config import Config
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
            staged = stage(job["source"], folder, stems)
            answer.update(text.clean_all(dict(notes=staged.notes, unreadable=staged.unreadable, fatal=staged.fatal)))
            if staged.fatal is None:
                config = Config(**job["config"])
                sub = engine.load([str(folder)], config, unreadable=staged.unreadable)
                info = {}
                answer["records"] = engine.grade(sub, config, label="your submission",
                                                 uid=job.get("uid"), server=server, info=info)
                answer["isolation"] = info.get("isolation")
        except Exception as e:  # noqa: BLE001 - reported in the learner's row
            answer["error"] = text.clean(f"{type(e).__name__}: {e}", text.MAX_MESSAGE)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        answer["seconds"] = round(time.monotonic() - t0, 3)
        codec.write_frame(proto_out, codec.encode(answer))


class Worker:
    def __init__(self, slot, uid, log):
        self.slot, self.uid, self.log = slot, uid, log
        self.job = None
        self.proc = None
        self.start()

    def start(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(GRADER_DIR.parent)] + [
            x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
        env.pop("_GRADER_ARGV", None)
        with open(self.log, "ab") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "grader.batch", "--worker"],
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
        from grader.sandbox.host import end_process, kill_tree, kill_uid
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


# ---------------------------------------------------------------- progress
class Progress:
    """A one-line progress bar, drawn only when stdout is a terminal."""

    def __init__(self, total, stream=None):
        self.total, self.done, self.problems = total, 0, 0
        self.stream = stream or sys.stdout
        self.on = self.stream.isatty()
        self.t0 = time.monotonic()
        self.last = 0

    def update(self, done=None, problem=False, force=False):
        if done:
            self.done += 1
            self.problems += bool(problem)
        now = time.monotonic()
        if not self.on or (not force and not done and now - self.last < 0.5):
            return
        self.last = now
        width = 30
        full = int(width * self.done / max(1, self.total))
        bar = "█" * full + "░" * (width - full)
        extra = f" · {self.problems} with problems" if self.problems else ""
        self.stream.write(f"\r{bar} {self.done}/{self.total} graded{extra} · {now - self.t0:.0f} s ")
        self.stream.flush()

    def finish(self):
        if self.on:
            self.stream.write("\r" + " " * 70 + "\r")
            self.stream.flush()


# ---------------------------------------------------------------- the batch
def run_batch(entries, jobs, settings, progress=None, hide=()):
    """Grade entries [(id, source)] with `jobs` workers; {id: answer}."""
    from grader.sandbox.host import UidLease, become_subreaper, is_root
    become_subreaper()
    work = Path(tempfile.mkdtemp(prefix="grader-batch-"))
    leases = []
    if is_root():
        for _ in range(jobs):
            lease = UidLease.acquire()
            if lease is None:
                break
            leases.append(lease)
    jobs = max(1, min(jobs, len(entries)))
    uids = [lease.uid for lease in leases] + [None] * jobs
    hard = settings["config"]["submission_timeout"] + 60 + 30
    pending = list(enumerate(entries))
    answers, retried = {}, set()
    workers, finished = [], False
    try:
        for slot in range(jobs):
            workers.append(Worker(slot, uids[slot], str(work / f"worker-{slot}.log")))
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
                    answers[ident] = w.receive()
                except (EOFError, TimeoutError, codec.CodecError, OSError):
                    why = w.log_tail()
                    w.kill(keep=[x.proc.pid for x in workers if x is not w])
                    w.start()
                    if ident not in retried:
                        retried.add(ident)
                        pending.insert(0, (len(entries) + len(retried), (ident, w.job["source"])))
                        w.job = None
                        idle.append(w)
                        continue
                    answers[ident] = {"id": ident, "records": [], "fatal": None, "notes": [],
                                      "unreadable": {}, "error": "the grader's worker process "
                                      f"ended while grading this submission{': ' + why if why else ''}"}
                a = answers[ident]
                if progress:
                    progress.update(done=True, problem=bool(a.get("fatal") or a.get("error") or classlist.problems(a)))
                w.job = None
                idle.append(w)
            now = time.monotonic()
            for w in workers:
                if w.job and now - w.started > hard:
                    ident = w.job["id"]
                    w.kill(keep=[x.proc.pid for x in workers if x is not w])
                    w.start()
                    answers[ident] = {"id": ident, "records": [], "fatal": None, "notes": [],
                                      "unreadable": {}, "error": f"grading did not finish within "
                                      f"{hard:g} s and was stopped"}
                    if progress:
                        progress.update(done=True, problem=True)
                    w.job = None
                    idle.append(w)
            if progress:
                progress.update()
        finished = True
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
        from grader.sandbox.host import kill_tree
        kill_tree()
        shutil.rmtree(work, ignore_errors=True)
    return answers


def _write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as f:
        f.write(text)


def _open_up(folder):
    """mkdtemp made the folder private; give it the permissions the user's umask asks for."""
    mask = os.umask(0)
    os.umask(mask)
    for dirpath, _dirnames, filenames in os.walk(folder):
        os.chmod(dirpath, 0o777 & ~mask)
        for f in filenames:
            os.chmod(os.path.join(dirpath, f), 0o666 & ~mask)


def _rename_noreplace(src, dst):
    """rename(2) that never replaces dst (renameat2 RENAME_NOREPLACE where available)."""
    try:
        import ctypes
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


def check_out(out, replace):
    out = Path(out)
    if os.path.lexists(out) and not replace:
        raise nbfile.BadInput(f"{out} already exists: choose a new folder for the results, or add "
                              "--replace to move the old one aside")
    if not out.parent.is_dir():
        raise nbfile.BadInput(f"cannot write results into {out}: folder {out.parent} does not exist")
    if not os.access(out.parent, os.W_OK | os.X_OK):
        raise nbfile.BadInput(f"cannot write results into {out}: folder {out.parent} is not writable")
    return out


def main(a, config):
    """python -m grader PATH... --out DIR (a: parsed arguments of grader.cli; config: the
    grader.config.Config they give).  Every path is made absolute here, before any worker
    starts: the workers run in a folder of their own."""
    from dataclasses import asdict

    from grader import engine
    from grader.config import BATCH_SUBMISSION_TIMEOUT
    t0 = time.monotonic()
    stems = engine.course_stems()
    try:
        if a.junitxml or a.json:
            raise nbfile.BadInput("--json and --junitxml are for one learner; with --out each "
                                  "learner's results.json is written into the results folder")
        engine.check_only(a.only)
        if a.jobs is not None and a.jobs < 1:
            raise nbfile.BadInput("--jobs must be at least 1")
        entries = discover([os.path.abspath(p) for p in a.paths], stems)
        out = check_out(os.path.abspath(a.out), a.replace)
    except nbfile.BadInput as e:
        print(f"grader: {report.clean(e)}", file=sys.stderr)
        return 2
    if a.submission_timeout is None:
        config = config.with_(submission_timeout=BATCH_SUBMISSION_TIMEOUT)
    config = config.with_(course=str(config.root()))
    jobs = config.workers()
    settings = {"seed": config.seed, "timeout": config.timeout, "memory": config.memory,
                "only": config.only, "submission_timeout": config.submission_timeout,
                "visibility": config.visibility, "jobs": jobs, "config": asdict(config)}
    try:
        partial = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    except OSError as e:
        print(f"grader: cannot write results next to {out}: {e.strerror}", file=sys.stderr)
        return 2
    hide = [str(partial), str(out)] + [str(Path(p).resolve()) for p in a.paths]

    def stop(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, stop)   # stopped: end every process, write nothing, as for Ctrl-C
    progress = Progress(len(entries))
    try:
        answers = run_batch(entries, jobs, settings, progress, hide=hide)
        progress.finish()
        summary = classlist.summarize(entries, answers, settings, time.monotonic() - t0)
        # every learner process is gone: now, and only now, the results are written
        for ident, _ in entries:
            data = classlist.learner_results(answers.get(ident, {"error": "not graded"}), a.visibility)
            dest = partial / "learners" / ident / "results.json"
            dest.parent.mkdir(parents=True, exist_ok=True)
            report.write_json_atomic(dest, data)
        report.write_json_atomic(partial / "summary.json", summary)
        _write(partial / "summary.csv", classlist.summary_csv(summary))
        _open_up(partial)
        if os.path.lexists(out) and a.replace:
            aside = out.with_name(f"{out.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
            _rename_noreplace(out, aside)
            print(f"moved the old {out} to {aside}")
        try:
            _rename_noreplace(partial, out)
        except FileExistsError:
            print(f"grader: {out} appeared while grading; the results are in {partial}", file=sys.stderr)
            out = partial
    except KeyboardInterrupt:
        progress.finish()
        shutil.rmtree(partial, ignore_errors=True)
        print("grader: interrupted; nothing was written", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001
        progress.finish()
        shutil.rmtree(partial, ignore_errors=True)
        print(f"grader: internal error, please report it: {type(e).__name__}: {e}", file=sys.stderr)
        return 3
    print(classlist.overview(summary, out))
    warn = classlist.exposure_warning(summary.get("isolation"), [*a.paths, config.root() / "solutions"])
    if warn:
        print(warn)
    print(f"graded {len(entries)} submissions in {time.monotonic() - t0:.1f} s with {jobs} "
          f"parallel job{'s' if jobs != 1 else ''}")
    return 0


if __name__ == "__main__":
    if sys.argv[1:] == ["--worker"]:
        worker_main()
    else:
        print("usage: python -m grader SUBMISSIONS --out RESULTS (see python -m grader --help)",
              file=sys.stderr)
        sys.exit(2)
