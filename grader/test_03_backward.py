"""Checks for notebook 03: dropout_backward(dout, cache) -> dx.

The cache is the learner's own business, so every check chains the learner's forward pass
(the two functions pasted from notebook 02 into notebook 03's first exercise cell) into their
backward pass, in the same sandboxed process.  Inputs are uniform in [1, 2] (no zeros), so the
forward's zeros are exactly its dropped elements, and the contract fixes dx exactly:

    inverted, training:  dx = dout * (out != 0) / (1 - p)
    classic,  training:  dx = dout * (out != 0)
    classic,  eval:      dx = dout * (1 - p)
    inverted, eval:      dx = dout

These checks are deterministic (a fixed mask, exact identities): no statistical bound is
needed.  Messages report dx / dout and the median of dx / expected, so that "off by 1 − p" or
"scaled twice" can be read off the numbers.
"""
import numpy as np
import pytest

from grader.dropout_checks import (STEP_SHAPES, STEPS_PER_ELEMENT, TIMING_HELPERS, TIMING_N, as_array,
                                   assert_vectorised, factor_name, median_ratio, plain, ratio)
from grader.stats import pct

pytestmark = pytest.mark.exercise("dropout_backward")
USES = ("dropout_backward", "dropout_forward_inverted", "dropout_forward_classic")


# ---------------------------------------------------------------- probes (run in the sandbox)
def forward_fn(nb, scheme):
    """The learner's forward pass of this scheme from THIS notebook, returning (out, cache);
    a clear message when it was not pasted in (or is still the stub)."""
    name = "dropout_forward_" + scheme
    paste = ("paste your two forward functions from notebook 02 into the first exercise cell of "
             "this notebook: dropout_backward is checked on the caches they return")
    try:
        f = nb.fn(name)
    except LearnerFailure as e:
        if e.kind == "not_found":
            raise LearnerFailure("not_found", "dropout_backward",
                                 f"{name} is not defined in this notebook — {paste}.") from None
        raise LearnerFailure(e.kind, "dropout_backward", f"{e.message} — {paste}.") from None

    def call(*args, **kwargs):
        try:
            return expect_pair(f(*args, **kwargs), name)
        except LearnerFailure as e:
            if e.kind == "not_implemented":
                raise LearnerFailure("not_implemented", "dropout_backward",
                                     f"{name} is not implemented yet in this notebook — {paste}.") from None
            raise
    return call


