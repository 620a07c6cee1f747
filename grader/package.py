"""Build the Gradescope autograder:  python -m grader.package gradescope OUT.zip

    python -m grader.package gradescope autograder.zip
    python -m grader.package gradescope autograder.zip --only 01 --visibility after_due_date \\
        --exercise-visibility bernoulli_mask=visible --timeout 10 --memory 512

The zip holds only what grading needs: setup.sh and run_autograder (from
grader/templates/gradescope/), the grader's modules (not the generator, the benchmark or this
packager), the course's data files and their loader, the reference solutions without outputs
(the checks read the instructor's code from them), a requirements.txt pinned to the NumPy
version installed here (grading needs nothing else), and gradescope.json with the settings given.  It is
reproducible: the same files and settings give the same bytes on any machine (sorted entries,
one fixed timestamp, fixed permissions, stored without compression so no zlib version shows).
Upload it in the assignment's "Configure Autograder" page with the Ubuntu 24.04 base image
(Python 3.12).  OUT.zip is never overwritten unless --force is given.
"""
import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from grader import nbfile
from grader.config import DEFAULT
from grader.config import GRADESCOPE as GS

GRADER_DIR = Path(__file__).resolve().parent
TEMPLATES = GRADER_DIR / "templates" / "gradescope"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
REQUIREMENTS = ("numpy",)
# grader/ modules that grading never imports: they stay out of the autograder
NOT_FOR_GRADING = {"benchmark.py", "generate.py", "package.py", "pytest_plugin.py", "conftest.py"}
EXECUTABLE = ("setup.sh", "run_autograder")
# every entry gets this timestamp and these permissions, whatever the files here have
ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def _visibility(text):
    if "=" not in text or text.split("=", 1)[1] not in VISIBILITIES:
        raise argparse.ArgumentTypeError(f"expected EXERCISE=VISIBILITY with VISIBILITY one of "
                                         f"{', '.join(VISIBILITIES)}")
    return tuple(text.split("=", 1))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise nbfile.BadInput(f"{message} (see python -m grader.package --help)")


def parser():
    p = _Parser(prog="python -m grader.package", description="Package the grader for a platform.")
    sub = p.add_subparsers(dest="platform", required=True)
    g = sub.add_parser("gradescope", help="a Gradescope autograder zip")
    g.add_argument("out", metavar="OUT.zip")
    g.add_argument("--visibility", choices=VISIBILITIES, default=None,
                   help="visibility of every test (default: Gradescope's, visible)")
    g.add_argument("--exercise-visibility", type=_visibility, action="append", default=[],
                   metavar="EXERCISE=VISIBILITY", help="visibility of one exercise's tests")
    g.add_argument("--stdout-visibility", choices=VISIBILITIES, default="hidden",
                   help="who sees the autograder's printed log (default hidden: instructors only)")
    g.add_argument("--only", metavar="EXERCISES", default=None,
                   help="the notebooks or exercises this assignment grades, e.g. 01 or 01,02 "
                   "(default: all; others would count as missing)")
    g.add_argument("--seed", type=int, default=DEFAULT.seed)
    g.add_argument("--timeout", type=float, default=GS["timeout"],
                   help=f"seconds per call (default {GS['timeout']:g})")
    g.add_argument("--submission-timeout", type=float, default=GS["submission_timeout"],
                   help=f"seconds for all of a submission's calls (default {GS['submission_timeout']:g}; "
                   "Gradescope stops the whole run at its own limit, 10 minutes by default)")
    g.add_argument("--memory", type=int, default=GS["memory"], metavar="MIB",
                   help=f"address space per learner process (default {GS['memory']}: Gradescope's "
                   "default container has 768 MB)")
    g.add_argument("--jobs", type=int, default=GS["jobs"], help="kept for compatibility: one "
                   f"submission is graded by one process (default {GS['jobs']})")
    g.add_argument("--loose", action="store_true", help="require numpy >= the version "
                   "installed here instead of exactly it")
    g.add_argument("--force", action="store_true", help="overwrite OUT.zip if it exists")
    return p


