"""Which notebooks a grading run reads, as cell sources (grader.engine.load builds one)."""
from dataclasses import dataclass, field
from pathlib import Path

from grader import nbfile

MAX_NOTEBOOK_BYTES = 64 * 2**20


@dataclass
class Submission:
    notebooks: dict = field(default_factory=dict)   # stem -> [cell sources]
    paths: dict = field(default_factory=dict)       # stem -> Path
    expected: set = field(default_factory=set)      # stems graded (missing ones score 0)
    folder: Path = None
    unreadable: dict = field(default_factory=dict)  # stem -> why it could not be read


def selected(only, stem, exercise):
    """Is a check of `exercise` in notebook `stem` selected by --only?  only: None (all), or a
    comma-separated list of exercise names and notebooks (a stem or its number: 01, 02...)."""
    if not only:
        return True
    return any(tok in (exercise, stem, stem[:2]) for tok in only.replace(" ", "").split(","))


def read_cells(path):
    """nbfile.code_cells with the limits a hostile file needs (size, nesting)."""
    path = Path(path)
    try:
        if path.stat().st_size > MAX_NOTEBOOK_BYTES:
            raise nbfile.BadInput(f"{path.name} is larger than {MAX_NOTEBOOK_BYTES // 2**20} MiB")
    except OSError:
        pass   # code_cells says what is wrong
    try:
        return nbfile.code_cells(path)
    except (RecursionError, MemoryError):
        raise nbfile.BadInput(f"{path.name} is not a notebook the grader can read (nested too deeply "
                              "or too large)") from None


def load(paths, stems, one_notebook=False, unreadable=None):
    """Resolve notebooks and folders of notebooks to a Submission (BadInput if unusable)."""
    sub = Submission(unreadable=dict(unreadable or {}))
    for p in map(Path, paths):
        if p.is_dir():
            sub.expected |= set(stems.values())
            sub.folder = p
            for stem, f in nbfile.course_notebooks(p, stems).items():
                sub.paths.setdefault(stem, f)
        elif one_notebook:
            sub.expected |= set(stems.values())
            for stem in stems.values():
                sub.paths[stem] = p
        else:
            stem = nbfile.stem_for(p, stems)
            if stem is None:
                raise nbfile.BadInput(f"{p.name} is not a course notebook")
            sub.paths[stem] = p
            sub.expected.add(stem)
    sub.expected |= set(sub.unreadable)
    cache = {}
    for stem, p in sub.paths.items():
        if p not in cache:
            cache[p] = read_cells(p)
        sub.notebooks[stem] = cache[p]
    return sub
