"""The grader of notebook 03 against real backward-pass mistakes and honest alternatives.

The mistake table: for every catalogued mistake, the exact set of checks it must fail and
words the first failing message must contain.  Mistakes of the pasted forward passes cost no
points here: only the note (worth 0 points) reports them.  Honest variants, unlike the
reference, must keep full marks.

The cache is the learner's own format, so a fixture that needs another cache redefines the
forward passes with it: every fixture is a last cell appended to the solution notebook, after
the reference forward passes of its first exercise cell (tests.grading.grade_variants).
"""
import tempfile
from pathlib import Path

import pytest

from tests.grading import (
    ROOT,
    assert_full_marks,
    assert_mistake,
    grade_notebook,
    grade_variants,
    notebook,
    solution_cells,
)

STEM = "03_backward"

# Forward passes whose cache is (mask or None, p, scheme): the backward pass works out the
# factor itself, which is where most backward mistakes happen.
FORWARDS_WITH_P = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (None, p, "inverted")
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) < 1 - p
    out = x * keep / (1 - p) if p < 1 else np.zeros_like(x)
    return out, (keep, p, "inverted")


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), (None, p, "classic")
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) < 1 - p
    return x * keep, (keep, p, "classic")
'''

BACKWARD_WITH_P = '''
def dropout_backward(dout, cache):
    keep, p, scheme = cache
{mask}    if keep is None:
        return dout * (1 - p) if scheme == "classic" else dout
    if scheme == "classic":
        return dout * keep
{inverted}
'''


def with_p(inverted="    return dout * keep / (1 - p) if p < 1 else np.zeros_like(dout)", mask=""):
    """FORWARDS_WITH_P and a backward pass for them, with one piece replaced."""
    return FORWARDS_WITH_P + BACKWARD_WITH_P.format(mask=mask, inverted=inverted)


# Forward passes that cache CS231n's scaled mask (a float array, or the factor in eval mode).
FORWARDS_SCALED = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (1.0, p)
    rng = np.random.default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p).astype(x.dtype) * (0.0 if p == 1 else 1 / (1 - p))
    return x * mask, (mask, p)


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), (1 - p, p)
    rng = np.random.default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p).astype(x.dtype)
    return x * mask, (mask, p)
'''

GLOBAL_MASK = """
_last_mask = None


def dropout_forward_inverted(x, p, train=True, rng=None):
    global _last_mask
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (None, 1.0)
    rng = np.random.default_rng() if rng is None else rng
    _last_mask = rng.random(x.shape) >= p
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return x * _last_mask * scale, (_last_mask.copy(), scale)


def dropout_forward_classic(x, p, train=True, rng=None):
    global _last_mask
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), (None, 1 - p)
    rng = np.random.default_rng() if rng is None else rng
    _last_mask = rng.random(x.shape) >= p
    return x * _last_mask, (_last_mask.copy(), 1.0)


def dropout_backward(dout, cache):
    keep, scale = cache
    if keep is None:
        return dout * scale
    return dout * _last_mask * scale        # the latest mask, not the cached one
"""

ELEMENT_LOOP = """
def dropout_backward(dout, cache):
    keep, scale = cache
    if keep is None:
        return dout * scale
    dx = np.zeros_like(dout)
    flat_dout, flat_keep, flat_dx = dout.reshape(-1), keep.reshape(-1), dx.reshape(-1)
    for i in range(flat_dout.size):
        if flat_keep[i]:
            flat_dx[i] = flat_dout[i] * scale
    return dx
"""

# Forward passes that cache x and out; a backward that divides out by x (0/0 where x is 0).
OUT_OVER_X = """
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (x, x)
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    out = x * keep * (0.0 if p == 1 else 1 / (1 - p))
    return out, (x, out)


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        out = x * (1 - p)
        return out, (x, out)
    rng = np.random.default_rng() if rng is None else rng
    out = x * (rng.random(x.shape) >= p)
    return out, (x, out)


def dropout_backward(dout, cache):
    x, out = cache
    return dout * out / x                   # d out / d x = out / x ... except where x is 0
"""

