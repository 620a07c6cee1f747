"""Checks for notebook 07: dropout in the frameworks (the learner's code is NumPy only).

Contract (stated in the notebook):
  convert_rate(value, src, dst) -> float: the same dropout strength in another convention.
    Conventions: "p" (PyTorch, this course: drop probability), "rate" (Keras: drop
    probability), "keep_prob" (TF1, deeplearning.ai: keep probability).  An unknown name or a
    value outside [0, 1] (NaN included) -> ValueError.
  keras_dropout(x, rate, training=False, rng=None) -> array: keras.layers.Dropout's semantics
    in NumPy.  training false (the default) -> x unchanged, no random draws; training true ->
    each element kept with probability 1 - rate and divided by 1 - rate; rate = 1 -> zeros
    (no 0/0).  rate outside [0, 1] -> ValueError.  Draws from `rng` (None: a fresh generator);
    x is never modified.
  to_keras_weights(params) -> list: the course's {"W1": (in, out), "b1": (out,), ...} as
    [W1, b1, W2, b2, ...] for keras.Model.set_weights (a Dense kernel is (in, out), its bias
    (out,)); params is not modified.

Probes run in the learner's sandboxed process: they call the learner's functions on inputs
chosen here and return the raw results; every comparison happens here.  Randomized checks use
fixed seeds (learner.seed) and bounds whose false-failure probability for a correct
implementation is stated next to each of them.
"""
import math

import numpy as np

from grader.checks import mark
from grader.checks.dropout_checks import assert_independent_coins, distinct_digits, factor_name
from grader.checks.stats import hoeffding, pct

CONVERT = ("convert_rate",)
DROP = ("keras_dropout",)
WEIGHTS = ("to_keras_weights",)


# ---------------------------------------------------------------- probes (run in the sandbox)
def convert(nb, cases):
    """convert_rate(value, src, dst) for each case: the value returned, or the exception type."""
    f = nb.fn("convert_rate")
    out = []
    for value, src, dst in cases:
        try:
            out.append({"value": f(value, src, dst)})
        except nb.Raised as e:
            out.append({"raised": e.type})
    return out


def dropout_calls(nb, x, rate, seed, training="omit"):
    """keras_dropout(x, rate[, training=...], rng=default_rng(seed)); then x as it is after the
    call, and the generator's next number (the grader compares it with an unused generator's)."""
    f = nb.fn("keras_dropout")
    rng = np.random.default_rng(seed)
    if training == "omit":
        out = f(x, rate, rng=rng)
    else:
        out = f(x, rate, training=training, rng=rng)
    return {"outs": [out], "x_after": x, "next_draw": rng.random()}


def training_calls(nb, cases):
    """dropout_calls in training mode for each (x, rate, seed): one call into the sandbox for all."""
    return [dropout_calls(nb, x, rate, seed, training=True) for x, rate, seed in cases]


def flag(name):
    """The training flag a probe passes, from its name (a helper: probes see no module globals)."""
    return {"False": False, "None": None, "0": 0, "np.False_": np.False_, "True": True}[name]


def inference_calls(nb, x, rate, seed, trainings):
    """keras_dropout(x, rate[, training=flag], rng=default_rng(seed)) for each flag ("omit" or a
    name for flag()): the output and the generator's next number."""
    f = nb.fn("keras_dropout")
    res = []
    for t in trainings:
        rng, given = np.random.default_rng(seed), x.copy()
        out = f(given, rate, rng=rng) if t == "omit" else f(given, rate, training=flag(t), rng=rng)
        res.append({"out": out, "next_draw": rng.random()})
    return res


def dropout_edges(nb, x, seed):
    """rate 0 and rate 1 in training mode, with floating-point warnings raised as errors."""
    f = nb.fn("keras_dropout")
    res = {}
    for rate in (0.0, 0, 1.0, 1):
        try:
            with np.errstate(all="raise"):
                res[repr(rate)] = {"out": f(x.copy(), rate, training=True, rng=np.random.default_rng(seed))}
        except nb.Raised as e:
            res[repr(rate)] = {"raised": f"{e.type}: {e}"}
    return res


