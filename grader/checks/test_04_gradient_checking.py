"""Checks for notebook 04: numerical_gradient, relative_error, dropout_gradient_check.

    numerical_gradient(f, x, h=1e-5) -> float64 array: centred differences, any shape, x untouched
    relative_error(a, b) -> float: max over elements of |a - b| / max(|a| + |b|, 1e-8)
    dropout_gradient_check(forward, backward, x, p, seed, h=1e-5) -> float

The trust boundary.  Each probe runs in the learner's sandboxed process, builds its inputs from
its arguments, calls the learner's function and returns what it observed, raw: the learner's
return value, the exception it raised, how it called the functions it was given, the inputs
after the call.  Every verdict, reference value and message is computed here, in the grader.

The functions handed to the learner's code are written here, never taken from the learner's
notebook, so each exercise is graded on its own:
- numerical_gradient gets test functions f whose gradient the grader knows (proxies of
  functions run here: make_f);
- dropout_gradient_check gets dropout layers built by ONE function, `dropout_layer`, for every
  case.  In training mode its backward returns D * dout + B for arrays D and B that come with the
  case: for a correct pair, D is the true derivative (the mask that np.random.default_rng(seed)
  draws, times the scale) and B is 0; for a wrong pair they are perturbed (a missing or doubled
  scale, another mask, no dout, NaN, ...).  The cases of one call share x, p and seed, carry no
  name, and come in an order shuffled with a grading seed; only the grader knows which case is
  which.  The layers live in the grader's process: the learner's check gets proxies of forward
  and backward (nb.proxy), whose every call is a round trip to the grader, where the call is
  run and logged, so what it is handed holds nothing it could introspect.  Telling a correct
  pair from a wrong one therefore takes calling forward and backward; and since exercise 3
  defines the check through numerical_gradient, the log must show the evaluations a numerical
  gradient makes (two calls of forward per element of x, one more for the cache, and a call
  of backward).

dropout_gradient_check is graded on its own too: the learner's numerical_gradient and
relative_error are tried once (broken_dependencies) on what a dropout gradient check asks of them;
one that fails is replaced, where the learner's dropout_gradient_check looks it up, by a stand-in
written here, and a failing check's message says so.  Their mistakes then cost points only in
their own exercises.

No check is statistical: inputs come from fixed seeds (learner.rng / learner.seed), and the
bounds below are rounding or truncation bounds, argued next to each one.

One relative error and one set of thresholds, as in notebook 04 (section 2) and its summary:
rel(a, b) = max_i |a_i - b_i| / max(|a_i| + |b_i|, REL_FLOOR); above REL_WRONG a gradient is
wrong (below 1e-7 it is good, the table says); a correct fixed-mask dropout pair must give less
than REL_CORRECT.  Notebook 05's gradient check should use the same definition and thresholds.
"""
import contextlib
import weakref

import numpy as np

from grader.checks import mark
from grader.checks.dropout_checks import distinct_digits
from grader.sandbox.host import LearnerError

NG = ("numerical_gradient",)
RE = ("relative_error",)
GC = ("dropout_gradient_check",)

REL_FLOOR = 1e-8     # the floor of the denominator
REL_WRONG = 1e-2     # above: the gradient is wrong
REL_CORRECT = 1e-8   # what a correct fixed-mask dropout pair must give (exercise 3's contract)
DEFAULT_H = 1e-5     # numerical_gradient's default step


# ================================================================ probes (run in the sandbox)
def plain(v):
    """A learner's return value as plain data: numbers and numeric arrays pass, else its type."""
    if isinstance(v, (bool, np.bool_)):
        return {"value": None, "type": type(v).__name__}
    if isinstance(v, (int, float, np.integer, np.floating)):
        return {"value": float(v), "type": type(v).__name__}
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return {"value": np.array(v), "type": "ndarray"}
    return {"value": None, "type": type(v).__name__}


def make_f(case, seen):
    """f for numerical_gradient, with a gradient the grader knows; records how it is called.
    It runs here, in the grader: the learner's numerical_gradient gets a proxy of it (gradients),
    so it cannot read c or Q off the function it is given.  What the learner sends is bounded
    where it is recorded."""
    x0, c, q = case["x"], case["c"], case.get("q")

    def f(z):
        z = np.asarray(z)
        if list(z.shape) not in seen["shapes"] and len(seen["shapes"]) < 20:
            seen["shapes"].append(list(z.shape))
        if str(z.dtype) not in seen["dtypes"] and len(seen["dtypes"]) < 20:
            seen["dtypes"].append(str(z.dtype))
        if z.shape != x0.shape:
            raise ValueError(f"this test function expects an array of x's shape {x0.shape}, "
                             f"but was called with shape {z.shape}")
        d = np.abs(z.astype(np.float64) - x0.astype(np.float64))
        if len(seen["moves"]) < 100_000:
            seen["moves"].append([int(np.count_nonzero(d)), float(d.max()) if d.size else 0.0])
        if q is None:                              # f(x) = sum(c * x**3)
            return float(np.sum(c * z ** 3))
        v = z.reshape(-1)                          # f(x) = sum(c * sin x) + v.Q.v / 2
        return float(np.sum(c * np.sin(z)) + 0.5 * (v @ q @ v))
    return f


def gradients(nb, xs, hs, fresh=()):
    """numerical_gradient on the grader's test functions f (proxies: each call of the i-th is a
    round trip to the grader's make_f, which records it); what it returned and x afterwards.
    From each case numbered in `fresh` on, the learner's definitions are loaded afresh
    (nb.fresh(): as in a call of its own)."""
    ng = nb.fn("numerical_gradient")
    answers = []
    for i, (x, h) in enumerate(zip(xs, hs)):
        if i in fresh:
            ng = nb.fresh().fn("numerical_gradient")
        f, x = nb.proxy(f"f {i}"), x.copy()
        f.__name__ = f.__qualname__ = "f"
        try:
            g = ng(f, x) if h is None else ng(f, x, h=h)
        except nb.Raised as e:      # reported per case, so that one shape cannot hide the others
            answers.append({"raised": f"{e}{getattr(e, 'where', '')}", "x_after": x})
            continue
        answers.append({"g": plain(g), "x_after": x})
    return answers


def rel_errors(nb, pairs):
    """relative_error on each (a, b): its value (or the exception), and a and b afterwards."""
    re = nb.fn("relative_error")
    out = []
    for a, b in pairs:
        a1, b1 = a.copy(), b.copy()
        try:
            r = plain(re(a1, b1))
        except nb.Raised as e:
            r = {"value": None, "type": "exception", "raised": str(e)}
        r.update(a_after=a1, b_after=b1)
        out.append(r)
    return out


STATE_CHARS = 400   # of a generator state's repr in the log (a PCG64 state's is about 150)


def dropout_layer(case, log):
    """The one dropout layer every case uses; the case's numbers are its only difference.  It
    runs here, in the grader's process: the learner's check gets proxies of forward and backward
    (gradient_checks), whose every call is a round trip to this process, so it can read nothing
    of the case but what calling them returns.

    forward(x, p, train=True, rng=None) -> (out, cache): in training mode it keeps the elements
    where rng.random(x.shape) >= p and scales them by (1 - p) ** -a_train; in evaluation mode it
    scales x by (1 - p) ** a_eval.  backward(dout, cache) returns d * dout + b in training mode and
    dout * (1 - p) ** a_eval in evaluation mode.  The log records how they were called (what the
    learner sent is bounded: it keys the log)."""
    a_train, a_eval, d, b = case["a_train"], case["a_eval"], case["d"], case["b"]
    spare = np.random.default_rng(case["spare"])   # rng=None: a new mask per call, as np.random's, but reproducible

    def forward(x, p, train=True, rng=None):
        x = np.asarray(x)
        if rng is None:
            how = "None"
        elif isinstance(rng, np.random.Generator):
            how = repr(rng.bit_generator.state)[:STATE_CHARS]
        else:
            how = type(rng).__name__[:40]
        try:
            q = float(p)
        except (TypeError, ValueError):
            q = repr(p)[:40]
        key = (bool(train), repr(train)[:40], q, how)
        if key in log["forward"] or len(log["forward"]) < 100:
            log["forward"][key] = log["forward"].get(key, 0) + 1
        else:
            log["other"] += 1
        if not train:
            return x * (1.0 - p) ** a_eval, {"train": False, "p": p}
        gen = spare if rng is None else rng
        keep = gen.random(x.shape) >= p
        return x * np.where(keep, (1.0 - p) ** -a_train, 0.0), {"train": True, "p": p}

    def backward(dout, cache):
        dout = np.asarray(dout)
        if len(log["douts"]) < 2:
            log["douts"].append(np.array(dout, dtype=np.float64))
        log["backward"] += 1
        if not cache["train"]:
            return dout * (1.0 - cache["p"]) ** a_eval
        return d * dout + b

    return forward, backward