# The forward passes of notebook 02 written as element loops (slow, but right): the backward's
# timing must not charge them.
LOOP_FORWARDS = """
def _loop(x, keep, scale):
    out = np.zeros_like(x)
    fx, fk, fo = x.reshape(-1), keep.reshape(-1), out.reshape(-1)
    for i in range(fx.size):
        if fk[i]:
            fo[i] = fx[i] * scale
    return out


def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (None, 1.0)
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return _loop(x, keep, scale), (keep, scale)


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), (None, 1 - p)
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    return _loop(x, keep, 1.0), (keep, 1.0)
"""

IDENTITY_FORWARDS = """
def dropout_forward_inverted(x, p, train=True, rng=None):
    return x, None


def dropout_forward_classic(x, p, train=True, rng=None):
    return x, None
"""

# Forward passes that cache their output (the mask is then read off out != 0) and, at eval, None.
FORWARDS_CACHING_OUT = """
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (None, 1.0)
    rng = np.random.default_rng() if rng is None else rng
    scale = 0.0 if p == 1 else 1 / (1 - p)
    out = x * (rng.random(x.shape) >= p) * scale
    return out, (out, scale)


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), (None, 1 - p)
    rng = np.random.default_rng() if rng is None else rng
    out = x * (rng.random(x.shape) >= p)
    return out, (out, 1.0)
"""

# Forward passes that cache an unscaled float mask and the factor.
FORWARDS_FLOAT_MASK = """
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (None, 1.0)
    rng = np.random.default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p).astype(x.dtype)
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return x * mask * scale, (mask, scale)


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), (None, 1 - p)
    rng = np.random.default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p).astype(x.dtype)
    return x * mask, (mask, 1.0)
"""

# The same with a dict cache {"mask": ..., "scale": ...}.
FORWARDS_DICT_CACHE = FORWARDS_FLOAT_MASK.replace("(mask, scale)", '{"mask": mask, "scale": scale}').replace(
    "(None, 1.0)", '{"mask": None, "scale": 1.0}').replace(
    "(None, 1 - p)", '{"mask": None, "scale": 1 - p}').replace(
    "(mask, 1.0)", '{"mask": mask, "scale": 1.0}')

# Pasted forward passes that call notebook 01's bernoulli_mask, which notebook 03 does not define.
FORWARDS_FROM_NOTEBOOK_01 = FORWARDS_FLOAT_MASK.replace(
    "rng = np.random.default_rng() if rng is None else rng\n    mask = (rng.random(x.shape) >= p).astype(x.dtype)",
    "mask = bernoulli_mask(x.shape, p, rng)")


# the checks of grader/checks/test_03_backward.py, by function name
INV = "test_inverted_training"
CLS = "test_classic_training"
EVAL = "test_eval_mode"
CACHE = "test_uses_the_cache_it_is_given"
UNCHANGED = "test_leaves_dout_and_cache_unchanged"
P01 = "test_p_zero_and_one"
SHAPE = "test_any_shape_and_float32"
SPEED = "test_vectorised"
NOTE = "test_pasted_forwards_follow_notebook_02"

