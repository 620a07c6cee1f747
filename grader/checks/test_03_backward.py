"""Checks for notebook 03: dropout_backward(dout, cache) -> dx.

The cache is the learner's own business, so every check chains the learner's forward pass (the
two functions pasted from notebook 02 into notebook 03's first exercise cell) into their
backward pass, in the same sandboxed process.  The backward's docstring defines dx by what the
forward did — dout times the factor the forward multiplied each element of x by — so dx is
graded against the forward the learner actually pasted:

    s = the forward's factor per element (out / x, read off the forward itself)
    dx must be dout * s

A pasted forward that breaks notebook 02's contract costs no points here: a backward that
follows the contract instead (dout * m / (1 − p), dout * m, dout * (1 − p), dout, with the
forward's own mask m) is accepted too, and the forward's problems are reported once, in the
last check, which is worth no points and points to notebook 02.

To read s off the forward exactly, also where x is 0 (the inputs contain zeros, as after a
ReLU), each case runs the forward twice with generators of the same seed: once on x_twin
(uniform in [1, 2], no zeros) and once on x (x_twin with about 10% of its elements set to 0),
then the backward on the cache of the second call.  Both calls draw the same mask, so
s = out(x_twin) / x_twin; the grader checks that the two outputs agree before relying on it
(and otherwise reads s from out / x where x is not 0).

The grader builds every input; the probes send back what the learner's functions returned
or raised.  These checks are deterministic given the mask (exact identities), except the
drop share in the note, whose bound is stated there.
"""
import numpy as np

from grader.checks import mark
from grader.checks.dropout_checks import (
    TIMING_N,
    as_array,
    assert_vectorised,
    at_sample,
    factor_name,
    learner_cpu,
    median_ratio,
    plain,
    raised_message,
    ratio,
    reference_cpu,
    sampled,
    timing_sample,
    undefined_name,
)
from grader.checks.stats import hoeffding, pct

pytestmark = mark.exercise("dropout_backward")
USES = ("dropout_backward", "dropout_forward_inverted", "dropout_forward_classic")
TIMING_CALLS = 8    # backward passes per timed run (a few ms of the reference's CPU time)


# ---------------------------------------------------------------- probes (run in the sandbox)
def forward_fn(nb, scheme):
    """The learner's forward pass of this scheme from THIS notebook, returning (out, cache);
    a clear message when it was not pasted in (or is still the stub)."""
    name = "dropout_forward_" + scheme
    paste = ("paste your two forward functions from notebook 02 into the first exercise cell of "
             "this notebook: dropout_backward is checked on the caches they return")
    try:
        f = nb.fn(name)
    except nb.Failure as e:
        if e.kind == "not_found":
            raise nb.Failure("not_found", "dropout_backward",
                             f"{name} is not defined in this notebook — {paste}.") from None
        raise nb.Failure(e.kind, "dropout_backward", f"{e.message} — {paste}.") from None

    def call(*args, **kwargs):
        try:
            return nb.pair(f(*args, **kwargs), name)
        except nb.Failure as e:
            if e.kind == "not_implemented":
                raise nb.Failure("not_implemented", "dropout_backward",
                                 f"{name} is not implemented yet in this notebook — {paste}.") from None
            raise
    return call


def backward_case(nb, scheme, x, x_twin, dout, p, train, seed, seed2=None):
    """The learner's forward on x_twin, then on x, each with a generator made from `seed` and
    NumPy's global generator seeded with `seed` (so that both draw the same mask); with seed2,
    one more forward on x with that seed; then the backward on dout and the cache of the
    forward on x, with NumPy's floating-point warnings (divide, invalid, overflow) raised as
    FloatingPointError.  Sends back what each call returned or raised."""
    forward, backward = forward_fn(nb, scheme), nb.fn("dropout_backward")
    res = {}
    try:
        np.random.seed(seed)
        res["twin"] = plain(forward(np.array(x_twin), p, train=train, rng=np.random.default_rng(seed))[0])
        np.random.seed(seed)
        out, cache = forward(np.array(x), p, train=train, rng=np.random.default_rng(seed))
        res["out"] = plain(out)
        if seed2 is not None:
            np.random.seed(seed2)
            res["out2"] = plain(forward(np.array(x), p, train=train, rng=np.random.default_rng(seed2))[0])
    except nb.Raised as e:
        res["forward_raised"] = [e.type, str(e) + getattr(e, "where", "")]
        return res
    try:
        with np.errstate(divide="raise", invalid="raise", over="raise"):
            res["dx"] = plain(backward(np.array(dout), cache))
    except nb.Raised as e:
        res["raised"] = [e.type, str(e) + getattr(e, "where", "")]
    return res


