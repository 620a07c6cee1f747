"""The grader of notebook 02 against real mistakes (each must lose points with a message that
names it) and against honest alternatives (each must keep full marks).

Every fixture is a learner's version of one forward pass, appended as a last cell to the
solution notebook (tests.grading.grade_variants).  Most are built from one template so that
each states only what it changes; the rest are written out in full.
"""
import textwrap

import pytest

from tests.grading import grade_variants

STEM = "02_classic_vs_inverted"

TEMPLATE = '''
def {name}(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError(f"p must be in [0, 1], got {{p}}")
    if not train:
{eval}
    rng = np.random.default_rng() if rng is None else rng
    keep = {mask}
{train}
'''
DEFAULTS = {
    "dropout_forward_inverted": {
        "eval": "return x, (None, 1.0)",
        "train": "scale = 0.0 if p == 1 else 1 / (1 - p)\nreturn x * keep * scale, (keep, scale)",
    },
    "dropout_forward_classic": {
        "eval": "return x * (1 - p), (None, 1 - p)",
        "train": "return x * keep, (keep, 1.0)",
    },
}


def forward(name, mask="rng.random(x.shape) >= p", **parts):
    """A forward pass from TEMPLATE: the scheme's correct version with `parts` replaced."""
    body = {**DEFAULTS[name], **parts}
    return TEMPLATE.format(name=name, mask=mask, eval=textwrap.indent(body["eval"], " " * 8),
                           train=textwrap.indent(body["train"], " " * 4))


def inverted(**parts):
    return forward("dropout_forward_inverted", **parts)


def classic(**parts):
    return forward("dropout_forward_classic", **parts)


DRAWS_IN_EVAL = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p          # drawn before looking at the mode
    if not train:
        return x, (None, 1.0)
    scale = 0.0 if p == 1 else 1 / (1 - p)
    return x * keep * scale, (keep, scale)
'''

ELEMENT_LOOP = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (None, 1.0)
    rng = np.random.default_rng() if rng is None else rng
    u = rng.random(x.shape)
    out = np.zeros_like(x)
    flat_x, flat_u, flat_out = x.reshape(-1), u.reshape(-1), out.reshape(-1)
    for i in range(flat_x.size):
        if flat_u[i] >= p:
            flat_out[i] = flat_x[i] / (1 - p)
    return out, (u >= p, 0.0 if p == 1 else 1 / (1 - p))
'''

ROW_LOOP = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, (None, 1.0)
    rng = np.random.default_rng() if rng is None else rng
    scale = 0.0 if p == 1 else 1 / (1 - p)
    rows = x.reshape(len(x), -1) if x.ndim else x.reshape(1, 1)
    keep = np.empty(rows.shape, dtype=bool)
    for i in range(len(rows)):                      # one vectorised row at a time
        keep[i] = rng.random(rows.shape[1]) >= p
    keep = keep.reshape(x.shape)
    return x * keep * scale, (keep, scale)
'''

P_SHORTCUTS = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train or p == 0:
        return x, None                       # nothing dropped: x itself, no draws
    if p == 1:
        return np.zeros_like(x), "all dropped"
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    return x * keep / (1 - p), keep
'''

# name: (fixture source, a phrase of the message that must name the mistake)
INVERTED_MISTAKES = {
    "keep and drop swapped": (
        inverted(mask="rng.random(x.shape) < p", train="return x * keep / p, keep"),
        "Keep and drop are swapped"),
    "divides by p instead of 1 - p": (
        inverted(train="return x * keep / p, keep"), "you divide by p instead of 1 − p"),
    "multiplies by 1 - p": (
        inverted(train="return x * keep * (1 - p), keep"), "you multiply by 1 − p"),
    "forgets the training-time scaling": (
        inverted(train="return x * keep, keep"), "you forgot to divide by 1 − p while training"),
    "also scales at eval": (
        inverted(eval="return x * (1 - p), None"), "you also scale at eval"),
    "still drops at eval": (
        inverted(eval="pass"), "it still drops at eval"),
    "one mask shared by the batch": (
        inverted(mask="rng.random(x.shape[-1:]) >= p"), "one mask is shared by the whole batch"),
    "NaN at p = 1": (
        inverted(train="return x * keep / (1 - p), keep"), "0 / (1 − p) = 0/0 is NaN"),
    "modifies x in place": (
        inverted(train="x *= keep\nx /= 1 - p if p < 1 else 1\nreturn x, keep"),
        "modified the caller's x in place"),
    "float32 in, float64 out": (
        inverted(mask="np.where(rng.random(x.shape) >= p, 1 / (1 - p) if p < 1 else 0.0, 0.0)",
                 train="return x * keep, keep"),
        "float32 in, float64 out"),
    "draws random numbers in eval mode": (
        DRAWS_IN_EVAL, "draws random numbers even when it does not drop"),
    "0/1 integer mask used as an index": (
        inverted(mask="rng.binomial(1, p, x.shape)   # 0/1 integers: 1 = drop",
                 train="out = x / (1 - p) if p < 1 else np.zeros_like(x)\nout[keep] = 0\nreturn out, keep"),
        "integer 0/1 array"),
    "per-element Python loop": (ELEMENT_LOOP, "per-element Python loop or np.vectorize"),
    "np.vectorize": (
        inverted(train="scale = 0.0 if p == 1 else 1 / (1 - p)\n"
                       "apply = np.vectorize(lambda v, k: v * scale if k else 0.0, otypes=[x.dtype])\n"
                       "return apply(x, keep), (keep, scale)"),
        "per-element Python loop or np.vectorize"),
    # not in the list, but the contract's: the generator and p's range
    "global RNG instead of rng": (
        inverted(mask="np.random.rand(*x.shape) >= p"), "generator passed as rng"),
    "seed fixed inside": (
        inverted(mask="np.random.default_rng(0).random(x.shape) >= p"), "is a seed fixed inside"),
    "no validation of p": (
        inverted().replace('raise ValueError(f"p must be in [0, 1], got {p}")', "pass"),
        "accepted p = -0.1"),
}