# name: (fixture source, the exact set of checks it must fail, words of the first message)
MISTAKES = {
    "draws a fresh mask": (
        with_p(mask="    if keep is not None:\n        keep = np.random.default_rng().random(dout.shape) >= p\n"),
        {INV, CLS, CACHE}, "a mask drawn anew in the backward pass?"),
    "forgets 1/(1 - p)": (with_p(inverted="    return dout * keep"), {INV}, "You forgot to divide by 1 − p"),
    "scales twice": (
        FORWARDS_SCALED + """
def dropout_backward(dout, cache):
    mask, p = cache
    if np.ndim(mask) and 0 < p < 1 and mask.max() > 1:
        return dout * mask / (1 - p)         # the mask already holds 1/(1 - p)
    return dout * mask
""", {INV}, "You scale twice"),
    "returns dout unchanged": ("def dropout_backward(dout, cache):\n    return dout\n",
                               {INV, CLS, EVAL, CACHE, P01}, "returned dout unchanged"),
    "never applies the mask": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n    return dout * scale\n",
        {INV, CLS, CACHE, P01}, "the mask is never applied"),
    "returns the factor, not dout times it": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n"
        "    return np.full_like(dout, scale) if keep is None else keep * scale\n",
        {INV, CLS, EVAL, P01}, "not dout times them"),
    "dx = dout * out / x (0/0 where x is 0)": (OUT_OVER_X, {INV, CLS, EVAL}, "dout · out / x"),
    "wrong eval-mode gradient: classic eval returns dout": (
        with_p().replace('return dout * (1 - p) if scheme == "classic" else dout', "return dout"),
        {EVAL}, "wrong eval-mode gradient"),
    "wrong eval-mode gradient: inverted eval scaled by 1 - p": (
        with_p().replace('return dout * (1 - p) if scheme == "classic" else dout', "return dout * (1 - p)"),
        {EVAL}, "wrong eval-mode gradient"),
    "wrong eval-mode gradient: crashes on an eval cache": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n    return dout * keep * scale\n",
        {EVAL}, "In eval mode the forward drew no mask"),
    "NaN at p = 1": (with_p(inverted="    return dout * keep / (1 - p)"), {P01},
                     "At p = 1 everything was dropped"),
    "uses the latest mask, not the cached one": (GLOBAL_MASK, {CACHE}, "LATER forward call"),
    "per-element Python loop": (ELEMENT_LOOP, {SPEED}, "per-element Python loop or np.vectorize"),
    "np.vectorize": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n    if keep is None:\n"
        "        return dout * scale\n    return np.vectorize(lambda d, k: d * scale if k else 0.0)(dout, keep)\n",
        {SPEED}, "per-element Python loop or np.vectorize"),
    # Not backward mistakes: the pasted forward breaks notebook 02's contract.  The backward is
    # graded against the forward it was given (or the contract); the forward is reported once,
    # in the note worth no points.
    "pasted inverted forward forgets its scaling, backward follows it": (
        with_p(inverted="    return dout * keep").replace(
            "out = x * keep / (1 - p) if p < 1 else np.zeros_like(x)", "out = x * keep"),
        {NOTE}, "Note — no points here"),
    "pasted inverted forward forgets its scaling, backward follows the contract": (
        with_p().replace("out = x * keep / (1 - p) if p < 1 else np.zeros_like(x)", "out = x * keep"),
        {NOTE}, "Note — no points here"),
    "pasted classic forward without eval scaling": (
        with_p().replace('return x * (1 - p), (None, p, "classic")', 'return x, (None, 0.0, "inverted")'),
        {NOTE}, "multiplies the elements by 1.000, not 0.700"),
    # forwards that drop nothing leave nothing for the backward's mask to show: not a way
    # around the backward's checks
    "pasted identity forwards, backward returns dout": (
        IDENTITY_FORWARDS + "\ndef dropout_backward(dout, cache):\n    return dout\n",
        {INV, CLS, CACHE, P01, SHAPE, NOTE}, "its mask dropped nothing or everything"),
    "overwrites dout in place": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n    if keep is not None:\n"
        "        dout *= keep\n    dout *= scale\n    return dout\n",
        {UNCHANGED}, "modified dout in place"),
    "dx is dout itself, zeroed and scaled in place": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n    dx = dout\n"
        "    if keep is not None:\n        dx[~keep] = 0\n    dx *= scale\n    return dx\n",
        {UNCHANGED}, "modified dout in place"),
    "scales the cached mask in place": (
        FORWARDS_FLOAT_MASK + "\ndef dropout_backward(dout, cache):\n    mask, scale = cache\n"
        "    if mask is None:\n        return dout * scale\n    mask *= scale\n    return dout * mask\n",
        {UNCHANGED}, "changed the cache it was given"),
    "mask read off out != 0": (
        FORWARDS_CACHING_OUT + "\ndef dropout_backward(dout, cache):\n    out, scale = cache\n"
        "    if out is None:\n        return dout * scale\n    return dout * (out != 0) * scale\n",
        {INV, CLS}, "the mask is read off the output"),
    "scale rounded to float16 in the backward pass": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n    if keep is None:\n"
        "        return dout * scale\n    return dout * keep * np.float16(scale)\n",
        {INV}, "it was rounded on the way"),
    "eval-mode factor rounded to float16": (
        "def dropout_backward(dout, cache):\n    keep, scale = cache\n    if keep is None:\n"
        "        return dout * np.float16(scale)\n    return dout * keep * scale\n",
        {EVAL}, "it was rounded on the way"),
    "classic gradient divided by 1 - p as well": (
        with_p().replace('    if scheme == "classic":\n        return dout * keep\n', ""),
        {CLS}, "Classic dropout does not scale while training"),
    "pasted forwards call notebook 01's bernoulli_mask": (
        FORWARDS_FROM_NOTEBOOK_01 + "\n# the reference dropout_backward stays\n",
        {INV, CLS, CACHE, P01, SHAPE, SPEED, NOTE},
        "which you wrote in notebook 01, but it is not defined in this notebook"),
    "pasted inverted forward gives NaN at p = 1": (
        with_p().replace("out = x * keep / (1 - p) if p < 1 else np.zeros_like(x)", "out = x * keep / (1 - p)"),
        {NOTE}, "NaN or infinite"),
}