def standin_numerical_gradient(f, x, h=1e-5):
    """Centred differences, written here: used in place of a learner's numerical_gradient that
    failed the grader's test (see dependencies), so dropout_gradient_check is graded on its own."""
    x = np.array(x, dtype=np.float64)
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = f(x)
        x[i] = old - h
        down = f(x)
        x[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad


def standin_relative_error(a, b):
    """Notebook 04's relative error, written here (see standin_numerical_gradient)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))


def dependencies(nb, x, d, pairs):
    """What the learner's numerical_gradient gives for f(z) = Σ d·z (and x afterwards), and what
    its relative_error gives on each pair: raw, for the grader to compare."""
    out = {"ng": None, "re": []}
    given, calls = x.copy(), []

    def f(z):
        calls.append(1)
        return float(np.sum(d * np.asarray(z, dtype=np.float64)))
    try:
        g = nb.fn("numerical_gradient")(f, given)
        out["ng"] = {"g": plain(g), "x_after": given, "calls": len(calls)}
    except (nb.Raised, nb.Failure) as e:
        out["ng"] = {"raised": str(e)}
    for a, b in pairs:
        try:
            out["re"].append(plain(nb.fn("relative_error")(a.copy(), b.copy())))
        except (nb.Raised, nb.Failure) as e:
            out["re"].append({"raised": str(e)})
    return out


def install_standins(nb, names):
    """Bind each name, where the learner's dropout_gradient_check looks it up, to the stand-in."""
    made = {"numerical_gradient": standin_numerical_gradient, "relative_error": standin_relative_error}
    g = getattr(nb.get("dropout_gradient_check"), "__globals__", None)
    if isinstance(g, dict):
        for name in names:
            g[name] = made[name]


def gradient_checks(nb, n, x, p, seed, standins=()):
    """The learner's dropout_gradient_check on n layers, each given as proxies (nb.proxy) of the
    grader's forward and backward, with the same x, p and seed (and the grader's stand-ins for
    the dependencies named in standins).  Nothing of a case is in this process."""
    install_standins(nb, standins)
    check = nb.fn("dropout_gradient_check")
    out = []
    for i in range(n):
        forward, backward = nb.proxy(f"forward {i}"), nb.proxy(f"backward {i}")
        forward.__name__ = forward.__qualname__ = "forward"
        backward.__name__ = backward.__qualname__ = "backward"
        x_given = x.copy()
        try:
            r = plain(check(forward, backward, x_given, p, seed))
        except nb.Raised as e:
            r = {"value": None, "type": "exception", "raised": f"{e}{getattr(e, 'where', '')}"}
        r["x_after"] = x_given
        out.append(r)
    return out


# ================================================================ helpers (grader side)
def isnan(v):
    return bool(np.isnan(v))


def fmt(v):
    return "nan" if isnan(v) else f"{v:.3g}"


def power(v):
    """1e-08 -> '1e-8' (for bounds)."""
    return f"{v:.0e}".replace("e-0", "e-")


def number(r, call):
    """The learner's result as a float, for checks about its value.  An array is reduced to its
    largest element (NaN if it holds one): whether the result is one number is the business of
    the check that says so, not of every check."""
    if "raised" in r:
        assert False, f"{call} raised {r['raised']}."
    v = r["value"]
    if isinstance(v, np.ndarray):
        return float(np.max(v)) if v.size else float("nan")
    assert v is not None, f"{call} returned {r['type']}; it should return one number (a float)."
    return float(v)


def as_gradient(r, shape, call):
    assert "raised" not in r, f"{call} raised {r.get('raised')}."
    g = r["g"]["value"]
    assert isinstance(g, np.ndarray), (
        f"{call} returned {r['g']['type']}; return a NumPy array with one partial derivative per "
        "element of x.")
    assert shape is None or g.shape == shape, (
        f"{call} returned shape {g.shape}; the gradient has x's shape {shape}, one partial "
        "derivative per element.")
    return g


def sinquad(rng, shape, dtype=np.float64):
    """f(x) = sum(c * sin x) + v.Q.v / 2 (v = x flattened): a case for the probe, and its gradient."""
    x = rng.uniform(-2, 2, shape).astype(dtype)
    c = rng.uniform(0.5, 2, shape) * rng.choice([-1.0, 1.0], shape)
    a = rng.standard_normal((x.size, x.size))
    q = (a + a.T) / (2 * np.sqrt(x.size))   # symmetric, so the gradient of v.Q.v/2 is Q.v
    x64 = x.astype(np.float64)
    true = c * np.cos(x64) + (q @ x64.reshape(-1)).reshape(shape)
    return {"x": x, "c": c, "q": q}, true


def cubic(rng, shape, h=None):
    """f(x) = sum(c * x**3): centred differences are off by exactly c·h², forward ones by 3c·x·h + c·h²."""
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    c = rng.uniform(0.5, 2, shape) * rng.choice([-1.0, 1.0], shape)
    return {"x": x, "c": c, "h": h}, 3 * c * x ** 2


def ratio_to_true(g, true):
    """Median of g / true where the true gradient is not small: 2 means 'divided by h, not 2h'."""
    big = np.abs(true) > 0.1 * np.abs(true).max()
    return float(np.median(g[big] / true[big]))


def step_hint(ratio, h=DEFAULT_H):
    if abs(ratio - 2) < 0.05:
        return (f" Your values are {ratio:.2f}× the true gradient: the difference f(x + h) − f(x − h) "
                "spans 2h, so divide it by 2h, not by h.")
    if abs(ratio - 0.5) < 0.025:
        return f" Your values are {ratio:.2f}× the true gradient: divide by 2h, not by 4h."
    if ratio and abs(ratio / (h * h) - 1) < 0.05:
        return (f" Your values are h² = {h * h:g} times the true gradient: '/ 2 * h' divides by 2 "
                "and then MULTIPLIES by h. The divisor is the product 2h: put it in parentheses.")
    return ""


def wrong_scale(g, true, h):
    """2, 0.5 or h² when the quotient is scaled by that constant (÷ h, ÷ 4h, '/ 2 * h'), else 1:
    taken out so that the checks of the kind of difference and of the step judge only those."""
    ratio = ratio_to_true(g, true)
    return next((k for k in (2.0, 0.5, h * h) if abs(ratio / k - 1) < 0.05), 1.0)


def one_sided_step(err, c, x):
    """('forward' | 'backward', step s) when err is what one-sided differences with a step s give
    on Σ c·x³ (±3c·x·s + c·s², within 5 %); ('', nan) otherwise."""
    for kind, sign in (("forward", 1.0), ("backward", -1.0)):
        s = float(np.median(sign * err / (3 * c * x)))
        if s > 0 and np.allclose(err, sign * 3 * c * x * s + c * s * s, rtol=0.05, atol=1e-12):
            return kind, s
    return "", float("nan")


def nb_call(shape, h=None):
    return f"numerical_gradient(f, x{'' if h is None else f', h={h}'}) with x of shape {shape}"


def ref_relative_error(a, b, den="sum", numerator="abs"):
    """Notebook 04's relative error (and, for naming mistakes, its usual variants)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    d = {"sum": np.abs(a) + np.abs(b), "max": np.maximum(np.abs(a), np.abs(b)),
         "a": np.abs(a), "b": np.abs(b), "abs_of_sum": np.abs(a + b)}[den]
    top = np.abs(a - b) if numerator == "abs" else a - b
    return float(np.max(top / np.maximum(d, REL_FLOOR)))


def rel_call(what):
    return f"relative_error({what})"


def close(v, want, rel):
    """v within rel (relative) of want; False for NaN."""
    return bool(abs(v - want) <= rel * abs(want))


# ================================================================ numerical_gradient
def ng_cases(learner):
    """{check: [(case, true gradient)]}: every case the checks of numerical_gradient give it."""
    rng = learner.rng
    case32, true32 = sinquad(rng(50), (20,), dtype=np.float32)
    return {"float64": [sinquad(rng(1), (4, 5))],
            "shapes": [sinquad(rng(10 + k), s) for k, s in enumerate(NG_SHAPES)],
            "order": [cubic(rng(20), (12,), NG_H), cubic(rng(21), (12,))],
            "step": [cubic(rng(30), (12,), NG_H)],
            "default": [cubic(rng(35), (6,))],
            "x": [sinquad(rng(40), (3, 4))],
            "float32": [(case32, true32), (dict(case32, x=case32["x"].astype(np.float64)), true32)]}


NG_SHAPES = [(7,), (4, 5), (2, 3, 4)]
NG_H = 1e-2   # the step the checks give explicitly
_NG_BATCH = weakref.WeakKeyDictionary()   # learner handle -> {check: its results} (one call for all)


def ng_batch(learner, made):
    """{check: results} of every case of ng_cases (`made`), from one call; {} when it failed."""
    if learner not in _NG_BATCH:
        flat = [(name, case) for name, pairs in made.items() for case, _ in pairs]
        starts = [i for i, (name, _) in enumerate(flat) if i and name != flat[i - 1][0]]
        try:
            rs = TestNumericalGradient.run(learner, [case for _, case in flat], uses=(), fresh=starts)
            done = {}
            for (name, _), r in zip(flat, rs):
                done.setdefault(name, []).append(r)
        except LearnerError:
            done = {}
        _NG_BATCH[learner] = done
    return _NG_BATCH[learner]


class TestNumericalGradient:
    pytestmark = mark.exercise("numerical_gradient")

    @staticmethod
    def run(learner, cases, uses=NG, fresh=()):
        seen = [{"shapes": [], "dtypes": [], "moves": []} for _ in cases]
        rs = learner.call(gradients, uses, helpers=(plain,), xs=[case["x"] for case in cases],
                          hs=[case.get("h") for case in cases], fresh=list(fresh),
                          callbacks={f"f {i}": make_f(case, s) for i, (case, s) in enumerate(zip(cases, seen))})
        if not (isinstance(rs, list) and len(rs) == len(cases) and all(isinstance(r, dict) for r in rs)):
            raise LearnerError("contract", NG[0], "the answer from the learner's process was not the "
                               "one the grader asked for (was it forged?)")
        for r, s in zip(rs, seen):
            r.update(s)
        return rs

    def results(self, learner, check):
        """(its cases with their true gradients, numerical_gradient's results on them) for one
        check of ng_cases: all checks' cases go in one call, each check's with the learner's
        definitions loaded afresh, as in a call of its own (what each call of f was given is
        recorded per case); when that call fails as a whole (a time-out, a crash), each check
        calls for its own cases, so that a failure costs only the checks whose cases cause it.
        The batch names no learner function (uses=()): its failure marks none as hung."""
        made = ng_cases(learner)
        rs = ng_batch(learner, made).get(check) or self.run(learner, [case for case, _ in made[check]])
        return made[check], rs

    @mark.points(1)
    def test_returns_float64_array_of_x_shape(self, learner):
        """returns a float64 array, calling f with arrays of x's shape"""
        _, (r,) = self.results(learner, "float64")
        g = as_gradient(r, None, nb_call((4, 5)))     # its shape: test_matches_the_true_gradient_for_any_shape
        assert g.dtype == np.float64, (
            f"{nb_call((4, 5))} returned dtype {g.dtype}; the contract asks for float64.")
        assert r["shapes"] == [[4, 5]], (
            f"f was called with arrays of shapes {r['shapes']}; call it with arrays of x's shape "
            "(4, 5) — the function being differentiated expects its input as it is.")

    @mark.points(2)
    def test_matches_the_true_gradient_for_any_shape(self, learner):
        """matches the true gradient for x of any shape (1-D, 2-D, 3-D)"""
        shapes = NG_SHAPES
        made, rs = self.results(learner, "shapes")
        problems = {}
        for shape, (_, true), r in zip(shapes, made, rs):
            if "raised" in r:
                problems[shape] = f"raised {r['raised']}"
                continue
            g = r["g"]["value"]
            if not isinstance(g, np.ndarray) or g.shape != shape:
                got = g.shape if isinstance(g, np.ndarray) else r["g"]["type"]
                problems[shape] = f"returned {got} instead of an array of shape {shape}"
                continue
            err = float(np.max(np.abs(g - true)) / np.max(np.abs(true)))
            # centred differences with h = 1e-5 are off by about h²/6·|f'''| ~ 1e-10 plus
            # rounding eps·|f|/h ~ 1e-9 here; forward differences by h/2·|f''| ~ 1e-5.
            # 1e-4 leaves room for any honest variant (and for a default step up to ~1e-2,
            # which test_default_step_is_1e_minus_5 is about)
            if not err < 1e-4:
                problems[shape] = (f"was off by {fmt(err)} of the gradient's size (largest element "
                                   f"error / largest element)." + step_hint(ratio_to_true(g, true)))
        if (7,) not in problems and problems:
            assert False, (
                "Your numerical_gradient works only on 1-D arrays: for shape (7,) it matched the "
                "true gradient, but " + "; ".join(f"for shape {s} it {m.rstrip('.')}" for s, m in problems.items())
                + ". Loop over every index of x (np.ndindex, np.nditer with multi_index, or a flat "
                "index into a flat view), so that each step moves one element, not a whole row.")
        for shape, msg in problems.items():
            assert False, (
                f"On f(x) = Σ c·sin(x) + ½·xᵀQx (gradient c·cos(x) + Qx) with x of shape {shape}, "
                f"your numerical_gradient {msg}".rstrip(".") + ".")

    @mark.points(2)
    def test_centred_differences_error_is_order_h_squared(self, learner):
        """uses centred differences: the error shrinks like h², not like h"""
        h = NG_H
        ((case, true), (case0, true0)), (r, r0) = self.results(learner, "order")   # h, then the default step
        g = as_gradient(r, (12,), nb_call((12,), h))
        g0 = as_gradient(r0, (12,), nb_call((12,)))
        # A quotient scaled by a wrong constant (÷ h instead of ÷ 2h, '/ 2 * h') is the business
        # of test_matches_the_true_gradient_for_any_shape; here the scale is taken out first, so
        # that only the kind of difference is judged.
        for g_, true_, case_, h_ in ((g, true, case, h), (g0, true0, case0, DEFAULT_H)):
            c, x = case_["c"], case_["x"]
            err = g_ / wrong_scale(g_, true_, h_) - true_
            # centred: (c(x+h)³ − c(x−h)³)/2h = 3c·x² + c·h² exactly, up to rounding.  With h = 1e-2
            # the rounding is ~1e-13; with h = 1e-5, |f| <= 12·2·1.5³ ~ 81, so rounding leaves
            # < ~1e-8 (a few ε·|f| / 2h) and c·h² <= 2e-10: 1e-7 bounds both.  Forward or backward
            # differences are off by 3c·x·s >= 3·0.5·0.5·s for a step s, above 1e-7 for s > 1e-7
            # (and a smaller step drowns in rounding, ε·|f| / s > 1e-7).
            bound = 3 * np.abs(c).max() * h_ ** 2 if h_ > DEFAULT_H else 1e-7
            if np.max(np.abs(err)) <= bound:
                continue
            s2 = float(np.median(err / c))
            if h_ == DEFAULT_H and s2 > 0 and np.allclose(err, c * s2, rtol=0.02, atol=1e-9):
                continue      # centred differences with another default step: the next checks' business
            given = f"with h = {h_}" if h_ > DEFAULT_H else "called without h (h = 1e-5)"
            base = (f"On f(x) = Σ c·x³ {given}, your gradient is off by up to {fmt(np.abs(err).max())}; "
                    f"centred differences are off by exactly c·h² (here at most "
                    f"{fmt(np.abs(c).max() * h_ * h_)}, plus rounding).")
            kind, s = one_sided_step(err, c, x)
            if kind:
                step = "" if close(s, h_, 0.05) else f" with a step of {s:.2g}"
                assert False, base + (
                    f" Your errors match {kind} differences{step}, "
                    + ("(f(x + h) − f(x)) / h" if kind == "forward" else "(f(x) − f(x − h)) / h")
                    + ", whose error is about h·f''(x)/2: it shrinks only like h. Evaluate f at x + h "
                    "AND x − h and divide the difference by 2h — the h·f'' terms then cancel and the "
                    "error is O(h²).")
            assert False, base + (
                " An error that large is not the step's fault: check the quotient "
                "(f(x + h·e_i) − f(x − h·e_i)) / 2h, and that each step moves one element of x only.")

    @mark.points(1)
    def test_uses_the_step_h_it_is_given(self, learner):
        """uses the step h it is given"""
        h = NG_H
        ((case, true),), (r,) = self.results(learner, "step")
        g = as_gradient(r, (12,), nb_call((12,), h))
        c, x = case["c"], case["x"]
        err = g / wrong_scale(g, true, h) - true
        # With step s, centred differences of Σ c·x³ are off by exactly c·s², forward / backward
        # ones by ±3c·x·s + c·s² (rounding ~1e-12 here): whichever kind the function uses (that
        # is the previous check's business), the errors tell its step.
        models = {"centred": c * h * h, "forward": 3 * c * x * h + c * h * h,
                  "backward": -3 * c * x * h + c * h * h}
        if any(np.allclose(err, m, rtol=0.02, atol=1e-9) for m in models.values()):
            return
        s = float(np.sqrt(np.median(err / c))) if np.median(err / c) > 0 else float("nan")
        kind, s1 = one_sided_step(err, c, x)
        found = ""
        if not isnan(s) and np.allclose(err, c * s * s, rtol=0.02, atol=1e-12):
            found = f" Your errors are those of centred differences with a step of {s:.3g}, not {h}."
        elif kind:
            found = f" Your errors are those of {kind} differences with a step of {s1:.3g}, not {h}."
        assert False, (
            f"Your numerical_gradient does not seem to use the h it is given: with h = {h} its gradient "
            f"of Σ c·x³ is off by {fmt(np.abs(err).max())} at most; centred differences with that step "
            f"are off by exactly c·h² (about {fmt(np.median(np.abs(c)) * h * h)} here).{found} Is the "
            "step fixed inside the function? Use the argument h everywhere.")

    @mark.points(1)
    def test_default_step_is_1e_minus_5(self, learner):
        """called without h, moves each element by the default step h = 1e-5"""
        _, (r,) = self.results(learner, "default")
        steps = np.array([d for n, d in r["moves"] if n >= 1])
        assert "raised" not in r, f"{nb_call((6,))} raised {r['raised']}."
        assert steps.size, (
            f"{nb_call((6,))} never called f with x moved: each element must be moved by ±h "
            f"(h = {DEFAULT_H:g} when h is not given).")
        # The step is the distance between f's input and x: (x + h) − x is h up to rounding,
        # |x| <= 1.5 here, so within 2.2e-16·1.5 / 1e-5 ~ 3e-11 of h (relative); 1e-6 is ample.
        typical = float(np.median(steps))
        assert close(typical, DEFAULT_H, 1e-6), (
            f"Called without h, your numerical_gradient moves x by {fmt(typical)} (the median of "
            f"the steps f saw); the default step is h = {DEFAULT_H:g}, as in the signature "
            f"numerical_gradient(f, x, h=1e-5)."
            + (" A step that large makes the centred difference's error h²·f'''/6 about "
               f"{(typical / DEFAULT_H) ** 2:.0e} times larger than it should be."
               if typical > DEFAULT_H else
               " A step that small lets rounding errors, about ε·|f|/h, grow."))

    @mark.points(2)
    def test_leaves_x_exactly_as_it_was(self, learner):
        """leaves x exactly as it was (bit for bit)"""
        h = DEFAULT_H
        ((case, _),), (r,) = self.results(learner, "x")
        before, after = case["x"], r["x_after"]
        if after.tobytes() == before.tobytes():
            return
        d = float(np.max(np.abs(after - before)))
        moved = int(np.count_nonzero(after != before))
        most = max((n for n, _ in r["moves"]), default=0)
        if d >= h / 2:
            assert False, (
                f"After numerical_gradient(f, x) returned, {moved} of the 12 elements of x were "
                f"still moved (by up to {fmt(d)}, about h = {h:g}): your function leaves x perturbed. "
                + (f"While it ran, f saw up to {most} elements away from their values at once, so "
                   "most partial derivatives were taken at the wrong point. " if most > 1 else "")
                + "Save each element's value before you move it and put it back before the next one "
                "(or work on your own copy of x).")
        assert False, (
            f"After numerical_gradient(f, x), {moved} elements of x differ from before by up to "
            f"{fmt(d)}: x + h − 2h + h is not exactly x in floating point. Save the old value and "
            "assign it back, instead of undoing the step by arithmetic (or work on a copy of x).")

    @mark.points(1)
    def test_float32_input_is_differentiated_in_float64(self, learner):
        """computes in float64 even when x is float32 (and returns float64)"""
        ((case32, _), _), (r32, r64) = self.results(learner, "float32")   # the same values, float32 and float64
        g32 = as_gradient(r32, (20,), nb_call((20,)) + " (x float32)")
        g64 = as_gradient(r64, (20,), nb_call((20,)) + " (x float64)")
        assert g32.dtype == np.float64, (
            f"For a float32 x your gradient has dtype {g32.dtype}; the contract asks for float64 "
            "whatever x's dtype.")
        # Both calls see the same numbers; computed in float64 they give the same gradient, bit
        # for bit. Perturbing in float32 moves x by a rounded step (off by up to half a float32
        # spacing, ~6e-8 near 1, i.e. ~0.6% of h = 1e-5), far above this bound.
        bad = [w for w, g_ in (("float32", g32), ("float64", g64)) if not np.isfinite(g_).all()]
        assert not bad, (
            f"For the same x as {' and as '.join(bad)}, your gradient holds NaN or inf; every partial "
            "derivative of this smooth f is a finite number.")
        diff = float(np.max(np.abs(g32 - g64)) / max(np.max(np.abs(g64)), 1e-300))
        lost = (" f was called with float32 arrays." if "float32" in r32["dtypes"] else "")
        if r32["x_after"].tobytes() != case32["x"].tobytes():
            lost += (" Because your function moves the caller's x itself (see 'leaves x exactly as "
                     "it was'), a float32 x is perturbed in float32.")
        assert diff <= 1e-8, (
            f"Given the same x as float32 instead of float64, your gradient changed by {fmt(diff)} "
            f"of its size.{lost} In float32, x + h is rounded to about 7 significant digits, so "
            "the step is not h, and f's values lose the tiny difference you divide by 2h. Copy x "
            "to float64 first and perturb the copy.")
        assert r32["x_after"].tobytes() == case32["x"].tobytes() and r32["x_after"].dtype == np.float32, (
            "numerical_gradient changed the caller's float32 x; work on a float64 copy of it.")


# ================================================================ relative_error
ABS_HINT = (" Take the absolute value of the difference, |a − b|: without it, every element where "
            "a < b gives a negative error, so only differences of one sign count — and swapping "
            "the arguments changes the result.")


def unchanged(r, a, b):
    return (np.array_equal(r["a_after"], a, equal_nan=True) and r["a_after"].dtype == a.dtype
            and np.array_equal(r["b_after"], b, equal_nan=True) and r["b_after"].dtype == b.dtype)


class TestRelativeError:
    pytestmark = mark.exercise("relative_error")

    def values(self, learner, pairs):
        return learner.call(rel_errors, RE, helpers=(plain,), pairs=pairs)

    @mark.points(1)
    def test_returns_one_number_and_leaves_inputs_alone(self, learner):
        """returns one number (a float, not an array) and leaves a and b as they were"""
        rng = learner.rng(100)
        a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        (r,) = self.values(learner, [(a, b)])
        call = rel_call("a, b") + " with arrays of shape (3, 4)"
        assert "raised" not in r, f"{call} raised {r['raised']}."
        v = r["value"]
        if isinstance(v, np.ndarray):
            assert v.ndim == 0, (
                f"{call} returned an array of shape {v.shape}: the element-wise errors. It should "
                "return one number (a float): the largest of them.")
        else:
            assert v is not None, f"{call} returned {r['type']}; it should return one number (a float)."
        assert unchanged(r, a, b), "relative_error changed its inputs a or b; compute into new arrays."

    @mark.points(2)
    def test_identical_arrays_give_zero_even_with_zeros(self, learner):
        """identical arrays give exactly 0, even where they hold zeros (float64 and float32)"""
        rng = learner.rng(110)
        a = rng.standard_normal((4, 5))
        a[rng.random((4, 5)) < 0.4] = 0.0
        cases = [("a, a (an array with zeros in it)", a, a.copy()),
                 ("zeros, zeros", np.zeros(6), np.zeros(6)),
                 ("a, a (float32, with zeros)", a.astype(np.float32), a.astype(np.float32)),
                 ("a, a (no zeros)", np.abs(a) + 1, np.abs(a) + 1)]
        rs = self.values(learner, [(x, y) for _, x, y in cases])
        for (what, _, _), r in zip(cases, rs):
            v = number(r, rel_call(what))
            assert not isnan(v), (
                f"{rel_call(what)} returned nan: where a and b are both 0 the element-wise error is "
                "0 / 0. This is what the 1e-8 floor in the denominator, max(|a| + |b|, 1e-8), is "
                "for — identical arrays must give exactly 0, zeros included. (Dropout gradients are "
                "full of zeros: every dropped unit.)")
            assert v == 0.0, f"{rel_call(what)} returned {fmt(v)}; identical arrays must give exactly 0."

    @mark.points(1)
    def test_tiny_differences_are_measured_against_the_floor(self, learner):
        """divides by max(|a| + |b|, 1e-8): differences far below 1e-8 count as small"""
        cases = [(np.array([1e-12]), np.array([0.0])), (np.array([2e-12]), np.array([-1e-12]))]
        rs = self.values(learner, cases)
        for (a, b), r in zip(cases, rs):
            what = f"[{a[0]:g}], [{b[0]:g}]"
            v = number(r, rel_call(what))
            want = abs(a[0] - b[0]) / REL_FLOOR
            # 1e-3 also accepts |a − b| / (|a| + |b| + 1e-8), off here by at most 3e-12 / 1e-8
            if close(v, want, 1e-3):
                continue
            hint = (" Without the floor, a difference of 1e-12 against 0 counts as a 100% error."
                    if isnan(v) or v > 0.5 else "")
            shown, wanted = distinct_digits(v, want)
            assert False, (
                f"{rel_call(what)} returned {shown}; expected {wanted}: the denominator is "
                f"max(|a| + |b|, 1e-8), so a difference of {abs(a[0] - b[0]):g} where both values "
                f"are tiny counts as {abs(a[0] - b[0]):g} / 1e-8.{hint}")

    @mark.points(2)
    def test_takes_the_maximum_over_elements(self, learner):
        """reports the worst element (the maximum over elements), not an average"""
        a = np.ones(100)
        b = np.ones(100)
        b[17], b[60] = 0.5, 0.6        # two elements differ (a > b there); the others agree
        pairs = [(a, b), (a[17:18], b[17:18]), (a[60:61], b[60:61]), (a[:1], b[:1])]
        rs = self.values(learner, pairs)
        # Judged against the learner's own formula: each element's error is what relative_error
        # returns for that element alone; the result for the whole arrays must be their maximum.
        full, e17, e60, e0 = (number(r, rel_call(w)) for r, w in zip(
            rs, ("a, b", "a[17:18], b[17:18]", "a[60:61], b[60:61]", "a[:1], b[:1]")))
        worst = max(e17, e60, e0)
        if close(full, worst, 1e-12):
            return
        guesses = {"the mean of the element-wise errors": (e17 + e60 + 98 * e0) / 100,
                   "the sum of the element-wise errors": e17 + e60 + 98 * e0,
                   "one norm-based ratio ‖a − b‖ / (‖a‖ + ‖b‖)":
                       np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))}
        named = [k for k, g in guesses.items() if close(full, g, 1e-6)]
        assert False, (
            f"Two arrays of 100 elements differ in 2: element 17 alone gives relative_error "
            f"{fmt(e17)}, element 60 alone {fmt(e60)}, an equal element {fmt(e0)}; for the whole "
            f"arrays your relative_error returned {fmt(full)}, but the worst element is {fmt(worst)}."
            + (f" That is {named[0]}." if named else "")
            + " An average hides one wrong element among many, and one wrong element is a bug: "
            "take the maximum over elements.")

    @mark.points(1)
    def test_is_symmetric(self, learner):
        """is symmetric: relative_error(a, b) == relative_error(b, a)"""
        rng = learner.rng(120)
        a = rng.standard_normal((4, 6))
        b = a * rng.uniform(0.2, 3.0, (4, 6)) + 0.1 * rng.standard_normal((4, 6))
        rs = self.values(learner, [(a, b), (b, a)])
        ab, ba = (number(r, rel_call(w)) for r, w in zip(rs, ("a, b", "b, a")))
        assert not (isnan(ab) or isnan(ba)), f"relative_error returned nan ({fmt(ab)}, {fmt(ba)}) for ordinary arrays."
        if abs(ab - ba) <= 1e-12 * max(abs(ab), abs(ba)):
            return
        base = (f"relative_error(a, b) = {fmt(ab)} but relative_error(b, a) = {fmt(ba)}: it is not "
                "symmetric.")

        def matches(**kw):
            return (close(ab, ref_relative_error(a, b, **kw), 1e-6)
                    and close(ba, ref_relative_error(b, a, **kw), 1e-6))
        if matches(numerator="signed"):
            assert False, base + ABS_HINT
        if matches(den="b") or matches(den="a"):
            assert False, base + (" You divide by one argument only. Neither argument is 'the "
                                  "truth' — the denominator must treat a and b alike: |a| + |b|.")
        assert False, base + (" Neither argument is 'the truth': every part of the formula must "
                              "treat a and b alike.")

    @mark.points(2)
    def test_value_on_random_arrays(self, learner):
        """gives max |a − b| / max(|a| + |b|, 1e-8) on arrays of any shape (float64 and float32)"""
        rng = learner.rng(130)
        pairs = []
        for shape, dtype in (((50,), np.float64), ((6, 7), np.float64), ((2, 3, 4), np.float64),
                             ((5, 8), np.float32)):
            a = rng.standard_normal(shape)
            a += np.sign(a) * 0.1                      # |a| >= 0.1, so |a| + |b| >= 0.1 everywhere
            b = a * rng.uniform(0.2, 3.0, shape)       # same signs: element errors below 1, all distinct
            # the worst element has a < b in every other pair, a > b in the others: the sign of
            # the difference must not matter
            worst = np.argmax(np.abs(a - b) / (np.abs(a) + np.abs(b)))
            if (len(pairs) % 2 == 0) != (a.flat[worst] < b.flat[worst]):
                a, b = b, a
            pairs.append((a.astype(dtype), b.astype(dtype)))
        # signs that differ: a gradient of the wrong sign is the error a check exists for
        a = rng.standard_normal(30)
        a += np.sign(a) * 0.1
        b = a * rng.uniform(-3.0, 3.0, 30)
        b[:3] = -a[:3]                                 # exactly opposite: element error 1
        pairs.append((a, b))
        rs = self.values(learner, pairs)
        for (a, b), r in zip(pairs, rs):
            call = rel_call("a, b") + f" with {a.dtype} arrays of shape {a.shape}"
            v = number(r, call)
            want = ref_relative_error(a, b)
            # |a| + |b| >= 0.1 here, so the floor never bites; 2e-7 also accepts the variant
            # |a − b| / (|a| + |b| + 1e-8), which differs by at most 1e-8 / 0.1.  In float32
            # arithmetic each element's quotient is off by a few 6e-8: 1e-6 for those.
            if close(v, want, 2e-7 if a.dtype == np.float64 else 1e-6):
                continue
            shown, wanted = distinct_digits(v, want)
            msg = (f"{call}{' (signs that differ)' if (a * b < 0).any() else ''} returned {shown}; "
                   f"expected {wanted}, the largest element-wise |a − b| / max(|a| + |b|, 1e-8).")
            elementwise = np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), REL_FLOOR)
            named = {"abs_of_sum": (
                         " You divided by |a + b| instead of |a| + |b|: where a and b have opposite "
                         "signs, a + b cancels (relative_error([1], [-1]) gives 2 / 1e-8 = 2e8 instead "
                         "of 1). Take the absolute values first, then add them."),
                     "signed": ABS_HINT,
                     "max": " You divided by max(|a|, |b|) instead of |a| + |b|.",
                     "b": " You divided by |b| alone instead of |a| + |b|.",
                     "a": " You divided by |a| alone instead of |a| + |b|."}
            for key, hint in named.items():
                kw = {"numerator": "signed"} if key == "signed" else {"den": key}
                if close(v, ref_relative_error(a, b, **kw), 1e-6) and (key != "abs_of_sum" or (a * b < 0).any()):
                    assert False, msg + hint
            if close(v, float(np.mean(elementwise)), 1e-6):
                assert False, msg + " That is the mean of the element-wise errors: take the maximum."
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            if close(v, np.linalg.norm(a64 - b64) / (np.linalg.norm(a64) + np.linalg.norm(b64)), 1e-5):
                assert False, msg + (" That is one norm-based ratio ‖a − b‖ / (‖a‖ + ‖b‖) for the "
                                     "whole arrays: compute the error element by element, then take "
                                     "the maximum.")
            assert False, msg

    @mark.points(1)
    def test_nan_and_inf_are_never_hidden(self, learner):
        """a NaN or inf in a or b gives NaN or inf (or an exception), never a finite error"""
        rng = learner.rng(140)
        cases = []
        # NaN / inf never first: Python's max() drops a NaN that is not its first argument
        for what, where, k, bad in (("a NaN in element 5 of b", "b", 5, np.nan),
                                    ("a NaN in the last element of a", "a", 7, np.nan),
                                    ("inf in element 5 of a", "a", 5, np.inf),
                                    ("−inf in element 2 of b", "b", 2, -np.inf)):
            a = rng.standard_normal(8) + 3
            b = a * rng.uniform(0.9, 1.1, 8)
            (a if where == "a" else b)[k] = bad
            cases.append((what, a, b))
        rs = self.values(learner, [(a, b) for _, a, b in cases])
        for (what, a, b), r in zip(cases, rs):
            if "raised" in r:
                continue                  # refusing a non-finite input is fine: nothing is hidden
            v = number(r, rel_call(what))
            if not np.isfinite(v):
                continue
            ok = np.isfinite(a) & np.isfinite(b)
            rest = ref_relative_error(a[ok], b[ok])
            how = (" That is the error of the other elements: the bad element was dropped (np.nanmax, "
                   "Python's max() — which ignores NaN unless it comes first —, or a mask of "
                   "finite values)." if close(v, rest, 1e-6) else
                   " A NaN or inf was turned into a number (np.nan_to_num, or 'if ... else 0')."
                   if v == 0 else "")
            assert False, (
                f"relative_error(a, b) with {what} returned {fmt(v)}. A NaN or inf in a gradient is "
                "a bug, and the check must say so: the formula gives NaN there, and np.max passes it "
                "on." + how)