def reuse_cases(nb, cases):
    """For each case (scheme, x, dout, p, train, seed): the learner's forward on x, then two
    backward calls on its cache, each on a fresh copy of dout.  Sends back both dx (copied right
    after each call), how many elements of the first dout copy the first call changed, how many
    of the numbers and arrays the cache holds (itself, or in a tuple, list, dict or object one
    level down) the first call changed, or what the forward or the backward raised."""
    backward, got = nb.fn("dropout_backward"), []

    def snapshot(cache):
        try:
            if isinstance(cache, dict):
                parts = dict(cache)
            elif isinstance(cache, (tuple, list)):
                parts = dict(enumerate(cache))
            elif isinstance(cache, np.ndarray):
                parts = {0: cache}
            else:
                parts = dict(vars(cache))
        except Exception:   # noqa: BLE001 - an object without attributes
            parts = {}
        return {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in parts.items()
                if isinstance(v, (np.ndarray, int, float, np.number))}

    def changed_items(before, after):
        # what the cache held before the call, and now holds differently (added entries are
        # not a change: a backward may memoise something in its cache)
        def same(a, b):
            if isinstance(a, np.ndarray):
                return type(b) is np.ndarray and np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
            return type(a) is type(b) and (a == b or a != a)
        return sum(k not in after or not same(v, after[k]) for k, v in before.items())
    for scheme, x, dout, p, train, seed in cases:
        forward = forward_fn(nb, scheme)
        try:
            cache = forward(np.array(x), p, train=train, rng=np.random.default_rng(seed))[1]
        except nb.Raised as e:
            got.append({"forward_raised": [e.type, str(e) + getattr(e, "where", "")]})
            continue
        try:
            first, before = np.array(dout), snapshot(cache)
            dx1 = plain(backward(first, cache))
            changed = int((first != dout).sum()) if first.shape == np.shape(dout) else first.size
            cache_changed = changed_items(before, snapshot(cache))
            dx2 = plain(backward(np.array(dout), cache))
        except nb.Raised as e:
            got.append({"raised": [e.type, str(e) + getattr(e, "where", "")]})
            continue
        got.append({"dx": [dx1, dx2], "changed": changed, "cache_changed": cache_changed})
    return got


def forward_outputs(nb, scheme, x, p, train, seed):
    """The learner's pasted forward pass on x: its output, or what it raised."""
    forward = forward_fn(nb, scheme)
    try:
        return {"out": plain(forward(np.array(x), p, train=train, rng=np.random.default_rng(seed))[0])}
    except nb.Raised as e:
        return {"raised": [e.type, str(e) + getattr(e, "where", "")]}


def timing(nb, shape, p, seed, calls, sample=None):
    """One inverted training forward on a float32 x, then `calls` backward passes on its cache
    (timed from outside by learner.timed; with calls=0, the forward alone).  Returns the
    forward's output and the last dx (at the grader's sample of elements, when timed:
    sampled): the rule the timing is credited for is checked on them."""
    g = np.random.default_rng(seed)
    x = g.uniform(1, 2, shape).astype(np.float32)
    dout = g.standard_normal(shape).astype(np.float32)
    out, cache = forward_fn(nb, "inverted")(x, p, train=True, rng=np.random.default_rng(seed + 1))
    backward = nb.fn("dropout_backward")
    last_dout = dout.copy()   # the last call gets dout as built, even if an earlier one changed it
    dx = None
    for k in range(calls):
        dx = backward(last_dout if k == calls - 1 else dout, cache)
    return [sampled(out, shape, sample), sampled(dx, shape, sample)]