def backward_case(nb, scheme, shape, p, seed, train=True, dtype="float64", twice=False):
    """out of the learner's forward, then dx of their backward on its cache.  With twice, a
    second forward pass runs before the backward pass (which must still use the first cache)."""
    import warnings
    forward, backward = forward_fn(nb, scheme), nb.fn("dropout_backward")
    g = np.random.default_rng(seed)
    x = g.uniform(1, 2, shape).astype(dtype)
    dout = g.standard_normal(shape).astype(dtype)
    rng = np.random.default_rng(seed + 1)
    res = {"x": x.copy(), "dout": dout.copy()}
    out, cache = forward(x, p, train=train, rng=rng)
    res["out"] = plain(out)
    if twice:
        res["out2"] = plain(forward(x, p, train=train, rng=rng)[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            res["dx"] = plain(backward(dout, cache))
        except LearnerRaised as e:
            res["raised"] = f"{e.type}: {e.exc}"[:200] + e.where
    res["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught][:3]
    return res


def timing(nb, ref_src, shape, p, seed, step_shapes, steps_per_element):
    """The learner's backward pass against the reference, each on the cache of its own
    forward pass, on float32 (see race)."""
    ref = {}
    exec(ref_src, ref)
    mine = (ref["dropout_forward_inverted"], ref["dropout_backward"])
    theirs = (forward_fn(nb, "inverted"), nb.fn("dropout_backward"))

    def prepare(shape, pair):
        g = np.random.default_rng(seed)
        x = g.uniform(1, 2, shape).astype(np.float32)
        dout = g.standard_normal(shape).astype(np.float32)
        cache = pair[0](x, p, train=True, rng=np.random.default_rng(seed + 1))[1]
        return lambda: pair[1](dout, cache)
    return race(prepare, mine, theirs, shape, step_shapes, steps_per_element)


# ---------------------------------------------------------------- grader side
def forward_str(scheme, p, train):
    return f"dropout_forward_{scheme}(x, p={p}{'' if train else ', train=False'})"


def contract_factor(scheme, p, train, kept):
    """d out / d x element by element, as the contract defines it."""
    if not train:
        return np.full(kept.shape, 1.0 if scheme == "inverted" else 1 - p)
    if scheme == "classic":
        return kept.astype(float)
    return kept / (1 - p) if p < 1 else np.zeros(kept.shape)


def forward_problem(scheme, p, train, out, x):
    """What is wrong with the pasted forward itself ('' if nothing seen; its checks are in 02)."""
    kept = out != 0
    want = contract_factor(scheme, p, train, np.ones(x.shape, bool)).flat[0]
    got = median_ratio(out, x, kept)
    if kept.any() and want and abs(got - want) > 1e-6 * want:
        return (f"{forward_str(scheme, p, train)} gives out / x = {ratio(got, p)} on the kept "
                f"elements where the contract says {ratio(want, p)}; fix it in notebook 02 (its "
                "checks say what is wrong) and paste it here again.")
    return ""


def check_dx(r, scheme, p, train=True, rtol=1e-6):
    """dx must be dout times the contract's derivative; explain in numbers when it is not."""
    fwd = forward_str(scheme, p, train)
    call = f"dropout_backward(dout, cache) with the cache of {fwd}"
    mode_hint = ("" if train else " In eval mode the forward drew no mask: out = x · "
                 + ("(1 − p), so dx = dout · (1 − p)." if scheme == "classic" else "1, so dx = dout."))
    assert "raised" not in r, f"{call} raised {r['raised']}.{mode_hint}"
    x, dout = r["x"], r["dout"]
    out = as_array(r["out"], x.shape, fwd)
    dx = as_array(r["dx"], x.shape, call)
    kept = out != 0
    want = dout * contract_factor(scheme, p, train, kept)
    bad = int((~np.isfinite(dx)).sum())
    assert bad == 0, (
        f"{call} has {bad} NaN or infinite values among {dx.size}"
        + (": at p = 1, 0 / (1 − p) is 0/0. Every element was dropped, so dx is all zeros — "
           "compute it without dividing by zero." if p == 1 else "."))
    if np.allclose(dx, want, rtol=rtol, atol=0):
        return
    problem = forward_problem(scheme, p, train, out, x)
    if problem and np.allclose(dx, dout * out / x, rtol=rtol, atol=0):
        assert False, (
            f"{call}: dx = dout · out / x, the exact derivative of the forward you pasted — your "
            f"backward pass follows your forward pass, but the forward breaks the contract: {problem}")
    note = f" Note: the forward you pasted is off too — {problem}" if problem else ""
    wanted = contract_factor(scheme, p, train, np.ones(1, bool))[0]
    if not train:
        assert False, (
            f"{call}: wrong eval-mode gradient — dx / dout = {ratio(median_ratio(dx, dout), p)}, but "
            f"the forward multiplied every element by {ratio(wanted, p)}.{mode_hint}{note}")
    if np.array_equal(dx, dout):
        assert False, (
            f"{call} returned dout unchanged. The gradient of dropout is dout times the forward's "
            "own factor: zero where the forward dropped, and the forward's scaling where it kept "
            f"(here × {ratio(wanted, p)}).{note}")
    zero_dx = dx == 0
    if (zero_dx != ~kept).any():
        if "out2" in r and np.array_equal(zero_dx, as_array(r["out2"], x.shape, fwd) == 0):
            assert False, (
                f"{call} zeroed the elements dropped by a LATER forward call, not by the one "
                "whose cache it was given: the mask is kept outside the cache (a global "
                "variable?). A network has many dropout layers and many calls in flight; "
                "the backward pass must use the mask stored in the cache it receives.")
        agree = (zero_dx == ~kept).mean()
        assert False, (
            f"{call}: dx is zero at {pct(zero_dx.mean())} of the elements and the forward "
            f"dropped {pct((~kept).mean())}, but the two agree on only {pct(agree)} of the "
            "elements. Your backward pass uses a different mask from the forward's — a fresh "
            "one? The gradient belongs to the network that was actually run: reuse the mask "
            f"stored in the cache, never draw a new one.{note}")
    nz = want != 0
    f, r_exp = median_ratio(dx, dout, nz), median_ratio(dx, want, nz)
    if abs(r_exp - 1) > rtol:
        msg = (f"{call}: dx / dout = {ratio(f, p)} on the kept elements; the contract says "
               f"{ratio(wanted, p)}. The median of dx / expected is {ratio(r_exp, p)}.")
        name = factor_name(r_exp, p)
        if scheme == "inverted" and name == "1 − p":
            msg += (" You forgot to divide by 1 − p: the forward scaled the kept elements, so "
                    "the gradient is scaled too.")
        elif name == "1/(1 − p)":
            msg += (" You scale twice: is the mask in your cache already divided by 1 − p, and "
                    "divided again in backward?" if scheme == "inverted" else
                    " Classic dropout does not scale while training, so neither does its gradient.")
        assert False, msg + note
    diff = int((~np.isclose(dx, want, rtol=rtol, atol=0)).sum())
    assert False, (f"{call}: {diff} of {dx.size} elements of dx differ from dout × d out/d x "
                   f"(median dx / expected = {r_exp:.3f}).{note}")


def run(learner, k, **kwargs):
    return learner.call(backward_case, USES, helpers=(plain, forward_fn), seed=learner.seed(k), **kwargs)


# ---------------------------------------------------------------- checks
@pytest.mark.points(3)
def test_inverted_training(learner):
    """inverted, training: dx = dout · mask / (1 − p), with the forward's own mask (p = 0.3, 0.75)"""
    for k, p in enumerate((0.3, 0.75)):
        check_dx(run(learner, 10 + k, scheme="inverted", shape=(200, 300), p=p), "inverted", p)


@pytest.mark.points(2)
def test_classic_training(learner):
    """classic, training: dx = dout · mask, with the forward's own mask (p = 0.3, 0.75)"""
    for k, p in enumerate((0.3, 0.75)):
        check_dx(run(learner, 20 + k, scheme="classic", shape=(200, 300), p=p), "classic", p)


@pytest.mark.points(2)
def test_eval_mode(learner):
    """eval mode: dx = dout · (1 − p) for classic, dx = dout for inverted (p = 0.3)"""
    for k, scheme in enumerate(("classic", "inverted")):
        r = run(learner, 30 + k, scheme=scheme, shape=(100, 200), p=0.3, train=False)
        check_dx(r, scheme, 0.3, train=False)


@pytest.mark.points(1)
def test_uses_the_cache_it_is_given(learner):
    """uses the mask of the cache it is given, even after another forward call"""
    r = run(learner, 40, scheme="inverted", shape=(100, 200), p=0.3, twice=True)
    check_dx(r, "inverted", 0.3)


@pytest.mark.points(1)
def test_p_zero_and_one(learner):
    """p = 1 gives dx = 0 with no NaN or warning; p = 0 gives dx = dout"""
    for k, (scheme, p, train) in enumerate((("inverted", 1.0, True), ("classic", 1.0, True),
                                            ("classic", 1.0, False), ("inverted", 0.0, True),
                                            ("classic", 0.0, True))):
        r = run(learner, 50 + k, scheme=scheme, shape=(50, 60), p=p, train=train)
        check_dx(r, scheme, p, train)
        assert not r["warnings"], (
            f"dropout_backward on the cache of {forward_str(scheme, p, train)} gave the right dx, "
            f"but NumPy warned: {r['warnings'][0]}. At p = 1 that is a division by 1 − p = 0: "
            "compute the gradient without dividing by zero.")


@pytest.mark.points(1)
def test_any_shape_and_float32(learner):
    """works for any shape (1-D, 4-D) and for float32 arrays"""
    for k, (shape, dtype) in enumerate((((7,), "float64"), ((2, 3, 4, 5), "float64"),
                                        ((30, 40), "float32"))):
        r = run(learner, 60 + k, scheme="inverted", shape=shape, p=0.3, dtype=dtype)
        check_dx(r, "inverted", 0.3, rtol=1e-5 if dtype == "float32" else 1e-6)


@pytest.mark.points(1)
def test_vectorised(learner):
    """is vectorised: no Python loop over elements, not far slower than the reference"""
    times = learner.call(timing, USES, timeout=30, helpers=(forward_fn, *TIMING_HELPERS),
                         ref_src=learner.reference("dropout_forward_inverted", "dropout_backward"),
                         shape=TIMING_N, p=0.3, seed=learner.seed(70), step_shapes=STEP_SHAPES,
                         steps_per_element=STEPS_PER_ELEMENT)
    assert_vectorised(times, "dropout_backward(dout, cache)", "backward pass")