# ================================================================ dropout_gradient_check
INVERTED, CLASSIC = (1, 0), (0, 1)   # (a_train, a_eval) of dropout_layer

WRONG = {"forgets_scale": "forgets the 1/(1 − p) factor (dx = dout · mask)",
         "fresh_mask": "uses another mask than the forward pass's",
         "scales_twice": "scales twice (dx = dout · mask / (1 − p)²)",
         "returns_dout": "returns dout unchanged",
         "ignores_dout": "ignores dout (returns mask / (1 − p))",
         "inverted_scale": "scales by 1/(1 − p) although the forward pass did not (classic dropout)",
         "nan_at_zero": "returns NaN where x is 0 (it divides out by x)"}
CORRECT = ("correct inverted", "correct classic")


def layer_cases(x, p, seed, rng):
    """{name: case} for dropout_layer: the correct pairs and the wrong ones, on this x, p, seed.
    Each wrong backward is wrong somewhere (choose_seed keeps an element and drops one; the
    other mask differs from the forward pass's in an element at least)."""
    keep = np.random.default_rng(seed).random(x.shape) >= p     # the mask the contract fixes
    other = keep
    while np.array_equal(other, keep):
        other = rng.random(x.shape) >= p
    s = 1 / (1 - p)
    zero = np.zeros(x.shape)
    made = {
        "correct inverted": (INVERTED, keep * s, zero),
        "correct classic": (CLASSIC, keep * 1.0, zero),
        "forgets_scale": (INVERTED, keep * 1.0, zero),
        "fresh_mask": (INVERTED, other * s, zero),
        "scales_twice": (INVERTED, keep * s * s, zero),
        "returns_dout": (INVERTED, np.ones(x.shape), zero),
        "ignores_dout": (INVERTED, zero, keep * s),
        "inverted_scale": (CLASSIC, keep * s, zero),
        "nan_at_zero": (INVERTED, np.where(x == 0, np.nan, keep * s), zero),
    }
    return {k: {"a_train": a[0], "a_eval": a[1], "d": d, "b": b, "spare": int(rng.integers(2**63))}
            for k, (a, d, b) in made.items()}