# ---------------------------------------------------------------- grader side
def follows_forward(x, dout, out, dx):
    """Is dx = dout × (out / x), the factor the forward applied (x has no zeros)?"""
    arrays = (out, dx)
    if not all(isinstance(a, np.ndarray) and a.shape == x.shape and a.dtype.kind == "f" for a in arrays):
        return False
    want = dout.astype(np.float64) * (out.astype(np.float64) / x)
    return bool(np.isfinite(dx).all() and np.allclose(dx, want, rtol=1e-4, atol=1e-6))


def forward_str(scheme, p, train):
    return f"dropout_forward_{scheme}(x, p={p!r}{'' if train else ', train=False'})"


def contract_factor(scheme, p, train, kept):
    """d out / d x element by element, as notebook 02's contract defines it for this mask."""
    if not train:
        return np.full(kept.shape, 1.0 if scheme == "inverted" else 1 - p)
    if scheme == "classic":
        return kept.astype(float)
    return kept / (1 - p) if p < 1 else np.zeros(kept.shape)


def make_case(learner, k, shape, dtype="float64", zeros=0.1):
    """x_twin uniform in [1, 2]; x the same with about `zeros` of it set to 0; dout normal."""
    g = learner.rng(k)
    x_twin = g.uniform(1, 2, shape)
    x = x_twin.copy()
    x[g.random(shape) < zeros] = 0
    dout = g.standard_normal(shape)
    return x.astype(dtype), x_twin.astype(dtype), dout.astype(dtype)


def run(learner, k, scheme, shape, p, train=True, dtype="float64", zeros=0.1, twice=False):
    x, x_twin, dout = make_case(learner, k, shape, dtype, zeros)
    seed = learner.seed(1000 + k)
    r = learner.call(backward_case, USES, helpers=(plain, forward_fn), scheme=scheme, x=x,
                     x_twin=x_twin, dout=dout, p=p, train=train, seed=seed,
                     seed2=learner.seed(2000 + k) if twice else None)
    r.update(x=x, x_twin=x_twin, dout=dout, scheme=scheme, p=p, train=train, stem=learner.stem)
    return r


def forward_factor(r):
    """The factor the learner's forward applied to each element (NaN where it cannot be read),
    or None when this case cannot grade the backward because the forward itself failed: it
    raised, returned NaN or a wrong shape, or — while training with 0 < p < 1 — drew a mask that
    drops nothing or everything, which leaves nothing for the backward's mask to show."""
    if "forward_raised" in r:
        return None
    x, twin, out = r["x"], r["twin"], r["out"]
    ok = [isinstance(v, np.ndarray) and v.shape == x.shape and np.isfinite(v).all() for v in (twin, out)]
    if not ok[1]:
        return None
    live = x != 0
    if ok[0] and np.array_equal(out[live], twin[live]) and not out[~live].any():
        s = twin / r["x_twin"]                    # the same mask on both calls: exact everywhere
    else:
        s = np.full(x.shape, np.nan)
        s[live] = out[live] / x[live]
    known = ~np.isnan(s)
    if r["train"] and ((r["p"] > 0 and not (s[known] == 0).any()) or (r["p"] < 1 and not s[known].any())):
        return None
    return s


def backward_call(r):
    return f"dropout_backward(dout, cache) with the cache of {forward_str(r['scheme'], r['p'], r['train'])}"


