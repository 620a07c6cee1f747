"""Checks for notebook 01: bernoulli_mask(shape, p, rng=None) -> boolean mask, True = kept.

Each probe below runs in the learner's sandboxed process and returns plain data; every
comparison happens here.  Randomized checks use fixed seeds (the same submission gets the
same score everywhere) and bounds from grader.stats whose false-failure probability for a
correct implementation is stated next to each use.
"""
import numpy as np
import pytest

from grader.dropout_checks import assert_independent_coins
from grader.stats import hoeffding, pct, variance_ratio_ok

pytestmark = pytest.mark.exercise("bernoulli_mask")
USES = ("bernoulli_mask",)


# ---------------------------------------------------------------- probes (run in the sandbox)
def masks(nb, shape, p, seed, calls=1, keyword=False):
    """`calls` masks drawn one after another from one seeded generator."""
    f = nb.fn("bernoulli_mask")
    rng = np.random.default_rng(seed)
    if keyword:
        return [f(shape, p=p, rng=rng) for _ in range(calls)]
    return [f(shape, p, rng) for _ in range(calls)]


def rng_use(nb, shape, p, seed):
    """Which generator the function draws from: the one passed, or the global one."""
    f = nb.fn("bernoulli_mask")
    np.random.seed(12345)
    before_global = np.random.get_state()[1].copy()
    rng = np.random.default_rng(seed)
    before = rng.bit_generator.state["state"]["state"]
    m1 = f(shape, p, rng)
    after = rng.bit_generator.state["state"]["state"]
    global_same = bool((np.random.get_state()[1] == before_global).all())
    m2 = f(shape, p, np.random.default_rng(seed))
    m3 = f(shape, p, np.random.default_rng(seed + 1))
    none1, none2 = f(shape, p), f(shape, p, None)
    return {"advanced": before != after, "global_untouched": global_same,
            "same_seed": [m1, m2], "other_seed": m3, "none": [none1, none2]}


def invalid(nb, ps):
    f = nb.fn("bernoulli_mask")
    out = []
    for p in ps:
        try:
            f((4, 5), p, np.random.default_rng(0))
            out.append("accepted")
        except LearnerRaised as e:
            out.append(e.type)
    return out


# ---------------------------------------------------------------- helpers (grader side)
def as_mask(value, shape, call):
    """The value must be a boolean ndarray of the given shape; say what is wrong if not."""
    assert isinstance(value, np.ndarray), (
        f"{call} returned {type(value).__name__}; return a NumPy array (np.ndarray) of booleans.")
    if value.dtype != bool:
        vals = np.unique(value)[:4]
        assert False, (
            f"{call} returned an array of dtype {value.dtype} (values {vals.tolist()}…); the mask "
            "should be boolean, True where the element is kept. A comparison of uniform draws with "
            "a threshold already gives booleans.")
    assert value.shape == shape, (
        f"{call} returned shape {value.shape}; expected {shape}: one coin per element.")
    return value


def call(shape, p):
    return f"bernoulli_mask({shape!r}, p={p}, rng)"


# ---------------------------------------------------------------- checks
@pytest.mark.points(1)
def test_returns_boolean_mask_of_shape(learner):
    """returns a boolean array of the requested shape"""
    (m,) = learner.call(masks, USES, shape=(3, 4), p=0.3, seed=learner.seed(1))
    as_mask(m, (3, 4), call((3, 4), 0.3))


@pytest.mark.points(2)
def test_kept_fraction_is_one_minus_p(learner):
    """keeps each element with probability 1 − p (p = 0.1, 0.3, 0.75)"""
    shape = (400, 500)
    n = 400 * 500
    tol = hoeffding(n)  # 3 uses below: false failure < 3e-10
    results = []
    for k, p in enumerate((0.1, 0.3, 0.75)):
        (m,) = learner.call(masks, USES, shape=shape, p=p, seed=learner.seed(10 + k))
        results.append((p, as_mask(m, shape, call(shape, p)).mean()))
    if all(abs(kept - p) < tol for p, kept in results):
        assert False, (
            "Keep and drop are swapped: " + ", ".join(f"at p = {p} you kept {pct(k)}" for p, k in results)
            + ". In this course p is the probability of DROPPING an element, so the kept share "
            "should be 1 − p, and True should mean kept.")
    for p, kept in results:
        assert abs(kept - (1 - p)) < tol, (
            f"At p = {p} your mask kept {pct(kept, 2)} of {n} elements; expected {pct(1 - p)} ± "
            f"{pct(tol, 2)} (1 − p, since p is the drop probability). Check the threshold you "
            "compare the uniform draws with.")


@pytest.mark.points(2)
def test_every_element_gets_its_own_coin(learner):
    """draws an independent coin per element (no mask shared by the batch)"""
    shape, p = (2000, 50), 0.3
    (m,) = learner.call(masks, USES, shape=shape, p=p, seed=learner.seed(20))
    m = as_mask(m, shape, call(shape, p))
    assert_independent_coins(m)


