"""Hostile uploads -> staged notebooks: what a class batch and Gradescope read from learners.

A learner's upload is a folder, a .zip file or a notebook, of any shape and from anyone.
Here, and only here, it is searched (bounded: depth, entries, sizes, zip directories read
before zipfile allocates), each course notebook found (01_*.ipynb, ..., the shallowest copy,
the exactly named one first) is copied out with a size limit, then read once
(grader.submission.read_cells) and handed on as a Submission of cell sources.  Names in an
archive never become paths; links, FIFOs, devices and sockets are never followed or opened
for reading.
"""
import difflib
import os
import re
import stat
import struct
import zipfile
from pathlib import Path, PurePosixPath

from grader import nbfile
from grader.submission import MAX_NOTEBOOK_BYTES, Submission, read_cells

MAX_ZIP_MEMBERS = 20000
MAX_SUBMISSION_BYTES = 256 * 2**20
MAX_WALK_ENTRIES = 20000
MAX_DEPTH = 8
MAX_CENTRAL_DIRECTORY = MAX_ZIP_MEMBERS * 400   # bytes: 46 per entry plus a long name, generously
ELOOP = 40


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
    """A submission's course notebooks, copied into a private folder as <stem>.ipynb and read."""

    def __init__(self, folder):
        self.folder = folder
        self.notebooks = {}      # stem -> [cell sources], each read once
        self.notes = []          # what the learner should know about their upload
        self.unreadable = {}     # stem -> why
        self.near = {}           # stem -> a file with a near-miss name (when the stem is missing)
        self.fatal = None        # the whole submission could not be read
        self.others = []         # names of notebooks that are no course notebook

    def submission(self, stems):
        """The Submission to grade: every course notebook expected, the staged ones read."""
        return Submission(notebooks=dict(self.notebooks), expected=set(stems.values()),
                          unreadable=dict(self.unreadable), near=dict(self.near))


def _choose(candidates, stems, staged):
    """candidates: [(parts of the path, key)] -> {stem: key}, the shallowest copy of each."""
    chosen = {}

    def order(c):
        stem = nbfile.stem_for(c[0][-1], stems) or ""
        return len(c[0]), nbfile.exact_first(c[0][-1], stem), c[0]

    for parts, key in sorted(candidates, key=order):
        stem = nbfile.stem_for(parts[-1], stems)
        if stem is None:
            staged.others.append("/".join(parts))
            continue
        if stem in chosen:
            staged.notes.append(f"several copies of {stem}.ipynb: graded {'/'.join(chosen[stem][0])}")
            continue
        chosen[stem] = (parts, key)
    return {stem: key for stem, (parts, key) in chosen.items()}


def _squash(name):
    return re.sub(r"[^a-z0-9]+", "", name.lower().removesuffix(".ipynb"))


def near_miss(stem, names):
    """Among notebook names that are no course notebook, the one most like `stem` (e.g.
    01-bernoulli_mask.ipynb, Bernoulli Mask.ipynb, 1_bernoulli_mask (1).ipynb); None if none is."""
    want, title = _squash(stem), _squash(stem[3:])
    best, score = None, 0.0
    for name in names:
        got = _squash(PurePosixPath(name).name)
        s = max(difflib.SequenceMatcher(None, want, got).ratio(),
                1.0 if title and title in got else 0.0)
        if s > score:
            best, score = name, s
    return best if score >= 0.8 else None


def open_regular(path):
    """A binary file object for path if it is a regular file (not a link, FIFO, device or
    socket); BadInput otherwise.  Opening never blocks (a FIFO would wait for a writer)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == ELOOP:   # a symbolic link
            raise nbfile.BadInput("it is a symbolic link: not followed") from None
        raise nbfile.BadInput(f"cannot read it ({e.strerror})") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise nbfile.BadInput(f"it is {kind_of(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb")


def kind_of(mode):
    """What a file that is not a regular file is, in a few words."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def zip_directory_ok(f):
    """Read the end-of-central-directory record (and Zip64's) ourselves, before zipfile
    allocates anything for the directory: (ok, why).  Entry counts and directory size
    over the limits are refused here."""
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
    """Copy a submission's course notebooks into folder and read each once; say what could
    not be used."""
    staged = Staged(folder)
    src = Path(src)
    if src.is_symlink():
        staged.fatal = f"{src.name} is a symbolic link: not followed"
    elif not src.exists():
        staged.fatal = f"{src.name} was removed while the class was being graded"
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
            staged.notebooks[nb.stem] = read_cells(nb)
        except nbfile.BadInput as e:
            staged.unreadable[nb.stem] = str(e).replace(str(nb), nb.name)
        nb.unlink()
    for stem in stems.values():
        if stem not in staged.notebooks and stem not in staged.unreadable:
            found = near_miss(stem, staged.others)
            if found:
                staged.near[stem] = found
    if staged.fatal is None and not staged.notebooks and not staged.unreadable:
        staged.fatal = "no course notebooks found (expected names like " \
                       f"{next(iter(stems.values()))}.ipynb)" + "".join(f"; {n}" for n in staged.notes) \
                       + "".join(f"; found {n}: name it {s}.ipynb" for s, n in staged.near.items())
    return staged


def stage_upload(upload, folder, stems):
    """Gradescope's upload folder: its notebooks, or those of a .zip file in it."""
    staged = stage(upload, folder, stems)
    if staged.fatal:
        tried = []
        for z in sorted(Path(upload).glob("*.zip")):
            again = stage(z, folder, stems)
            if not again.fatal:
                return again
            tried.append((z, again))
        if tried:   # the upload is a zip that cannot be used: say what is wrong with it, as batches do
            z, again = tried[0]
            if not again.fatal.startswith(z.name):
                again.fatal = f"{z.name}: {again.fatal}"
            return again
    return staged
