"""How the tests share out over processes under `python -m pytest -n 2` (conftest.py): what must
run in one process -- a notebook's cells, the tests sharing a module-scoped fixture -- is one
work unit; every other test is a unit of its own."""
import subprocess
import sys
import textwrap

import conftest
from tests.grading import ROOT


def test_a_notebooks_cells_are_one_unit():
    units = {conftest.work_unit(f"solutions/07_dropout_in_frameworks.ipynb::Cell {i}") for i in range(30)}
    assert units == {"solutions/07_dropout_in_frameworks.ipynb"}


def test_the_tests_of_one_grading_batch_are_one_unit_and_two_batches_two():
    mod = "tests/test_mistakes_02_classic_vs_inverted.py"
    inverted = {conftest.work_unit(f"{mod}::test_inverted_mistake_fails_exactly_its_checks[{m}]")
                for m in ("a", "b")} | {conftest.work_unit(f"{mod}::test_inverted_honest_variant_gets_full_marks[c]")}
    classic = {conftest.work_unit(f"{mod}::test_classic_mistake_fails_exactly_its_checks[{m}]") for m in ("a", "b")}
    assert len(inverted) == 1 and len(classic) == 1 and inverted != classic


def test_a_test_without_a_shared_fixture_is_a_unit_of_its_own():
    ids = ["tests/test_text.py::test_anything_becomes_text[x]", "tests/test_text.py::test_anything_becomes_text[3]",
           "tests/test_mistakes_04_gradient_checking.py::test_mistake_table_uses_real_check_names"]
    assert [conftest.work_unit(i) for i in ids] == ids


def test_fixtures_reached_through_others_autouse_and_shared_by_one_test_join_units(tmp_path):
    (tmp_path / "test_m.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.fixture(scope="module")
        def batch_a():
            return 1

        @pytest.fixture(scope="module")
        def batch_b():
            return 2

        @pytest.fixture(scope="session")
        def batch_c():
            return 3

        @pytest.fixture
        def via_a(batch_a):
            return batch_a

        def test_through(via_a):
            pass

        def test_b(batch_b):
            pass

        def test_b_and_c(batch_b, batch_c):
            pass

        def test_c(batch_c):
            pass

        def test_free(tmp_path):
            pass
    '''))
    unit = {name: conftest.work_unit(f"test_m.py::{name}", tmp_path)
            for name in ("test_through", "test_b", "test_b_and_c", "test_c", "test_free")}
    assert unit["test_through"] == "test_m.py::batch_a"
    assert unit["test_b"] == unit["test_b_and_c"] == unit["test_c"] == "test_m.py::batch_b+batch_c"
    assert unit["test_free"] == "test_m.py::test_free"
    (tmp_path / "test_auto.py").write_text(textwrap.dedent('''
        import pytest

        @pytest.fixture(scope="module", autouse=True)
        def server():
            yield

        def test_one():
            pass

        def test_two(tmp_path):
            pass
    '''))
    units = {conftest.work_unit(f"test_auto.py::{n}", tmp_path) for n in ("test_one", "test_two")}
    assert units == {"test_auto.py::server"}


def test_the_readme_command_works_without_xdist():
    """`python -m pytest` as the README says, in an environment without pytest-xdist: the
    scheduling hook is optional, nothing else changes."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:xdist", "-p", "no:cacheprovider", "-q",
                           "tests/test_parallel.py::test_a_notebooks_cells_are_one_unit"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "1 passed" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]
