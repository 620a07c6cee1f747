"""The grader of notebook 06 against known mistakes in mc_dropout_predict, and against honest
alternatives that must keep full marks.  Each variant is appended as a last cell to the
solution notebook (redefining the function) and graded with `python -m grader`.

The mistake table says, for each mistake, exactly which checks it must fail (one mistake
costs only the checks whose behaviour it really breaks) and words its first failing message
must contain."""

import pytest

from tests.grading import assert_full_marks, assert_mistake, grade_variants

STEM, EXERCISE = "06_mc_dropout", "mc_dropout_predict"


def fn(body):
    """A definition of mc_dropout_predict(net, x, T) with this body (4-space indented)."""
    lines = body.strip("\n").splitlines()
    return "def mc_dropout_predict(net, x, T):\n" + "\n".join("    " + ln for ln in lines) + "\n"


STACK = "np.stack([net.forward(x) for _ in range(T)])"


def correct_except(passes=STACK, result="passes.mean(axis=0), passes.std(axis=0)"):
    """The usual shape of a solution (remember the mode, train(), T passes, restore), with
    the passes or the returned values replaced."""
    return fn(f"""
was = net.training
net.train()
passes = {passes}
if not was:
    net.eval()
return {result}
""")


# the checks of grader/checks/test_06_mc_dropout.py
SHAPE = "test_returns_mean_and_std_shaped_like_one_pass"
PASSES = "test_runs_T_passes_with_dropout_on"
MODE = "test_leaves_the_network_in_the_mode_it_found"
STATS = "test_mean_and_population_std_of_the_passes"
ZERO = "test_std_is_exactly_zero_when_every_pass_agrees"

# name: (source, the checks it must fail, words its first failing message must contain)
MISTAKES = {
    "mode restored before the passes": (fn("""
was = net.training
net.train()
if not was:
    net.eval()                      # restored too early: the passes below run in eval mode
passes = np.stack([net.forward(x) for _ in range(T)])
return passes.mean(axis=0), passes.std(axis=0)
"""), {PASSES}, "dropout off"),
    "dropout off (calls eval())": (fn("""
was = net.training
net.eval()
passes = np.stack([net.forward(x) for _ in range(T)])
net.train() if was else net.eval()
return passes.mean(axis=0), passes.std(axis=0)
"""), {PASSES}, "dropout off"),
    "dropout never switched on": (fn("""
passes = np.stack([net.forward(x) for _ in range(T)])
return passes.mean(axis=0), passes.std(axis=0)
"""), {PASSES}, "dropout off"),
    "mode not restored": (fn("""
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
return passes.mean(axis=0), passes.std(axis=0)
"""), {MODE}, "was left in train mode"),
    "always eval() at the end": (fn("""
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
net.eval()
return passes.mean(axis=0), passes.std(axis=0)
"""), {MODE}, "was left in eval mode"),
    "restores by assigning net.training": (fn("""
was = net.training
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
net.training = was
return passes.mean(axis=0), passes.std(axis=0)
"""), {MODE}, "assigned net.training directly"),
    "switches on by assigning net.training": (fn("""
was = net.training
net.training = True
passes = np.stack([net.forward(x) for _ in range(T)])
net.training = was
return passes.mean(axis=0), passes.std(axis=0)
"""), {PASSES}, "Assigning net.training = True changes only the network's flag"),
    "a fresh deep copy for every pass": (fn("""
import copy
passes = np.stack([copy.deepcopy(net).train().forward(x) for _ in range(T)])
return passes.mean(axis=0), passes.std(axis=0)
"""), {PASSES}, "a copy copies the generator"),
    "passes on a shallow copy (shares the layers)": (fn("""
import copy
twin = copy.copy(net).train()
passes = np.stack([twin.forward(x) for _ in range(T)])
return passes.mean(axis=0), passes.std(axis=0)
"""), {MODE}, "shallow copy"),
    "std over the wrong axis": (
        correct_except(result="passes.mean(axis=0), passes.std(axis=1)"), {SHAPE, STATS}, "wrong axis"),
    "std over the wrong axis, passes stacked last": (
        correct_except(passes=STACK[:-1] + ", axis=-1)",
                       result="passes.mean(axis=-1), passes.std(axis=0)"), {SHAPE, STATS}, "wrong axis"),
    "std over everything": (
        correct_except(result="passes.mean(axis=0), np.std(passes)"), {SHAPE, STATS},
        "reduced over everything"),
    "mean over the wrong axis": (
        correct_except(result="passes.mean(axis=1), passes.std(axis=0)"), {SHAPE, STATS}, "wrong axis"),
    "keepdims": (
        correct_except(result="passes.mean(axis=0, keepdims=True), passes.std(axis=0, keepdims=True)"),
        {SHAPE, STATS}, "no keepdims"),
    "sample std (ddof=1)": (
        correct_except(result="passes.mean(axis=0), passes.std(axis=0, ddof=1)"), {STATS}, "ddof=1"),
    "variance instead of std": (
        correct_except(result="passes.mean(axis=0), passes.var(axis=0)"), {STATS}, "variance"),
    "(std, mean) swapped": (
        correct_except(result="passes.std(axis=0), passes.mean(axis=0)"), {STATS}, "swapped"),
    "a list [mean, std]": (
        correct_except(result="[passes.mean(axis=0), passes.std(axis=0)]"), {SHAPE}, "tuple"),
    "fewer than T passes": (
        correct_except(passes="np.stack([net.forward(x) for _ in range(1, max(T, 2))])"), {PASSES},
        "ran only"),
    "more than T passes": (
        correct_except(passes=STACK.replace("range(T)", "range(T + 1)")), {PASSES}, "exactly"),
    "an extra pass in train mode to learn the shape": (fn("""
was = net.training
net.train()
first = net.forward(x)
passes = np.empty((T,) + np.shape(first))
for t in range(T):
    passes[t] = net.forward(x)
net.train(was)
return passes.mean(axis=0), passes.std(axis=0)
"""), {PASSES}, "exactly"),
    "one call on T stacked copies": (fn("""
was = net.training
net.train()
out = net.forward(np.concatenate([x] * T))
if not was:
    net.eval()
passes = out.reshape((T, -1) + out.shape[1:])
return passes.mean(axis=0), passes.std(axis=0)
"""), {PASSES}, "stacked T copies"),
    "epsilon inside the square root": (
        correct_except(result="passes.mean(axis=0), np.sqrt(passes.var(axis=0) + 1e-12)"), {ZERO},
        "small constant"),
    "E[f^2] - E[f]^2 without clipping": (
        correct_except(result="passes.mean(axis=0), np.sqrt((passes ** 2).mean(axis=0) - passes.mean(axis=0) ** 2)"),
        {ZERO}, "NaN"),
}

