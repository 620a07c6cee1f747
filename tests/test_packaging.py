"""The course as an installable package (pyproject.toml) and its requirements by audience:
the wheel carries the grader and a copy of the course at grader/course/ (never a top-level
`data`), an installed grader finds that copy from any folder, and the requirements files say
what pyproject.toml and the notebooks say."""
import ast
import importlib.util
import json
import os
import re
import subprocess
import sys
import tomllib
import zipfile

import pytest

from tests.grading import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
REQ = ROOT / "requirements"
SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
# import name -> distribution, where they differ
DISTRIBUTION = {"yaml": "pyyaml", "PIL": "pillow"}


def requirements(path):
    """{distribution name: specifier} of a requirements file, following -r includes."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out.update(requirements(path.parent / line[3:].strip()))
        elif line:
            name, spec = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", line).groups()
            out[name.lower()] = spec.replace(" ", "")
    return out


def specs(deps):
    return dict(requirements_line(d) for d in deps)


def requirements_line(dep):
    name, spec = re.match(r"([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?\s*(.*)", dep).groups()
    return name.lower(), spec.replace(" ", "")


def test_metadata_names_the_package_and_its_command():
    project = PYPROJECT["project"]
    assert project["name"] == "dropout-from-scratch"
    assert project["scripts"] == {"dropout-grader": "grader.launch:main"}
    assert project["requires-python"] == ">=3.11"
    wheel = PYPROJECT["tool"]["hatch"]["build"]["targets"]["wheel"]
    assert wheel["packages"] == ["grader"], "only the grader is a top-level package"
    assert wheel["force-include"] == {"solutions": "grader/course/solutions", "data": "grader/course/data"}


def test_licence_metadata_and_one_version_everywhere():
    import grader
    from grader.package import course_setting
    project = PYPROJECT["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert PYPROJECT["tool"]["hatch"]["version"]["path"] == "grader/__init__.py"
    assert re.fullmatch(r"\d+\.\d+\.\d+", grader.__version__)
    assert project["license"] == "MIT AND CC-BY-4.0" and project["license-files"] == ["LICENSE"]
    licence = (ROOT / "LICENSE").read_text()
    assert "MIT License" in licence and "CC BY 4.0" in licence and "digits" in licence
    assert any(c.startswith("Intended Audience :: Education") for c in project["classifiers"])
    assert f"## [{grader.__version__}]" in (ROOT / "CHANGELOG.md").read_text()
    cff = (ROOT / "CITATION.cff").read_text()
    repo = course_setting(ROOT)["repository"]
    assert f'version: "{grader.__version__}"' in cff and f"https://github.com/{repo}" in cff
    assert all(url.startswith(f"https://github.com/{repo}") for url in project["urls"].values())
    proc = subprocess.run([sys.executable, "-m", "grader", "--version"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.strip() == f"dropout-from-scratch {grader.__version__}"


def test_one_click_links_and_binder_come_from_the_one_repository_setting():
    from grader.package import LINKS_BEGIN, LINKS_END, binder_requirements, links_block
    readme = (ROOT / "README.md").read_text()
    assert "OWNER/REPO" not in readme, "no placeholder left for the reader to edit"
    block = LINKS_BEGIN + readme.split(LINKS_BEGIN, 1)[1].split(LINKS_END, 1)[0] + LINKS_END
    assert block == links_block(ROOT), "run python -m grader.package links"
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        assert "colab.research.google.com/github/" in block and f"notebooks/{nb.name})" in block
        assert f"labpath=notebooks%2F{nb.name}" in block
    assert (ROOT / "binder" / "requirements.txt").read_text() == binder_requirements(ROOT)
    assert set(requirements(ROOT / "binder" / "requirements.txt")) == set(requirements(REQ / "learner.txt"))


def test_requirements_files_agree_with_pyproject():
    assert specs(PYPROJECT["project"]["dependencies"]) == requirements(REQ / "grader.txt")
    learner = requirements(REQ / "learner.txt")
    assert specs(PYPROJECT["project"]["optional-dependencies"]["notebooks"]) == {
        k: v for k, v in learner.items() if k not in requirements(REQ / "grader.txt")}
    assert "-r requirements/learner.txt" in (ROOT / "requirements.txt").read_text(), \
        "the README's `pip install -r requirements.txt` is the learner's set-up"
    # ... and a newcomer's `python -m pytest` passes after it: nbval and everything the tests use
    assert set(requirements(REQ / "test.txt")) <= set(requirements(ROOT / "requirements.txt"))
    dev = requirements(REQ / "dev.txt")
    assert set(learner) | set(requirements(REQ / "test.txt")) <= set(dev)


def test_ci_installs_the_test_requirements_and_runs_ruff():
    """.ci/run: a fresh venv with the test requirements, ruff, and the tests over two workers
    (which grade the course with both front ends: tests/test_pytest_front_end.py)."""
    ci = (ROOT / ".ci" / "run").read_text()
    commands = "\n".join(line for line in ci.splitlines() if not line.lstrip().startswith("#"))
    assert "set -euo pipefail" in ci and "-m venv" in commands
    assert "-r requirements/test.txt" in commands
    for command in ("-m pytest -n", "-m ruff check ."):
        assert command in commands, command


def third_party_imports(source):
    """Top-level modules a cell imports unconditionally (not inside try:, which marks an
    optional import), other than the standard library and the course's own."""
    try:
        tree = ast.parse("\n".join(line for line in source.splitlines()
                                   if not line.lstrip().startswith(("%", "!"))))
    except SyntaxError:
        return set()
    optional = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for n in ast.walk(t)}
    names = set()
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return {n for n in names if n not in sys.stdlib_module_names and n not in ("grader", "data")}


