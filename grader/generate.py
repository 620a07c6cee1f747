"""Make the student notebooks from the instructor's: python -m grader.generate

    python -m grader.generate                 # every solutions/*.ipynb -> notebooks/
    python -m grader.generate solutions/01_bernoulli_mask.ipynb
    python -m grader.generate --out /tmp/release   # somewhere else
    python -m grader.generate --check          # exit 1 if notebooks/ is out of date

Each step is a small function: replace the instructor-only cells (those tagged
`worked-answer`: the worked answers to the questions) by an empty "Your answer:" cell for the
learner to write in, find and check the markers, replace
solution regions, clear outputs, clean metadata (a cell keeps only its tags, such as nbval's
`nbval-check-output`), stamp a fingerprint.  A notebook in the output folder that was
edited since it was generated (its cells no longer match its fingerprint) is never
overwritten unless --force is given.
"""
import argparse
import copy
import hashlib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
CODE_STUB = ["# YOUR CODE HERE", "raise NotImplementedError()"]
MARKDOWN_STUB = "YOUR ANSWER HERE"
KEEP_CELL_METADATA = ("tags",)
INSTRUCTOR_ONLY_TAG = "worked-answer"   # cells with this tag exist in solutions/ only
ANSWER_PROMPT = "**Your answer:**"       # what the learner finds in a worked answer's place


class MarkerError(ValueError):
    """Malformed solution markers; the message names notebook, cell and line."""


def regions(lines, where=""):
    """[(begin, end)] line indices of the solution regions; MarkerError if malformed."""
    out, start = [], None
    for i, line in enumerate(lines):
        s = line.strip()
        if s.startswith(BEGIN):
            if start is not None:
                raise MarkerError(f"{where}line {i + 1}: {BEGIN} inside another region "
                                  f"(opened at line {start + 1})")
            start = i
        elif s.startswith(END):
            if start is None:
                raise MarkerError(f"{where}line {i + 1}: {END} without a {BEGIN}")
            out.append((start, i))
            start = None
        elif "BEGIN SOLUTION" in s or "END SOLUTION" in s:
            raise MarkerError(f"{where}line {i + 1}: misspelt marker {s!r} (write {BEGIN!r} or {END!r})")
    if start is not None:
        raise MarkerError(f"{where}line {start + 1}: {BEGIN} has no matching {END}")
    return out


def replace_regions(source, stub_lines, where=""):
    """The source with every solution region replaced by stub_lines at the marker's indent."""
    lines = source.split("\n")
    found = regions(lines, where)
    for begin, end in reversed(found):
        indent = re.match(r"\s*", lines[begin]).group(0)
        lines[begin:end + 1] = [indent + s for s in stub_lines]
    return "\n".join(lines)


def instructor_only(cell):
    """True for a cell that never reaches learners: one tagged `worked-answer`."""
    tags = cell.get("metadata", {}).get("tags", [])
    return isinstance(tags, list) and INSTRUCTOR_ONLY_TAG in tags


def answer_cell(worked):
    """The learner's empty answer cell that takes a worked answer's place: one "Your answer"
    line, or one numbered line per answer when the worked answer holds several (**1.**, **2.**)."""
    import nbformat
    numbers = re.findall(r"^\*\*(?:Worked answer )?(\d+)\.\*\*", worked.get("source", ""), re.M)
    source = ("**Your answers:**\n\n" + "\n\n".join(f"**{k}.** " for k in numbers)
              if len(numbers) > 1 else ANSWER_PROMPT)
    cell = nbformat.v4.new_markdown_cell(source)
    # a stable id (the generator's output must not change from run to run)
    cell["id"] = "answer-" + (worked.get("id") or hashlib.sha256(worked.get("source", "").encode()).hexdigest()[:12])
    return cell


def student_cell(cell, where=""):
    """One cell of the student version (a copy; the input is not changed)."""
    cell = copy.deepcopy(cell)
    if cell["cell_type"] == "code":
        cell["source"] = replace_regions(cell["source"], CODE_STUB, where)
        cell["outputs"] = []
        cell["execution_count"] = None
    elif cell["cell_type"] == "markdown":
        cell["source"] = replace_regions(cell["source"], [MARKDOWN_STUB], where)
    cell["metadata"] = {k: v for k, v in cell.get("metadata", {}).items() if k in KEEP_CELL_METADATA}
    return cell


def clean_metadata(meta, source_name):
    keep = {k: meta[k] for k in ("kernelspec",) if k in meta}
    lang = meta.get("language_info", {})
    if "name" in lang:
        keep["language_info"] = {"name": lang["name"]}
    keep["course"] = {"generated_from": source_name}
    return keep


