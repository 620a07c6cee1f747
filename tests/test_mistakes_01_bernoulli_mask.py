"""The grader against real learner mistakes in bernoulli_mask (and honest alternatives).

The mistake table says, for each mistake, exactly which checks it must fail (one mistake
costs only the checks whose behaviour it really breaks) and words its first failing message
must contain.  Every honest alternative, most of them unlike the reference, must keep full
marks.  (The checks test the contract, not these fixtures.)
"""
import pytest

from tests.grading import assert_full_marks, assert_mistake, grade_variants

STEM, EXERCISE = "01_bernoulli_mask", "bernoulli_mask"
VALIDATE = "    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
RNG = "    rng = np.random.default_rng() if rng is None else rng\n"

# the checks of grader/checks/test_01_bernoulli_mask.py
BOOLEAN = "test_returns_boolean_mask_of_shape"
FRACTION = "test_kept_fraction_is_one_minus_p"
OWN_COIN = "test_every_element_gets_its_own_coin"
GENERATOR = "test_uses_the_generator_it_is_given"
FRESH = "test_fresh_mask_on_every_call"
BINOMIAL = "test_kept_count_varies_like_a_binomial"
SHAPE = "test_any_shape"
ENDS = "test_p_zero_and_one"
REJECTS = "test_rejects_p_outside_0_1"


def fn(body, validate=True, rng=True):
    return "def bernoulli_mask(shape, p, rng=None):\n" + (VALIDATE if validate else "") + \
        (RNG if rng else "") + body


MISTAKES = {  # name: (source, the checks it must fail, words its first message must contain)
    "keep and drop swapped": (fn("    return rng.random(shape) < p\n"), {FRACTION}, "swapped"),
    "p ignored (a fair coin)": (fn("    return rng.random(shape) >= 0.5\n"), {FRACTION, ENDS},
                                "whatever p is"),
    "one mask shared by the batch": (fn(
        "    shape = (shape,) if isinstance(shape, int) else tuple(shape)\n"
        "    row = rng.random(shape[-1:]) >= p\n"
        "    return np.broadcast_to(row, shape).copy()\n"), {OWN_COIN}, "shared by the whole batch"),
    "one coin per row": (fn(
        "    shape = (shape,) if isinstance(shape, int) else tuple(shape)\n"
        "    col = rng.random(shape[:1] + (1,) * (len(shape) - 1)) >= p\n"
        "    return np.broadcast_to(col, shape).copy()\n"), {OWN_COIN}, "as a whole"),
    "exact-count shuffle": (fn(
        "    m = np.zeros(int(np.prod(shape)), dtype=bool)\n"
        "    m[: int(round(m.size * (1 - p)))] = True\n"
        "    rng.shuffle(m)\n"
        "    return m.reshape(shape)\n"), {BINOMIAL}, "a fixed number of kept elements"),
    "global RNG instead of rng": (fn(
        "    return np.random.rand(*np.atleast_1d(shape)) >= p\n", rng=False), {GENERATOR},
        "global generator"),
    "fixed seed inside": (fn(
        "    rng = np.random.default_rng(0)\n    return rng.random(shape) >= p\n", rng=False),
        {GENERATOR, FRESH, BINOMIAL}, "a seed is fixed inside the function"),
    "np.random.seed(0) inside (same mask every call)": (fn(
        "    np.random.seed(0)\n    return np.random.random_sample(shape) >= p\n", rng=False),
        {GENERATOR, FRESH, BINOMIAL}, "re-seeds the global generator on every call"),
    "fixed seed when rng is None": (fn(
        "    rng = np.random.default_rng(42) if rng is None else rng\n"
        "    return rng.random(shape) >= p\n", rng=False), {FRESH}, "rng=None"),
    "no validation of p": (fn("    return rng.random(shape) >= p\n", validate=False), {REJECTS},
                           "accepted p"),
    "NaN slips through the range test": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    if p < 0 or p > 1:\n        raise ValueError(p)\n" + RNG +
        "    return rng.random(shape) >= p\n", {REJECTS}, "NaN"),
    "assert instead of ValueError": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    assert 0 <= p <= 1\n" + RNG + "    return rng.random(shape) >= p\n", {REJECTS},
        "python -O"),
    "p = 1 rejected": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    if not 0 <= p < 1:\n        raise ValueError(p)\n" + RNG +
        "    return rng.random(shape) >= p\n", {ENDS}, "are valid drop probabilities"),
    "0/1 floats instead of booleans": (fn("    return (rng.random(shape) >= p).astype(float)\n"),
                                       {BOOLEAN}, "0/1 floats"),
    "binomial 0/1 integers": (fn("    return rng.binomial(1, 1 - p, size=shape)\n"), {BOOLEAN},
                              "0/1 integers"),
    "scaled mask (divides by 1 - p)": (fn("    return (rng.random(shape) >= p) / (1 - p)\n"),
                                       {BOOLEAN, ENDS}, "scaled mask"),
    "returns the uniform draws": (fn("    return rng.random(shape)\n"),
                                  {BOOLEAN, FRACTION, OWN_COIN, BINOMIAL, ENDS}, "Compare each uniform draw"),
    "special case p == 0 returns all dropped": (fn(
        "    if p == 0:\n        return np.zeros(shape, dtype=bool)\n"
        "    return rng.random(shape) >= p\n"), {ENDS}, "keep every element"),
    "2-D only": (fn("    return rng.random((shape[0], shape[1])) >= p\n"), {SHAPE}, "shape"),
    "global generator when rng is None": (fn(
        "    if rng is None:\n        return np.random.rand(*np.atleast_1d(shape)) >= p\n"
        "    return rng.random(shape) >= p\n", rng=False), {GENERATOR},
        "With rng=None your function draws from"),
    "the np.random module as the default generator": (fn(
        "    rng = np.random if rng is None else rng\n    return rng.random(shape) >= p\n", rng=False),
        {GENERATOR}, "With rng=None your function draws from"),
    "p rounded to two decimals": (fn("    return rng.random(shape) >= round(p, 2)\n"), {FRACTION},
                                  "At p = 0.875"),
    "whole-percent integer draws": (fn("    return rng.integers(0, 100, size=shape) >= int(p * 100)\n"),
                                    {FRACTION}, "At p = 0.875"),
    "p shortcuts return float ones and zeros": (fn(
        "    if p == 0:\n        return np.ones(shape)\n    if p == 1:\n        return np.zeros(shape)\n"
        "    return rng.random(shape) >= p\n"), {ENDS}, "boolean on every path"),
    "float16 draws (some round up to 1.0)": (
        fn("    return rng.random(shape).astype(np.float16) >= p\n"), {ENDS}, "float16"),
    "range test on p rounded to two decimals": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    if not 0 <= round(p, 2) <= 1:\n        raise ValueError(p)\n" + RNG +
        "    return rng.random(shape) >= p\n", {REJECTS}, "rounded before the range test"),
}

