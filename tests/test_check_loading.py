"""How check files are loaded: whatever the interpreter's flags, and with their probes verified.

- `python -O`, `-OO` and PYTHONOPTIMIZE strip `assert` and docstrings from ordinarily imported
  code: a check failing through `assert` would then pass a wrong answer.  The checks are
  compiled with optimize=0 whatever the flags, by both front ends (the engine, pytest).
- A probe runs in the learner's process with its parameters, np, builtins and the helpers sent
  with it, nothing else: importing a check file whose probe reads another name fails, naming it.
"""
import importlib.util
import textwrap

import pytest

from grader.checks import probes
from grader.sandbox.host import GraderBug
from tests.grading import ENV, ROOT, SWAPPED, front_end_records, variant

FLAGS = {"-O": (["-O"], {}), "-OO": (["-OO"], {}), "PYTHONOPTIMIZE=1": ([], {"PYTHONOPTIMIZE": "1"})}


def _records(tmp_path, front_end, flags=(), env=None):
    nb = variant(tmp_path, "01_bernoulli_mask", SWAPPED)
    code, tests = front_end_records(front_end, [nb], tmp_path, flags, {**ENV, **(env or {})})
    assert code in (0, 1)
    return [(t["extra_data"]["check"], t["score"], t["status"], t["output"]) for t in tests]


def test_interpreter_flags_change_no_score_or_message(tmp_path):
    """A keep/drop-swapped bernoulli_mask loses the same points, with the same messages, under
    -O, -OO and PYTHONOPTIMIZE=1, graded by the engine and (under -OO, which strips the most)
    by pytest."""
    plain = _records(tmp_path, "engine")
    assert sum(t[1] for t in plain) < 13, "a keep/drop-swapped bernoulli_mask got full marks"
    for name, (flags, env) in FLAGS.items():
        assert _records(tmp_path, "engine", flags, env) == plain, f"{name} changed the engine's grading"
    assert _records(tmp_path, "pytest", ["-OO"]) == plain, "-OO changed the grading under pytest"


def _module(tmp_path, source, name="test_99_fixture"):
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GOOD = """
    import numpy as np

    LIMIT = 3

    def plain(v):
        return np.asarray(v).copy()

    def masks(nb, shape, seed):
        f = nb.fn("bernoulli_mask")
        return [plain(f(shape, p, np.random.default_rng(seed))) for p in range(len(shape))]

    def test_masks(learner):
        learner.call(masks, ("bernoulli_mask",), helpers=(plain,), shape=(2, 3), seed=LIMIT)
"""


def test_a_probe_using_only_what_it_is_sent_imports(tmp_path):
    probes.verify(_module(tmp_path, GOOD))


@pytest.mark.parametrize("change, name", [
    (("p in range(len(shape))", "p in range(LIMIT)"), "LIMIT"),                    # a module constant
    (("helpers=(plain,), ", ""), "plain"),                                          # a helper not sent
    (("import numpy as np\n", "import numpy as np\n    import math\n"), None),          # unused import: fine
    (("return np.asarray(v).copy()", "return np.asarray(v).copy() * LIMIT"), "LIMIT"),  # in a helper
    (("return [plain(", "return [lambda: plain(LIMIT)] + [plain("), "LIMIT"),      # in a nested scope
])
def test_a_probe_reading_a_name_it_is_not_sent_fails_its_import_naming_it(tmp_path, change, name):
    module = _module(tmp_path, GOOD.replace(*change))
    if name is None:
        probes.verify(module)
        return
    with pytest.raises(ImportError, match=repr(name)):
        probes.verify(module)


@pytest.mark.parametrize("helpers", ["(*HELPERS,)", "HELPERS + ()", "() + HELPERS", "(*(), *HELPERS)"])
def test_helpers_given_as_module_tuples_starred_or_added_are_read(tmp_path, helpers):
    """helpers=(*SHARED, own) and helpers=SHARED + (own,) are read without running the check;
    a name missing from them still fails the import."""
    src = GOOD.replace("LIMIT = 3\n", "LIMIT = 3\n    HELPERS = ()\n").replace(
        "helpers=(plain,)", f"helpers={helpers}")
    with pytest.raises(ImportError, match="'plain'"):
        probes.verify(_module(tmp_path, src))
    src = src.replace("HELPERS = ()", "HELPERS = (plain,)").replace("    def plain(v)", "    def plain(v)")
    module = _module(tmp_path, src.replace("HELPERS = (plain,)", "").replace(
        "def masks(nb", "HELPERS = (plain,)\n\n\n    def masks(nb"))
    probes.verify(module)


