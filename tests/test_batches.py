"""Checks that send many runs of the learner's function in one call of its process (02's
forward passes, 04's numerical gradients, 06's MC predictions) must grade a submission as
one call per check would: each run gets the learner's definitions loaded afresh (nb.fresh),
so that nothing one run's code keeps reaches the next, and a call that fails as a whole (a
crash, a time-out) falls back to a call per check, so that one failing case costs only the
checks that use it.

Each variant is graded twice in this process: as it is, and with every batch made to fail
(each check then calls on its own, as before batches existed).  The records must be the same,
but for the timing text of the vectorisation checks, which depends on the machine's load."""
import importlib
from pathlib import Path

import pytest

from grader import engine
from grader.config import DEFAULT
from grader.sandbox import host
from tests.grading import variant
from tests.test_mistakes_04_gradient_checking import centred

T02 = importlib.import_module("grader.checks.test_02_classic_vs_inverted")
T04 = importlib.import_module("grader.checks.test_04_gradient_checking")
T06 = importlib.import_module("grader.checks.test_06_mc_dropout")

FORWARD = """import numpy as np
{state}
def dropout_forward_inverted(x, p, train=True, rng=None):
{first}    if not train or p == 0:
        return x.copy(), None
    if p == 1:
        return np.zeros_like(x), None
    rng = np.random.default_rng() if rng is None else rng
    mask = {mask}
    return x * mask / (1 - p), mask
"""
DRAW = "rng.random(x.shape) >= p"
CORRECT_MASK = """import numpy as np
def bernoulli_mask(shape, p, rng=None):
    if not 0 <= p <= 1:
        raise ValueError(p)
    rng = np.random.default_rng() if rng is None else rng
    return rng.random(shape) >= p
"""


def gradient(state, first, keep=""):
    """The mistake table's centred numerical_gradient, with lines before its body and its return."""
    body = centred(prep=first + "    x = np.array(x, dtype=np.float64)\n")
    return f"import numpy as np\n{state}\n" + body.replace("    return grad\n", keep + "    return grad\n")


PREDICT = """import numpy as np
{state}
def mc_dropout_predict(net, x, T):
{first}    was = net.training
    net.train()
    passes = np.stack([net.forward(x) for _ in range({passes})])
    if not was:
        net.eval()
    return passes.mean(axis=0), passes.std(axis=0)
"""

VARIANTS = {
    "02_classic_vs_inverted": {
        # a mask kept in a global for each shape: with one namespace for all runs, a later run
        # would get an earlier run's mask (drawn at another p)
        "mask cached per shape": FORWARD.format(
            state="_MASKS = {}", first="",
            mask=f"_MASKS[x.shape] if x.shape in _MASKS else _MASKS.setdefault(x.shape, {DRAW})"),
        "p changed from the fourth call on": FORWARD.format(
            state="CALLS = []", first="    CALLS.append(1)\n    p = p if len(CALLS) < 4 else 0.5\n", mask=DRAW),
        "os._exit in eval mode at p = 1": FORWARD.format(
            state="import os", first="    if not train and p == 1:\n        os._exit(5)\n", mask=DRAW),
        "not implemented at p = 0.875": FORWARD.format(
            state="", first="    if p == 0.875:\n        raise NotImplementedError\n", mask=DRAW),
    },
    "01_bernoulli_mask": {
        # a coin of Python's random module decides between a right and a swapped mask: each call
        # of its own finds the module's generator in the same state, so every call flips alike
        "a coin of the random module": "import random\n" + CORRECT_MASK.replace(
            "    return rng.random(shape) >= p",
            "    kept = rng.random(shape) >= p\n    return ~kept if random.random() < 0.5 else kept"),
    },
    "04_gradient_checking": {
        "gradient cached per shape": gradient(
            "_SEEN = {}", "    if x.shape in _SEEN:\n        return _SEEN[x.shape]\n", "    _SEEN[x.shape] = grad\n"),
        "os._exit for shape (6,)": gradient("import os", "    if x.shape == (6,):\n        os._exit(4)\n"),
        "raises for float32": gradient("", "    if x.dtype == np.float32:\n        raise TypeError('float32')\n"),
    },
    "06_mc_dropout": {
        "one pass too many from the third call on": PREDICT.format(
            state="CALLS = []", first="    CALLS.append(T)\n", passes="T if len(CALLS) < 3 else T + 1"),
        "os._exit for T = 1": PREDICT.format(
            state="import os", first="    if T == 1:\n        os._exit(3)\n", passes="T"),
        "hangs for T = 20 (the last check's case)": PREDICT.format(
            state="", first="    while T == 20:\n        pass\n", passes="T"),
    },
}


