"""Checks for notebook 04: numerical_gradient, relative_error, dropout_gradient_check.

    numerical_gradient(f, x, h=1e-5) -> float64 array: centred differences, any shape, x untouched
    relative_error(a, b) -> float: max over elements of |a - b| / max(|a| + |b|, 1e-8)
    dropout_gradient_check(forward, backward, x, p, seed, h=1e-5) -> float

Each probe runs in the learner's sandboxed process and returns plain data; every comparison
happens here.  The functions given to the learner's code (f for numerical_gradient, the
forward/backward pairs for dropout_gradient_check) are written here, never taken from the
learner's notebook, so each exercise is graded on its own.  No check is statistical: the
inputs come from fixed seeds (learner.rng / learner.seed) and the bounds below are rounding
or truncation bounds, argued next to each one.
"""
import numpy as np
import pytest

NG = ("numerical_gradient",)
RE = ("relative_error",)
GC = ("dropout_gradient_check",)


# ================================================================ probes (run in the sandbox)
def plain(v):
    """A learner's return value as plain data: numbers and numeric arrays pass, else a label."""
    if isinstance(v, (bool, np.bool_)):
        return {"value": None, "type": type(v).__name__}
    if isinstance(v, (int, float, np.integer, np.floating)):
        return {"value": float(v), "type": type(v).__name__}
    if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
        return {"value": v, "type": "ndarray"}
    return {"value": None, "type": type(v).__name__}


def gradients(nb, cases):
    """numerical_gradient on functions the grader knows; also how it called f and left x."""
    ng = nb.fn("numerical_gradient")
    answers = []
    for case in cases:
        x0, c, q, h = case["x"], case["c"], case.get("q"), case.get("h")
        seen = {"shapes": [], "dtypes": [], "moved": 0, "calls": 0}

        def f(z):
            z = np.asarray(z)
            seen["calls"] += 1
            if list(z.shape) not in seen["shapes"]:
                seen["shapes"].append(list(z.shape))
            if str(z.dtype) not in seen["dtypes"]:
                seen["dtypes"].append(str(z.dtype))
            if z.shape != x0.shape:
                raise ValueError(f"this test function expects an array of x's shape {x0.shape}, "
                                 f"but was called with shape {z.shape}")
            seen["moved"] = max(seen["moved"], int(np.count_nonzero(z != x0)))
            if q is None:                              # f(x) = sum(c * x**3)
                return float(np.sum(c * z ** 3))
            v = z.reshape(-1)                          # f(x) = sum(c * sin x) + v.Q.v / 2
            return float(np.sum(c * np.sin(z)) + 0.5 * (v @ q @ v))

        x = x0.copy()
        try:
            g = ng(f, x) if h is None else ng(f, x, h=h)
        except LearnerRaised as e:      # reported per case, so that one shape cannot hide the others
            answers.append({"raised": f"{e}{e.where}", "x_after": x, "x_dtype": str(x.dtype), **seen})
            continue
        answers.append({"g": plain(g), "x_after": x, "x_dtype": str(x.dtype), **seen})
    return answers


def rel_errors(nb, pairs):
    """relative_error on each (a, b); also whether the inputs were left alone."""
    re = nb.fn("relative_error")
    out = []
    for a, b in pairs:
        a1, b1 = a.copy(), b.copy()
        r = plain(re(a1, b1))
        r["kept"] = bool(np.array_equal(a1, a) and np.array_equal(b1, b))
        out.append(r)
    return out