def dropout_invalid(nb, rates, modes=("True",)):
    """What keras_dropout does with each rate in each mode ("omit" or a name for flag())."""
    f = nb.fn("keras_dropout")
    out = []
    for rate in rates:
        for mode in modes:
            try:
                if mode == "omit":
                    f(np.ones((4, 5)), rate, rng=np.random.default_rng(0))
                else:
                    f(np.ones((4, 5)), rate, training=flag(mode), rng=np.random.default_rng(0))
                out.append("accepted")
            except nb.Raised as e:
                out.append(e.type)
    return out


def dropout_rng(nb, x, rate, seed):
    """Same seed twice, another seed, rng=None twice; and whether the global generator moved."""
    f = nb.fn("keras_dropout")
    np.random.seed(12345)
    a = f(x.copy(), rate, training=True, rng=np.random.default_rng(seed))
    global_next = np.random.random_sample()   # the grader compares it with an untouched RandomState(12345)
    b = f(x.copy(), rate, training=True, rng=np.random.default_rng(seed))
    c = f(x.copy(), rate, training=True, rng=np.random.default_rng(seed + 1))
    nones = [f(x.copy(), rate, training=True) for _ in range(2)]
    return {"same": [a, b], "other": c, "none": nones, "global_next": global_next}


def weights(nb, params):
    """to_keras_weights(params): what it returned (a list/tuple is shipped item by item), and
    the params dict as it is afterwards."""
    r = nb.fn("to_keras_weights")(params)
    items = list(r) if isinstance(r, (list, tuple)) else None
    return {"type": type(r).__name__, "items": items, "params_after": dict(params)}


# ---------------------------------------------------------------- grader-side helpers
def number(r, call):
    """The value convert_rate returned, as a float; a clear message if it is none."""
    if "raised" in r:
        assert False, f"{call} raised {r['raised']}; it should return a number."
    v = r["value"]
    ok = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "iuf":
        ok, v = True, v.item()
    assert ok, f"{call} returned {type(v).__name__} {v!r}; it should return a float."
    return float(v)


def rounding_hint(have, want):
    """' That is {want} rounded to k decimals …' when it is; '' otherwise."""
    for k in range(0, 7):
        if abs(have - want) > 1e-12 and abs(have - round(want, k)) < 1e-12:
            return (f" That is {want:g} rounded to {k} decimal{'s' if k != 1 else ''}: return the exact "
                    "value — a dropout strength is a probability, and rounding belongs to printing only.")
    return ""


def array(value, shape, call):
    assert isinstance(value, np.ndarray) and value.dtype.kind in "biuf", (
        f"{call} returned {type(value).__name__}; it should return a NumPy array of numbers "
        "(what keras.layers.Dropout returns, as a NumPy array).")
    assert value.shape == shape, f"{call} returned shape {value.shape}; expected {shape}, the shape of x."
    return value.astype(np.float64)


def seeded_x(learner, k, shape, low=1.0, high=2.0, zeros=0.0):
    """Inputs chosen by the grader: uniform in [low, high), a share `zeros` set to exactly 0."""
    g = learner.rng(k)
    x = g.uniform(low, high, shape)
    if zeros:
        x[g.random(shape) < zeros] = 0.0
    return x


def dcall(rate, training="omit"):
    t = "" if training == "omit" else f", training={training}"
    return f"keras_dropout(x, rate={rate}{t}, rng=rng)"


