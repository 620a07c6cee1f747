"""The grader of notebook 02 against real mistakes and honest alternatives.

The mistake table: for every catalogued mistake, the exact set of checks it must fail (no
more: one mistake is charged only where it really breaks the behaviour a check names) and
words the first failing message must contain (it names the mistake).  Honest variants,
written the way people do it and unlike the reference, must keep full marks.

Every fixture is a learner's version of one forward pass, appended as a last cell to the
solution notebook (tests.grading.grade_variants).  Most are built from one template so that
each states only what it changes; the rest are written out in full.
"""
import textwrap

import pytest

from tests.grading import assert_full_marks, assert_mistake, grade_variants

STEM = "02_classic_vs_inverted"

# the checks of grader/checks/test_02_classic_vs_inverted.py, by function name
SHAPE = "test_returns_out_and_cache_of_any_shape"
DTYPE = "test_float32_stays_float32"
SHARE = "test_drops_a_share_p"
SCALE = "test_scales_kept_elements"
COINS = "test_no_mask_shared_by_the_batch"
ROWS = "test_every_row_drops_its_share"
EVAL = "test_eval_mode"
EVAL_RNG = "test_eval_draws_no_random_numbers"
X_KEPT = "test_does_not_modify_x"
P01 = "test_p_zero_and_one"
P_RANGE = "test_rejects_p_outside_0_1"
GEN = "test_uses_the_generator_it_is_given"
SPEED = "test_vectorised"

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


def validated_in_training_only(src):
    """The same function with the range test of p moved after the eval branch."""
    head, rest = src.split("    if not 0 <= p <= 1:\n", 1)
    check, rest = rest.split("\n", 1)
    ev, rest = rest.split("    rng = ", 1)
    return head + ev + "    if not 0 <= p <= 1:\n" + check + "\n    rng = " + rest


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

P_ONE_SHORTCUT_FIRST = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if p == 1:
        return np.zeros_like(x), None        # placed before the mode: eval at p = 1 drops too
    if not train:
        return x, None
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.random(x.shape) >= p
    return x * keep / (1 - p), keep
'''

# Honest, written unlike the reference
DIVIDE_WHERE = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    p = float(p)
    if p != p or p < 0 or p > 1:
        raise ValueError("dropout probability has to be between 0 and 1, but got {}".format(p))
    if not train:
        return x.copy(), {"train": False}
    gen = rng if rng is not None else np.random.default_rng()
    mask = gen.uniform(0.0, 1.0, size=x.shape) > p
    out = np.zeros_like(x)
    np.divide(x, 1.0 - p, out=out, where=mask)     # dropped elements stay 0, no 0/0 at p = 1
    return out, {"train": True, "mask": mask, "p": p}
'''

COPY_THEN_ZERO = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not (0.0 <= p <= 1.0):
        raise ValueError("bad p")
    if not train:
        return x, ("eval",)
    rng = rng or np.random.default_rng()
    drop = rng.random(x.shape, dtype=np.float32) < p
    out = x.copy()
    out[drop] = 0
    if p < 1:
        out /= (1 - p)
    return out, ("train", drop, p)
'''

CHOICE_MASK = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if np.isnan(p) or not 0 <= p <= 1:
        raise ValueError(p)
    if not train:
        return x, None
    rng = np.random.default_rng() if rng is None else rng
    keep = rng.choice([False, True], size=x.shape, p=[p, 1 - p])
    factor = x.dtype.type(0 if p == 1 else 1 / (1 - p))
    return np.where(keep, x * factor, x.dtype.type(0)), (keep, factor)
'''

FLOAT64_SCALED_CACHE = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    if not train:
        return x, np.ones(1)
    rng = np.random.default_rng() if rng is None else rng
    mask = (rng.random(x.shape) >= p) / (1 - p) if p < 1 else np.zeros(x.shape)  # float64
    return (x * mask).astype(x.dtype), mask
'''

FROM_NOTEBOOK_01 = forward("dropout_forward_inverted", mask="bernoulli_mask(x.shape, p, rng)   # from notebook 01")


CS231N_SCALED_MASK = '''
def dropout_forward_inverted(x, p, train=True, rng=None):
    if not 0 <= p <= 1:
        raise ValueError("p must be in [0, 1]")
    out, mask = None, None
    if train:
        rng = np.random.default_rng() if rng is None else rng
        mask = (rng.random(x.shape) >= p) / (1 - p) if p < 1 else np.zeros(x.shape)
        out = x * mask
    else:
        out = x
    out = out.astype(x.dtype, copy=False)
    return out, (train, mask)