HONEST = {
    "the solution": None,
    "np.random.default_rng(rng) as the default": fn(
        "    rng = np.random.default_rng(rng)\n    return rng.random(shape) >= p\n", rng=False),
    "rng.uniform": fn("    return rng.uniform(0.0, 1.0, size=shape) >= p\n"),
    "a PCG64 generator of its own when rng is None": fn(
        "    rng = np.random.Generator(np.random.PCG64()) if rng is None else rng\n"
        "    return rng.random(shape) >= p\n", rng=False),
    "float32 draws and a float32 threshold": fn(
        "    return rng.random(shape, dtype=np.float32) >= np.float32(p)\n"),
    "np.isfinite in the range test": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    if not (np.isfinite(p) and 0 <= p <= 1):\n        raise ValueError(p)\n" + RNG +
        "    return rng.random(shape) >= p\n"),
    ">= p": fn("    return rng.random(shape) >= p\n"),
    "< 1 - p": fn("    return rng.random(shape) < 1 - p\n"),
    "~(u < p)": fn("    u = rng.random(size=shape)\n    return ~(u < p)\n"),
    "binomial": fn("    return rng.binomial(1, 1 - p, shape).astype(bool)\n"),
    "binomial, NumPy's own ValueError as the validation": fn(
        "    return rng.binomial(n=1, p=1 - p, size=shape) == 1\n", validate=False),
    "rng.choice, NumPy's own ValueError": fn(
        "    return rng.choice(np.array([False, True]), size=shape, p=[p, 1 - p])\n", validate=False),
    "np.where": fn("    return np.where(rng.random(shape) < 1 - p, True, False)\n"),
    "in place into a preallocated mask": fn(
        "    m = np.empty(shape, dtype=bool)\n"
        "    np.greater_equal(rng.random(m.shape), p, out=m)\n    return m\n"),
    "float32 draws": fn("    return rng.random(shape, dtype=np.float32) >= p\n"),
    "integer draws": fn("    return rng.integers(0, 2**32, size=shape) >= p * 2**32\n"),
    "child generator spawned from rng": fn(
        "    child = rng.spawn(1)[0]\n    return child.random(shape) >= p\n"),
    "seeded child from rng.integers": fn(
        "    child = np.random.default_rng(rng.integers(2**63))\n    return child.random(shape) >= p\n"),
    "p shortcuts": fn("    if p == 0:\n        return np.ones(shape, dtype=bool)\n"
                      "    if p == 1:\n        return np.zeros(shape, dtype=bool)\n"
                      "    return rng.uniform(size=shape) > p\n"),
    "(0, 1] draws": fn("    return (1 - rng.random(shape)) > p\n"),
    "generator default in signature body": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    if not (0.0 <= float(p) <= 1.0):\n        raise ValueError('p must be in [0, 1]')\n"
        "    gen = rng if rng is not None else np.random.default_rng()\n"
        "    u = gen.random(np.shape(np.empty(shape, dtype=np.uint8)))\n"
        "    return np.greater_equal(u, p)\n"),
    "isnan test, own ValueError subclass, keyword-only extra": (
        "class DropProbabilityError(ValueError):\n    pass\n\n\n"
        "def bernoulli_mask(shape, p, rng=None, *, dtype=bool):\n"
        "    import math\n"
        "    if math.isnan(p) or p < 0 or p > 1:\n"
        "        raise DropProbabilityError(f'p = {p} is not a probability')\n"
        "    if rng is None:\n        rng = np.random.default_rng()\n"
        "    shape = (shape,) if np.ndim(shape) == 0 else tuple(shape)\n"
        "    return (rng.random(shape) >= p).astype(dtype)\n"),
}


@pytest.fixture(scope="module")
def graded():
    sources = {k: v[0] for k, v in MISTAKES.items()} | HONEST
    return grade_variants(STEM, EXERCISE, sources)


@pytest.mark.parametrize("name", MISTAKES)
def test_mistake_fails_exactly_its_checks_with_a_named_message(graded, name):
    _, checks, words = MISTAKES[name]
    assert_mistake(graded[name], name, checks, words)


@pytest.mark.parametrize("name", HONEST)
def test_honest_alternative_gets_full_marks(graded, name):
    assert_full_marks(graded[name], name)