# ---------------------------------------------------------------- convert_rate
@mark.exercise("convert_rate")
class TestConvertRate:
    @mark.points(1)
    def test_p_and_rate_are_the_same_number(self, learner):
        """p (PyTorch) and rate (Keras) are both the drop probability: converting keeps the number"""
        cases = [(0.2, "p", "rate"), (0.35, "rate", "p"), (0.2, "p", "p"), (0.8, "keep_prob", "keep_prob"),
                 (0.123456789, "p", "rate"), (0.0625, "keep_prob", "keep_prob"), (0.999, "rate", "rate")]
        got = learner.call(convert, CONVERT, cases=cases)
        for (v, src, dst), r in zip(cases, got):
            call = f"convert_rate({v}, {src!r}, {dst!r})"
            have = number(r, call)
            if src != dst and abs(have - (1 - v)) < 1e-9:
                assert False, (f"{call} returned {have:g}: you turned a drop probability into a keep "
                               f"probability. PyTorch's p and Keras's rate both mean the share DROPPED, so "
                               f"p = {v} is rate = {v}; only keep_prob counts the other way.")
            assert abs(have - v) < 1e-12, (f"{call} returned {have!r}; expected {v}: the same "
                                           "convention, or two names for the drop probability, "
                                           "give the same number." + rounding_hint(have, v))

    @mark.points(2)
    def test_keep_prob_is_one_minus_the_drop_probability(self, learner):
        """keep_prob = 1 − p = 1 − rate, in both directions"""
        cases = [(0.8, "keep_prob", "rate"), (0.9, "keep_prob", "p"), (0.3, "p", "keep_prob"),
                 (0.25, "rate", "keep_prob"), (0.125, "p", "keep_prob"), (0.0625, "keep_prob", "rate"),
                 (0.999, "rate", "keep_prob")]
        got = learner.call(convert, CONVERT, cases=cases)
        for (v, src, dst), r in zip(cases, got):
            call = f"convert_rate({v}, {src!r}, {dst!r})"
            have = number(r, call)
            if abs(have - v) < 1e-12:
                assert False, (f"{call} returned {have:g}, the number it was given. {src} and {dst} "
                               f"count opposite things ({'keep' if src == 'keep_prob' else 'drop'} vs "
                               f"{'keep' if dst == 'keep_prob' else 'drop'}): a TF1 keep_prob of 0.8 "
                               "drops 20 %, so it is rate = 0.2.")
            hint = rounding_hint(have, 1 - v)
            assert abs(have - (1 - v)) < 1e-12, (
                (f"{call} returned {have!r}; expected 1 − {v} = {1 - v:.12g}." + hint) if hint else
                (f"{call} returned {have!r}; expected 1 − {v} = {1 - v:.12g}: keep_prob is the share "
                 "KEPT, p and rate the share dropped."))

    @mark.points(1)
    def test_rejects_unknown_names_and_values_outside_0_1(self, learner):
        """an unknown convention name, or a value outside [0, 1] (or NaN), raises ValueError"""
        cases = [(0.2, "keep", "rate"), (0.2, "p", "drop_rate"), (-0.1, "p", "rate"),
                 (1.5, "keep_prob", "p"), (float("nan"), "rate", "keep_prob"),
                 # the same convention on both sides: nothing to convert, but still validated
                 (1.5, "p", "p"), (float("nan"), "rate", "rate"), (0.2, "keep", "keep"),
                 (-0.25, "keep_prob", "keep_prob")]
        got = learner.call(convert, CONVERT, cases=cases)
        for (v, src, dst), r in zip(cases, got):
            call = f"convert_rate({v}, {src!r}, {dst!r})"
            what = "an unknown convention name" if v == 0.2 else (
                "NaN" if math.isnan(v) else "a value outside [0, 1]")
            if "raised" not in r:
                hint = (" Your function returns before validating when both conventions are the same: "
                        "validate the names and the value first, on every path." if src == dst else
                        " Written as `not 0 <= value <= 1`, the test rejects NaN too." if math.isnan(v)
                        else " Compare the name with the three known ones and raise otherwise — a "
                        "typo such as 'keep' must not silently count as 'p'." if v == 0.2 else "")
                assert False, f"{call} returned {r['value']!r}; {what} should raise ValueError.{hint}"
            assert r["raised"] == "ValueError", (
                f"{call} raised {r['raised']}; {what} should raise ValueError (raise it yourself, "
                "with a message naming the problem).")


