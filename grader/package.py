"""Build what a platform or the learners get.

    python -m grader.package gradescope OUT.zip     the Gradescope autograder (below)
    python -m grader.package release OUT            the student release (build_release)


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
    r = sub.add_parser("release", help="the student release: notebooks, data and a grader without "
                       "solutions, as a folder, a zip and a wheel")
    r.add_argument("out", metavar="OUT", help="a folder that does not exist yet")
    sub.add_parser("links", help="regenerate README's Colab/Binder links and binder/ from pyproject.toml's "
                   "[tool.dropout-course] repository")
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
    from grader import __version__
    config["grader_version"] = __version__
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
        if a.platform == "links":
            from grader.config import course_root
            changed = write_links(course_root())
            print(f"updated {', '.join(changed)}" if changed else "the links were up to date")
            return 0
        if a.platform == "release":
            made = build_release(a.out)
            print(f"wrote the student release in {a.out}:\n" + "\n".join(f"  {m}" for m in made))
            return 0
        out, n = build_gradescope(a)
    except nbfile.BadInput as e:
        print(f"package: {e}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({n} files, {out.stat().st_size / 1024:.0f} KiB).\n"
          "On Gradescope: Configure Autograder -> Zip file upload -> Base image Ubuntu 24.04 -> "
          "Update Autograder; then Test Autograder with a learner's notebooks.")
    return 0




# ---------------------------------------------------------------- the student release
# What learners get (python -m grader.package release OUT): the notebooks, the data and a
# grader without the instructor's code.  Every learner.solution(...) call becomes a replay of
# the results recorded here while grading the reference solutions with the public seed
# (grader/release.py); grading for marks always uses the instructor's full grader.
RELEASE_NAME = "dropout-from-scratch"
# grader/ modules only instructors use: they stay out of the release
NOT_FOR_LEARNERS = NOT_FOR_GRADING
LICENCE_FILES = ("LICENSE", "CHANGELOG.md", "CITATION.cff")


def _flat_requirements(path):
    """The lines of a requirements file with its -r includes inlined, comments dropped."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out += [x for x in _flat_requirements(Path(path).parent / line[3:].strip()) if x not in out]
        elif line and line not in out:
            out.append(line)
    return out


def record_reference_results(root):
    """Grade the reference solutions once with the public (default) seed, recording every
    reference result a check computes; BadInput unless they get full marks."""
    from grader import engine, release
    from grader.config import DEFAULT
    recording = release.Recording()
    real = engine.reference_function
    engine.reference_function = recording.record(real)
    try:
        config = DEFAULT.with_(course=str(root))
        records = engine.grade(engine.load([root / "solutions"], config), config)
    finally:
        engine.reference_function = real
    failed = [r for r in records if r["status"] != "passed"]
    if failed:
        raise nbfile.BadInput(f"the reference solutions do not get full marks ({failed[0]['number']} "
                              f"{failed[0]['exercise']}: {failed[0]['message'][:200]}): fix them first")
    return recording


def release_files(root):
    """Sorted (path in the release, path here): the notebooks, the data with its loader and
    README, the grader's modules without the instructor's tools, and the licence files."""
    out = [(name, path) for name, path in files(root)
           if not name.startswith("solutions/") and not name.startswith("data/")]
    data = root / "data"
    for f in sorted(data.rglob("*")):
        if f.is_file() and "__pycache__" not in f.parts and (
                f.suffix not in (".py", ".pyc") or f.name in ("__init__.py", "load.py")):
            out.append((f"data/{f.relative_to(data).as_posix()}", f))
    out += [(f"notebooks/{f.name}", f) for f in sorted((root / "notebooks").glob("*.ipynb"))]
    out += [(name, root / name) for name in LICENCE_FILES if (root / name).is_file()]
    return sorted(out)


