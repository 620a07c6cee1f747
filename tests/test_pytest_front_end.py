"""The checks under pytest (grader/pytest_plugin.py) against the engine (python -m grader).

`python -m pytest --pyargs grader.checks --submission PATH` must give the same records (points,
status, message, in the same order) as `python -m grader PATH`, with pytest's own options
working on the checks; without --submission the checks are skipped with the reason, never a
collection error; and the engine never needs pytest.
"""
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.grading import ENV, ROOT, SWAPPED, front_end_records, pytest_run, variant


def buggy(tmp_path):
    (tmp_path / "buggy").mkdir(exist_ok=True)
    return variant(tmp_path / "buggy", "01_bernoulli_mask", SWAPPED)


STEMS = sorted(p.stem for p in (ROOT / "solutions").glob("*.ipynb"))


@pytest.mark.parametrize("folder", ["solutions", "notebooks"])
def test_both_front_ends_give_identical_records_on_the_course(tmp_path, folder):
    """The README's commands on the whole course: `python -m grader solutions/` gives full marks
    and `python -m pytest --pyargs grader.checks --submission solutions/` passes (exit 0) with the
    same records; the handed-out notebooks/ get zero, every check "not implemented", exit 1."""
    code, engine = front_end_records("engine", [ROOT / folder], tmp_path)
    # --tb=no: the records are compared here (how a failure is shown: test_pytest_options_work_on_the_checks);
    # pytest's traceback of each of notebooks/' 100 failures would cost more than grading them
    status, under_pytest = front_end_records("pytest", [ROOT / folder], tmp_path, extra=["--tb=no"])
    assert code == 0 and engine, "the engine graded nothing"
    assert {t["name"].split(" · ")[0] for t in engine} == set(STEMS), "a notebook was not graded"
    assert under_pytest == engine
    failed = [t for t in engine if t["status"] != "passed"]
    if folder == "solutions":
        assert not failed and status == 0, [(t["name"], t["output"]) for t in failed]
        assert sum(t["score"] for t in engine) == sum(t["max_score"] for t in engine) > 0
    else:
        assert status == 1 and len(failed) == len(engine) and sum(t["score"] for t in engine) == 0
        assert all("not implemented yet" in t["output"] for t in failed), failed


@pytest.fixture(scope="module")
def swapped(tmp_path_factory):
    """A keep/drop-swapped bernoulli_mask graded once by each front end (pytest with its cache
    and --junitxml on): {"nb", "engine", "pytest": (exit status, records), "junit", "cache"}."""
    tmp = tmp_path_factory.mktemp("swapped")
    nb, junit, cache = buggy(tmp), tmp / "junit.xml", tmp / "cache"
    return {"nb": nb, "tmp": tmp, "junit": junit, "cache": cache,
            "engine": front_end_records("engine", [nb], tmp),
            "pytest": front_end_records("pytest", [nb], tmp, extra=[f"--junitxml={junit}"], cache=cache)}


def test_both_front_ends_give_identical_records_on_a_buggy_submission(swapped):
    (code, engine), (status, under_pytest) = swapped["engine"], swapped["pytest"]
    assert code == 0 and engine, "the engine graded nothing"
    assert under_pytest == engine
    assert status == 1, "pytest's exit status is 1 when a check fails"
    failed = [t["extra_data"]["check"] for t in engine if t["status"] != "passed"]
    assert failed == ["test_kept_fraction_is_one_minus_p"]


def test_junitxml_has_a_testcase_per_check_the_failure_with_its_message(swapped):
    cases = list(ET.parse(swapped["junit"]).getroot().iter("testcase"))
    assert len(cases) == len(swapped["engine"][1])
    failures = {c.get("name"): c.find("failure").get("message") for c in cases if c.find("failure") is not None}
    assert list(failures) == ["test_kept_fraction_is_one_minus_p"] and "swapped" in failures[
        "test_kept_fraction_is_one_minus_p"]


def test_last_failed_reruns_only_the_failed_checks(swapped):
    again = pytest_run(["--submission", swapped["nb"], "-q", "--lf"], swapped["tmp"], cache=swapped["cache"])
    assert "1 failed, 8 deselected" in again.stdout, again.stdout


def test_pytest_options_work_on_the_checks(tmp_path):
    nb = buggy(tmp_path)
    # -k selects checks by name; each item is named as the check function
    proc = pytest_run(["--submission", nb, "-k", "kept_fraction or any_shape", "-v"], tmp_path)
    assert proc.returncode == 1, proc.stdout
    assert "test_kept_fraction_is_one_minus_p FAILED" in proc.stdout and "test_any_shape PASSED" in proc.stdout
    assert "7 deselected" in proc.stdout
    # the failure shows the message the learner reads, not pytest's traceback of the check...
    assert "Keep and drop are swapped" in proc.stdout
    assert "def test_kept_fraction_is_one_minus_p" not in proc.stdout, proc.stdout
    # ...which --tb=short still shows
    proc = pytest_run(["--submission", nb, "-k", "kept_fraction", "--tb=short"], tmp_path)
    assert "test_01_bernoulli_mask.py" in proc.stdout and "Keep and drop are swapped" in proc.stdout, proc.stdout
    # -x stops at the first failure (every check of the handed-out notebook fails)
    proc = pytest_run(["--submission", ROOT / "notebooks" / "01_bernoulli_mask.ipynb", "-x"], tmp_path)
    assert proc.returncode == 1 and "1 failed" in proc.stdout and "passed" not in proc.stdout, proc.stdout


def test_pdb_stops_in_the_failing_check(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "grader.pytest_plugin", "-p", "no:cacheprovider",
                           "--pyargs", "grader.checks", "--submission", str(buggy(tmp_path)), "--pdb", "-q"],
                          cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300, input="p 6 * 7\nc\n")
    assert "(Pdb)" in proc.stdout and "42" in proc.stdout, proc.stdout[-2000:]
    assert "test_01_bernoulli_mask.py" in proc.stdout


def test_without_a_submission_the_checks_are_skipped_with_the_reason(tmp_path):
    proc = pytest_run(["-rs"], tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "7 skipped" in proc.stdout and "--submission PATH" in proc.stdout
    # pytest pointed at the grader's folder from the course root: no collection error either
    proc = subprocess.run([sys.executable, "-m", "pytest", "grader", "-q", "-p", "no:cacheprovider"], cwd=ROOT,
                          env=ENV, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "error" not in proc.stdout.lower(), proc.stdout + proc.stderr


def test_unusable_input_is_one_line(tmp_path):
    proc = pytest_run(["--submission", tmp_path / "nothing.txt"], tmp_path)
    assert proc.returncode == 4 and "grader:" in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr


def test_the_engine_never_imports_pytest_and_pytest_sees_real_marks():
    code = ("import sys; from grader import engine\n"
            "for stem in engine.check_files(): engine.collect(stem)\n"
            "assert 'pytest' not in sys.modules, 'the engine imported pytest'\n"
            "from grader.checks import mark; assert type(mark).__module__ == 'grader.checks'\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    from grader import engine
    from grader.checks import mark
    assert mark is pytest.mark
    check = engine.collect("01_bernoulli_mask")[0]
    assert all(isinstance(m, (pytest.Mark, pytest.MarkDecorator)) for m in check.func.pytestmark)
    assert (check.exercise, check.points) == ("bernoulli_mask", float(check.points)) and check.points > 0