def check_dx(r, rtol=1e-6):
    """dx must be dout times the forward's factor (or, if the forward breaks its contract, the
    contract's factor for the forward's mask); explain in numbers when it is not.  Returns False
    when the forward failed on this case, so that the backward could not be graded on it."""
    scheme, p, train = r["scheme"], r["p"], r["train"]
    s = forward_factor(r)
    if s is None:
        return False
    call = backward_call(r)
    x, dout = r["x"], r["dout"]
    mode_hint = ("" if train else " In eval mode the forward drew no mask: out = x · "
                 + ("(1 − p), so dx = dout · (1 − p)." if scheme == "classic" else "1, so dx = dout."))
    if "raised" in r:
        kind, msg = r["raised"]
        hint = mode_hint
        if kind == "FloatingPointError":
            hint = (" NumPy met a division by zero or 0/0 (by default it only warns; the grader turns "
                    "such warnings into errors). "
                    + ("At p = 1 everything was dropped and 1 − p = 0: dx is all zeros, compute it "
                       "without dividing by 1 − p." if p == 1 else
                       f"x contains zeros here ({int((x == 0).sum())} of {x.size}, as after a ReLU): "
                       "is dx computed as dout · out / x? The factor of every element is in your "
                       "cache: use it, never a division by x." if (x == 0).any() else
                       "At p = 0 nothing was dropped and dx = dout: is something divided by p?"
                       if p == 0 else ""))
        assert False, raised_message(call, r["raised"], r["stem"]) + ("" if undefined_name(msg, r["stem"]) else hint)
    dx = as_array(r["dx"], x.shape, call)
    bad = ~np.isfinite(dx)
    if bad.any():
        at_zero = bool((x[bad] == 0).all()) and p < 1
        assert False, (
            f"{call} has {int(bad.sum())} NaN or infinite values among {dx.size}"
            + (": at p = 1, 0 / (1 − p) is 0/0. Every element was dropped, so dx is all zeros — "
               "compute it without dividing by zero." if p == 1 else
               ", exactly where x is 0: dout · out / x is 0/0 there. The factor of every element "
               "is in your cache: use it, never a division by x." if at_zero else "."))
    known = ~np.isnan(s)
    kept = s != 0
    contract = contract_factor(scheme, p, train, kept)
    if np.allclose(dx[known], (dout * s)[known], rtol=rtol, atol=0) or \
            np.allclose(dx, dout * contract, rtol=rtol, atol=0):
        return True
    forward_off = not np.allclose(s[known], contract[known], rtol=rtol, atol=0)
    note = (" (Your pasted forward breaks notebook 02's contract too: see the last check.)"
            if forward_off else "")
    want = np.where(known, s, contract)
    if np.allclose(dx[known], want[known], rtol=rtol, atol=0) and not np.allclose(want, 1):
        what = (("the mask and its scale" if scheme == "inverted" else "the mask") if train
                else f"the factor {ratio(want.flat[0], p)}")
        assert False, (
            f"{call} returned the forward's factors themselves ({what}), not dout times them: "
            "dx = dout · factor, element by element.")
    if not train:
        f, got = median_ratio(s, np.ones(s.shape), known), median_ratio(dx, dout)
        rounded = ROUNDED if f and abs(got / f - 1) < 1e-3 else ""
        assert False, (
            f"{call}: wrong eval-mode gradient — dx / dout = {ratio(got, p, f)}, "
            f"but the forward multiplied every element by {ratio(f, p, got)}.{rounded}{mode_hint}{note}")
    if np.array_equal(dx, dout):
        assert False, (
            f"{call} returned dout unchanged. The gradient of dropout is dout times the forward's "
            "own factor: zero where the forward dropped, and the forward's scaling where it kept.")
    dropped = known & ~kept
    zero_dx = dx == 0
    if dropped.any() and zero_dx[dropped].mean() < 0.01:
        assert False, (
            f"{call}: dx is not zero where the forward dropped ({pct(zero_dx[dropped].mean())} of "
            f"the {int(dropped.sum())} dropped elements have dx = 0): the mask is never applied. A "
            "dropped unit passed nothing forward, so it gets no gradient: multiply dout by the "
            f"mask stored in the cache.{note}")
    if (zero_dx[known] != dropped[known]).any():
        at_x0 = known & kept & zero_dx & (x == 0)
        if at_x0.any() and np.array_equal((zero_dx & ~at_x0)[known], dropped[known]):
            assert False, (
                f"{call}: dx is 0 at {int(at_x0.sum())} elements the forward kept, all of them where x "
                f"is 0 (x has {int((x == 0).sum())} zeros here, as after a ReLU): the mask is read off "
                "the output or off x (out != 0), where a kept element whose x is 0 looks dropped. Its "
                "gradient is still dout times its factor, whatever x's value: keep the mask itself in "
                f"the cache and use it.{note}")
        if "out2" in r and isinstance(r["out2"], np.ndarray) and r["out2"].shape == x.shape:
            later = (r["out2"] == 0) & (x != 0)
            if np.array_equal(zero_dx & (x != 0), later):
                assert False, (
                    f"{call} zeroed the elements dropped by a LATER forward call, not by the one "
                    "whose cache it was given: the mask is kept outside the cache (a global "
                    "variable?). A network has many dropout layers and many calls in flight; "
                    "the backward pass must use the mask stored in the cache it receives.")
        agree = (zero_dx == dropped)[known].mean()
        q = (~kept[known]).mean()
        fresh = abs(agree - (q * q + (1 - q) ** 2)) < 0.05
        assert False, (
            f"{call}: dx is zero at {pct(zero_dx[known].mean())} of the elements and the forward "
            f"dropped {pct(q)}, but the two agree on only {pct(agree)} of the elements: the "
            "backward pass applies a different mask from the forward's"
            + (f" — {pct(agree)} is what two independent masks agree on: a mask drawn anew in the "
               "backward pass?" if fresh else ".")
            + " The gradient belongs to the network that was actually run: reuse the mask stored "
            f"in the cache, never draw a new one.{note}")
    nz = known & kept
    f, r_exp = median_ratio(dx, dout, nz), median_ratio(dx, dout * want, nz)
    if abs(r_exp - 1) > rtol:
        wanted = median_ratio(want, np.ones(want.shape), nz)
        msg = (f"{call}: dx / dout = {ratio(f, p, wanted)} on the kept elements, but the forward "
               f"multiplied them by {ratio(wanted, p, f)}: dx is off by a factor {ratio(r_exp, p, 1.0)}.")
        if abs(r_exp - 1) < 1e-3:
            msg += ROUNDED
        name = factor_name(r_exp, p)
        if name == "1 − p" and factor_name(wanted, p) == "1/(1 − p)":
            msg += (" You forgot to divide by 1 − p: the forward scaled the kept elements, so "
                    "the gradient is scaled too.")
        elif name == "1/(1 − p)":
            msg += (" You scale twice: is the mask in your cache already divided by 1 − p, and "
                    "divided again in backward?" if scheme == "inverted" else
                    " Classic dropout does not scale while training, so neither does its gradient.")
        assert False, msg + note
    diff = int((~np.isclose(dx[known], (dout * want)[known], rtol=rtol, atol=0)).sum())
    assert False, (f"{call}: {diff} of {dx.size} elements of dx differ from dout × the forward's "
                   f"factor (median dx / expected = {r_exp:.3f}).{note}")