# The size of x.  Every call of forward and backward is a round trip between the learner's
# process and the grader's (1-4 ms), and a correct check makes 2·x.size + 1 calls of forward
# and one of backward per case: with the (10, 20) arrays of the notebook, the checks below would
# make some 17,000.  What they judge needs only a few elements: a wrong backward is wrong in
# every element it is wrong in (one is enough to give a relative error of p/(2 − p) or more,
# since relative_error is a maximum), a changing mask shows in any element where x is not 0,
# and choose_seed makes every mask keep one element and drop one, so that each wrong backward
# is wrong somewhere.  So x has 4 or 6 elements (a 3-D x of 4 shows a loop that moves more
# than one element per step as well as a larger one), and a full grading of this exercise
# makes about 230 round trips (2·(6 + 4 + 6) + 9·6 + 2·6 evaluations, plus one forward and one
# backward call per case).
SHAPE = (2, 3)


def choose_seed(learner, k, shape, p):
    """The first of the grading seeds k, k + 10⁶, ... whose mask keeps an element and drops one
    (fixed for a config.seed; a mask that keeps all or nothing would let a wrong backward agree
    with the numerical gradient, which no check can then tell from a correct one)."""
    for j in range(1000):
        seed = learner.seed(k + 1_000_000 * j)
        keep = np.random.default_rng(seed).random(shape) >= p
        if keep.any() and not keep.all():
            return seed
    raise AssertionError(f"no mask of shape {shape} at p = {p} keeps some elements and drops others")