# ---------------------------------------------------------------- keras_dropout
@mark.exercise("keras_dropout")
class TestKerasDropout:
    @mark.points(2)
    def test_default_is_inference(self, learner):
        """without a true training flag (omitted, False, None, 0, np.False_) it is the identity and draws
        nothing (Keras's default)"""
        x = seeded_x(learner, 1, (200, 100), zeros=0.1)
        flags = ("omit", "False", "None", "0", "np.False_")
        rs = learner.call(inference_calls, DROP, helpers=(flag,), x=x, rate=0.3, seed=learner.seed(2), trainings=flags)
        for training, r in zip(flags, rs):
            call = dcall(0.3, training)
            out = array(r["out"], x.shape, call)
            nz = x != 0
            dropped = float(np.mean(out[nz] == 0))
            if training == "omit" and dropped > 0.1:
                assert False, (f"{call} — called without training — dropped {pct(dropped)} of the "
                               "elements. In Keras a layer called without training=True is in "
                               "inference mode and returns x unchanged; only fit() (or you) passes "
                               "training=True. Make the default training=False.")
            if dropped > 0.1:
                assert False, (f"{call} dropped {pct(dropped)} of the elements: your function treats "
                               f"training={training} as training. Keras trains only when the flag is "
                               "true; None (the mode not set), 0 and NumPy's False are all inference — "
                               "test the flag's truth, not its identity with True or False.")
            if not np.array_equal(out, x):
                f = factor_name(float(np.median(out[nz] / x[nz])), 0.3)
                extra = (f" It multiplied x by {f}: that is classic dropout's test-time scaling; "
                         "Keras scales while training (inverted dropout), so inference is the "
                         "identity." if f and f != "1" else "")
                assert False, (f"{call} changed x (at most {np.abs(out - x).max():.3g} away "
                               f"{'and' if dropped else 'but'} {pct(dropped)} of the elements "
                               f"zeroed); in inference mode it should return x unchanged.{extra}")
            assert r["next_draw"] == np.random.default_rng(learner.seed(2)).random(), (
                f"{call} returned x unchanged but still drew random numbers from rng. In inference "
                "mode there is nothing to draw: decide on the mode before drawing, so that "
                "evaluating a model does not change the random stream of training.")

    @mark.points(2)
    def test_training_drops_a_share_rate(self, learner):
        """training=True drops each element with probability rate (rate = 0.2, 0.7)"""
        shape, rates = (400, 500), (0.2, 0.7)
        rs = learner.call(training_calls, DROP, helpers=(dropout_calls,), cases=[
            (seeded_x(learner, 10 + k, shape), rate, learner.seed(20 + k)) for k, rate in enumerate(rates)])
        res = []
        for rate, r in zip(rates, rs):
            dropped = array(r["outs"][0], shape, dcall(rate, True)) == 0
            # A mask repeated along rows or columns is test_one_coin_per_element's business; here
            # only its distinct coins count (a correct mask repeats a row with probability < 1e-50).
            if (dropped == dropped[:1]).all():
                dropped = dropped[:1]
            elif (dropped == dropped[:, :1]).all():
                dropped = dropped[:, :1]
            tol = hoeffding(dropped.size)  # 2 uses: false failure < 2e-10
            res.append((rate, float(np.mean(dropped)), dropped.size, tol))
        if all(abs(d - (1 - rate)) < tol for rate, d, _, tol in res):
            assert False, ("Keep and drop are swapped: " + ", ".join(
                f"at rate = {rate} you dropped {pct(d)}" for rate, d, _, _ in res) + ". Keras's rate is "
                "the share DROPPED (like PyTorch's p); keep each element with probability 1 − rate.")
        for rate, d, n, tol in res:
            assert abs(d - rate) < tol, (
                f"With training=True and rate = {rate}, your function zeroed {pct(d, 2)} of "
                f"{n} nonzero elements; expected {pct(rate)} ± {pct(tol, 2)}. "
                "Check the threshold you compare the uniform draws with.")

    @mark.points(2)
    def test_survivors_are_scaled_by_1_over_1_minus_rate(self, learner):
        """training: each element is 0 or x / (1 − rate); zeros in x stay 0 (rate = 0.3, 0.6)"""
        rates = (0.3, 0.6)
        xs = [seeded_x(learner, 30 + k, (200, 300), low=-2.0, high=2.0, zeros=0.1) for k in range(2)]
        rs = learner.call(training_calls, DROP, helpers=(dropout_calls,), cases=[
            (x, rate, learner.seed(40 + k)) for k, (x, rate) in enumerate(zip(xs, rates))])
        for x, rate, r in zip(xs, rates, rs):
            call = dcall(rate, True)
            out = array(r["outs"][0], x.shape, call)
            assert np.all(out[x == 0] == 0), (
                f"{call} turned {int(np.sum(out[x == 0] != 0))} zeros of x into nonzero values; "
                "dropout only multiplies, so a 0 stays 0.")
            kept = (out != 0) & (x != 0)
            assert kept.any(), f"{call} zeroed every element; at rate = {rate} about {pct(1 - rate)} should survive."
            want = x[kept] / (1 - rate)
            bad = ~np.isclose(out[kept], want, rtol=1e-6, atol=0)
            if bad.any():
                m = float(np.median(out[kept] / x[kept]))
                name = factor_name(m, rate)
                how = {"1": " — the survivors were not scaled at all", "1 − p": " — they were "
                       "multiplied by 1 − rate instead of divided", "1/p": " — divided by rate, not "
                       "by 1 − rate", "1/(1 − p)²": " — divided by 1 − rate twice"}.get(name, "")
                shown, wanted = distinct_digits(m, 1 / (1 - rate), 5)
                assert False, (
                    f"{call}: {int(bad.sum())} of {int(kept.sum())} kept elements are not x / (1 − rate); "
                    f"the median kept/x ratio is {shown}{' (= ' + name.replace('p', 'rate') + ')' if name else ''}"
                    f"{how}. Keras divides the survivors by 1 − rate = {1 - rate:g} (×{wanted}), "
                    "so the expected output equals x.")

    @mark.points(1)
    def test_one_coin_per_element(self, learner):
        """training: every element gets its own independent coin"""
        x = seeded_x(learner, 50, (2000, 50))
        r = learner.call(dropout_calls, DROP, x=x, rate=0.3, seed=learner.seed(51), training=True)
        out = array(r["outs"][0], x.shape, dcall(0.3, True))
        assert_independent_coins(out != 0, "keep-mask (out != 0)")

    @mark.points(1)
    def test_rate_zero_and_one(self, learner):
        """training: rate 0 returns x, rate 1 returns zeros without 0/0 (floats and ints)"""
        x = seeded_x(learner, 60, (30, 40), low=-1.0, high=1.0, zeros=0.1)
        res = learner.call(dropout_edges, DROP, x=x, seed=learner.seed(61))
        for rate in (0.0, 0, 1.0, 1):
            r, call = res[repr(rate)], dcall(repr(rate), True)
            if "raised" in r:
                hint = (" — at rate = 1 nothing survives, so return zeros without dividing by "
                        "1 − rate = 0 (Keras 3 returns zeros)" if rate == 1 else "")
                assert False, f"{call} raised {r['raised']}{hint}."
            out = array(r["out"], x.shape, call)
            if rate == 0:
                assert np.array_equal(out, x), (f"{call} changed x (by up to {np.abs(out - x).max():.3g}); "
                                                "at rate = 0 nothing is dropped and nothing scaled.")
            else:
                assert np.all(out == 0), (f"{call}: {int(np.sum(out != 0))} of {out.size} elements are "
                                          f"not 0 (e.g. {out[out != 0][:3].tolist()}); at rate = 1 "
                                          "everything is dropped.")

    @mark.points(1)
    def test_rejects_rate_outside_0_1(self, learner):
        """rate < 0, rate > 1 and NaN raise ValueError in every mode (as keras.layers.Dropout does)"""
        rates, modes = [-0.1, 1.5, float("nan")], ("True", "omit", "False")
        got = learner.call(dropout_invalid, DROP, helpers=(flag,), rates=rates, modes=modes)
        tried = [(rate, mode) for rate in rates for mode in modes]
        # training mode first: a rate refused only there is named for what it is
        for (rate, mode), r in sorted(zip(tried, got), key=lambda t: t[0][1] != "True"):
            call = dcall(rate, True if mode == "True" else mode).replace(", rng=rng", "")
            if r == "accepted":
                hint = (" Your function returns x before it validates the rate: keras.layers.Dropout "
                        "refuses an invalid rate when the layer is made, whatever the mode, so check "
                        "the rate first, on every path." if mode != "True" else
                        " Written as `not 0 <= rate <= 1`, the test rejects NaN too." if math.isnan(rate)
                        else " Keras 2 accepted such rates silently (Dropout(256) zeroed everything); "
                        "Keras 3 raises.")
                assert False, f"{call} was accepted; it should raise ValueError.{hint}"
            assert r == "ValueError", f"{call} raised {r}; it should raise ValueError."

    @mark.points(1)
    def test_uses_the_generator_it_is_given(self, learner):
        """training: draws from rng — reproducible, other seeds differ, rng=None fresh, no global RNG"""
        x = seeded_x(learner, 70, (50, 40))
        r = learner.call(dropout_rng, DROP, x=x, rate=0.3, seed=learner.seed(71))
        call = dcall(0.3, True)
        a, b = (array(o, x.shape, call) for o in r["same"])
        c = array(r["other"], x.shape, call)
        n1, n2 = (array(o, x.shape, "keras_dropout(x, rate=0.3, training=True)") for o in r["none"])
        assert r["global_next"] == np.random.RandomState(12345).random_sample(), (
            "keras_dropout draws from NumPy's global generator (np.random.rand, "
            "np.random.seed, …); draw from the rng argument instead.")
        assert np.array_equal(a, b), ("Two generators with the same seed gave different outputs; the "
                                      "mask should come from the rng argument only.")
        # two correct masks of 2000 elements agree with probability 0.58^2000
        assert not np.array_equal(a, c), ("Generators with different seeds gave the same output: is a "
                                          "seed fixed inside the function?")
        assert not np.array_equal(n1, n2), ("With rng=None two calls gave the same output: make a fresh "
                                            "np.random.default_rng() when no generator is passed.")

    @mark.points(1)
    def test_leaves_x_unchanged(self, learner):
        """never modifies its input x"""
        x = seeded_x(learner, 80, (40, 50))
        r = learner.call(dropout_calls, DROP, x=x, rate=0.4, seed=learner.seed(81), training=True)
        assert np.array_equal(r["x_after"], x), ("keras_dropout(x, rate=0.4, training=True) changed its input x in "
                                    "place (x *= …, or out=x). The caller may still need x — a residual "
                                    "connection, say — so compute a new array.")


