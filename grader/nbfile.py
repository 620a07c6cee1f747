"""Reading a learner's notebook for grading: plain JSON, checked, one clear error per problem.

(The authoring tools use nbformat; the grading path reads the JSON itself so that it
starts in milliseconds — importing nbformat costs over a second with Jupyter installed.)
"""
import json
import re
from pathlib import Path

STEM = re.compile(r"^(\d\d)_")
MAX_BYTES = 64 * 2**20   # of one notebook file; more is refused, not read
MAX_ITEMS = 1 << 20      # JSON values (lists, objects, numbers, strings) in one notebook
MAX_DIGITS = 100         # of one JSON integer (a notebook's are counts and versions)


class BadInput(Exception):
    """Input the grader cannot use; the message is one line for the user."""


def _int(text):
    if len(text) > MAX_DIGITS:
        raise ValueError(f"a number of {len(text)} digits")
    return int(text)


def code_cells(path):
    """Cell sources of a notebook, in order; non-code cells are '' so cell numbers match.

    Linear in the file's size, and bounded: at most MAX_BYTES are read, and a file whose JSON
    holds more than MAX_ITEMS values (counted as its brackets and commas, before parsing) is
    refused, so reading one holds at most about 9 bytes per byte of the file plus
    MAX_ITEMS * 100 bytes.  Every problem is a BadInput with one line."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_BYTES + 1)
    except IsADirectoryError:
        raise BadInput(f"{path} is a folder, not a notebook") from None
    except OSError as e:
        raise BadInput(f"cannot read {path}: {e.strerror}") from None
    if len(raw) > MAX_BYTES:
        raise BadInput(f"{path} is larger than {MAX_BYTES // 2**20} MiB")
    if raw.count(b"[") + raw.count(b"{") + raw.count(b",") > MAX_ITEMS:
        raise BadInput(f"{path} is not a notebook the grader can read (more than {MAX_ITEMS} JSON values)")
    try:
        text = raw.decode("utf-8-sig")
        del raw
        nb = json.loads(text, parse_int=_int)
    except UnicodeDecodeError:
        raise BadInput(f"{path} is not a notebook: it is not UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise BadInput(f"{path} is not valid notebook JSON (line {e.lineno}, column {e.colno}: {e.msg})") from None
    except (ValueError, RecursionError, MemoryError) as e:
        why = str(e)[:100] if isinstance(e, ValueError) else "nested too deeply or too large"
        raise BadInput(f"{path} is not a notebook the grader can read ({why})") from None
    if not isinstance(nb, dict):
        raise BadInput(f"{path} is not a Jupyter notebook (it has no list of cells)")
    fmt = nb.get("nbformat")
    if fmt is None and not isinstance(nb.get("cells"), list) and "worksheets" not in nb:
        raise BadInput(f"{path} is not a Jupyter notebook (it has no list of cells)")
    if fmt != 4:
        shown = fmt if isinstance(fmt, (int, float, str)) and len(str(fmt)) <= 20 else "unknown"
        raise BadInput(f"{path} is notebook format {shown!r}; the grader reads format 4 "
                       "(open and save it in a current Jupyter)")
    if not isinstance(nb.get("cells"), list):
        raise BadInput(f"{path} is not a Jupyter notebook (it has no list of cells)")
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
