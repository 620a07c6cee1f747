"""The grader of notebook 06 against known mistakes in mc_dropout_predict, and against honest
alternatives that must keep full marks.  Each mistake is appended as a last cell to the
solution notebook (redefining the function) and graded with `python -m grader`."""

import pytest

from tests.grading import grade_variants

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


# name: (source, a phrase the failure messages must contain)
MISTAKES = {
    "dropout off (calls eval())": (fn("""
was = net.training
net.eval()
passes = np.stack([net.forward(x) for _ in range(T)])
net.train() if was else net.eval()
return passes.mean(axis=0), passes.std(axis=0)
"""), "dropout off"),
    "mode not restored": (fn("""
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
return passes.mean(axis=0), passes.std(axis=0)
"""), "was left in train mode"),
    "always eval() at the end": (fn("""
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
net.eval()
return passes.mean(axis=0), passes.std(axis=0)
"""), "was left in eval mode"),
    "restores by assigning net.training": (fn("""
was = net.training
net.train()
passes = np.stack([net.forward(x) for _ in range(T)])
net.training = was
return passes.mean(axis=0), passes.std(axis=0)
"""), "assigned net.training directly"),
    "switches on by assigning net.training": (fn("""
was = net.training
net.training = True
passes = np.stack([net.forward(x) for _ in range(T)])
net.training = was
return passes.mean(axis=0), passes.std(axis=0)
"""), "Assigning net.training only changes the flag"),
    "std over the wrong axis": (
        correct_except(result="passes.mean(axis=0), passes.std(axis=1)"), "wrong axis"),
    "std over the wrong axis, passes stacked last": (
        correct_except(passes=STACK[:-1] + ", axis=-1)",
                       result="passes.mean(axis=-1), passes.std(axis=0)"), "wrong axis"),
    "std over everything": (
        correct_except(result="passes.mean(axis=0), np.std(passes)"), "reduced over everything"),
    "mean over the wrong axis": (
        correct_except(result="passes.mean(axis=1), passes.std(axis=0)"), "wrong axis"),
    "sample std (ddof=1)": (
        correct_except(result="passes.mean(axis=0), passes.std(axis=0, ddof=1)"), "ddof=1"),
    "variance instead of std": (
        correct_except(result="passes.mean(axis=0), passes.var(axis=0)"), "variance"),
    "(std, mean) swapped": (
        correct_except(result="passes.std(axis=0), passes.mean(axis=0)"), "swapped"),
    "fewer than T passes": (
        correct_except(passes="np.stack([net.forward(x) for _ in range(1, max(T, 2))])"), "ran only"),
    "more than T passes": (
        correct_except(passes=STACK.replace("range(T)", "range(T + 1)")), "exactly"),
    "one call on T stacked copies": (fn("""
was = net.training
net.train()
out = net.forward(np.concatenate([x] * T))
if not was:
    net.eval()
passes = out.reshape((T, -1) + out.shape[1:])
return passes.mean(axis=0), passes.std(axis=0)
"""), "T stacked copies"),
    "epsilon inside the square root": (
        correct_except(result="passes.mean(axis=0), np.sqrt(passes.var(axis=0) + 1e-12)"),
        "small constant"),
}

HONEST = {
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
    sources = {name: src for name, (src, _) in MISTAKES.items()}
    sources.update(HONEST)
    return grade_variants(STEM, EXERCISE, sources)


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_loses_points_and_is_named(graded, name):
    g = graded[name]
    phrase = MISTAKES[name][1]
    assert g.score < g.max_score, f"{name!r} got full marks: {g!r}"
    assert phrase.lower() in g.messages().lower(), f"{name!r}: no message says {phrase!r}: {g!r}"
    assert "could not run this check" not in g.messages(), f"{name!r} crashed a check: {g!r}"


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_alternative_gets_full_marks(graded, name):
    g = graded[name]
    assert g.score == g.max_score > 0, f"{name!r} lost points: {g!r}"
