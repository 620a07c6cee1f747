"""The student release (python -m grader.package release OUT): what learners get holds no
solution line, no worked answer and no instructor function — in its folder, its zip and its
wheel, as source, bytecode or data — and its check() still grades, replaying reference
results recorded for the public seed; what it cannot replay is a note, never a failure."""
import json
import os
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from grader import engine, release
from tests.grading import ROOT

SOLUTIONS = sorted((ROOT / "solutions").glob("*.ipynb"))
# a line this long is specific to its solution (shorter ones — `return x`, `try:` — are
# everywhere); lines the handed-out notebooks show anyway (earlier answers pasted in later
# notebooks, the worked example) are not secrets
MIN_LINE = 24


def _cells(path):
    return json.loads(path.read_text())["cells"]


def _handed_out_lines():
    lines = set()
    for nb in (ROOT / "notebooks").glob("*.ipynb"):
        for c in _cells(nb):
            lines |= {ln.strip() for ln in "".join(c["source"]).split("\n")}
    return lines


def secrets():
    """{line: where} of every solution line, worked-answer line and instructor definition line."""
    out, handed_out = {}, _handed_out_lines()
    for path in SOLUTIONS:
        for c in _cells(path):
            src = "".join(c["source"])
            worked = "worked-answer" in c.get("metadata", {}).get("tags", [])
            inside = False
            for line in src.split("\n"):
                if "BEGIN SOLUTION" in line or "END SOLUTION" in line:
                    inside = "BEGIN" in line
                    continue
                text = line.strip()
                if (inside or worked) and len(text) >= MIN_LINE and text not in handed_out:
                    out[text] = f"{path.name} ({'worked answer' if worked else 'solution'})"
    return out


def contents(folder):
    """(where, bytes) of everything in the release: files, and every member of its zips and wheels."""
    for f in sorted(folder.rglob("*")):
        if f.is_file():
            data = f.read_bytes()
            yield str(f.relative_to(folder)), data
            if f.suffix in (".zip", ".whl"):
                with zipfile.ZipFile(f) as z:
                    for name in z.namelist():
                        yield f"{f.name}:{name}", z.read(name)