'''

# name: (fixture source, the exact set of checks it must fail, words of the first message[,
#        checks it may also fail: a side effect whose size depends on the machine])
INVERTED_MISTAKES = {
    "keep and drop swapped": (
        inverted(mask="rng.random(x.shape) < p", train="return x * keep / p, keep"),
        {SHARE, P01}, "Keep and drop are swapped"),
    "divides by p instead of 1 - p": (
        inverted(train="return x * keep / p, keep"), {SCALE, P01}, "you divide by p instead of 1 − p"),
    "multiplies by 1 - p": (
        inverted(train="return x * keep * (1 - p), keep"), {SCALE}, "you multiply by 1 − p"),
    "forgets the training-time scaling": (
        inverted(train="return x * keep, keep"), {SCALE}, "you forgot to divide by 1 − p while training"),
    "also scales at eval": (
        inverted(eval="return x * (1 - p), None"), {EVAL}, "you also scale at eval"),
    "still drops at eval": (inverted(eval="pass"), {EVAL, EVAL_RNG}, "it still drops at eval"),
    "a p = 1 shortcut before the eval branch": (
        P_ONE_SHORTCUT_FIRST, {EVAL}, "shortcut for p = 1 placed before the test for train"),
    "one mask shared by the batch": (
        inverted(mask="rng.random(x.shape[-1:]) >= p"), {COINS}, "one mask is shared by the whole batch"),
    "one coin per row, a mask of shape (n, 1)": (
        inverted(mask="rng.random(x.shape[:1] + (1,) * (x.ndim - 1)) >= p"), {COINS, ROWS},
        "one coin per row (a mask of shape (rows, 1)?)"),
    "a mask for 2-D x only": (
        inverted(mask="rng.random((x.shape[0], x.shape[1])) >= p"), {SHAPE, COINS},
        "x may have any number of dimensions"),
    "NaN at p = 1": (
        inverted(train="return x * keep / (1 - p), keep"), {P01},
        "handle p = 1 without dividing by zero"),
    "ZeroDivisionError at p = 1": (
        inverted(train="scale = 1 / (1 - p)\nreturn x * keep * scale, (keep, scale)"), {P01},
        "raised ZeroDivisionError"),
    "modifies x in place": (
        inverted(train="x *= keep\nx /= 1 - p if p < 1 else 1\nreturn x, keep"), {X_KEPT},
        "modified the caller's x in place"),
    "float32 in, float64 out": (
        inverted(mask="np.where(rng.random(x.shape) >= p, 1 / (1 - p) if p < 1 else 0.0, 0.0)",
                 train="return x * keep, keep"),
        {DTYPE}, "float32 in, float64 out"),
    "returns the mask instead of x times the mask": (
        inverted(train="scale = 0.0 if p == 1 else 1 / (1 - p)\nreturn keep * scale, (keep, scale)"),
        {DTYPE, SCALE, P01}, "returned the mask, not x times the mask"),
    "draws random numbers in eval mode": (
        DRAWS_IN_EVAL, {EVAL_RNG}, "draws random numbers even when it does not drop"),
    "0/1 integer mask used as an index": (
        inverted(mask="rng.binomial(1, p, x.shape)   # 0/1 integers: 1 = drop",
                 train="out = x / (1 - p) if p < 1 else np.zeros_like(x)\nout[keep] = 0\nreturn out, keep"),
        {SHARE, COINS, ROWS, P01, GEN}, "integer 0/1 array",
        # out[int_mask] = 0 with a 1e6-element int_mask writes 1e9 elements: about 50x the
        # reference here, so whether it also fails the timing depends on the machine
        {SPEED}),
    "per-element Python loop": (ELEMENT_LOOP, {SPEED}, "per-element Python loop or np.vectorize"),
    "np.vectorize": (
        inverted(train="scale = 0.0 if p == 1 else 1 / (1 - p)\n"
                       "apply = np.vectorize(lambda v, k: v * scale if k else 0.0, otypes=[x.dtype])\n"
                       "return apply(x, keep), (keep, scale)"),
        {SPEED}, "per-element Python loop or np.vectorize"),
    "global RNG instead of rng": (
        inverted(mask="np.random.rand(*x.shape) >= p"), {GEN}, "generator passed as rng"),
    "seed fixed inside": (
        inverted(mask="np.random.default_rng(0).random(x.shape) >= p"), {GEN}, "is a seed fixed inside"),
    "no validation of p": (
        inverted().replace('raise ValueError(f"p must be in [0, 1], got {p}")', "pass"), {P_RANGE},
        "returned without error"),
    "validates p only while training": (
        validated_in_training_only(inverted()), {P_RANGE}, "also in eval mode"),
    "a range test that lets NaN through": (
        inverted().replace("if not 0 <= p <= 1:", "if p < 0 or p > 1:"), {P_RANGE},
        "write the range test so that NaN lands on the error side"),
    "assert instead of ValueError": (
        inverted().replace('raise ValueError(f"p must be in [0, 1], got {p}")', "assert False, p"),
        {P_RANGE}, "assert statements vanish under python -O"),
    "calls notebook 01's bernoulli_mask, not defined here": (
        FROM_NOTEBOOK_01, {SHAPE, DTYPE, SHARE, SCALE, COINS, ROWS, P01, GEN, SPEED},
        "which you wrote in notebook 01, but it is not defined in this notebook"),
    "rejects p = 1 on purpose (as tf.nn.dropout does)": (
        inverted().replace("if not 0 <= p <= 1:", "if not 0 <= p < 1:"), {EVAL, P01},
        "p = 1.0 is a valid drop probability"),
    "scale rounded to float16": (
        inverted(train="scale = np.float16(0.0 if p == 1 else 1 / (1 - p))\n"
                       "return x * keep * scale, (keep, scale)"), {SCALE}, "it was rounded on the way"),
    "p rounded to two decimals": (
        inverted(mask="rng.random(x.shape) >= round(p, 2)",
                 train="q = round(p, 2)\nscale = 0.0 if q == 1 else 1 / (1 - q)\n"
                       "return x * keep * scale, (keep, scale)"), {SCALE}, "p was rounded to 2 decimals"),
    "range test on p rounded to two decimals": (
        inverted().replace("if not 0 <= p <= 1:", "if not 0 <= round(p, 2) <= 1:"), {P_RANGE},
        "Is p rounded before the range test?"),
    "train tested with `is False`": (
        inverted().replace("if not train:", "if train is False:"), {EVAL}, "was not taken for eval mode"),
    "the np.random module as the default generator": (
        inverted().replace("rng = np.random.default_rng() if rng is None else rng",
                           "rng = np.random if rng is None else rng"), {GEN},
        "With rng=None your function draws from"),
    "0/1 integer mask (astype(int), as deeplearning.ai)": (
        inverted(mask="(rng.random(x.shape) < 1 - p).astype(int)"), {DTYPE}, "float32 in, float64 out"),
    "p = 1 shortcut with np.zeros(x.shape), float64 for a float32 x": (
        P_SHORTCUTS.replace("np.zeros_like(x)", "np.zeros(x.shape)"), {DTYPE}, "float32 in, float64 out"),
    "output always float32": (
        inverted(train="scale = 0.0 if p == 1 else 1 / (1 - p)\n"
                       "return (x * keep * scale).astype(np.float32), (keep, scale)"),
        {DTYPE}, "float64 in, float32 out"),
}

CLASSIC_MISTAKES = {
    "scales while training": (
        classic(train="scale = 0.0 if p == 1 else 1 / (1 - p)\nreturn x * keep * scale, (keep, scale)"),
        {SCALE}, "You scale while training"),
    "no eval scaling": (classic(eval="return x, None"), {EVAL}, "There is no eval scaling"),
    "eval scaled by p instead of 1 - p": (
        classic(eval="return x * p, None"), {EVAL}, "You scaled by p (the drop probability) instead of 1 − p"),
    "still drops at eval": (classic(eval="pass"), {EVAL, EVAL_RNG}, "it still drops at eval"),
    "keep and drop swapped": (classic(mask="rng.random(x.shape) < p"), {SHARE, P01}, "Keep and drop are swapped"),
    "returns the mask instead of x times the mask": (
        classic(train="return keep.astype(float), keep"), {DTYPE, SCALE, P01},
        "returned the mask, not x times the mask"),
    "validates p only while training": (
        validated_in_training_only(classic()), {P_RANGE}, "also in eval mode"),
    "eval factor as np.float64 (float32 in, float64 out)": (
        classic(eval="return x * np.float64(1 - p), (None, 1 - p)"), {DTYPE}, "float32 in, float64 out"),
    "train tested with `is False`": (
        classic().replace("if not train:", "if train is False:"), {EVAL}, "was not taken for eval mode"),
    "0/1 integer mask (astype(int), as deeplearning.ai)": (
        classic(mask="(rng.random(x.shape) < 1 - p).astype(int)"), {DTYPE}, "float32 in, float64 out"),
    "rejects p = 1 on purpose (as tf.nn.dropout does)": (
        classic().replace("if not 0 <= p <= 1:", "if not 0 <= p < 1:"), {EVAL, P01},
        "p = 1.0 is a valid drop probability"),
}

INVERTED_HONEST = {
    "reference as written": "",
    "np.where": inverted(train="scale = 0.0 if p == 1 else 1 / (1 - p)\n"
                               "return np.where(keep, x * scale, 0), (keep, scale)"),
    "cached scaled mask (x's dtype)": inverted(
        train="mask = keep.astype(x.dtype) * (0.0 if p == 1 else 1 / (1 - p))\nreturn x * mask, mask"),
    "cached float64 scaled mask, output cast to x's dtype": FLOAT64_SCALED_CACHE,
    "cached boolean mask, keep = u < 1 - p": inverted(mask="rng.random(x.shape) < 1 - p"),
    "explicit p = 0 and p = 1 shortcuts": P_SHORTCUTS,
    "float64 draws, uniform > p": inverted(mask="rng.uniform(size=x.shape) > p"),
    "binomial mask": inverted(mask="rng.binomial(1, 1 - p, size=x.shape).astype(bool)"),
    "integer binomial mask, multiplied": inverted(
        mask="rng.binomial(1, 1 - p, size=x.shape)",
        train="return (x * keep / (1 - p)).astype(x.dtype) if p < 1 else np.zeros_like(x), keep"),
    "eval returns a copy": inverted(eval="return x.copy(), (None, 1.0)"),
    "in-place scaling of a new array": inverted(
        train="out = x * keep\nout *= 0.0 if p == 1 else 1 / (1 - p)\nreturn out, keep"),
    "a vectorised loop over rows": ROW_LOOP,
    "np.divide with where=, float p, dict cache": DIVIDE_WHERE,
    "copy, zero the dropped elements, divide in place": COPY_THEN_ZERO,
    "rng.choice mask, factor in x's dtype, np.where": CHOICE_MASK,
    "np.random.default_rng(rng) as the default": inverted().replace(
        "rng = np.random.default_rng() if rng is None else rng", "rng = np.random.default_rng(rng)"),
    "scale in x's dtype": inverted(
        train="scale = x.dtype.type(0.0 if p == 1 else 1 / (1 - p))\nreturn x * keep * scale, (keep, scale)"),
    "CS231n's scaled mask, cast with astype(x.dtype, copy=False)": CS231N_SCALED_MASK,
    "train flag tested with bool()": inverted().replace("if not train:", "if bool(train) is False:"),
    "scale as a float32 number (float64 x stays float64)": inverted(
        train="scale = np.float32(0.0 if p == 1 else 1 / (1 - p))\nreturn x * keep * scale, (keep, scale)"),
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
    "binomial mask, copy zeroed in place": classic(
        mask="rng.binomial(1, 1 - p, size=x.shape) == 1",
        train="out = x.copy()\nout[~keep] = 0\nreturn out, keep"),
    "eval factor in x's dtype": classic(eval="return x * x.dtype.type(1 - p), (None, 1 - p)"),
    "np.random.default_rng(rng), boolean mask times x in place of a copy": classic(
        train="out = np.array(x, copy=True)\nout *= keep\nreturn out, keep").replace(
        "rng = np.random.default_rng() if rng is None else rng", "rng = np.random.default_rng(rng)"),
}


@pytest.fixture(scope="module")
def inverted_grades():
    sources = {k: src for k, (src, *_) in INVERTED_MISTAKES.items()} | INVERTED_HONEST
    return grade_variants(STEM, "dropout_forward_inverted", sources)


@pytest.fixture(scope="module")
def classic_grades():
    sources = {k: src for k, (src, *_) in CLASSIC_MISTAKES.items()} | CLASSIC_HONEST
    return grade_variants(STEM, "dropout_forward_classic", sources)


@pytest.mark.parametrize("mistake", INVERTED_MISTAKES)
def test_inverted_mistake_fails_exactly_its_checks(inverted_grades, mistake):
    assert_mistake(inverted_grades[mistake], mistake, *INVERTED_MISTAKES[mistake][1:])


@pytest.mark.parametrize("mistake", CLASSIC_MISTAKES)
def test_classic_mistake_fails_exactly_its_checks(classic_grades, mistake):
    assert_mistake(classic_grades[mistake], mistake, *CLASSIC_MISTAKES[mistake][1:])


@pytest.mark.parametrize("variant", INVERTED_HONEST)
def test_inverted_honest_variant_gets_full_marks(inverted_grades, variant):
    assert_full_marks(inverted_grades[variant], variant, 15)


@pytest.mark.parametrize("variant", CLASSIC_HONEST)
def test_classic_honest_variant_gets_full_marks(classic_grades, variant):
    assert_full_marks(classic_grades[variant], variant, 15)