HONEST = {
    "reference as written": "",
    "np.where": ("""
def dropout_backward(dout, cache):
    keep, scale = cache
    if keep is None:
        return dout * scale
    return np.where(keep, dout * scale, 0.0)
"""),
    "cached scaled mask": FORWARDS_SCALED + "\ndef dropout_backward(dout, cache):\n    return dout * cache[0]\n",
    "cached boolean mask with p, keep = u < 1 - p": with_p(),
    "explicit p = 0 and p = 1 shortcuts": FORWARDS_WITH_P.replace(
        "rng = np.random.default_rng() if rng is None else rng",
        "if p == 0:\n        return x, (None, 0.0, \"inverted\")\n"
        "    rng = np.random.default_rng() if rng is None else rng", 1) + """
def dropout_backward(dout, cache):
    keep, p, scheme = cache
    if p == 1 and keep is not None:
        return np.zeros_like(dout)
    if keep is None:
        return dout * (1 - p) if scheme == "classic" else dout
    return dout * keep / (1 - p) if scheme == "inverted" else dout * keep
""",
    "dict cache, float64 draws": ("""
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, {"mask": None, "factor": 1.0}
    rng = np.random.default_rng() if rng is None else rng
    mask = rng.random(x.shape) >= p
    factor = 0.0 if p == 1 else 1 / (1 - p)
    out = x * mask
    out *= factor
    return out, {"mask": mask, "factor": factor}


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), {"mask": None, "factor": 1 - p}
    rng = np.random.default_rng() if rng is None else rng
    mask = rng.random(x.shape) >= p
    return x * mask, {"mask": mask, "factor": 1.0}


def dropout_backward(dout, cache):
    dx = dout * cache["factor"]
    if cache["mask"] is not None:
        dx = dx * cache["mask"]
    return dx
"""),
    "float64 scaled mask (float32 dout gives float64 dx)": ("""
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, np.float64(1.0)
    rng = np.random.default_rng() if rng is None else rng
    mask = np.zeros(x.shape) if p == 1 else (rng.random(x.shape) >= p) / (1 - p)
    return (x * mask).astype(x.dtype), mask


def dropout_forward_classic(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x * (1 - p), np.float64(1 - p)
    rng = np.random.default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p).astype(np.float64)
    return (x * mask).astype(x.dtype), mask


def dropout_backward(dout, cache):
    return dout * cache
"""),
    "a small class as cache, in-place multiply on a new array": ("""
class DropCache:
    def __init__(self, keep, factor):
        self.keep, self.factor = keep, factor


def dropout_forward_inverted(x, p, train=True, rng=None):
    if p != p or not 0 <= p <= 1:
        raise ValueError(p)
    if not train:
        return x.copy(), DropCache(None, 1.0)
    rng = rng if rng is not None else np.random.default_rng()
    keep = rng.binomial(1, 1 - p, size=x.shape).astype(bool)
    factor = 1 / (1 - p) if p < 1 else 0.0
    return np.where(keep, x * factor, 0).astype(x.dtype), DropCache(keep, factor)


def dropout_forward_classic(x, p, train=True, rng=None):
    if p != p or not 0 <= p <= 1:
        raise ValueError(p)
    if not train:
        return x * (1 - p), DropCache(None, 1 - p)
    rng = rng if rng is not None else np.random.default_rng()
    keep = rng.random(x.shape, dtype=np.float32) < 1 - p
    return np.where(keep, x, 0).astype(x.dtype), DropCache(keep, 1.0)


def dropout_backward(dout, cache):
    dx = np.array(dout, copy=True)
    if cache.keep is not None:
        dx[~cache.keep] = 0
    dx *= cache.factor
    return dx
"""),
    "dx written into a new array with out=": ("""
def dropout_backward(dout, cache):
    keep, scale = cache
    dx = np.empty_like(dout)
    if keep is None:
        np.multiply(dout, scale, out=dx)
    else:
        np.multiply(dout, keep * scale, out=dx)
    return dx
"""),
    "scale in dout's dtype": ("""
def dropout_backward(dout, cache):
    keep, scale = cache
    factor = dout.dtype.type(scale)
    return dout * factor if keep is None else dout * keep * factor
"""),
    "mask and factor read, never written, from a dict cache; dout copied then scaled": (
        FORWARDS_DICT_CACHE + """
def dropout_backward(dout, cache):
    dx = dout.copy()
    if cache["mask"] is not None:
        dx *= cache["mask"]
    dx *= cache["scale"]
    return dx
"""),
    "scaled mask memoised in a dict cache on the first backward call": (
        FORWARDS_DICT_CACHE + """
def dropout_backward(dout, cache):
    if cache["mask"] is None:
        return dout * cache["scale"]
    if "scaled" not in cache:
        cache["scaled"] = cache["mask"] * cache["scale"]
    return dout * cache["scaled"]
"""),
    "element-loop forward passes pasted from 02 (backward not charged for them)":
        LOOP_FORWARDS + "\n# the reference dropout_backward stays\n",
}