def release_readme(version, root):
    links = links_block(root).split("\n", 1)[1].rsplit("\n", 1)[0]   # without the markers
    return f"""# Dropout, from scratch — the course (version {version})

NumPy notebooks that teach dropout, with a grader that checks your work as you go.

```bash
python -m pip install -r requirements.txt
jupyter lab notebooks/
```

Open `notebooks/01_bernoulli_mask.ipynb` and run the first cell. After each exercise,
`check("bernoulli_mask")` (the cell is already there) says what passed and, for what did not,
what went wrong and a hint; `python -m grader notebooks/` grades them all from a shell.

This release holds no solutions. A few checks compare your code with the instructor's
(the timing checks); here they say "not checked by the student release", and they are run
when your work is graded. Your grade comes from the instructor's grader, which may use other
random inputs than this copy: code that is right passes both.

Without this folder (a notebook on its own, Colab): `pip install` the wheel
`dropout_from_scratch-{version}-py3-none-any.whl` that comes with this release (or this folder:
`pip install .`, or `git+` the repository it is published in); it holds this grader and the
data sets. Binder reads `binder/requirements.txt`.

## One click

{links}

Licences: see LICENSE (code: MIT; notebook text and figures: CC BY 4.0; the digits data: CC BY 4.0).
"""


def release_pyproject(root, version):
    """pyproject.toml of the release folder: `pip install .` (or git+URL of a repository holding
    the release) installs its grader with the data at grader/course/data — never solutions."""
    import tomllib
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    q = json.dumps
    extras = "".join(f"{k} = {q(v)}\n" for k, v in project.get("optional-dependencies", {}).items())
    return (f"# The student release of {q(project['name'])} (python -m grader.package release): no solutions.\n"
            '[build-system]\nrequires = ["hatchling>=1.26"]\nbuild-backend = "hatchling.build"\n\n'
            f"[project]\nname = {q(project['name'])}\nversion = {q(version)}\n"
            f"description = {q(project.get('description', '') + ' (student release)')}\n"
            f"requires-python = {q(project.get('requires-python', '>=3.11'))}\n"
            + (f"license = {q(project['license'])}\n" if isinstance(project.get("license"), str) else "")
            + f"classifiers = {q(project.get('classifiers', []))}\n"
            f"dependencies = {q(project.get('dependencies', []))}\n\n"
            f"[project.optional-dependencies]\n{extras}\n"
            '[project.scripts]\ndropout-grader = "grader.launch:main"\n\n'
            '[tool.hatch.build.targets.wheel]\npackages = ["grader"]\n\n'
            '[tool.hatch.build.targets.wheel.force-include]\n"data" = "grader/course/data"\n')


def release_entries(root, manifest):
    """(name, bytes, executable?) of the release folder."""
    out = []
    for name, path in release_files(root):
        data = without_outputs(path).encode() if name.startswith("notebooks/") else path.read_bytes()
        out.append((name, data, False))
    out.append(("grader/release.json", (json.dumps(manifest, indent=0, sort_keys=True) + "\n").encode(), False))
    reqs = _flat_requirements(root / "requirements" / "learner.txt")
    out.append(("requirements.txt", ("# python -m pip install -r requirements.txt\n" + "\n".join(reqs)
                                     + "\n").encode(), False))
    out.append(("README.md", release_readme(manifest["version"], root).encode(), False))
    out.append(("pyproject.toml", release_pyproject(root, manifest["version"]).encode(), False))
    out.append(("binder/requirements.txt", binder_requirements(root).encode(), False))
    # the class repository's feedback workflow (the release is its template repository)
    out.append((".github/workflows/grade.yml", (GRADER_DIR / "templates" / "github-actions" / "grade.yml").read_bytes(),
                False))
    return sorted(out)