ROUNDED = (" The factor is right to 0.1 % but not to 1e-6: it was rounded on the way (stored as "
           "float16? rounded to a few decimals?). Compute it in full precision.")

FORWARD_FAILED = (
    "so dropout_backward could not be checked on its cache. Fix the forward in notebook 02 (its "
    "checks say what is wrong; the last check here lists what was seen) and paste it here again.")


def name_first(cases):
    """When a pasted forward raised NameError (a name this notebook does not define, such as
    notebook 01's bernoulli_mask), the sentence that names it, to come first; else ''."""
    for r in cases:
        if "forward_raised" in r:
            first = undefined_name(r["forward_raised"][1], r["stem"])
            if first:
                return (f"{first} (Your pasted forward pass raised {r['forward_raised'][1]}, so "
                        "dropout_backward could not be checked on its cache.)")
    return ""


def grade_cases(cases, rtol=1e-6):
    """check_dx on each case.  The cases the pasted forward failed on (see forward_factor) are
    left out, but every value of p a check names needs at least one case its forward ran."""
    graded = {}
    for r in cases:
        graded[r["p"]] = check_dx(r, rtol) or graded.get(r["p"], False)
    missing = [p for p, ok in graded.items() if not ok]
    assert not missing, name_first(cases) or (
        f"At p = {missing[0]} your pasted forward pass failed on every input of this check (it "
        "raised, returned NaN or a wrong shape, or its mask dropped nothing or everything), "
        + FORWARD_FAILED)