@pytest.fixture(scope="module")
def grades():
    sources = {k: src for k, (src, *_) in MISTAKES.items()} | HONEST
    return grade_variants(STEM, "dropout_backward", sources)


@pytest.mark.parametrize("mistake", MISTAKES)
def test_mistake_fails_exactly_its_checks(grades, mistake):
    g, (_, expected, words) = grades[mistake], MISTAKES[mistake]
    assert_mistake(g, mistake, expected, words)
    if expected == {NOTE}:
        assert g.score == g.max_score, g     # a forward's mistake costs no backward points


@pytest.mark.parametrize("variant", HONEST)
def test_honest_variant_gets_full_marks(grades, variant):
    assert_full_marks(grades[variant], variant, 11)


def test_missing_forward_passes_are_asked_for():
    """Notebook 03 without the pasted forward passes: every check says to paste them."""
    cells = [c for c in solution_cells(STEM) if "def dropout_forward_" not in c]
    with tempfile.TemporaryDirectory() as d:
        g = grade_notebook(notebook(Path(d) / f"{STEM}.ipynb", cells))
    assert g.score == 0 and len(g.failed()) == len(g.tests), g
    for t in g.tests:
        assert "is not defined in this notebook" in t["output"], t
        assert "paste your two forward functions from notebook 02" in t["output"], t


def test_blank_notebook_is_not_implemented():
    """The student notebook as shipped: 0 points, not implemented yet, paste the forwards."""
    g = grade_notebook(ROOT / "notebooks" / f"{STEM}.ipynb")
    assert g.score == 0, g
    for t in g.tests:
        assert "not implemented yet" in t["output"], t
        assert "paste your two forward functions from notebook 02" in t["output"], t
