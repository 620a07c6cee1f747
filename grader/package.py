"""Build the Gradescope autograder:  python -m grader.package gradescope OUT.zip

    python -m grader.package gradescope autograder.zip
    python -m grader.package gradescope autograder.zip --only 01 --visibility after_due_date \\
        --exercise-visibility bernoulli_mask=visible --timeout 10 --memory 512

The zip holds setup.sh and run_autograder (from grader/templates/gradescope/), the grader
package, the reference solutions (the checks read the instructor's code from them), a
requirements.txt pinned to the NumPy and pytest versions installed here, and
gradescope.json with the settings given.  Upload it in the assignment's "Configure
Autograder" page with the Ubuntu 24.04 base image (Python 3.12).  OUT.zip is never
overwritten unless --force is given.
"""
import argparse
import json
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from grader import nbfile

GRADER_DIR = Path(__file__).resolve().parent
ROOT = GRADER_DIR.parent
TEMPLATES = GRADER_DIR / "templates" / "gradescope"
VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")
REQUIREMENTS = ("numpy", "pytest")


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
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--timeout", type=float, default=10.0, help="seconds per call (default 10)")
    g.add_argument("--submission-timeout", type=float, default=480.0,
                   help="seconds for all of a submission's calls (default 480; Gradescope stops "
                   "the whole run at its own limit, 10 minutes by default)")
    g.add_argument("--memory", type=int, default=512, metavar="MIB",
                   help="address space per learner process (default 512: Gradescope's default "
                   "container has 768 MB)")
    g.add_argument("--jobs", type=int, default=1, help="processes grading one submission's "
                   "notebooks in parallel (default 1: Gradescope gives half a CPU by default)")
    g.add_argument("--loose", action="store_true", help="require numpy/pytest >= the versions "
                   "installed here instead of exactly them")
    g.add_argument("--force", action="store_true", help="overwrite OUT.zip if it exists")
    return p


def requirements(loose=False):
    from importlib import metadata
    op = ">=" if loose else "=="
    return "".join(f"{name}{op}{metadata.version(name)}\n" for name in REQUIREMENTS)


def files(root=ROOT):
    """(path in the zip, path here) of the grader, the course's data and the reference solutions."""
    out = []
    for f in sorted(GRADER_DIR.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and f.suffix in (".py", ".ini") \
                and GRADER_DIR / "templates" not in f.parents:
            out.append((f"grader/{f.relative_to(GRADER_DIR).as_posix()}", f))
    data = root / "data"   # the course's data sets and their loader, which notebooks import
    out += [(f"data/{f.relative_to(data).as_posix()}", f) for f in sorted(data.rglob("*"))
            if f.is_file() and "__pycache__" not in f.parts] if data.is_dir() else []
    solutions = sorted((root / "solutions").glob("*.ipynb"))
    if not solutions:
        raise nbfile.BadInput(f"no reference solutions in {root / 'solutions'}: the checks need them")
    out += [(f"solutions/{f.name}", f) for f in solutions]
    return out


def without_outputs(path):
    """The notebook's JSON without outputs (the checks read only its code)."""
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"], cell["execution_count"] = [], None
    return json.dumps(nb, indent=1, ensure_ascii=False) + "\n"


def _text(z, name, text):
    info = zipfile.ZipInfo(name, date_time=(2000, 1, 1, 0, 0, 0))
    info.external_attr = (0o100644 << 16)
    info.compress_type = zipfile.ZIP_DEFLATED
    z.writestr(info, text)


def build_gradescope(a):
    out = Path(a.out)
    if out.exists() and not a.force:
        raise nbfile.BadInput(f"{out} already exists (add --force to replace it)")
    if not out.parent.is_dir():
        raise nbfile.BadInput(f"folder {out.parent} does not exist")
    config = {"only": a.only, "seed": a.seed, "timeout": a.timeout, "submission_timeout": a.submission_timeout,
              "memory": a.memory, "jobs": max(1, a.jobs), "visibility": a.visibility,
              "stdout_visibility": a.stdout_visibility,
              "exercise_visibility": dict(a.exercise_visibility)}
    from grader.cli import check_only, known_exercises
    check_only(a.only)
    unknown = [e for e in config["exercise_visibility"] if e not in known_exercises()]
    if unknown:
        raise nbfile.BadInput(f"no exercise called {unknown[0]!r} (known: {', '.join(known_exercises())})")
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    os.close(fd)
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
            for name in ("setup.sh", "run_autograder"):
                info = zipfile.ZipInfo(name)
                info.external_attr = (0o100755 << 16)
                info.compress_type = zipfile.ZIP_DEFLATED
                z.writestr(info, (TEMPLATES / name).read_bytes())
            _text(z, "gradescope.json", json.dumps(config, indent=2) + "\n")
            _text(z, "requirements.txt", requirements(a.loose))
            listed = files()
            for name, path in listed:
                if path.suffix == ".ipynb":
                    _text(z, name, without_outputs(path))
                else:
                    z.write(path, name)
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out, len(listed) + 4


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