# ---------------------------------------------------------------- checks
@mark.points(2)
def test_inverted_training(learner):
    """inverted, training: dx = dout · mask / (1 − p), with the forward's own mask (p = 0.3, 0.875; x with zeros)"""
    grade_cases([run(learner, 10 + k, "inverted", (200, 300), p) for k, p in enumerate((0.3, 0.875))])


@mark.points(2)
def test_classic_training(learner):
    """classic, training: dx = dout · mask, with the forward's own mask (p = 0.3, 0.75; x with zeros)"""
    grade_cases([run(learner, 20 + k, "classic", (200, 300), p) for k, p in enumerate((0.3, 0.75))])


@mark.points(2)
def test_eval_mode(learner):
    """eval mode: dx = dout · (1 − p) for classic, dx = dout for inverted (p = 0.3; x with zeros)"""
    grade_cases([run(learner, 30 + k, scheme, (100, 200), 0.3, train=False)
                 for k, scheme in enumerate(("classic", "inverted"))])


@mark.points(1)
def test_uses_the_cache_it_is_given(learner):
    """uses the mask of the cache it is given, even after another forward call"""
    r = run(learner, 40, "inverted", (100, 200), 0.3, zeros=0, twice=True)
    s = forward_factor(r)
    assert s is not None, name_first([r]) or (
        "Your pasted forward pass failed here (it raised, returned NaN or a wrong shape, or its "
        "mask dropped nothing or everything), " + FORWARD_FAILED)
    call = backward_call(r) + " (then another forward call)"
    assert "raised" not in r, raised_message(call, r["raised"], learner.stem)
    dx = as_array(r["dx"], r["x"].shape, call)
    zero_dx, dropped = dx == 0, s == 0
    if np.array_equal(zero_dx, dropped):
        return
    if isinstance(r.get("out2"), np.ndarray) and np.array_equal(zero_dx, r["out2"] == 0):
        assert False, (
            f"{call} zeroed the elements dropped by the LATER forward call, not by the one whose "
            "cache it was given: the mask is kept outside the cache (a global variable?). A "
            "network has many dropout layers and many calls in flight; the backward pass must use "
            "the mask stored in the cache it receives.")
    if not zero_dx[dropped].any():
        assert False, (
            f"{call}: dx is zero at none of the {int(dropped.sum())} elements the forward dropped: "
            "the cached mask is never applied. A dropped unit gets no gradient: multiply dout by "
            "the mask stored in the cache.")
    agree = (zero_dx == dropped).mean()
    assert False, (
        f"{call}: dx is zero at {pct(zero_dx.mean())} of the elements, the forward dropped "
        f"{pct(dropped.mean())}, and the two agree on only {pct(agree)}: the backward pass does "
        "not use the mask of the cache it was given (a mask drawn anew, or kept elsewhere?). Reuse "
        "the mask stored in the cache.")