def trusted_layers():
    """Dropout layers written by the grader: correct pairs, and backwards that are wrong in
    training mode only (their eval-mode gradient is right)."""
    def generator(rng):
        if rng is None:
            return np.random.default_rng()
        if not isinstance(rng, np.random.Generator):
            raise TypeError("forward's rng must be an np.random.Generator (or None), "
                            f"not {type(rng).__name__}")
        return rng

    def inverted(x, p, train=True, rng=None):
        x = np.asarray(x)
        if not train:
            return x.copy(), {"train": False, "scheme": "inverted", "p": p, "keep": None}
        keep = generator(rng).random(x.shape) >= p
        return x * keep / (1 - p), {"train": True, "scheme": "inverted", "p": p, "keep": keep}

    def classic(x, p, train=True, rng=None):
        x = np.asarray(x)
        if not train:
            return x * (1 - p), {"train": False, "scheme": "classic", "p": p, "keep": None}
        keep = generator(rng).random(x.shape) >= p
        return x * keep, {"train": True, "scheme": "classic", "p": p, "keep": keep}

    def correct(dout, cache):
        p, keep = cache["p"], cache["keep"]
        if cache["scheme"] == "inverted":
            return dout * keep / (1 - p) if cache["train"] else dout.copy()
        return dout * keep if cache["train"] else dout * (1 - p)

    def wrong_in_training(bug):
        def backward(dout, cache):
            if not cache["train"]:
                return correct(dout, cache)
            return bug(dout, cache["keep"], cache["p"])
        return backward

    def fresh(dout, keep, p):
        # a new mask from a generator no learner seeds: it differs from the cached one in
        # about 2p(1-p) of the elements (all 200 agree with probability < 0.6**200)
        return dout * (np.random.default_rng([4, 0, 4]).random(dout.shape) >= p) / (1 - p)

    backwards = {
        "correct": correct,
        "forgets_scale": wrong_in_training(lambda dout, keep, p: dout * keep),
        "fresh_mask": wrong_in_training(fresh),
        "scales_twice": wrong_in_training(lambda dout, keep, p: dout * keep / (1 - p) ** 2),
        "returns_dout": wrong_in_training(lambda dout, keep, p: dout.copy()),
        "ignores_dout": wrong_in_training(lambda dout, keep, p: keep / (1 - p) + 0 * dout),
        "inverted_scale": wrong_in_training(lambda dout, keep, p: dout * keep / (1 - p)),
    }
    return {"inverted": inverted, "classic": classic}, backwards


def spied(forward, log):
    """forward, recording how the learner's check calls it."""
    def spy(x, p, train=True, rng=None):
        log["calls"] += 1
        if not train:
            log["off"] += 1
            if repr(train) not in log["trains"]:
                log["trains"].append(repr(train))
        try:
            q = float(p)
        except (TypeError, ValueError):
            q = repr(p)
        if q not in log["ps"]:
            log["ps"].append(q)
        if rng is None:
            log["none"] += 1
        elif isinstance(rng, np.random.Generator):
            state = repr(rng.bit_generator.state)
            if state not in log["states"]:
                log["states"].append(state)
        return forward(x, p, train, rng)
    return spy


def gradient_checks(nb, cases):
    """The learner's dropout_gradient_check on trusted pairs; value and how forward was called."""
    check = nb.fn("dropout_gradient_check")
    forwards, backwards = trusted_layers()
    out = []
    for case in cases:
        log = {"calls": 0, "trains": [], "ps": [], "off": 0, "none": 0, "states": []}
        x = case["x"].copy()
        r = plain(check(spied(forwards[case["forward"]], log), backwards[case["backward"]],
                        x, case["p"], case["seed"]))
        log["states"] = len(log["states"])
        r.update(log=log, x_kept=bool(np.array_equal(x, case["x"])))
        out.append(r)
    return out


# ================================================================ helpers (grader side)
def fmt(v):
    return "nan" if v != v else f"{v:.3g}"


def power(v):
    """1e-08 -> '1e-8' (for bounds)."""
    return f"{v:.0e}".replace("e-0", "e-")


def as_number(r, call):
    """A float (Python or NumPy scalar, or a 0-d array) from a plain() answer, or a clear failure."""
    v, kind = r["value"], r["type"]
    if isinstance(v, np.ndarray):
        assert v.ndim == 0, (
            f"{call} returned an array of shape {v.shape}; it should return one number (a float): "
            "the largest of the element-wise errors.")
        v = float(v)
    assert v is not None, f"{call} returned {kind}; it should return one number (a float)."
    return v