def leaks(folder, secret):
    found = []
    for where, data in contents(folder):
        text = data.decode("utf-8", "replace") if not where.endswith(".pyc") else data.decode("latin-1")
        lines = {ln.strip() for ln in text.split("\n")}
        found += [(where, s) for s in secret if s in lines or (len(s) >= 40 and s in text)]
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("release") / "out"
    proc = subprocess.run([sys.executable, "-m", "grader.package", "release", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out


def test_the_scan_finds_what_it_looks_for(tmp_path):
    """The leak scan is not vacuous: there are secrets, and it finds them in solutions/."""
    secret = secrets()
    assert len(secret) > 50 and any("worked answer" in w for w in secret.values())
    (tmp_path / "solutions").mkdir()
    (tmp_path / "solutions" / SOLUTIONS[1].name).write_bytes(SOLUTIONS[1].read_bytes())
    with zipfile.ZipFile(tmp_path / "x.whl", "w") as z:
        z.write(SOLUTIONS[3], "grader/course/solutions/x.ipynb")
    found = {where.split(":")[0] for where, _ in leaks(tmp_path, secret)}
    assert found == {f"solutions/{SOLUTIONS[1].name}", "x.whl"}


def test_the_release_holds_no_solutions(built):
    names = [where for where, _ in contents(built)]
    folder = [n for n in names if n.startswith("dropout-from-scratch/")]
    assert any(n.endswith("grader/release.json") for n in folder)
    assert any(n.endswith("notebooks/01_bernoulli_mask.ipynb") for n in folder)
    assert any(n.endswith("data/moons.npz") for n in folder)
    assert any(n.endswith(".github/workflows/grade.yml") for n in folder), "the class repository's workflow"
    assert [n for n in names if n.endswith(".zip:dropout-from-scratch/grader/engine.py")]
    assert [n for n in names if n.endswith(".whl:grader/course/data/load.py")]
    for n in names:
        assert "solutions" not in n.split(":")[-1].split("/"), n
        assert not n.endswith((".pyc", ".pyo")) and "__pycache__" not in n, n
        for tool in ("benchmark.py", "generate.py", "package.py"):
            assert not n.endswith(f"grader/{tool}"), f"{n}: an instructor's tool"
    assert leaks(built, secrets()) == []


def run(args, cwd, env=None):
    env = {k: v for k, v in (env or os.environ).items() if k != "DROPOUT_COURSE"}
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_check_in_the_release_grades_and_defers_only_what_it_cannot_replay(built, tmp_path):
    """The release's grader gives the reference solutions every point it can check; checks
    that need the instructor's code are notes saying so, worth nothing there."""
    folder = built / "dropout-from-scratch"
    for p in SOLUTIONS:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    out = tmp_path / "r.json"
    proc = run(["-m", "grader", *[str(tmp_path / p.name) for p in SOLUTIONS], "--json", str(out)],
               folder, {**os.environ, "PYTHONPATH": str(folder)})
    assert proc.returncode == 0, proc.stderr
    tests = json.loads(out.read_text())["tests"]
    deferred = [t for t in tests if "not checked by the student release" in t["output"]]
    assert deferred and all(t["max_score"] == 0 for t in deferred)
    # every exercise of every notebook is checked there, most of each by real checks
    exercises = {tuple(t["name"].split(" · ")[:2]) for t in tests}
    checked = {tuple(t["name"].split(" · ")[:2]) for t in tests if t not in deferred and t["max_score"] > 0}
    assert checked == exercises and {e[0] for e in exercises} == {p.stem for p in SOLUTIONS}
    assert all(t["status"] == "passed" for t in tests if t not in deferred), \
        [t["output"] for t in tests if t["status"] != "passed" and t not in deferred][:2]
    # a learner's mistake still fails there, with the real feedback
    nb = json.loads(SOLUTIONS[0].read_text())
    for c in nb["cells"]:
        c["source"] = "".join(c["source"]).replace(">= p", "< p")
    (tmp_path / SOLUTIONS[0].name).write_text(json.dumps(nb))
    proc = run(["-m", "grader", str(tmp_path / SOLUTIONS[0].name)], folder, {**os.environ, "PYTHONPATH": str(folder)})
    assert proc.returncode == 0 and "bernoulli_mask" in proc.stdout and "passed" not in proc.stdout.split("\n")[2]


def test_the_release_wheel_installs_without_solutions_and_grades(built, tmp_path):
    (whl,) = built.glob("*.whl")
    site = tmp_path / "site"
    proc = run(["-m", "pip", "install", "--no-deps", "--no-index", "--quiet", "--target", str(site), str(whl)],
               tmp_path)
    assert proc.returncode == 0, proc.stderr
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = run(["-c", "import grader; from grader.config import course_root; print(grader.__version__, "
                "course_root())"], tmp_path, env)
    assert proc.returncode == 0 and proc.stdout.split() == [__import__("grader").__version__,
                                                            str(site / "grader" / "course")], proc.stderr
    assert not (site / "grader" / "course" / "solutions").exists()
    proc = run(["-m", "grader", str(ROOT / "solutions" / "01_bernoulli_mask.ipynb")], tmp_path, env)
    assert proc.returncode == 0 and "total: 13/13" in proc.stdout, proc.stdout + proc.stderr


def test_the_release_folder_is_itself_installable_without_solutions(built, tmp_path):
    """`pip install .` in the release (or git+ the repository it is published in): Colab's line."""
    pytest.importorskip("hatchling")
    proc = run(["-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--quiet", "-w", str(tmp_path),
                str(built / "dropout-from-scratch")], tmp_path)
    assert proc.returncode == 0, proc.stderr
    (whl,) = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert "grader/course/data/load.py" in names and "grader/release.json" in names
    assert not [n for n in names if "solutions" in n.split("/")]


def test_replay_gives_the_recorded_results_and_nothing_else():
    """Recorded while the instructor's function runs; replayed by input digest, generators
    included (their state after the call is restored too); other inputs are not covered."""
    stem, name = "02_classic_vs_inverted", "dropout_forward_inverted"
    recording = release.Recording()
    function = recording.record(engine.reference_function)(ROOT, stem, name)
    x = np.linspace(1, 2, 24).reshape(4, 6)
    g = np.random.default_rng(5)
    want = function(x, 0.3, train=True, rng=g)
    after = g.random()
    table = json.loads(json.dumps(recording.manifest(version="t")))["replay"]
    assert len(table) == 1
    replay = release.Replayer(stem, name, calls=table)
    g2 = np.random.default_rng(5)
    got = replay(x, 0.3, train=True, rng=g2)
    assert release.encode(got) == release.encode(want) and g2.random() == after
    with pytest.raises(release.NotInRelease, match="not checked by the student release"):
        replay(x, 0.3, train=True, rng=np.random.default_rng(6))
    with pytest.raises(release.NotInRelease):
        replay(x + 1, 0.3, train=True, rng=np.random.default_rng(5))


def test_a_release_is_never_built_over_existing_files(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    proc = run(["-m", "grader.package", "release", str(tmp_path / "out")], ROOT)
    assert proc.returncode == 2 and "already exists" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