@pytest.fixture(autouse=True)
def own_plans(monkeypatch):
    """Each test starts with no calls to make ahead, and leaves none to other tests."""
    monkeypatch.setattr(engine, "_PLANS", {})


def no_batches(monkeypatch):
    """Every batch fails: each check calls the learner's process on its own."""
    monkeypatch.setattr(T02._ForwardChecks, "batch", lambda self, learner: {})
    monkeypatch.setattr(T04, "ng_batch", lambda learner, made: {})
    monkeypatch.setattr(T06, "batch", lambda learner: {})


def sent_probes(monkeypatch):
    """The names of the probes sent to learner processes from now on, in order."""
    sent, call = [], host.Sandbox.call

    def counting(self, stem, probe, *args, **kwargs):
        sent.append(probe.__name__)
        return call(self, stem, probe, *args, **kwargs)
    monkeypatch.setattr(host.Sandbox, "call", counting)
    return sent


def records(folder):
    out = []
    for r in engine.grade(engine.load([Path(folder)]), DEFAULT):
        timed = r["check"] == "test_vectorised"
        out.append((r["number"], r["status"], r["kind"], r["score"], None if timed else r["message"]))
    return out


@pytest.mark.parametrize("stem,name", [(stem, name) for stem, table in VARIANTS.items() for name in table])
def test_a_batch_grades_as_calls_of_their_own(stem, name, tmp_path, monkeypatch):
    variant(tmp_path, stem, VARIANTS[stem][name])
    batched = records(tmp_path)
    with monkeypatch.context() as m:
        no_batches(m)
        engine._PLANS.clear()   # and no calls made ahead
        alone = records(tmp_path)
    assert batched == alone
    assert any(status == "failed" for _, status, *_ in batched) or name.startswith("one pass"), \
        "the variant should fail some check (else it tests nothing)"


def test_every_run_of_the_complete_solutions_goes_in_its_batch(tmp_path, monkeypatch):
    """The batch tables cover every run the checks make on a complete submission: no check
    of 02, 04 or 06 needs a call of its own (a table that drifted from its checks would cost
    calls, not verdicts: this says so)."""
    probes = sent_probes(monkeypatch)
    for stem in VARIANTS:
        variant(tmp_path, stem, None)
    recs = engine.grade(engine.load([tmp_path]), DEFAULT, lanes=1)   # every call in this process
    assert all(r["status"] == "passed" for r in recs if r["notebook"] in VARIANTS)
    # 02: a batch per scheme, 06: one (learner.call_each); 04: one call of its gradients probe
    assert probes.count("each_call") == 3 and "forward_calls" not in probes and "predict" not in probes
    assert probes.count("gradients") == 1


def submission(folder, stem=None, source=None):
    """A complete submission (the solutions' cells), with `source` appended to notebook `stem`."""
    folder.mkdir()
    for s in engine.course_stems().values():
        variant(folder, s, source if s == stem else None)
    return folder


def test_calls_made_ahead_answer_as_calls_of_their_own(tmp_path, monkeypatch):
    """A class batch makes the calls the last grading made ahead, in one call per notebook
    (engine.Ahead): each submission still gets the records it gets with no plan at all, and
    a complete one needs a fraction of the calls."""
    picked = {"mask": ("02_classic_vs_inverted", "mask cached per shape"),
              "exit": ("02_classic_vs_inverted", "os._exit in eval mode at p = 1"),
              "cache": ("04_gradient_checking", "gradient cached per shape"),
              "coin": ("01_bernoulli_mask", "a coin of the random module")}
    subs = [submission(tmp_path / "complete")] + [
        submission(tmp_path / name, stem, VARIANTS[stem][which]) for name, (stem, which) in picked.items()]
    alone = []
    for folder in subs:
        engine._PLANS.clear()
        alone.append(records(folder))
    engine._PLANS.clear()
    records(subs[0])   # the plan
    sent = sent_probes(monkeypatch)
    ahead = []
    for folder in subs:
        sent.clear()
        ahead.append(records(folder))
        if folder is subs[0]:
            made = list(sent)
    assert ahead == alone
    # 6 calls made ahead (one per notebook but 06), 02's two batches and 06's: without a plan, over 90 calls
    assert made.count("each_call") == 9 and len(made) < 40, made