def as_gradient(r, shape, call):
    assert "raised" not in r, f"{call} raised {r.get('raised')}."
    g = r["g"]["value"]
    assert isinstance(g, np.ndarray), (
        f"{call} returned {r['g']['type']}; return a NumPy array with one partial derivative per "
        "element of x.")
    assert g.shape == shape, (
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


def cubic(rng, shape, h):
    """f(x) = sum(c * x**3): centred differences are off by exactly c·h², forward ones by 3c·x·h + c·h²."""
    x = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    c = rng.uniform(0.5, 2, shape) * rng.choice([-1.0, 1.0], shape)
    return {"x": x, "c": c, "h": h}, 3 * c * x ** 2


def ratio_to_true(g, true):
    """Median of g / true where the true gradient is not small: 2 means 'divided by h, not 2h'."""
    big = np.abs(true) > 0.1 * np.abs(true).max()
    return float(np.median(g[big] / true[big]))


def step_hint(ratio):
    if abs(ratio - 2) < 0.05:
        return (f" Your values are {ratio:.2f}× the true gradient: the difference f(x + h) − f(x − h) "
                "spans 2h, so divide it by 2h, not by h.")
    if abs(ratio - 0.5) < 0.025:
        return f" Your values are {ratio:.2f}× the true gradient: divide by 2h, not by 4h."
    return ""


def nb_call(shape, h=None):
    return f"numerical_gradient(f, x{'' if h is None else f', h={h}'}) with x of shape {shape}"


def ref_relative_error(a, b, den="sum"):
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = np.abs(a) + np.abs(b) if den == "sum" else np.maximum(np.abs(a), np.abs(b))
    return float(np.max(np.abs(a - b) / np.maximum(d, 1e-8)))


def rel_call(what):
    return f"relative_error({what})"


# ================================================================ numerical_gradient
class TestNumericalGradient:
    pytestmark = pytest.mark.exercise("numerical_gradient")

    @pytest.mark.points(1)
    def test_returns_float64_array_of_x_shape(self, learner):
        """returns a float64 array of x's shape, calling f with arrays of that shape"""
        case, _ = sinquad(learner.rng(1), (4, 5))
        (r,) = learner.call(gradients, NG, helpers=(plain,), cases=[case])
        g = as_gradient(r, (4, 5), nb_call((4, 5)))
        assert g.dtype == np.float64, (
            f"{nb_call((4, 5))} returned dtype {g.dtype}; the contract asks for float64.")
        assert r["shapes"] == [[4, 5]], (
            f"f was called with arrays of shapes {r['shapes']}; call it with arrays of x's shape "
            "(4, 5) — the function being differentiated expects its input as it is.")

    @pytest.mark.points(2)
    def test_matches_the_true_gradient_for_any_shape(self, learner):
        """matches the true gradient for x of any shape (1-D, 2-D, 3-D)"""
        shapes = [(7,), (4, 5), (2, 3, 4)]
        made = [sinquad(learner.rng(10 + k), s) for k, s in enumerate(shapes)]
        rs = learner.call(gradients, NG, helpers=(plain,), cases=[m[0] for m in made])
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
            # rounding eps·|f|/h ~ 1e-9 here; 1e-4 leaves room for any honest variant
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

    @pytest.mark.points(3)
    def test_centred_differences_error_is_order_h_squared(self, learner):
        """uses centred differences: the error shrinks like h², not like h"""
        h = 1e-2
        case, true = cubic(learner.rng(20), (3, 4), h)
        (r,) = learner.call(gradients, NG, helpers=(plain,), cases=[case])
        g = as_gradient(r, (3, 4), nb_call((3, 4), h))
        c, x = case["c"], case["x"]
        err = g - true
        # centred: (c(x+h)³ − c(x−h)³)/2h = 3c·x² + c·h² exactly, up to rounding (~1e-13 here)
        bound = 3 * np.abs(c).max() * h ** 2
        if np.max(np.abs(err)) <= bound:
            return
        forward_err, backward_err = 3 * c * x * h + c * h ** 2, -3 * c * x * h + c * h ** 2
        base = (f"On f(x) = Σ c·x³ with h = {h}, your gradient is off by up to {fmt(np.abs(err).max())}; "
                f"centred differences are off by exactly c·h² (here at most {fmt(np.abs(c).max() * h * h)}).")
        if np.allclose(err, forward_err, rtol=0.01, atol=1e-9):
            assert False, base + (
                " Your errors match forward differences, (f(x + h) − f(x)) / h, whose error is "
                "about h·f''(x)/2: it shrinks only like h. Evaluate f at x + h AND x − h and divide "
                "the difference by 2h — the h·f'' terms then cancel and the error is O(h²).")
        if np.allclose(err, backward_err, rtol=0.01, atol=1e-9):
            assert False, base + (
                " Your errors match backward differences, (f(x) − f(x − h)) / h, which are only "
                "O(h) accurate. Use both sides: (f(x + h) − f(x − h)) / 2h.")
        assert False, base + (step_hint(ratio_to_true(g, true)) or
                              " An error that large is not the step's fault: check the quotient "
                              "(f(x + h·e_i) − f(x − h·e_i)) / 2h, and that each step moves one "
                              "element of x only.")

    @pytest.mark.points(1)
    def test_uses_the_step_h_it_is_given(self, learner):
        """uses the step h it is given"""
        h = 1e-2
        case, true = cubic(learner.rng(30), (3, 4), h)
        (r,) = learner.call(gradients, NG, helpers=(plain,), cases=[case])
        g = as_gradient(r, (3, 4), nb_call((3, 4), h))
        rel = (g - true) / (case["c"] * h * h)      # exactly 1 for centred differences of step h
        assert np.median(np.abs(rel)) > 0.1, (
            f"With h = {h} your gradient of Σ c·x³ is off by only {fmt(np.abs(g - true).max())}; "
            f"centred differences with that step are off by exactly c·h² (about {fmt(np.median(np.abs(case['c'])) * h * h)} "
            "here). Your function does not seem to use the h it is given — is the step fixed inside?")

    @pytest.mark.points(2)
    def test_leaves_x_exactly_as_it_was(self, learner):
        """leaves x exactly as it was (bit for bit)"""
        h = 1e-5
        case, _ = sinquad(learner.rng(40), (3, 4))
        (r,) = learner.call(gradients, NG, helpers=(plain,), cases=[case])
        before, after = case["x"], r["x_after"]
        if after.tobytes() == before.tobytes():
            return
        d = float(np.max(np.abs(after - before)))
        moved = int(np.count_nonzero(after != before))
        if d >= h / 2:
            assert False, (
                f"After numerical_gradient(f, x) returned, {moved} of the 12 elements of x were "
                f"still moved (by up to {fmt(d)}, about h = {h}): your function leaves x perturbed. "
                + (f"While it ran, f saw up to {r['moved']} elements away from their values at once, so "
                   "most partial derivatives were taken at the wrong point. " if r["moved"] > 1 else "")
                + "Save each element's value before you move it and put it back before the next one "
                "(or work on your own copy of x).")
        assert False, (
            f"After numerical_gradient(f, x), {moved} elements of x differ from before by up to "
            f"{fmt(d)}: x + h − 2h + h is not exactly x in floating point. Save the old value and "
            "assign it back, instead of undoing the step by arithmetic (or work on a copy of x).")

    @pytest.mark.points(1)
    def test_float32_input_is_differentiated_in_float64(self, learner):
        """computes in float64 even when x is float32 (and returns float64)"""
        case32, _ = sinquad(learner.rng(50), (4, 5), dtype=np.float32)
        case64 = dict(case32, x=case32["x"].astype(np.float64))   # the same values, as float64
        r32, r64 = learner.call(gradients, NG, helpers=(plain,), cases=[case32, case64])
        g32 = as_gradient(r32, (4, 5), nb_call((4, 5)) + " (x float32)")
        g64 = as_gradient(r64, (4, 5), nb_call((4, 5)) + " (x float64)")
        assert g32.dtype == np.float64, (
            f"For a float32 x your gradient has dtype {g32.dtype}; the contract asks for float64 "
            "whatever x's dtype.")
        # Both calls see the same numbers; computed in float64 they give the same gradient, bit
        # for bit. Perturbing in float32 moves x by a rounded step (off by up to half a float32
        # spacing, ~6e-8 near 1, i.e. ~0.6% of h = 1e-5), far above this bound.
        diff = float(np.max(np.abs(g32 - g64)) / np.max(np.abs(g64)))
        lost = (" f was called with float32 arrays." if "float32" in r32["dtypes"] else "")
        assert diff <= 1e-8, (
            f"Given the same x as float32 instead of float64, your gradient changed by {fmt(diff)} "
            f"of its size.{lost} In float32, x + h is rounded to about 7 significant digits, so "
            "the step is not h, and f's values lose the tiny difference you divide by 2h. Copy x "
            "to float64 first and perturb the copy.")
        assert r32["x_after"].tobytes() == case32["x"].tobytes() and r32["x_dtype"] == "float32", (
            "numerical_gradient changed the caller's float32 x; work on a float64 copy of it.")


# ================================================================ relative_error
class TestRelativeError:
    pytestmark = pytest.mark.exercise("relative_error")

    def values(self, learner, pairs):
        return learner.call(rel_errors, RE, helpers=(plain,), pairs=pairs)

    @pytest.mark.points(1)
    def test_returns_one_number(self, learner):
        """returns one number (a float), not an array"""
        rng = learner.rng(100)
        a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
        (r,) = self.values(learner, [(a, b)])
        v = as_number(r, rel_call("a, b") + " with arrays of shape (3, 4)")
        assert r["kept"], "relative_error changed its inputs a or b; compute into new arrays."
        assert v == v, f"{rel_call('a, b')} returned nan for two ordinary random arrays."

    @pytest.mark.points(2)
    def test_identical_arrays_give_zero_even_with_zeros(self, learner):
        """identical arrays give exactly 0, even where they hold zeros (no NaN)"""
        rng = learner.rng(110)
        a = rng.standard_normal((4, 5))
        a[rng.random((4, 5)) < 0.4] = 0.0
        cases = [("a, a (an array with zeros in it)", a, a.copy()),
                 ("zeros, zeros", np.zeros(6), np.zeros(6)),
                 ("a, a (no zeros)", np.abs(a) + 1, np.abs(a) + 1)]
        rs = self.values(learner, [(x, y) for _, x, y in cases])
        for (what, _, _), r in zip(cases, rs):
            v = as_number(r, rel_call(what))
            assert v == v, (
                f"{rel_call(what)} returned nan: where a and b are both 0 the element-wise error is "
                "0 / 0. This is what the 1e-8 floor in the denominator, max(|a| + |b|, 1e-8), is "
                "for — identical arrays must give exactly 0, zeros included. (Dropout gradients are "
                "full of zeros: every dropped unit.)")
            assert v == 0.0, f"{rel_call(what)} returned {fmt(v)}; identical arrays must give exactly 0."

    @pytest.mark.points(1)
    def test_tiny_differences_are_measured_against_the_floor(self, learner):
        """divides by max(|a| + |b|, 1e-8): differences far below 1e-8 count as small"""
        a, b = np.array([3.0, 1e-12, 0.0]), np.array([3.0, 0.0, 0.0])
        (r,) = self.values(learner, [(a, b)])
        v = as_number(r, rel_call("[3, 1e-12, 0], [3, 0, 0]"))
        want = 1e-12 / 1e-8
        if v == v and abs(v - want) <= 1e-3 * want:   # also accepts |a − b| / (|a| + |b| + 1e-8)
            return
        hint = (" Without the floor, 1e-12 against 0 counts as a 100% error, and 0 against 0 is nan."
                if v != v or v > 0.5 else "")
        assert False, (
            f"relative_error([3, 1e-12, 0], [3, 0, 0]) returned {fmt(v)}; expected {want:g}: the "
            "denominator is max(|a| + |b|, 1e-8), so a difference of 1e-12 where both values are "
            f"tiny counts as 1e-12 / 1e-8.{hint}")

    @pytest.mark.points(2)
    def test_takes_the_maximum_over_elements(self, learner):
        """reports the worst element (the maximum), not an average"""
        a = np.ones(100)
        b = np.ones(100)
        b[17], b[60] = 2.0, 1.5        # element errors 1/3 and 0.2, every other element 0
        (r,) = self.values(learner, [(a, b)])
        v = as_number(r, rel_call("a, b"))
        want = 1 / 3
        if abs(v - want) <= 1e-7 * want:          # also accepts |a − b| / (|a| + |b| + 1e-8)
            return
        elementwise = np.abs(a - b) / (np.abs(a) + np.abs(b))
        guesses = {"the mean of the element-wise errors": elementwise.mean(),
                   "the sum of the element-wise errors": elementwise.sum(),
                   "one norm-based ratio ‖a − b‖ / (‖a‖ + ‖b‖)":
                       np.linalg.norm(a - b) / (np.linalg.norm(a) + np.linalg.norm(b))}
        named = [k for k, g in guesses.items() if abs(v - g) <= 1e-6 * g]
        assert False, (
            f"For two arrays of 100 elements that differ in 2 (element errors 1/3 and 0.2, all "
            f"others 0) relative_error returned {fmt(v)}; expected {want:.4f}, the worst element."
            + (f" That is {named[0]}." if named else "")
            + " An average hides one wrong element among many, and one wrong element is a bug: "
            "take the maximum over elements.")

    @pytest.mark.points(2)
    def test_is_symmetric(self, learner):
        """is symmetric: relative_error(a, b) == relative_error(b, a)"""
        rng = learner.rng(120)
        a = rng.standard_normal((4, 6))
        b = a * rng.uniform(0.2, 3.0, (4, 6)) + 0.1 * rng.standard_normal((4, 6))
        rs = self.values(learner, [(a, b), (b, a)])
        ab, ba = (as_number(r, rel_call(w)) for r, w in zip(rs, ("a, b", "b, a")))
        assert ab == ab and ba == ba, f"relative_error returned nan ({fmt(ab)}, {fmt(ba)}) for ordinary arrays."
        assert abs(ab - ba) <= 1e-12 * max(abs(ab), abs(ba)), (
            f"relative_error(a, b) = {fmt(ab)} but relative_error(b, a) = {fmt(ba)}: it is not "
            "symmetric. Neither argument is 'the truth' — the denominator must treat a and b "
            "alike: |a| + |b|.")

    @pytest.mark.points(2)
    def test_value_on_random_arrays(self, learner):
        """gives max |a − b| / max(|a| + |b|, 1e-8) on arrays of any shape"""
        rng = learner.rng(130)
        pairs = []
        for shape in ((50,), (6, 7), (2, 3, 4)):
            a = rng.standard_normal(shape)
            a += np.sign(a) * 0.1                      # |a| >= 0.1, so |a| + |b| >= 0.1 everywhere
            pairs.append((a, a + rng.standard_normal(shape) * rng.uniform(0.01, 2, shape)))
        rs = self.values(learner, pairs)
        for (a, b), r in zip(pairs, rs):
            call = rel_call("a, b") + f" with arrays of shape {a.shape}"
            v = as_number(r, call)
            assert r["kept"], f"{call} changed a or b; compute the result into new arrays."
            want = ref_relative_error(a, b)
            # |a| + |b| >= 0.1 here, so the floor never bites; 2e-7 also accepts the variant
            # |a − b| / (|a| + |b| + 1e-8), which differs by at most 1e-8 / 0.1
            if abs(v - want) <= 2e-7 * want:
                continue
            alt = ref_relative_error(a, b, den="max")
            assert False, (
                f"{call} returned {fmt(v)}; expected {want:.6g}, the largest element-wise "
                "|a − b| / max(|a| + |b|, 1e-8)."
                + (" You divided by max(|a|, |b|) instead of |a| + |b|." if abs(v - alt) <= 1e-9 * alt else ""))


# ================================================================ dropout_gradient_check
def gc_case(forward, backward, x, p, seed):
    return {"forward": forward, "backward": backward, "x": x, "p": p, "seed": seed}


def mask_hint(log):
    """Why the mask changed between the evaluations, from the spy's log ('' if it did not)."""
    if log["none"]:
        return (f" {log['none']} of the {log['calls']} calls to forward got rng=None, so each drew a "
                "new mask.")
    if log["states"] > 1:
        return (f" The {log['calls']} calls to forward started from {log['states']} different "
                "generator states, so the mask changed between evaluations.")
    return ""


def off_hint(log, p):
    """How the check turned dropout off, from the spy's log ('' if it did not)."""
    bits = []
    if log["off"]:
        bits.append(f"train={', '.join(log['trains'])}")
    others = [q for q in log["ps"] if q != p]
    if others:
        bits.append(f"p = {', '.join(map(str, others))} instead of p = {p}")
    if not bits:
        return ""
    return (f" Your check turns dropout off: it called forward with {' and '.join(bits)}. Then only "
            "the eval-mode path of backward is compared, and everything that makes dropout — the "
            "mask and the 1/(1 − p) scaling — goes unchecked.")


SAME_MASK = (" Every evaluation — f(x + h), f(x − h) and the forward pass whose cache goes to "
             "backward — must use the same mask: give each call to forward a fresh "
             "np.random.default_rng(seed).")

WRONG = {"forgets_scale": "forgets the 1/(1 − p) factor (dx = dout · mask)",
         "fresh_mask": "draws a fresh mask instead of the cached one",
         "scales_twice": "scales twice (dx = dout · mask / (1 − p)²)",
         "returns_dout": "returns dout unchanged",
         "ignores_dout": "ignores dout (returns mask / (1 − p))",
         "inverted_scale": "scales by 1/(1 − p) although the forward pass did not (classic dropout)"}


class TestDropoutGradientCheck:
    pytestmark = pytest.mark.exercise("dropout_gradient_check")

    def run(self, learner, cases):
        return learner.call(gradient_checks, GC, helpers=(plain, trusted_layers, spied), cases=cases)

    @pytest.mark.points(3)
    def test_correct_pairs_give_a_tiny_error(self, learner):
        """returns < 1e-8 for correct forward/backward pairs (inverted and classic)"""
        rng = learner.rng(200)
        cases = [
            # At x = 0 every f(x ± h·e_i) is a sum with a single non-zero term, computed exactly:
            # a correct check then returns a few 1e-16 whatever dout it draws.
            gc_case("inverted", "correct", np.zeros((10, 20)), 0.3, learner.seed(201)),
            gc_case("classic", "correct", np.zeros((4, 5, 6)), 0.7, learner.seed(202)),
            # At |x| ~ 1e-3 rounding leaves < ~4e-12 absolute error in the numerical gradient
            # (worst 3.7e-12 measured over 1500 draws with |dout| up to ~10); the 1e-8 floor of
            # relative_error caps any element at that / 1e-8 < 4e-4, so 1e-3 holds whatever
            # random dout the check uses.
            gc_case("inverted", "correct", 1e-3 * rng.standard_normal((10, 20)), 0.6, learner.seed(203)),
        ]
        bounds = [1e-8, 1e-8, 1e-3]
        rs = self.run(learner, cases)
        for case, bound, r in zip(cases, bounds, rs):
            what = (f"a correct {case['forward']} dropout pair (p = {case['p']}, x of shape "
                    f"{case['x'].shape}{', all zeros' if not case['x'].any() else ''})")
            v = as_number(r, f"dropout_gradient_check on {what}")
            if v == v and v < bound:
                continue
            if v != v:
                assert False, (
                    f"On {what} your check returned nan. Dropped units have gradient 0 in both the "
                    "analytic and the numerical gradient: does your relative_error divide 0 by 0?")
            assert False, (
                f"On {what} your check returned {fmt(v)}; a correct pair must give < {power(bound)}."
                + (mask_hint(r["log"]) or
                   (" A value near 1 means the numerical and the analytic gradients saw different "
                    "masks." if v > 0.1 else ""))
                + SAME_MASK)

    @pytest.mark.points(4)
    def test_wrong_backwards_give_a_large_error(self, learner):
        """returns > 1e-2 for backwards that are wrong in training mode"""
        rng = learner.rng(210)
        x = rng.standard_normal((10, 20))
        cases = [gc_case("inverted", name, x, 0.3, learner.seed(211 + k))
                 for k, name in enumerate(WRONG) if name != "inverted_scale"]
        cases.append(gc_case("classic", "inverted_scale", x, 0.7, learner.seed(220)))
        rs = self.run(learner, cases)
        missed = []
        for case, r in zip(cases, rs):
            v = as_number(r, "dropout_gradient_check")
            # each of these backwards is wrong by a fixed factor or pattern: a correct check gives
            # p/(2 − p) = 0.18 for the scaling bugs at p = 0.3, and 1 for the others
            if not v > 1e-2:
                missed.append((case, v, r["log"]))
        if not missed:
            return
        hint = next((off_hint(log, case["p"]) for case, _, log in missed if off_hint(log, case["p"])), "")
        listed = "; ".join(f"{fmt(v)} for a backward that {WRONG[c['backward']]}" for c, v, _ in missed)
        dout_hint = ""
        if [c["backward"] for c, _, _ in missed] == ["ignores_dout"]:
            dout_hint = (" Only the backward that ignores dout got through: is your dout all ones? "
                         "Draw it at random, so that every element is weighted differently.")
        assert False, (
            f"Your check missed {len(missed)} of {len(cases)} backwards that are wrong in training "
            f"mode (p = 0.3 and 0.7): it returned {listed}. A gradient check must flag them "
            "(> 1e-2)." + (hint or dout_hint))

    @pytest.mark.points(2)
    def test_keeps_dropout_on_with_one_mask(self, learner):
        """calls forward in training mode, with the given p and the same mask every time"""
        rng = learner.rng(230)
        p = 0.3
        (r,) = self.run(learner, [gc_case("inverted", "correct", rng.standard_normal((10, 20)),
                                          p, learner.seed(231))])
        log = r["log"]
        assert log["calls"] > 0, "Your check never called forward."
        off = off_hint(log, p)
        assert not off, off.strip()
        changed = mask_hint(log)
        assert not changed, changed.strip() + SAME_MASK

    @pytest.mark.points(1)
    def test_returns_a_float_and_leaves_x_alone(self, learner):
        """returns one float and leaves x as it was"""
        rng = learner.rng(240)
        x = rng.standard_normal((6, 7))
        (r,) = self.run(learner, [gc_case("inverted", "correct", x, 0.4, learner.seed(241))])
        v = as_number(r, "dropout_gradient_check")
        assert v == v, "dropout_gradient_check returned nan for a correct pair."
        assert r["x_kept"], (
            "dropout_gradient_check changed the x it was given; the numerical gradient must put "
            "every element back (or work on a copy).")