def x_with_zeros(learner, k, shape=SHAPE):
    """A standard-normal x with at least one element exactly 0 (about a tenth of them)."""
    rng = learner.rng(k)
    x = rng.standard_normal(shape)
    x[rng.random(shape) < 0.1] = 0.0
    x.flat[rng.integers(x.size)] = 0.0
    return x


_RUNS = weakref.WeakKeyDictionary()   # learner handle -> {run: its results} (checks share a run)


def run_checks(learner, k, x, p, names=None):
    """The cases called `names` (all, by default) on (x, p, a seed chosen from learner.seed(k)),
    in an order shuffled with learner.rng(k); returns ({name: result}, seed).  Each case's
    layer lives here (dropout_layer): the learner's check gets proxies named by position only,
    and its calls are logged here.  Only this side knows which result belongs to which case."""
    key = (k, x.tobytes(), str(x.dtype), x.shape, p, tuple(names or ()))
    runs = _RUNS.setdefault(learner, {})
    if key in runs:
        return runs[key]
    seed, rng = choose_seed(learner, k, x.shape, p), learner.rng(10_000 + k)   # rng: another stream
    cases = layer_cases(x, p, seed, rng)
    names = list(names or cases)
    order = rng.permutation(len(names))
    logs, callbacks = [], {}
    for i, j in enumerate(order):
        log = {"forward": {}, "other": 0, "douts": [], "backward": 0}
        callbacks[f"forward {i}"], callbacks[f"backward {i}"] = dropout_layer(cases[names[j]], log)
        logs.append(log)
    rs = learner.call(gradient_checks, GC, helpers=(plain, *STANDIN_HELPERS), callbacks=callbacks,
                      n=len(names), x=x, p=p, seed=seed, standins=broken_dependencies(learner))
    if not (isinstance(rs, list) and len(rs) == len(names) and all(isinstance(r, dict) for r in rs)):
        raise LearnerError("contract", GC[0], "the answer from the learner's process was not the "
                           "one the grader asked for (was it forged?)")
    for r, log in zip(rs, logs):
        r.update(calls=[[*key, n] for key, n in log["forward"].items()], other=log["other"],
                 douts=log["douts"], backward=log["backward"])
    runs[key] = {names[j]: r for j, r in zip(order, rs)}, seed
    return runs[key]


