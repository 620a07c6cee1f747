"""Helpers for the project's tests: build learner notebooks from the solutions (optionally
with a function replaced by a buggy version) and grade them with `python -m grader` (a mistake
table's variants as one class batch), and the assertions every mistake table makes.

    from tests.grading import assert_mistake, grade_variants
    results = grade_variants("01_bernoulli_mask", "bernoulli_mask", {"swapped": SRC, ...})
    assert_mistake(results["swapped"], "swapped", {"test_kept_fraction_is_one_minus_p"}, "swapped")
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CACHE = {}  # results of this test run only, by content: a fresh run always grades afresh
sys.path.insert(0, str(ROOT))
from grader import nbfile  # noqa: E402


class Graded:
    """One grading result (Gradescope's results.json), with helpers for assertions."""

    def __init__(self, data, stderr=""):
        self.data, self.stderr = data, stderr
        self.tests = data["tests"]
        self.score = data["score"]
        self.max_score = sum(t["max_score"] for t in self.tests)

    def failed(self):
        return [t for t in self.tests if t["status"] != "passed"]

    def failed_checks(self):
        """Names of the failed check functions, in report order (e.g. 'test_any_shape')."""
        return [t.get("extra_data", {}).get("check", "") for t in self.failed()]

    def first_message(self):
        failed = self.failed()
        return failed[0]["output"] if failed else ""

    def messages(self):
        return "\n".join(f"{t['name']}: {t['output']}" for t in self.failed())

    def __repr__(self):
        return f"<Graded {self.score:g}/{self.max_score:g}\n{self.messages()}>"


def notebook(path, cells):
    """Write a minimal notebook with these code cells."""
    nb = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
          "cells": [{"cell_type": "code", "source": c, "metadata": {}, "outputs": [],
                     "execution_count": None} for c in cells]}
    Path(path).write_text(json.dumps(nb))
    return Path(path)


def solution_cells(stem):
    return [c for c in nbfile.code_cells(ROOT / "solutions" / f"{stem}.ipynb") if c]


def variant(folder, stem, source):
    """The solution notebook with one more cell at the end (`source` redefines a function)."""
    return notebook(Path(folder) / f"{stem}.ipynb", solution_cells(stem) + ([source] if source else []))


def run_grader(args, timeout=300):
    proc = subprocess.run([sys.executable, "-m", "grader", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    return proc


def grade_notebook(path, only=None, seed=0):
    with tempfile.TemporaryDirectory() as d:
        out = Path(d) / "r.json"
        args = [path, "--json", out, "--seed", seed] + (["--only", only] if only else [])
        proc = run_grader(args)
        assert proc.returncode == 0, f"grader exited {proc.returncode}: {proc.stderr}"
        return Graded(json.loads(out.read_text()), proc.stderr)


def _key(stem, only, src):
    """A variant's identity within this test run: its notebook, exercise, source and the grader."""
    solution = (ROOT / "solutions" / f"{stem}.ipynb").read_bytes()
    grader_files = b"".join(p.read_bytes() for p in sorted((ROOT / "grader").rglob("*.py")))
    return hashlib.sha256(b"\0".join([solution, grader_files, (src or "").encode(), (only or "").encode()])).hexdigest()


def grade_variants(stem, only, sources, timeout=1800):
    """{name: Graded} for each {name: source} appended to the solution notebook `stem`, graded
    for `only` (exercises or notebooks, as --only; None: the whole notebook).  Every variant not
    graded yet in this test run is graded in ONE class batch (`python -m grader CLASS --out
    RESULTS`, a subfolder per variant, the batch's workers in parallel): the same engine, run
    once per table instead of once per variant."""
    keys = {name: _key(stem, only, src) for name, src in sources.items()}
    todo = {}
    for name, key in keys.items():
        if key not in CACHE:
            todo.setdefault(key, sources[name])
    if todo:
        with tempfile.TemporaryDirectory() as d:
            klass, out = Path(d) / "class", Path(d) / "results"
            folders = {key: f"v{i:04d}" for i, key in enumerate(todo)}
            for key, src in todo.items():
                (klass / folders[key]).mkdir(parents=True)
                variant(klass / folders[key], stem, src)
            # no submission budget (as one learner's grading has none): a busy machine slows the
            # batch down, never changes a verdict; the solutions' own full marks are a test of
            # their own (test_course), not re-checked before every table
            proc = run_grader([klass, "--out", out, "--only", only or stem, "--seed", 0,
                               "--submission-timeout", 0, "--no-reference-check"], timeout=timeout)
            assert proc.returncode == 0, f"grader exited {proc.returncode}: {proc.stderr}"
            for key, folder in folders.items():
                CACHE[key] = Graded(json.loads((out / "learners" / folder / "results.json").read_text()))
    return {name: CACHE[key] for name, key in keys.items()}


def assert_mistake(g, name, checks, words, maybe=frozenset()):
    """A mistake-table row: the variant fails exactly `checks` (and perhaps some of `maybe`), its
    first failing message contains `words` (any case), no check crashed, and it loses points
    (unless what it fails is worth none)."""
    failed = set(g.failed_checks())
    assert set(checks) <= failed <= set(checks) | set(maybe), (
        f"{name}: failed {sorted(failed)}, expected {sorted(checks)}"
        + (f" (and perhaps {sorted(maybe)})" if maybe else "") + f":\n{g.messages()}")
    assert words.lower() in g.first_message().lower(), (
        f"{name}: the first message does not say {words!r}:\n{g.first_message()}")
    assert "could not run this check" not in g.messages(), f"{name} crashed a check:\n{g.messages()}"
    assert g.score < g.max_score or not any(t["max_score"] for t in g.failed()), f"{name} got full marks"


def assert_full_marks(g, name, max_score=None):
    """An honest alternative keeps every point (of `max_score`, when given)."""
    assert g.max_score > 0 and g.score == g.max_score, f"{name} lost points:\n{g.messages()}"
    assert max_score is None or g.max_score == max_score, f"{name}: out of {g.max_score}, not {max_score}"


# ---------------------------------------------------------------- the two front ends
SWAPPED = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
           "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) < p\n")
ENV = {**{k: v for k, v in os.environ.items() if k not in ("PYTHONOPTIMIZE", "DROPOUT_COURSE")},
       "PYTHONPATH": str(ROOT)}


def pytest_run(args, cwd, flags=(), env=ENV, cache=None):
    """python -m pytest on the checks, the plugin loaded as the course folder on sys.path
    needs it (an installed grader loads it through its pytest11 entry point); pytest's cache
    in the folder `cache`, or none."""
    cached = ["-p", "cacheprovider", "-o", f"cache_dir={cache}"] if cache else ["-p", "no:cacheprovider"]
    return subprocess.run([sys.executable, *flags, "-m", "pytest", "-p", "grader.pytest_plugin", *cached,
                           "--pyargs", "grader.checks", *map(str, args)],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def front_end_records(front_end, paths, tmp_path, flags=(), env=ENV, extra=(), cache=None):
    """(exit status, the `tests` of results.json) of one front end (`extra`, `cache`: pytest's
    further options and its cache folder)."""
    out = tmp_path / f"{front_end}-{len(list(tmp_path.glob('*.json')))}.json"
    if front_end == "engine":
        proc = subprocess.run([sys.executable, *flags, "-m", "grader", *map(str, paths), "--json", str(out)],
                              cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    else:
        args = [a for p in paths for a in ("--submission", p)] + ["--grader-json", out, "-q", *extra]
        proc = pytest_run(args, tmp_path, flags, env, cache)
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.returncode, json.loads(out.read_text())["tests"]