HONEST = {
    "switches only when it must, and back": fn("""
switched = not net.training
if switched:
    net.train()
outs = [net.forward(x) for _ in range(T)]
if switched:
    net.eval()
return np.mean(outs, axis=0), np.std(outs, axis=0)
"""),
    "the solution": None,
    "stack, then np.mean / np.std": fn("""
was_training = net.training
net.train()
outs = [net.forward(x) for t in range(T)]
if not was_training:
    net.eval()
stacked = np.stack(outs, axis=0)
return np.mean(stacked, axis=0), np.std(stacked, axis=0)
"""),
    "list, np.array, deviations by hand": fn("""
was = net.training
net.train()
outs = []
for _ in range(T):
    outs.append(net.forward(x))
if not was:
    net.eval()
a = np.array(outs)
mean = a.sum(axis=0) / T
return mean, np.sqrt(((a - mean) ** 2).mean(axis=0))
"""),
    "running sums of f and f^2": fn("""
was = net.training
net.train()
total = total_sq = 0.0
for _ in range(T):
    out = net.forward(x)
    total = total + out
    total_sq = total_sq + out * out
if not was:
    net.eval()
mean = total / T
return mean, np.sqrt(np.maximum(total_sq / T - mean ** 2, 0.0))
"""),
    "Welford's running mean and variance": fn("""
was = net.training
net.train()
mean = m2 = None
for k in range(1, T + 1):
    out = np.asarray(net.forward(x), dtype=float)
    if mean is None:
        mean, m2 = np.zeros_like(out), np.zeros_like(out)
    delta = out - mean
    mean = mean + delta / k
    m2 = m2 + delta * (out - mean)
if not was:
    net.eval()
return mean, np.sqrt(m2 / T)
"""),
    "try/finally restore": fn("""
mode = net.training
try:
    net.train()
    passes = np.stack([net.forward(x) for _ in range(T)])
finally:
    if mode:
        net.train()
    else:
        net.eval()
return passes.mean(axis=0), passes.std(axis=0)
"""),
    "passes on a deep copy of the network": fn("""
import copy
twin = copy.deepcopy(net).train()
passes = np.stack([twin.forward(x) for _ in range(T)])
return passes.mean(axis=0), passes.std(axis=0)
"""),
    "np.mean / np.std straight on the list": fn("""
was = net.training
net.train()
outs = [net.forward(x) for _ in range(T)]
net.train(was)
return np.mean(outs, axis=0), np.std(outs, axis=0)
"""),
    "passes stacked last, reduced over the last axis": correct_except(
        passes=STACK[:-1] + ", axis=-1)", result="passes.mean(axis=-1), passes.std(axis=-1)"),
    "preallocated float64 array, deviations by hand": fn("""
mode = bool(net.training)
net.train(True)
first = np.asarray(net.forward(x), dtype=np.float64)
outs = np.empty((T,) + first.shape)
outs[0] = first
for t in range(1, T):
    outs[t] = net.forward(x)
net.train(mode)
mean = outs.mean(axis=0)
return mean, np.sqrt(np.mean(np.square(outs - mean), axis=0))
"""),
    "x cast to float64 first": fn("""
x64 = np.asarray(x, dtype=np.float64)
was = net.training
net.train()
passes = np.array([net.forward(x64) for _ in range(T)])
net.train(was)
return passes.mean(axis=0), passes.std(axis=0)
"""),
    "namedtuple result": fn("""
from collections import namedtuple
Prediction = namedtuple("Prediction", "mean std")
was = net.training
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
net.train(was)
return Prediction(passes.mean(axis=0), passes.std(axis=0))
"""),
    "PyTorch-style net.train(was_training)": fn("""
was_training = net.training
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
net.train(was_training)
return passes.mean(0), passes.std(0)
"""),
}


@pytest.fixture(scope="module")
def graded():
    sources = {name: src for name, (src, _, _) in MISTAKES.items()}
    sources.update(HONEST)
    return grade_variants(STEM, EXERCISE, sources)


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_fails_exactly_its_checks_with_a_named_message(graded, name):
    _, checks, words = MISTAKES[name]
    assert_mistake(graded[name], name, checks, words)


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_alternative_gets_full_marks(graded, name):
    assert_full_marks(graded[name], name)