@pytest.mark.parametrize("path", SOLUTIONS, ids=[p.stem for p in SOLUTIONS])
def test_what_a_notebook_imports_is_in_the_learner_requirements(path):
    learner = requirements(REQ / "learner.txt")
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            for module in third_party_imports("".join(cell["source"])):
                assert DISTRIBUTION.get(module, module).lower() in learner, \
                    f"{path.name} imports {module}: add it to requirements/learner.txt and pyproject.toml"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    if importlib.util.find_spec("hatchling") is None:
        pytest.skip("hatchling is not installed (requirements/test.txt has it): the wheel is built offline")
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                           "--quiet", "-w", str(out), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (whl,) = out.glob("dropout_from_scratch-*.whl")
    return whl


def test_the_wheel_carries_the_grader_and_the_course(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"grader"}, "no top-level data/ or solutions/"
    for path in SOLUTIONS:
        assert f"grader/course/solutions/{path.name}" in names
    for must in ("grader/course/data/load.py", "grader/course/data/__init__.py", "grader/course/data/moons.npz",
                 "grader/course/data/digits.npz", "grader/cli.py", "grader/engine.py", "grader/config.py",
                 "grader/checks/test_01_bernoulli_mask.py", "grader/sandbox/learner.py",
                 "grader/gradescope.py",
                 "grader/templates/gradescope/run_autograder", "grader/templates/github-actions/grade.yml"):
        assert must in names, must
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert f"Version: {__import__('grader').__version__}\n" in meta and "MIT AND CC-BY-4.0" in meta
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "dropout-grader = grader.launch:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory):
    """The wheel installed into a folder of its own; returns (site folder, env using it)."""
    site = tmp_path_factory.mktemp("site")
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                           "--target", str(site), str(wheel)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    env = {k: v for k, v in os.environ.items() if k != "DROPOUT_COURSE"}
    return site, {**env, "PYTHONPATH": str(site)}


def run(args, env, cwd):
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_an_installed_grader_finds_its_course_from_any_folder(installed, tmp_path):
    site, env = installed
    proc = run([sys.executable, "-c", "import grader, sys; from grader.config import course_root; "
                "print(grader.__file__); print(course_root())"], env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    package, course = proc.stdout.split()
    assert package.startswith(str(site)), "the installed grader is imported, not the checkout's"
    assert course == str(site / "grader" / "course")
    # a notebook opened alone puts the course on sys.path, as the checkout's set-up cell does
    proc = run([sys.executable, "-c", "import sys; from grader.config import course_root; "
                "sys.path.insert(0, str(course_root())); from data.load import load_dataset; "
                "print(load_dataset('moons').X_train.shape)"], env, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip() == "(100, 2)", proc.stderr


def test_an_installed_grader_gives_the_installed_solutions_full_marks_from_any_folder(installed, tmp_path):
    """Issue 11's promise: installed, then run from a folder that is not the course's."""
    site, env = installed
    out = tmp_path / "r.json"
    proc = run([sys.executable, "-m", "grader", str(site / "grader" / "course" / "solutions"), "--json", str(out)],
               env, tmp_path)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    top = sum(t["max_score"] for t in data["tests"])
    assert top > 0 and data["score"] == top, [t["output"] for t in data["tests"] if t["status"] != "passed"][:3]


def test_the_installed_commands_start(installed, tmp_path):
    site, env = installed
    for command in ([sys.executable, "-m", "grader", "--help"], [str(site / "bin" / "dropout-grader"), "--help"]):
        proc = run(command, env, tmp_path)
        assert proc.returncode == 0 and "usage:" in proc.stdout, (command, proc.stderr)
    proc = run([str(site / "bin" / "dropout-grader"), str(tmp_path / "nothing-here")], env, tmp_path)
    assert proc.returncode == 2 and "no such file or folder" in proc.stderr


def test_a_notebook_opened_alone_finds_the_grader_and_the_data(installed, tmp_path):
    """What README 'A notebook on its own' promises: the student notebook's set-up cell, run in
    a folder that is not the course's, with the package installed, imports check and the data."""
    site, env = installed
    nb = json.loads((ROOT / "notebooks" / "01_bernoulli_mask.ipynb").read_text())
    setup = next("".join(c["source"]) for c in nb["cells"]
                 if c["cell_type"] == "code" and "from grader import check" in "".join(c["source"]))
    code = setup + "\nfrom data.load import load_dataset\nprint(load_dataset('moons').X_train.shape)\n"
    proc = run([sys.executable, "-c", code], {**env, "MPLBACKEND": "Agg"}, tmp_path)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("(100, 2)"), proc.stderr


def test_the_grader_alone_needs_numpy_and_pytest_is_an_extra(wheel):
    meta = zipfile.ZipFile(wheel)
    text = meta.read(next(n for n in meta.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]
    assert [r for r in requires if "extra ==" not in r] == ["numpy>=1.26"], requires
    assert any(r.startswith("pytest") and "extra == 'pytest'" in r for r in requires), requires


def test_an_installed_grader_runs_its_checks_under_pytest_from_any_folder(installed, tmp_path):
    """The pytest11 entry point loads the plugin: no -p, no conftest of the checkout."""
    site, env = installed
    solution = site / "grader" / "course" / "solutions" / "01_bernoulli_mask.ipynb"
    proc = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--pyargs", "grader.checks",
                "--submission", str(solution), "-q"], env, tmp_path)
    assert proc.returncode == 0 and "9 passed" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