def fingerprint(nb):
    """Hash of what a learner edits: cell types, sources and outputs."""
    h = hashlib.sha256()
    for c in nb["cells"]:
        h.update(json.dumps([c["cell_type"], c["source"], c.get("outputs", [])],
                            sort_keys=True).encode())
    return h.hexdigest()


def student_version(nb, name):
    """The student notebook for solution notebook nb (an nbformat NotebookNode)."""
    import nbformat
    out = nbformat.v4.new_notebook()
    out.nbformat, out.nbformat_minor = nb.nbformat, nb.nbformat_minor
    out.cells = [answer_cell(c) if instructor_only(c) else student_cell(c, f"{name}, cell {i}: ")
                 for i, c in enumerate(nb.cells, start=1)]
    out.metadata = clean_metadata(nb.metadata, name)
    out.metadata["course"]["fingerprint"] = fingerprint(out)
    return out


def edited(path):
    """True if the notebook at path was changed since it was generated (or is not ours)."""
    import nbformat
    try:
        nb = nbformat.read(str(path), as_version=4)
    except Exception:  # noqa: BLE001 - unreadable: treat as the learner's, never overwrite
        return True
    return nb.metadata.get("course", {}).get("fingerprint") != fingerprint(nb)


def render(nb):
    import nbformat
    return nbformat.writes(nb) + "\n"


def leaks(student, solution):
    """Problems that would hand out answers: markers, outputs, worked answers, or solution
    lines in student."""
    problems = []
    outside, inside = set(), set()
    for c in solution.cells:
        lines = c.source.split("\n")
        spans = regions(lines)
        in_region = {i for b, e in spans for i in range(b, e + 1)}
        for i, ln in enumerate(lines):
            (inside if i in in_region else outside).add(ln.strip())
    secret = {s for s in inside - outside if len(s) > 8 and not s.startswith("#")}
    for i, c in enumerate(student.cells, start=1):
        if instructor_only(c):
            problems.append(f"cell {i} is a worked answer (tagged {INSTRUCTOR_ONLY_TAG!r})")
        if "BEGIN SOLUTION" in c.source or "END SOLUTION" in c.source:
            problems.append(f"cell {i} still has a solution marker")
        if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None):
            problems.append(f"cell {i} has outputs or an execution count")
        for ln in c.source.split("\n"):
            if ln.strip() in secret:
                problems.append(f"cell {i} contains solution code: {ln.strip()!r}")
    return problems


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage block
        print(f"generate: {message} (see python -m grader.generate --help)", file=sys.stderr)
        sys.exit(2)


def main(argv=None):
    ap = _Parser(prog="python -m grader.generate", description=__doc__.split("\n")[0])
    ap.add_argument("notebooks", nargs="*", help="solution notebooks (default: solutions/*.ipynb)")
    ap.add_argument("--out", help="output folder (default: notebooks/)")
    ap.add_argument("--force", action="store_true", help="overwrite notebooks edited since generation")
    ap.add_argument("--check", action="store_true", help="write nothing; exit 1 if the output is out of date")
    a = ap.parse_args(argv)
    import nbformat
    srcs = [Path(p) for p in a.notebooks] or sorted((ROOT / "solutions").glob("*.ipynb"))
    out_dir = Path(a.out) if a.out else ROOT / "notebooks"
    status = 0
    for src in srcs:
        try:
            nb = nbformat.read(str(src), as_version=4)
            text = render(student_version(nb, f"solutions/{src.name}"))
        except FileNotFoundError:
            print(f"generate: no such notebook: {src}", file=sys.stderr)
            return 2
        except MarkerError as e:
            print(f"generate: {e}", file=sys.stderr)
            return 2
        except Exception as e:  # noqa: BLE001 - nbformat's own errors: one line
            print(f"generate: {src} is not a readable notebook ({type(e).__name__}: "
                  f"{str(e).splitlines()[0] if str(e) else ''})", file=sys.stderr)
            return 2
        dest = out_dir / src.name
        current = dest.read_text() if dest.exists() else None
        if a.check:
            if current != text:
                print(f"out of date: {dest} (run python -m grader.generate)")
                status = 1
            continue
        if current == text:
            continue
        if current is not None and edited(dest) and not a.force:
            print(f"generate: not overwriting {dest}: it was edited since it was generated "
                  "(use --force to replace it, or --out DIR to write elsewhere)", file=sys.stderr)
            status = 1
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(".ipynb.tmp")
        tmp.write_text(text)
        tmp.replace(dest)
        print(f"wrote {dest}")
    return status


if __name__ == "__main__":
    sys.exit(main())