STANDIN_HELPERS = (standin_numerical_gradient, standin_relative_error, install_standins)
_BROKEN = weakref.WeakKeyDictionary()   # learner handle -> its broken dependencies (one test each)


def broken_dependencies(learner):
    """The learner's numerical_gradient / relative_error that dropout_gradient_check may not rely
    on: each is tried once (one call) on what a dropout gradient check asks of it, and compared
    here with the contract.  Those that fail are replaced by the grader's stand-ins, so that
    their mistakes cost points only in their own exercises (and the report says so)."""
    if learner in _BROKEN:
        return _BROKEN[learner]
    rng = learner.rng(9_000)
    x = rng.standard_normal((3, 4, 5))
    x[rng.random(x.shape) < 0.2] = 0.0
    d = (rng.random(x.shape) >= 0.3) / 0.7 * rng.uniform(0.5, 1.5, x.shape)   # a dropout gradient
    a = rng.standard_normal(20)
    a[:4] = 0.0
    pairs = [(d, d.copy()), (np.zeros(5), np.zeros(5)), (a, a * rng.uniform(0.5, 2.0, 20)),
             (a, -a), (np.array([1e-12]), np.array([0.0])), (a, np.where(np.arange(20) == 7, np.nan, a))]
    broken = []
    try:
        # uses=(): a stub is reported by the probe per function, not for both at once
        r = learner.call(dependencies, (), helpers=(plain,), x=x, d=d, pairs=pairs)
    except LearnerError:     # one of them hung or crashed: their own checks say which
        r = {"ng": {"raised": ""}, "re": [{"raised": ""}] * len(pairs)}
    ng = r["ng"]
    g = ng.get("g", {}).get("value")
    # centred (or one-sided) differences of a linear f are exact up to rounding, ~1e-10 here
    # and it evaluates f twice per element, as exercise 1 asks (the check of exercise 3 counts that)
    if not (isinstance(g, np.ndarray) and g.shape == x.shape and np.allclose(g, d, rtol=1e-6, atol=1e-6)
            and ng["x_after"].tobytes() == x.tobytes() and ng.get("calls", 0) >= 2 * x.size):
        broken.append("numerical_gradient")
    for (a_, b_), got in zip(pairs, r["re"]):
        want = ref_relative_error(a_, b_)
        v = got.get("value")
        if isinstance(v, np.ndarray):
            v = float(v) if v.size == 1 else None
        ok = (v is not None and (isnan(want) and not np.isfinite(v) or close(v, want, 1e-6))
              or isnan(want) and "raised" in got)
        if not ok:
            broken.append("relative_error")
            break
    _BROKEN[learner] = broken
    return broken