# ---------------------------------------------------------------- to_keras_weights
def mlp_params(learner, k, sizes, order="scrambled"):
    """The course's params dict for these layer sizes, inserted in an order that is not the
    Keras order (so that list(params.values()) is not accidentally right)."""
    g = learner.rng(k)
    n = len(sizes) - 1
    p = {}
    for i in range(1, n + 1):
        p[f"W{i}"] = g.standard_normal((sizes[i - 1], sizes[i]))
        p[f"b{i}"] = g.standard_normal(sizes[i])
    keys = [f"b{i}" for i in range(n, 0, -1)] + [f"W{i}" for i in range(1, n + 1)][::-1] \
        if order == "scrambled" else list(p)
    return {key: p[key] for key in keys}


def name_of(a, params):
    """Which parameter the array a is (also transposed or reshaped); '?' if none."""
    if not isinstance(a, np.ndarray):
        return "?"
    for key, v in params.items():
        for cand in (v, v.T, v.reshape(1, -1)):
            if a.shape == cand.shape and np.allclose(a, cand, rtol=1e-6, atol=0):
                return key
    return "?"


def keras_order(n):
    return [f"{kind}{i}" for i in range(1, n + 1) for kind in "Wb"]


def returned(r):
    assert r["items"] is not None, (
        f"to_keras_weights returned a {r['type']}; return a list of arrays [W1, b1, W2, b2, …], "
        "which is what model.set_weights takes.")
    return r["items"]