@pytest.mark.points(2)
def test_kept_count_varies_like_a_binomial(learner):
    """the kept count varies from draw to draw like a binomial (not an exact-count shuffle)"""
    n, p, calls = 100, 0.3, 400
    ms = learner.call(masks, USES, shape=(n,), p=p, seed=learner.seed(30), calls=calls)
    counts = np.array([as_mask(m, (n,), call((n,), p)).sum() for m in ms], dtype=float)
    var, expected = counts.var(ddof=1), n * p * (1 - p)
    ok, (lo, hi) = variance_ratio_ok(var / expected, calls - 1)  # false failure < 1e-10
    assert ok, (
        f"Over {calls} masks of {n} elements at p = {p}, the number kept had mean {counts.mean():.1f} "
        f"and variance {var:.2f}; independent coins give variance n·p·(1 − p) = {expected:.0f} "
        f"(accepted: {lo * expected:.1f} to {hi * expected:.1f})."
        + (" Every mask kept exactly the same number: shuffling a fixed count of Trues is not "
           "dropout — each element needs its own independent coin." if var == 0 else ""))


@pytest.mark.points(2)
def test_uses_the_generator_it_is_given(learner):
    """draws from the generator passed in: reproducible, fresh on every call, no global RNG"""
    r = learner.call(rng_use, USES, shape=(1000,), p=0.3, seed=learner.seed(40))
    m1, m2 = (as_mask(m, (1000,), call((1000,), 0.3)) for m in r["same_seed"])
    other = as_mask(r["other_seed"], (1000,), call((1000,), 0.3))
    n1, n2 = (as_mask(m, (1000,), "bernoulli_mask((1000,), p=0.3)") for m in r["none"])
    assert r["global_untouched"], (
        "Your function draws from NumPy's global generator (np.random.rand / np.random.seed / …). "
        "Draw from the `rng` argument instead, so the caller controls the randomness.")
    assert r["advanced"], (
        "The generator passed as `rng` was not used (its state did not change). Draw the uniforms "
        "from that generator.")
    assert np.array_equal(m1, m2), (
        "Two generators made with the same seed gave different masks; the mask should depend only "
        "on the generator passed in.")
    assert not np.array_equal(m1, other), (
        "Generators with different seeds gave the same mask: is a seed fixed inside the function? "
        "Then every training step would drop the same units.")
    # two masks of 1000 elements agree everywhere with probability 0.58^1000 ≈ 1e-237
    assert not np.array_equal(n1, n2), (
        "With rng=None two calls gave the same mask: make a fresh np.random.default_rng() when no "
        "generator is passed (never a fixed seed).")


@pytest.mark.points(1)
def test_fresh_mask_on_every_call(learner):
    """two calls with the same generator give different masks"""
    ms = learner.call(masks, USES, shape=(1000,), p=0.3, seed=learner.seed(50), calls=2)
    a, b = (as_mask(m, (1000,), call((1000,), 0.3)) for m in ms)
    # identical with probability 0.58^1000 for a correct implementation
    assert not np.array_equal(a, b), (
        "Two calls with the same generator returned the same mask: a seed is probably fixed "
        "inside the function (it re-creates or re-seeds the generator each time). Then dropout "
        "would silence the same units on every training step.")


@pytest.mark.points(1)
def test_any_shape(learner):
    """works for any shape: an int, a tuple of any length, an empty array"""
    cases = [(7, (7,)), ((7,), (7,)), ((2, 3, 40, 50), (2, 3, 40, 50)), ((0, 3), (0, 3))]
    for shape, want in cases:
        try:
            (m,) = learner.call(masks, USES, shape=shape, p=0.3, seed=learner.seed(60))
        except Exception as e:  # noqa: BLE001 - report the learner's error in this shape's terms
            msg = getattr(e, "message", str(e))
            raise AssertionError(f"{call(shape, 0.3)} failed: {msg}. The shape may be an int or a "
                                 "tuple of any length; pass it straight to the generator.") from None
        as_mask(m, want, call(shape, 0.3))
    (m,) = learner.call(masks, USES, shape=(2, 3, 40, 50), p=0.3, seed=learner.seed(61))
    tol = hoeffding(2 * 3 * 40 * 50)  # false failure < 1e-10
    kept = m.mean()
    assert abs(kept - 0.7) < tol, (
        f"For a 4-D shape your mask kept {pct(kept)}; expected 70% ± {pct(tol)}.")


@pytest.mark.points(1)
def test_p_zero_and_one(learner):
    """p = 0 keeps everything, p = 1 drops everything (floats and ints)"""
    for p, want in ((0.0, True), (0, True), (1.0, False), (1, False)):
        (m,) = learner.call(masks, USES, shape=(50, 40), p=p, seed=learner.seed(70))
        m = as_mask(m, (50, 40), call((50, 40), p))
        assert (m == want).all(), (
            f"At p = {p!r} the mask should be all {want} ({'nothing' if want else 'everything'} "
            f"dropped); {int((m != want).sum())} of 2000 elements were not. Check how the "
            "threshold comparison behaves at the ends (are the draws in [0, 1) ?).")


@pytest.mark.points(1)
def test_rejects_p_outside_0_1(learner):
    """raises ValueError for p outside [0, 1] (including NaN)"""
    ps = [-0.1, 1.1, 2, float("nan")]
    got = learner.call(invalid, USES, ps=ps)
    for p, what in zip(ps, got):
        assert what != "accepted", (
            f"bernoulli_mask accepted p = {p}. A probability must be in [0, 1]; raise ValueError "
            "otherwise." + (" NaN fails every comparison, so write the range test so that NaN "
                             "lands on the error side." if p != p else ""))
        assert what == "ValueError", (
            f"For p = {p} your function raised {what}; the contract asks for ValueError"
            + (" (assert statements disappear under python -O and raise the wrong type)."
               if what == "AssertionError" else "."))
