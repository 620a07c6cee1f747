"""Reading a learner's notebook for grading: plain JSON, checked, one clear error per problem.

(The authoring tools use nbformat; the grading path reads the JSON itself so that it
starts in milliseconds — importing nbformat costs over a second with Jupyter installed.)
"""
import json
import re
from pathlib import Path

STEM = re.compile(r"^(\d\d)_")


class BadInput(Exception):
    """Input the grader cannot use; the message is one line for the user."""


def code_cells(path):
    """Cell sources of a notebook, in order; non-code cells are '' so cell numbers match."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder, not a notebook") from None
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}") from None
    try:
        nb = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not a notebook: it is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{path} is not valid notebook JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise BadInput(f"{path} is not a Jupyter notebook (it has no list of cells)")
    if nb.get("nbformat") != 4:
        raise BadInput(f"{path} is notebook format {nb.get('nbformat')!r}; the grader reads format 4 "
                       "(open and save it in a current Jupyter)")
    cells = []
    for i, cell in enumerate(nb["cells"], start=1):
        if not isinstance(cell, dict):
            raise BadInput(f"{path}: cell {i} is not a cell object")
        src = cell.get("source", "")
        if isinstance(src, list) and all(isinstance(s, str) for s in src):
            src = "".join(src)
        if not isinstance(src, str):
            raise BadInput(f"{path}: cell {i} has a source that is not text")
        cells.append(src if cell.get("cell_type") == "code" else "")
    return cells


def stem_for(path, stems):
    """The course notebook a file belongs to, by its two-digit prefix; None if none."""
    m = STEM.match(Path(path).name)
    return stems.get(m.group(1)) if m else None


def exact_first(path, stem):
    """Sort key among copies of one notebook: the file named exactly `stem`.ipynb first
    (Jupyter's '01_x-Copy1.ipynb' would otherwise sort before '01_x.ipynb')."""
    return (Path(path).name != f"{stem}.ipynb", Path(path).name)


def course_notebooks(folder, stems):
    """{stem: path} for the course notebooks in a folder; BadInput when one is ambiguous."""
    found = {}
    for f in Path(folder).glob("*.ipynb"):
        stem = stem_for(f, stems)
        if stem:
            found.setdefault(stem, []).append(f)
    chosen = {}
    for stem, files in sorted(found.items()):
        files.sort(key=lambda f: exact_first(f, stem))
        if len(files) > 1 and files[0].name != f"{stem}.ipynb":
            raise BadInput(f"several notebooks in {folder} could be {stem}: "
                           f"{', '.join(f.name for f in files)} (keep one, or name it {stem}.ipynb)")
        chosen[stem] = files[0]
    return chosen