def assert_order(r, params, n):
    items = returned(r)
    want = keras_order(n)
    got = [name_of(a, params) for a in items]
    assert got == want, (
        f"to_keras_weights returned {len(items)} arrays in the order [{', '.join(got)}]; "
        f"model.set_weights wants [{', '.join(want)}]: layer by layer, kernel then bias."
        + (" Sorting the keys as strings puts W10 before W2 (and every W before every b): "
           "order by the layer number." if sorted(got) == sorted(want) and n >= 10 else "")
        + (" Do not rely on the order of the dict: build the names W1, b1, … yourself."
           if sorted(got) == sorted(want) and n < 10 else ""))


@mark.exercise("to_keras_weights")
class TestToKerasWeights:
    @mark.points(2)
    def test_order_is_kernel_then_bias_layer_by_layer(self, learner):
        """returns [W1, b1, W2, b2, W3, b3] whatever order the dict holds them in"""
        params = mlp_params(learner, 1, [6, 5, 4, 3])
        r = learner.call(weights, WEIGHTS, params=params)
        assert_order(r, params, 3)

    @mark.points(1)
    def test_kernels_are_in_out_and_biases_1d(self, learner):
        """kernel i has shape (in, out) and bias i shape (out,), with the values of W_i and b_i"""
        params = mlp_params(learner, 2, [6, 5, 4, 3], order="keras")
        r = learner.call(weights, WEIGHTS, params=params)
        items = returned(r)
        want = keras_order(3)
        assert len(items) == len(want), (f"to_keras_weights returned {len(items)} arrays for a network "
                                         f"of 3 layers; expected {len(want)}: {', '.join(want)}.")
        for key, a in zip(want, items):
            v = params[key]
            assert isinstance(a, np.ndarray), f"item for {key} is a {type(a).__name__}, not a NumPy array."
            if key[0] == "W" and a.shape == v.T.shape and a.shape != v.shape:
                assert False, (f"The kernel for {key} has shape {a.shape}; Keras's Dense kernel is "
                               f"(in, out) = {v.shape}, the same layout as the course's W (h @ W + b). "
                               "(out, in) is PyTorch's nn.Linear layout — no transpose is needed here.")
            assert a.shape == v.shape, (f"The array for {key} has shape {a.shape}; Keras expects "
                                        f"{v.shape} ({'(in, out)' if key[0] == 'W' else '(out,), one dimension'}).")
            assert np.allclose(a, v, rtol=1e-6, atol=0), (
                f"The array for {key} has the right shape but not the values of params[{key!r}] "
                f"(largest difference {np.abs(a - v).max():.3g}).")

    @mark.points(1)
    def test_twelve_layers_in_numeric_order(self, learner):
        """a network of 12 layers: W10, W11, W12 come after W9, not after W1"""
        sizes = [5, 4, 6, 3, 5, 4, 6, 3, 5, 4, 6, 3, 2]
        params = mlp_params(learner, 3, sizes)
        r = learner.call(weights, WEIGHTS, params=params)
        assert_order(r, params, 12)

    @mark.points(1)
    def test_leaves_params_unchanged(self, learner):
        """does not modify the params dict or its arrays"""
        params = mlp_params(learner, 4, [6, 5, 4, 3])
        r = learner.call(weights, WEIGHTS, params=params)
        after = r["params_after"]
        changed = sorted(set(params) ^ set(after)) + [
            k for k in params if k in after and not (isinstance(after[k], np.ndarray)
                                                     and after[k].shape == params[k].shape
                                                     and np.array_equal(after[k], params[k]))]
        assert not changed, (
            f"to_keras_weights changed params ({', '.join(changed)}): a conversion "
            "should leave the network it reads alone — build a new list (a cast or transpose "
            "makes new arrays; do not store them back into params).")
