"""Which notebooks a grading run reads, as cell sources: the one place a learner's own
notebooks (python -m grader PATH..., check(), grader.grade()) are found, validated and read,
each once.  Class uploads and Gradescope's go through grader.uploads, which stages them and
reads each with read_cells here."""
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
    near: dict = field(default_factory=dict)        # stem -> name of a file that may be it (missing)


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


def _example(stems):
    return f"{next(iter(stems.values()))}.ipynb"


def load(paths, stems, one_notebook=False):
    """Notebooks and folders of notebooks -> a Submission, every notebook read once.  Every
    path is checked before anything is graded; BadInput names the first problem."""
    sub = Submission()
    for p in map(Path, paths):
        if not p.exists():
            raise nbfile.BadInput(f"no such file or folder: {p}")
        if p.is_dir():
            nbs = sorted(p.glob("*.ipynb"))
            if not nbs:
                raise nbfile.BadInput(f"no notebooks (.ipynb) in folder {p}")
            found = nbfile.course_notebooks(p, stems)
            if not found:
                raise nbfile.BadInput(f"no course notebooks in {p} (expected names like {_example(stems)})")
            sub.expected |= set(stems.values())
            sub.folder = p
            for stem, f in found.items():
                _add(sub, stem, f)
        else:
            if p.suffix != ".ipynb":
                raise nbfile.BadInput(f"{p} is not a notebook (.ipynb)")
            if one_notebook:   # check(): one notebook holding any exercise
                cells = read_cells(p)
                sub.expected |= set(stems.values())
                for stem in stems.values():
                    sub.paths[stem], sub.notebooks[stem] = p, cells
                continue
            stem = nbfile.stem_for(p, stems)
            if stem is None:
                read_cells(p)   # an unreadable file is reported as such first
                raise nbfile.BadInput(f"{p.name} is not a course notebook (expected a name starting "
                                      f"with a number, like {_example(stems)})")
            _add(sub, stem, p)
            sub.expected.add(stem)
    return sub


def _add(sub, stem, path):
    if stem in sub.paths:
        if sub.paths[stem] != path:
            raise nbfile.BadInput(f"{stem} is given twice: {sub.paths[stem]} and {path} "
                                  "(grade one at a time)")
        return
    sub.notebooks[stem] = read_cells(path)
    sub.paths[stem] = path