@mark.points(1)
def test_leaves_dout_and_cache_unchanged(learner):
    """never modifies dout or the cache: both hold the same numbers after the call"""
    cases = []
    for k, (scheme, train) in enumerate((("inverted", True), ("classic", True), ("classic", False))):
        x, _, dout = make_case(learner, 90 + k, (60, 80), zeros=0)
        cases.append((scheme, x, dout, 0.3, train, learner.seed(4000 + k)))
    got = learner.call(reuse_cases, USES, helpers=(plain, forward_fn), cases=cases)
    graded = []
    for (scheme, _x, dout, p, train, _), g in zip(cases, got):
        g["stem"] = learner.stem
        if "forward_raised" in g or "raised" in g:
            continue        # what the forward or the backward raised is the other checks' business
        graded.append(g)
        call = f"dropout_backward(dout, cache) with the cache of {forward_str(scheme, p, train)}"
        assert g["changed"] == 0, (
            f"{call} modified dout in place: {g['changed']} of its {dout.size} elements changed (dout "
            "multiplied in place, or dx made the same array as dout and then written into). The "
            "caller still holds dout and may use it again — a gradient check, a layer whose output "
            "goes to two places — so build dx as a new array and leave dout as it came.")
        # a cache whose numbers changed in the call; dx of two calls is shown when it differs
        # too (a backward that draws a new mask gives another dx without touching the cache: the
        # checks on the forward's mask charge that)
        dx1, dx2 = g["dx"]
        differ = (int((~((dx1 == dx2) | (np.isnan(dx1) & np.isnan(dx2)))).sum())
                  if isinstance(dx1, np.ndarray) and isinstance(dx2, np.ndarray)
                  and dx1.shape == dx2.shape and dx1.dtype.kind == dx2.dtype.kind == "f" else 0)
        assert not g["cache_changed"], (
            f"{call} changed the cache it was given ({g['cache_changed']} of the arrays or numbers it "
            "holds are different after the call: a cached mask scaled or multiplied in place?)"
            + (f"; a second call on the same cache, with the same dout, then gives another dx ({differ} "
               f"of {dx1.size} elements differ, median second / first = {median_ratio(dx2, dx1):.4g})"
               if differ else "")
            + ". A cache may be read more than once — a gradient check runs the backward pass again "
            "on it — so read it, never write into it.")
    assert graded, name_first(got) or (
        "Your forward or backward pass raised on every input of this check, so it could not see "
        "whether dout and the cache stay unchanged: the checks above say what failed.")


@mark.points(1)
def test_p_zero_and_one(learner):
    """training at p = 1 gives dx = 0 with no NaN or warning; at p = 0 dx = dout"""
    grade_cases([run(learner, 50 + k, scheme, (50, 60), p, zeros=0)
                 for k, (scheme, p) in enumerate((("inverted", 1.0), ("classic", 1.0),
                                                  ("inverted", 0.0), ("classic", 0.0)))])


@mark.points(1)
def test_any_shape_and_float32(learner):
    """returns dx shaped like dout, finite, for any shape (1-D, 4-D) and for float32 arrays"""
    graded, seen = 0, []
    for k, (shape, dtype) in enumerate((((7,), "float64"), ((2, 3, 4, 5), "float64"),
                                        ((30, 40), "float32"))):
        r = run(learner, 60 + k, "inverted", shape, 0.3, dtype=dtype, zeros=0)
        seen.append(r)
        if forward_factor(r) is None:
            continue
        graded += 1
        call = f"{backward_call(r)} on {dtype} arrays of shape {shape}"
        assert "raised" not in r, raised_message(
            call, r["raised"], learner.stem, "dout and the cache may have any number of "
            "dimensions: multiply whole arrays, with no assumption about rows and columns.")
        dx = as_array(r["dx"], shape, call)
        bad = int((~np.isfinite(dx)).sum())
        assert bad == 0, f"{call} has {bad} NaN or infinite values among {dx.size}."
    assert graded, name_first(seen) or "Your pasted forward pass failed on every input of this check, " + FORWARD_FAILED