def _wheel_metadata(root, version):
    import tomllib
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    lines = ["Metadata-Version: 2.1", f"Name: {project['name']}", f"Version: {version}",
             f"Summary: {project.get('description', '')} (student release: no solutions)",
             f"Requires-Python: {project.get('requires-python', '>=3.11')}"]
    lic = project.get("license")
    if isinstance(lic, str):
        lines.append(f"License-Expression: {lic}")
    lines += [f"Classifier: {c}" for c in project.get("classifiers", [])]
    lines += [f"Project-URL: {k}, {v}" for k, v in project.get("urls", {}).items()]
    lines += [f"Requires-Dist: {d}" for d in project.get("dependencies", [])]
    for extra, deps in project.get("optional-dependencies", {}).items():
        lines.append(f"Provides-Extra: {extra}")
        lines += [f'Requires-Dist: {d}; extra == "{extra}"' for d in deps]
    return "\n".join(lines) + "\n"


def wheel_entries(root, folder_items, version):
    """A wheel of the release's grader, with the data at grader/course/data/ (where an
    installed grader finds its course), as (name, bytes, executable?)."""
    import base64
    import hashlib
    dist = f"dropout_from_scratch-{version}.dist-info"
    items = [(name, data) for name, data, _ in folder_items if name.startswith("grader/")]
    items += [(f"grader/course/{name}", data) for name, data, _ in folder_items if name.startswith("data/")]
    items += [(f"{dist}/METADATA", _wheel_metadata(root, version).encode()),
              (f"{dist}/WHEEL", b"Wheel-Version: 1.0\nGenerator: grader.package\nRoot-Is-Purelib: true\n"
                                b"Tag: py3-none-any\n"),
              (f"{dist}/entry_points.txt", b"[console_scripts]\ndropout-grader = grader.launch:main\n")]
    items += [(f"{dist}/licenses/{name}", data) for name, data, _ in folder_items if name in LICENCE_FILES]
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b'=').decode()}"
                     f",{len(data)}\n" for name, data in sorted(items)) + f"{dist}/RECORD,,\n"
    items.append((f"{dist}/RECORD", record.encode()))
    return [(name, data, False) for name, data in sorted(items)]


def build_release(out):
    """OUT/dropout-from-scratch/ (the folder learners get), OUT/dropout-from-scratch-V.zip (the
    same, zipped) and OUT/dropout_from_scratch-V-py3-none-any.whl (its grader and data,
    installable).  OUT must not exist; it appears complete or not at all."""
    from grader import __version__, release
    from grader.config import CourseNotFound, course_root
    out = Path(out)
    if out.exists() or out.is_symlink():
        raise nbfile.BadInput(f"{out} already exists: give a folder that does not exist yet")
    if not out.parent.is_dir():
        raise nbfile.BadInput(f"folder {out.parent} does not exist")
    try:
        root = course_root()
    except CourseNotFound as e:
        raise nbfile.BadInput(str(e)) from None
    if release.ACTIVE:
        raise nbfile.BadInput("this is a student release: build releases from the instructor's course")
    recording = record_reference_results(root)
    manifest = recording.manifest(version=__version__, commit=release.git_commit(root), seed=DEFAULT.seed,
                                  what="the student release: reference results for the public seed, no code")
    items = release_entries(root, manifest)
    wheel = wheel_entries(root, items, __version__)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        folder = tmp / RELEASE_NAME
        for name, data, _ in items:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        zip_name = f"{RELEASE_NAME}-{__version__}.zip"
        write_zip(tmp / zip_name, [(f"{RELEASE_NAME}/{n}", d, x) for n, d, x in items])
        wheel_name = f"dropout_from_scratch-{__version__}-py3-none-any.whl"
        write_zip(tmp / wheel_name, wheel)
        os.chmod(tmp, 0o755)
        os.rename(tmp, out)
    except BaseException:
        import shutil
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    n = len(manifest["replay"])
    return [f"{RELEASE_NAME}/  ({len(items)} files: notebooks/, data/, grader/ without solutions)",
            f"{zip_name}  (the same folder, zipped)",
            f"{wheel_name}  (pip install it: the grader and the data)",
            f"reference results recorded for the public seed: {n} call{'s' if n != 1 else ''}; not recorded "
            f"(checked only by the instructor's grader): {'; '.join(manifest['not_recorded']) or 'none'}"]