CLASSIC_MISTAKES = {
    "scales while training": (
        classic(train="scale = 0.0 if p == 1 else 1 / (1 - p)\nreturn x * keep * scale, (keep, scale)"),
        "You scale while training"),
    "no eval scaling": (classic(eval="return x, None"), "There is no eval scaling"),
    "eval scaled by p instead of 1 - p": (
        classic(eval="return x * p, None"), "You scaled by p (the drop probability) instead of 1 − p"),
    "still drops at eval": (classic(eval="pass"), "it still drops at eval"),
    "keep and drop swapped": (classic(mask="rng.random(x.shape) < p"), "Keep and drop are swapped"),
}

INVERTED_HONEST = {
    "reference as written": "",
    "np.where": inverted(train="scale = 0.0 if p == 1 else 1 / (1 - p)\n"
                               "return np.where(keep, x * scale, 0), (keep, scale)"),
    "cached scaled mask (x's dtype)": inverted(
        train="mask = keep.astype(x.dtype) * (0.0 if p == 1 else 1 / (1 - p))\nreturn x * mask, mask"),
    "cached boolean mask, keep = u < 1 - p": inverted(mask="rng.random(x.shape) < 1 - p"),
    "explicit p = 0 and p = 1 shortcuts": P_SHORTCUTS,
    "float64 draws, uniform > p": inverted(mask="rng.uniform(size=x.shape) > p"),
    "binomial mask": inverted(mask="rng.binomial(1, 1 - p, size=x.shape).astype(bool)"),
    "eval returns a copy": inverted(eval="return x.copy(), (None, 1.0)"),
    "in-place scaling of a new array": inverted(
        train="out = x * keep\nout *= 0.0 if p == 1 else 1 / (1 - p)\nreturn out, keep"),
    "a vectorised loop over rows": ROW_LOOP,
}

CLASSIC_HONEST = {
    "reference as written": "",
    "np.where": classic(train="return np.where(keep, x, 0), keep"),
    "cached scaled mask (x's dtype)": classic(train="mask = keep.astype(x.dtype)\nreturn x * mask, mask"),
    "keep = u < 1 - p, eval as x - p * x": classic(mask="rng.random(x.shape) < 1 - p",
                                                   eval="return x - p * x, (None, 1 - p)"),
    "float32 draws, p = 0 shortcut": classic(
        mask="rng.random(x.shape, dtype=np.float32) >= p",
        train="if p == 0:\n    return x.copy(), None\nreturn x * keep, keep"),
}


@pytest.fixture(scope="module")
def inverted_grades():
    sources = {k: src for k, (src, _) in INVERTED_MISTAKES.items()} | INVERTED_HONEST
    return grade_variants(STEM, "dropout_forward_inverted", sources)


@pytest.fixture(scope="module")
def classic_grades():
    sources = {k: src for k, (src, _) in CLASSIC_MISTAKES.items()} | CLASSIC_HONEST
    return grade_variants(STEM, "dropout_forward_classic", sources)


@pytest.mark.parametrize("mistake", INVERTED_MISTAKES)
def test_inverted_mistake_is_named(inverted_grades, mistake):
    g, phrase = inverted_grades[mistake], INVERTED_MISTAKES[mistake][1]
    assert g.score < g.max_score, g
    assert phrase in g.messages(), g


@pytest.mark.parametrize("mistake", CLASSIC_MISTAKES)
def test_classic_mistake_is_named(classic_grades, mistake):
    g, phrase = classic_grades[mistake], CLASSIC_MISTAKES[mistake][1]
    assert g.score < g.max_score, g
    assert phrase in g.messages(), g


@pytest.mark.parametrize("variant", INVERTED_HONEST)
def test_inverted_honest_variant_gets_full_marks(inverted_grades, variant):
    g = inverted_grades[variant]
    assert g.max_score == 15 and g.score == g.max_score, g


@pytest.mark.parametrize("variant", CLASSIC_HONEST)
def test_classic_honest_variant_gets_full_marks(classic_grades, variant):
    g = classic_grades[variant]
    assert g.max_score == 15 and g.score == g.max_score, g
