"""The grader against real learner mistakes in bernoulli_mask (and honest alternatives).

Each buggy version must lose points with feedback that names the mistake; each honest
alternative must keep full marks.  (The checks test the contract, not these fixtures.)
"""
import pytest

from tests.grading import grade_variants

STEM, EXERCISE = "01_bernoulli_mask", "bernoulli_mask"
VALIDATE = "    if not 0 <= p <= 1:\n        raise ValueError(p)\n"
RNG = "    rng = np.random.default_rng() if rng is None else rng\n"


def fn(body, validate=True, rng=True):
    return "def bernoulli_mask(shape, p, rng=None):\n" + (VALIDATE if validate else "") + \
        (RNG if rng else "") + body


MISTAKES = {  # name: (source, words the feedback must contain)
    "keep and drop swapped": (fn("    return rng.random(shape) < p\n"), "swapped"),
    "one mask shared by the batch": (fn(
        "    shape = (shape,) if isinstance(shape, int) else tuple(shape)\n"
        "    row = rng.random(shape[-1:]) >= p\n"
        "    return np.broadcast_to(row, shape).copy()\n"), "shared by the whole batch"),
    "one coin per row": (fn(
        "    shape = (shape,) if isinstance(shape, int) else tuple(shape)\n"
        "    col = rng.random(shape[:1] + (1,) * (len(shape) - 1)) >= p\n"
        "    return np.broadcast_to(col, shape).copy()\n"), "as a whole"),
    "exact-count shuffle": (fn(
        "    m = np.zeros(int(np.prod(shape)), dtype=bool)\n"
        "    m[: int(round(m.size * (1 - p)))] = True\n"
        "    rng.shuffle(m)\n"
        "    return m.reshape(shape)\n"), "exactly the same number"),
    "global RNG instead of rng": (fn(
        "    return np.random.rand(*np.atleast_1d(shape)) >= p\n", rng=False), "global generator"),
    "fixed seed inside": (fn(
        "    rng = np.random.default_rng(0)\n    return rng.random(shape) >= p\n", rng=False),
        "seed"),
    "no validation of p": (fn("    return rng.random(shape) >= p\n", validate=False), "accepted p"),
    "NaN slips through the range test": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    if p < 0 or p > 1:\n        raise ValueError(p)\n" + RNG +
        "    return rng.random(shape) >= p\n", "NaN"),
    "assert instead of ValueError": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    assert 0 <= p <= 1\n" + RNG + "    return rng.random(shape) >= p\n", "ValueError"),
    "0/1 floats instead of booleans": (fn("    return (rng.random(shape) >= p).astype(float)\n"),
                                       "should be boolean"),
    "2-D only": (fn("    return rng.random((shape[0], shape[1])) >= p\n"), "shape"),
    "draws in (0, 1] so p = 0 drops some": (fn("    return (1 - rng.random(shape)) > p\n"
                                               "    # (1 - u) is in (0, 1]; p = 1 keeps nothing, fine\n"),
                                            None),
}

HONEST = {
    ">= p": fn("    return rng.random(shape) >= p\n"),
    "< 1 - p": fn("    return rng.random(shape) < 1 - p\n"),
    "binomial": fn("    return rng.binomial(1, 1 - p, shape).astype(bool)\n"),
    "float32 draws": fn("    return rng.random(shape, dtype=np.float32) >= p\n"),
    "p shortcuts": fn("    if p == 0:\n        return np.ones(shape, dtype=bool)\n"
                      "    if p == 1:\n        return np.zeros(shape, dtype=bool)\n"
                      "    return rng.uniform(size=shape) > p\n"),
    "generator default in signature body": (
        "def bernoulli_mask(shape, p, rng=None):\n"
        "    if not (0.0 <= float(p) <= 1.0):\n        raise ValueError('p must be in [0, 1]')\n"
        "    gen = rng if rng is not None else np.random.default_rng()\n"
        "    u = gen.random(np.shape(np.empty(shape, dtype=np.uint8)))\n"
        "    return np.greater_equal(u, p)\n"),
}
# (1 - u) > p is an honest mask too (u in [0, 1) so 1 - u in (0, 1]); keep it as honest.
HONEST["(0, 1] draws"] = MISTAKES.pop("draws in (0, 1] so p = 0 drops some")[0]


@pytest.fixture(scope="module")
def graded():
    sources = {k: v[0] for k, v in MISTAKES.items()} | HONEST
    return grade_variants(STEM, EXERCISE, sources)


@pytest.mark.parametrize("name", MISTAKES)
def test_mistake_loses_points_with_a_named_message(graded, name):
    g, words = graded[name], MISTAKES[name][1]
    assert g.score < g.max_score, f"{name} got full marks"
    assert words.lower() in g.messages().lower(), f"{name}: feedback does not say {words!r}:\n{g.messages()}"


@pytest.mark.parametrize("name", HONEST)
def test_honest_alternative_gets_full_marks(graded, name):
    g = graded[name]
    assert g.score == g.max_score, f"{name} lost points:\n{g.messages()}"