# ---------------------------------------------------------------- one-click start
# The Colab and Binder links, the install lines and binder/ are generated from ONE setting,
# pyproject.toml's [tool.dropout-course] repository (and branch):  python -m grader.package links
LINKS_BEGIN = "<!-- links: generated from pyproject.toml [tool.dropout-course] by python -m grader.package links -->"
LINKS_END = "<!-- /links -->"


def course_setting(root):
    """{"repository": "owner/name", "branch": ...} from pyproject.toml (BadInput if unset)."""
    import tomllib
    try:
        setting = tomllib.loads((Path(root) / "pyproject.toml").read_text())["tool"]["dropout-course"]
        owner, name = setting["repository"].split("/")
    except (OSError, KeyError, ValueError, tomllib.TOMLDecodeError):
        raise nbfile.BadInput("pyproject.toml has no [tool.dropout-course] repository = \"owner/name\"") from None
    return {"repository": f"{owner}/{name}", "branch": setting.get("branch", "main")}


def links_block(root):
    """README's block of Colab/Binder links and install lines, from the repository setting."""
    s = course_setting(root)
    repo, branch = s["repository"], s["branch"]
    rows = ["| notebook | Colab | Binder |", "|---|---|---|"]
    for nb in sorted((Path(root) / "notebooks").glob("*.ipynb")):
        path = f"notebooks/{nb.name}"
        rows.append(f"| `{nb.stem}` | [![Open in Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                    f"(https://colab.research.google.com/github/{repo}/blob/{branch}/{path}) | "
                    f"[![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/{repo}/{branch}"
                    f"?labpath={path.replace('/', '%2F')}) |")
    return "\n".join([
        LINKS_BEGIN, "", *rows, "",
        "Binder starts JupyterLab in a copy of the repository with `binder/requirements.txt` installed: "
        "run the first cell and go. In Colab, run this in a cell first (Colab has NumPy, Matplotlib, "
        "Keras and JAX already):", "", "```python",
        f'%pip install -q "git+https://github.com/{repo}@{branch}"', "```", "",
        "Anywhere else, a notebook on its own gets the grader, the data sets and the `dropout-grader` "
        "command with:", "", "```bash",
        f'python -m pip install "dropout-from-scratch[notebooks] @ git+https://github.com/{repo}@{branch}"',
        "```", "", LINKS_END])


def binder_requirements(root):
    """binder/requirements.txt: the learner's requirements, flat (repo2docker reads the file
    before the rest of the repository is there, so it cannot follow -r)."""
    return ("# Binder's environment (generated by python -m grader.package links from requirements/learner.txt)\n"
            + "\n".join(_flat_requirements(Path(root) / "requirements" / "learner.txt")) + "\n")


def write_links(root):
    """Rewrite README.md's links block and binder/requirements.txt from the setting; the
    names of the files changed."""
    root = Path(root)
    readme = root / "README.md"
    text = readme.read_text()
    if LINKS_BEGIN not in text or LINKS_END not in text:
        raise nbfile.BadInput(f"README.md has no links block ({LINKS_BEGIN} ... {LINKS_END})")
    head, rest = text.split(LINKS_BEGIN, 1)
    new = head + links_block(root) + rest.split(LINKS_END, 1)[1]
    changed = []
    if new != text:
        readme.write_text(new)
        changed.append("README.md")
    binder = root / "binder" / "requirements.txt"
    want = binder_requirements(root)
    if not binder.is_file() or binder.read_text() != want:
        binder.parent.mkdir(exist_ok=True)
        binder.write_text(want)
        changed.append("binder/requirements.txt")
    return changed


if __name__ == "__main__":
    sys.exit(main())