def noted_message(learner, message):
    """The message, plus (once per check) which of the learner's functions were replaced."""
    names = _BROKEN.get(learner) or []
    if not names:
        return message
    return message + (f" (Note: your {' and '.join(names)} did not pass the grader's test, so "
                      "this check used a correct one in its place: this exercise is graded on "
                      "its own, and that mistake costs points only where it is made.)")




def fresh_state(seed):
    return repr(np.random.default_rng(seed).bit_generator.state)[:STATE_CHARS]


def calls_summary(results):
    """How the learner's check called forward, over several cases' logs."""
    calls = [c for r in results for c in r["calls"]]
    return {"n": sum(c[4] for c in calls),
            "off": sorted({c[1] for c in calls if not c[0]}),
            "ps": sorted({c[2] for c in calls if c[0]}, key=str),
            "none": sum(c[4] for c in calls if c[3] == "None"),
            "states": {c[3] for c in calls if c[3] not in ("None",)},
            "per_case": [sum(c[4] for c in r["calls"]) + r["other"] for r in results],
            "backward": [r["backward"] for r in results]}


def off_hint(log, p):
    """How the check turned dropout off, from the spy's log ('' if it did not)."""
    bits = []
    if log["off"]:
        bits.append(f"train={', '.join(log['off'])}")
    others = [q for q in log["ps"] if q != p]
    if others:
        bits.append(f"p = {', '.join(map(str, others))} instead of p = {p}")
    if not bits:
        return ""
    return (f" Your check turns dropout off: it called forward with {' and '.join(bits)}. Then only "
            "the eval-mode path of backward is compared (or a layer that drops nothing), and "
            "everything that makes dropout — the mask and the 1/(1 − p) scaling — goes unchecked.")


def mask_hint(log, seed):
    """Why the mask was not the one np.random.default_rng(seed) draws ('' if it was)."""
    if log["none"]:
        return (f" {log['none']} of the {log['n']} calls to forward got rng=None, so each drew a "
                "new mask.")
    if len(log["states"]) > 1:
        return (f" The {log['n']} calls to forward started from {len(log['states'])} different "
                "generator states, so the mask changed between evaluations.")
    if log["states"] and log["states"] != {fresh_state(seed)}:
        return (" Every call to forward got a generator in the same state, but not the state of "
                "np.random.default_rng(seed) for the seed your check was given: the contract fixes "
                "the mask to the one that generator draws.")
    return ""


SAME_MASK = (" Every evaluation — f(x + h), f(x − h) and the forward pass whose cache goes to "
             "backward — must use the same mask: give each call to forward a fresh "
             "np.random.default_rng(seed).")


def few_calls_hint(log, size):
    low = [n for n in log["per_case"] if n < 2 * size]
    if not low:
        return ""
    return (f" Your check called forward only {min(low)} times for an x of {size} elements; a "
            "numerical gradient needs two evaluations of f per element.")


def cases_d(x, p, seed, name):
    """The array d of a correct case (its true derivative), as layer_cases builds it."""
    keep = np.random.default_rng(seed).random(x.shape) >= p
    return keep / (1 - p) if name == "correct inverted" else keep * 1.0


def no_dout_hint(r, v, d):
    """'' unless the value is what a check gives whose f forgets to weight the output by dout."""
    if not r["douts"] or r["douts"][0].shape != d.shape:
        return ""
    dout = r["douts"][0]
    if isnan(v) or not (close(v, ref_relative_error(d * dout, d), 1e-3)):
        return ""
    return (" That is the error between backward(dout, cache) and the gradient of Σ out — without "
            "dout. The function you differentiate must be f(x) = Σ dout · forward(x, ...)[0], with "
            "the same dout that goes to backward.")


@contextlib.contextmanager
def noted(learner):
    """A failing check's message, with the note of noted_message."""
    try:
        yield
    except AssertionError as e:
        raise AssertionError(noted_message(learner, str(e))) from None