@pytest.mark.parametrize("option", probes.options())
def test_a_probe_input_named_like_a_call_option_fails_its_import(tmp_path, option):
    src = GOOD.replace("def masks(nb, shape, seed)", f"def masks(nb, shape, seed, {option}=None)")
    with pytest.raises(ImportError, match=f"parameter named {option!r}"):
        probes.verify(_module(tmp_path, src))


def test_a_verification_is_remembered_only_for_the_same_sources(tmp_path, monkeypatch):
    """verify_once marks a verified file next to its bytecode; a marker left by other sources
    (an earlier version of the file, of the rules) never lets a bad probe through."""
    monkeypatch.setattr(probes.sys, "dont_write_bytecode", False)
    folders = {k: tmp_path / k for k in ("good", "bad", "again")}
    for folder in folders.values():
        folder.mkdir()
    probes.verify_once(_module(folders["good"], GOOD))
    [marker] = (folders["good"] / "__pycache__").glob("test_99_fixture.probes-verified-*")
    for k in ("bad", "again"):   # the marker of the good file, where each of the others is
        (folders[k] / "__pycache__").mkdir()
        (folders[k] / "__pycache__" / marker.name).touch()
    with pytest.raises(ImportError, match="'LIMIT'"):
        probes.verify_once(_module(folders["bad"], GOOD.replace("p in range(len(shape))", "p in range(LIMIT)")))
    monkeypatch.setattr(probes, "verify", lambda module: pytest.fail("verified again"))
    probes.verify_once(_module(folders["again"], GOOD))   # the same sources: remembered


def test_a_probe_not_sent_through_learner_call_is_still_verified(tmp_path):
    src = GOOD + "\n    def timing(nb, calls):\n        return calls * LIMIT\n"
    with pytest.raises(ImportError, match="timing uses 'LIMIT'"):
        probes.verify(_module(tmp_path, src))


def test_every_check_file_imports_with_its_probes_verified():
    from grader import engine
    for stem in engine.check_files():
        assert engine.collect(stem), stem


def test_limits_are_not_probe_inputs(tmp_path):
    """learner.call's keywords other than uses/helpers go to the probe: a limit passed there is
    reported (the probe does not take it), never silently used as a limit."""
    m = _module(tmp_path, GOOD)
    probes.check_call(m.masks, (m.plain,), {"shape": (2,), "seed": 1})
    with pytest.raises(GraderBug, match="learner.limited"):
        probes.check_call(m.masks, (m.plain,), {"shape": (2,), "seed": 1, "timeout": 20})
    with pytest.raises(GraderBug, match="'plain'"):
        probes.check_call(m.masks, (), {"shape": (2,), "seed": 1})


def busy(nb, seconds):
    """Spins for `seconds` of wall-clock time (a probe: parameters, builtins only)."""
    import time
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return seconds


def test_learner_limited_sets_the_time_limit_of_its_calls():
    from grader import engine
    from grader.config import DEFAULT
    from grader.sandbox.host import LearnerError
    sub = engine.load([ROOT / "solutions" / "01_bernoulli_mask.ipynb"], DEFAULT)
    run = engine.Run(sub, DEFAULT)
    try:
        learner = engine.Learner(run, "01_bernoulli_mask")
        assert learner.call(busy, seconds=0.1) == 0.1
        with pytest.raises(LearnerError, match="did not finish within 0.5 s"):
            learner.limited(timeout=0.5).call(busy, seconds=30)
    finally:
        run.close()


CACHED = """
import dis, sys
import grader.checks.test_01_bernoulli_mask as m
assert sys.flags.optimize == int(sys.argv[1]), sys.flags.optimize
assert m.__doc__, "docstring stripped"
ops = {i.opname for f in vars(m).values() if callable(f) and hasattr(f, "__code__") for i in dis.get_instructions(f)}
assert "LOAD_ASSERTION_ERROR" in ops, "assert stripped"
"""


@pytest.mark.parametrize("order", [("", "-OO"), ("-OO", "")])
def test_the_checks_bytecode_cache_is_the_unoptimized_one_whatever_ran_first(order):
    """The check files' bytecode is cached (a grading process starts faster) only as the plain
    .pyc, read only when it matches the source: a run under -OO after a plain run, or before
    one, keeps every assert and docstring, and writes no optimized .pyc of a check file."""
    import os
    import subprocess
    import sys
    env = {k: v for k, v in ENV.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cache = importlib.util.cache_from_source(str(ROOT / "grader" / "checks" / "test_01_bernoulli_mask.py"),
                                             optimization="")
    for flag in order:
        level = "2" if flag else "0"
        proc = subprocess.run([sys.executable, *([flag] if flag else []), "-c", CACHED, level],
                              cwd=ROOT, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert os.path.exists(cache)
    assert not [f for f in os.listdir(os.path.dirname(cache)) if f.startswith("test_01") and ".opt-" in f]