@mark.points(1)
def test_vectorised(learner):
    """is vectorised: not far slower than the reference (no Python loop over elements)"""
    seed, p = learner.seed(70), 0.3
    g = np.random.default_rng(seed)
    x = g.uniform(1, 2, TIMING_N).astype(np.float32)
    dout = g.standard_normal(TIMING_N).astype(np.float32)
    cache = learner.solution("dropout_forward_inverted")(x, p, train=True, rng=np.random.default_rng(seed + 1))[1]
    backward = learner.solution("dropout_backward")
    ref = reference_cpu(lambda: backward(dout, cache))
    # uses: only the backward, so that a time-out here does not stop the note on the forwards
    sample = timing_sample(learner, 71)
    own = learner_cpu(learner, timing, USES[:1], TIMING_CALLS, ref, helpers=(forward_fn, plain, sampled),
                      shape=TIMING_N, p=p, seed=seed, sample=sample)
    assert_vectorised(own, ref, TIMING_CALLS, "dropout_backward(dout, cache)", "backward pass")
    # credited only for the computation the other checks see: a backward that applies the
    # forward's factor on a small input must apply it on the timing input too (after as many
    # calls on one cache: a backward that changes its cache is charged by its own check)
    small_shape = (100, 200)
    out_s, dx_s = learner.call(timing, USES[:1], helpers=(forward_fn, plain, sampled), shape=small_shape, p=p,
                               seed=seed, calls=TIMING_CALLS)
    g = np.random.default_rng(seed)
    x_s, dout_s = g.uniform(1, 2, small_shape).astype(np.float32), g.standard_normal(small_shape).astype(np.float32)
    (x_l, out_l), (dout_l, dx_l) = (at_sample(a, v, sample) for a, v in zip((x, dout), learner_cpu.last_value))
    if follows_forward(x_s, dout_s, out_s, dx_s):
        assert follows_forward(x_l, dout_l, out_l, dx_l), (
            "On a small input your dropout_backward multiplies dout by the factor your forward applied; on "
            "the timing input (1e6 float32 elements) it returns something else. The timing can only credit "
            "the computation the other checks see: compute the same thing whatever the size.")


@mark.points(0)
def test_pasted_forwards_follow_notebook_02(learner):
    """note, no points: the forward passes pasted from notebook 02 follow its contract (graded there)"""
    problems = []
    for k, (scheme, p, train) in enumerate((("inverted", 0.3, True), ("classic", 0.3, True),
                                            ("inverted", 0.3, False), ("classic", 0.3, False),
                                            ("inverted", 1.0, True), ("classic", 1.0, True))):
        x, _, _ = make_case(learner, 80 + k, (100, 200), zeros=0)
        r = learner.call(forward_outputs, USES[1:], helpers=(plain, forward_fn), scheme=scheme, x=x,
                         p=p, train=train, seed=learner.seed(3000 + k))
        call = forward_str(scheme, p, train)
        if "raised" in r:
            problems.append(f"{call} raised {r['raised'][1]}")
            continue
        out = r["out"]
        if not (isinstance(out, np.ndarray) and out.shape == x.shape):
            problems.append(f"{call} did not return an array of x's shape")
            continue
        if not np.isfinite(out).all():
            problems.append(f"{call} returned {int((~np.isfinite(out)).sum())} NaN or infinite values")
            continue
        kept = out != 0
        want = contract_factor(scheme, p, train, np.ones(x.shape, bool)).flat[0]
        if train and p < 1:
            share, tol = (~kept).mean(), hoeffding(out.size)   # 2 uses: false failure < 2e-10
            if abs(share - p) >= tol:
                problems.append(f"{call} dropped {pct(share)} of the elements instead of {pct(p)}")
        if p == 1 and train:
            if kept.any():
                problems.append(f"{call} left {int(kept.sum())} elements nonzero (p = 1 drops all)")
            continue
        f = median_ratio(out, x, kept)
        if kept.any() and abs(f - want) > 1e-6 * max(want, 1e-12):
            problems.append(f"{call} multiplies the {'kept ' if train else ''}elements by {ratio(f, p)}, "
                            f"not {ratio(want, p)}")
    assert not problems, (
        "Note — no points here; notebook 02 grades the forward passes. The forward passes pasted "
        "into this notebook break notebook 02's contract: " + "; ".join(problems) + ". Your "
        "dropout_backward is graded against what your forward does (and is also accepted if it "
        "follows the contract), so the checks above charge you for this only where the forward "
        "gave them nothing to check (it raised, or drew no usable mask). Fix the forward in "
        "notebook 02, where its checks say what is wrong, and paste it here again.")