class TestDropoutGradientCheck:
    pytestmark = mark.exercise("dropout_gradient_check")

    @mark.points(3)
    def test_correct_pairs_give_a_tiny_error(self, learner):
        """returns < 1e-8 for correct forward/backward pairs (inverted and classic)"""
        with noted(learner):
            rng = learner.rng(200)
            small = 1e-3 * rng.standard_normal(SHAPE)
            small[rng.random(SHAPE) < 0.1] = 0.0
            sets = [   # (sizes: see SHAPE)
                # At x = 0 every f(x ± h·e_i) is a sum with a single non-zero term, computed exactly:
                # a correct check then returns a few 1e-16 whatever dout it draws.
                (201, np.zeros(SHAPE), 0.3, REL_CORRECT),
                (202, np.zeros((1, 2, 2)), 0.7, REL_CORRECT),   # 3-D: each step moves one element
                # At |x| ~ 1e-3 rounding leaves < ~4e-12 absolute error in the numerical gradient
                # (worst 3.7e-12 measured over 1500 draws with |dout| up to ~10); the 1e-8 floor of
                # relative_error caps any element at that / 1e-8 < 4e-4, so 1e-3 holds whatever
                # random dout the check uses.
                (203, small, 0.6, 1e-3),
            ]
            for k, x, p, bound in sets:
                out, seed = run_checks(learner, k, x, p, CORRECT)
                for name in CORRECT:
                    r = out[name]
                    what = (f"a correct {name.split()[1]} dropout pair (p = {p}, x of shape "
                            f"{x.shape}{', all zeros' if not x.any() else ''})")
                    v = number(r, f"dropout_gradient_check on {what}")
                    if not isnan(v) and 0 <= v < bound:
                        continue
                    assert not v < 0, (
                        f"On {what} your check returned {fmt(v)}; a relative error is never negative. "
                        "Take the absolute value of the difference, |a − b|.")
                    log = calls_summary([r])
                    why = (off_hint(log, p) or mask_hint(log, seed) or few_calls_hint(log, x.size)
                           or no_dout_hint(r, v, cases_d(x, p, seed, name)))
                    if isnan(v) and not why:
                        assert False, (
                            f"On {what} your check returned nan. Dropped units have gradient 0 in both "
                            "the analytic and the numerical gradient: does your relative_error divide "
                            "0 by 0?")
                    assert False, (
                        f"On {what} your check returned {fmt(v)}; a correct pair must give < {power(bound)}."
                        + (why or (" A value near 1 means the numerical and the analytic gradients saw "
                                   "different masks." if v > 0.1 else ""))
                        + ("" if off_hint(log, p) or "dout" in why else SAME_MASK))

    @mark.points(4)
    def test_wrong_backwards_give_a_large_error(self, learner):
        """returns > 1e-2 (or NaN) for backwards that are wrong in training mode"""
        with noted(learner):
            x, p = x_with_zeros(learner, 210), 0.3
            out, seed = run_checks(learner, 211, x, p)
            missed = []
            for name in WRONG:
                v = number(out[name], "dropout_gradient_check")
                # each of these backwards is wrong by a fixed factor or pattern: a correct check gives
                # p/(2 − p) = 0.18 for the scaling bugs at p = 0.3, 1 for the others, NaN for NaN
                if v <= REL_WRONG:
                    missed.append((name, v))
            if not missed:
                return
            log = calls_summary(list(out.values()))
            listed = "; ".join(f"{fmt(v)} for a backward that {WRONG[n]}" for n, v in missed)
            hint = off_hint(log, p)
            if not hint and "ignores_dout" in [n for n, _ in missed]:
                douts = [d for r in out.values() for d in r["douts"]]
                const = douts and all(np.all(d == d.flat[0]) for d in douts if d.size)
                ok = out["correct inverted"]
                no_dout = "raised" not in ok and no_dout_hint(
                    ok, number(ok, "dropout_gradient_check"), cases_d(x, p, seed, "correct inverted"))
                if const:
                    hint = (" The backward that ignores dout got through: your dout is the same "
                            f"number ({fmt(float(douts[0].flat[0]))}) everywhere. Draw dout at random, "
                            "so that every element is weighted differently.")
                elif no_dout:
                    hint = (" The backward that ignores dout got through because your f ignores dout "
                            "too: the function you differentiate must be f(x) = Σ dout · forward(x, ...)[0], "
                            "with the same dout that goes to backward.")
                else:
                    hint = (" The backward that ignores dout got through: is the dout in your f the one "
                            "you pass to backward?")
            if not hint and [n for n, _ in missed] == ["nan_at_zero"]:
                hint = (" Only the backward that returns NaN got through: a NaN in the gradient must "
                        "come out of the check as NaN (np.max passes it on), never as a small error — "
                        "does your relative error drop or zero NaN (np.nanmax, Python's max(), "
                        "np.nan_to_num)?")
            if not hint:
                hint = few_calls_hint(log, x.size) or mask_hint(log, seed)
            assert False, (
                f"Your check missed {len(missed)} of {len(WRONG)} backwards that are wrong in training "
                f"mode (p = {p}): it returned {listed}. A gradient check must flag them "
                f"(> {power(REL_WRONG)})." + hint)

    @mark.points(2)
    def test_keeps_dropout_on_with_one_mask(self, learner):
        """calls forward in training mode, with the given p and one generator state every time,
        twice per element of x and once for backward's cache; and calls backward"""
        with noted(learner):
            x, p = x_with_zeros(learner, 210), 0.3
            out, seed = run_checks(learner, 211, x, p)   # the run of the check above (one run, two verdicts)
            log = calls_summary(list(out.values()))
            assert log["n"] > 0, "Your check never called forward."
            off = off_hint(log, p)
            assert not off, off.strip()
            if log["none"]:
                assert False, mask_hint(log, seed).strip() + SAME_MASK
            assert len(log["states"]) <= 1, mask_hint(log, seed).strip() + SAME_MASK
            # Exercise 3 defines the check as relative_error(backward(dout, cache),
            # numerical_gradient(f, x, h)), and exercise 1 says a numerical gradient costs two
            # evaluations of f per element: 2·x.size calls of forward, one more for the cache,
            # and one call of backward.  (A numerical_gradient that evaluates f less often is
            # replaced by the grader's here: see broken_dependencies.)
            done = [(n, b) for r, n, b in zip(out.values(), log["per_case"], log["backward"])
                    if "raised" not in r]
            few = [(n, b) for n, b in done if n < 2 * x.size + 1 or b < 1]
            if few:
                n, b = min(few)
                assert False, (
                    f"Your check called forward {n} time(s) and backward {b} time(s) for an x of "
                    f"{x.size} elements; the check of exercise 3 computes numerical_gradient(f, x, h) "
                    f"— two evaluations of f, so two calls of forward, per element: {2 * x.size} — "
                    "plus one forward pass whose cache goes to backward(dout, cache), and compares "
                    "the two gradients with relative_error.")

    @mark.points(1)
    def test_returns_a_float_and_leaves_x_alone(self, learner):
        """returns one float and leaves x as it was (a float32 x)"""
        with noted(learner):
            rng = learner.rng(240)
            x = rng.standard_normal(SHAPE).astype(np.float32)
            x[rng.random(SHAPE) < 0.1] = 0.0
            out, _ = run_checks(learner, 241, x, 0.4, CORRECT)
            for r in out.values():
                assert "raised" not in r, f"dropout_gradient_check raised {r['raised']}."
                v = r["value"]
                if isinstance(v, np.ndarray):
                    assert v.ndim == 0, (
                        f"dropout_gradient_check returned an array of shape {v.shape}; it should return "
                        "one number (a float): the relative error of the whole gradient.")
                else:
                    assert v is not None, (
                        f"dropout_gradient_check returned {r['type']}; it should return one number (a float).")
                assert r["x_after"].tobytes() == x.tobytes() and r["x_after"].dtype == x.dtype, (
                    "dropout_gradient_check changed the x it was given; the numerical gradient must put "
                    "every element back (or work on a copy).")