def requirements(loose=False):
    from importlib import metadata
    op = ">=" if loose else "=="
    return "".join(f"{name}{op}{metadata.version(name)}\n" for name in REQUIREMENTS)


def files(root=None):
    """Sorted (path in the zip, path here) of the grader, the course's data and the reference
    solutions: what grading reads, nothing else.  root: the course folder (course_root())."""
    from grader.config import CourseNotFound, course_root
    try:
        root = Path(root) if root else course_root()
    except CourseNotFound as e:
        raise nbfile.BadInput(str(e)) from None
    out = []
    skip = {GRADER_DIR / "templates", GRADER_DIR / "course"}   # course/: an installed copy
    for f in GRADER_DIR.rglob("*"):
        if f.is_file() and f.suffix in (".py", ".ini") and "__pycache__" not in f.parts \
                and not skip.intersection(f.parents) and f.name not in NOT_FOR_GRADING:
            out.append((f"grader/{f.relative_to(GRADER_DIR).as_posix()}", f))
    # the data sets and their loader, which notebooks import; not the scripts that remake them
    data = root / "data"
    for f in (data.rglob("*") if data.is_dir() else []):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix not in (".md", ".pyc") \
                and (f.suffix != ".py" or f.name in ("__init__.py", "load.py")):
            out.append((f"data/{f.relative_to(data).as_posix()}", f))
    solutions = sorted((root / "solutions").glob("*.ipynb"))
    if not solutions:
        raise nbfile.BadInput(f"no reference solutions in {root / 'solutions'}: the checks need them")
    out += [(f"solutions/{f.name}", f) for f in solutions]
    return sorted(out)


def without_outputs(path):
    """The notebook's JSON without outputs (the checks read only its code)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def entries(a):
    """Sorted (name in the zip, bytes, executable?) of everything the autograder zip holds."""
    config = {"only": a.only, "seed": a.seed, "timeout": a.timeout, "submission_timeout": a.submission_timeout,
              "memory": a.memory, "jobs": max(1, a.jobs), "visibility": a.visibility,
              "stdout_visibility": a.stdout_visibility,
              "exercise_visibility": dict(sorted(dict(a.exercise_visibility).items()))}
    out = [(name, (TEMPLATES / name).read_bytes(), True) for name in EXECUTABLE]
    out.append(("gradescope.json", (json.dumps(config, indent=2) + "\n").encode(), False))
    out.append(("requirements.txt", requirements(a.loose).encode(), False))
    for name, path in files():
        data = without_outputs(path).encode("utf-8") if path.suffix == ".ipynb" else path.read_bytes()
        out.append((name, data, False))
    return sorted(out)


def write_zip(target, items):
    """A zip whose bytes depend only on items: no timestamps, owners or modes from here."""
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as z:
        for name, data, executable in items:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system = 3                                   # Unix, so the modes count
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            info.compress_type = zipfile.ZIP_STORED
            z.writestr(info, data)


def build_gradescope(a):
    out = Path(a.out)
    if out.exists() and not a.force:
        raise nbfile.BadInput(f"{out} already exists (add --force to replace it)")
    if not out.parent.is_dir():
        raise nbfile.BadInput(f"folder {out.parent} does not exist")
    from grader.cli import check_only, known_exercises
    check_only(a.only)
    unknown = [e for e, _ in a.exercise_visibility if e not in known_exercises()]
    if unknown:
        raise nbfile.BadInput(f"no exercise called {unknown[0]!r} (known: {', '.join(known_exercises())})")
    items = entries(a)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        write_zip(tmp, items)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out, len(items)


def main(argv=None):
    try:
        a = parser().parse_args(argv)
        out, n = build_gradescope(a)
    except nbfile.BadInput as e:
        print(f"package: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({n} files, {out.stat().st_size / 1024:.0f} KiB).\n"
          "On Gradescope: Configure Autograder -> Zip file upload -> Base image Ubuntu 24.04 -> "
          "Update Autograder; then Test Autograder with a learner's notebooks.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
