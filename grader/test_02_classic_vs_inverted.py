"""Checks for notebook 02: the two forward passes of dropout.

    dropout_forward_classic(x, p, train=True, rng=None) -> (out, cache)
        training: x * mask            eval: x * (1 - p)
    dropout_forward_inverted(x, p, train=True, rng=None) -> (out, cache)
        training: x * mask / (1 - p)  eval: x unchanged

The two exercises share most of their contract, so their checks are one class run twice
(TestClassic, TestInverted), each with its own expected scale factors and messages.  Inputs
are drawn uniformly from [1, 2] so that no element is zero: out / x then shows the mask and
the factor applied to each element exactly.  The probes run in the learner's sandbox; every
comparison happens here.  Randomized checks use fixed seeds (learner.seed) and bounds from
grader.stats whose false-failure probability for a correct implementation is stated beside them.
"""
import numpy as np
import pytest

from grader.dropout_checks import (STEP_SHAPES, STEPS_PER_ELEMENT, TIMING_HELPERS, TIMING_N, as_array,
                                   assert_vectorised, factor_name, median_ratio, plain, ratio)
from grader.stats import FAIL, hoeffding, pct


# ---------------------------------------------------------------- probes (run in the sandbox)
def forward_runs(nb, name, shape, p, seed, train=True, dtype="float64", calls=1, catch=False):
    """`calls` forward passes on one x (uniform in [1, 2]) with one seeded generator; what they
    returned, and what they did to x, to the generator, to NumPy's global generator."""
    import warnings
    f = nb.fn(name)
    x = np.random.default_rng(seed).uniform(1, 2, shape).astype(dtype)
    x0 = x.copy()
    rng = np.random.default_rng(seed + 1)
    state = rng.bit_generator.state
    np.random.seed(seed % 2**32)
    global_state = np.random.get_state()[1].copy()
    outs, raised = [], None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            for k in range(calls):  # x itself first (is it modified?), then fresh copies
                out, _cache = expect_pair(f(x if k == 0 else x0.copy(), p, train=train, rng=rng), name)
                outs.append(plain(out))
        except LearnerRaised as e:
            if not catch:
                raise
            raised = f"{e.type}: {e.exc}"[:200]
    return {"x": x0, "outs": outs, "raised": raised, "x_changed": int(np.sum(x != x0)),
            "rng_used": rng.bit_generator.state != state,
            "global_used": not np.array_equal(np.random.get_state()[1], global_state),
            "warnings": [f"{w.category.__name__}: {w.message}" for w in caught][:3]}


def generators(nb, name, shape, p, seed):
    """Outputs for two generators with the same seed, one with another seed, and rng=None."""
    f = nb.fn(name)
    x = np.random.default_rng(seed).uniform(1, 2, shape)
    outs = {}
    for key, rng in (("a", np.random.default_rng(seed)), ("b", np.random.default_rng(seed)),
                     ("other", np.random.default_rng(seed + 1)), ("none1", None), ("none2", None)):
        outs[key] = plain(expect_pair(f(x.copy(), p, train=True, rng=rng), name)[0])
    return outs


def invalid(nb, name, ps):
    f = nb.fn(name)
    x = np.ones((4, 5))
    got = []
    for p in ps:
        try:
            f(x, p, train=True, rng=np.random.default_rng(0))
            got.append("accepted")
        except LearnerRaised as e:
            got.append(e.type)
    return got


def timing(nb, name, ref_src, shape, p, seed, step_shapes, steps_per_element):
    """The learner's training forward against the reference, on float32 (see race)."""
    ref = {}
    exec(ref_src, ref)
    rng = np.random.default_rng(seed + 1)

    def prepare(shape, f):
        x = np.random.default_rng(seed).uniform(1, 2, shape).astype(np.float32)
        return lambda: f(x, p, train=True, rng=rng)
    return race(prepare, ref[name], nb.fn(name), shape, step_shapes, steps_per_element)


# ---------------------------------------------------------------- checks, shared by both schemes
class _ForwardChecks:
    name = ""

    # per scheme: the factor on kept elements while training, and on every element at eval
    def train_factor(self, p):
        raise NotImplementedError

    def eval_factor(self, p):
        raise NotImplementedError

    def train_hint(self, f, p, mean_ratio):
        raise NotImplementedError

    def eval_hint(self, f, p):
        raise NotImplementedError

    # helpers
    def call_str(self, p, train=True, dtype=""):
        mode = "" if train else ", train=False"
        return f"{self.name}({dtype}x, p={p}{mode})"

    def run(self, learner, k, **kwargs):
        return learner.call(forward_runs, (self.name,), helpers=(plain,), name=self.name,
                            seed=learner.seed(k), **kwargs)

    def outputs(self, r, shape, p, train=True, dtype=None):
        return [as_array(o, shape, self.call_str(p, train), dtype) for o in r["outs"]]

    # checks
    @pytest.mark.points(1)
    def test_returns_out_and_cache_of_any_shape(self, learner):
        """returns (out, cache) with out shaped like x, for any shape"""
        for shape in ((7,), (30, 40), (2, 3, 40, 50)):
            for train in (True, False):
                r = self.run(learner, 1, shape=shape, p=0.3, train=train)
                self.outputs(r, shape, 0.3, train, "float64")
        r = self.run(learner, 2, shape=(2, 3, 40, 50), p=0.3)
        (out,) = self.outputs(r, (2, 3, 40, 50), 0.3)
        tol = hoeffding(out.size)  # false failure < 1e-10
        dropped = (out == 0).mean()
        assert abs(dropped - 0.3) < tol, (
            f"For a 4-D x of shape (2, 3, 40, 50) at p = 0.3 your output had {pct(dropped)} zeros; "
            f"expected 30% ± {pct(tol)}. Draw one coin per element of x, whatever its shape.")

    @pytest.mark.points(1)
    def test_float32_stays_float32(self, learner):
        """keeps the dtype: float32 in, float32 out (training and eval)"""
        for train in (True, False):
            r = self.run(learner, 3, shape=(100, 200), p=0.3, train=train, dtype="float32")
            as_array(r["outs"][0], (100, 200), self.call_str(0.3, train, "float32 "), "float32")

    @pytest.mark.points(1)
    def test_drops_a_share_p(self, learner):
        """drops each element with probability p (p = 0.2 and 0.7)"""
        shape = (400, 500)
        tol = hoeffding(400 * 500)  # 2 uses: false failure < 2e-10
        seen = []
        for k, p in enumerate((0.2, 0.7)):
            r = self.run(learner, 10 + k, shape=shape, p=p)
            (out,) = self.outputs(r, shape, p)
            seen.append((p, (out == 0).mean()))
        if all(abs(z - (1 - p)) < tol for p, z in seen):
            assert False, (
                "Keep and drop are swapped: " + ", ".join(f"at p = {p} you zeroed {pct(z)}" for p, z in seen)
                + ". In this course p is the probability of DROPPING an element (as in PyTorch): "
                "keep an element with probability 1 − p.")
        for p, z in seen:
            assert abs(z - p) < tol, (
                f"At p = {p} your output had {pct(z, 2)} zeros; expected {pct(p)} ± {pct(tol, 2)} "
                "(each element is dropped with probability p). Check the threshold you compare "
                "the uniform draws with.")

    @pytest.mark.points(2)
    def test_scales_kept_elements(self, learner):
        """scales the kept elements correctly while training (p = 0.3 and 0.8)"""
        for k, p in enumerate((0.3, 0.8)):
            r = self.run(learner, 20 + k, shape=(200, 300), p=p)
            (out,) = self.outputs(r, (200, 300), p)
            x = r["x"]
            bad = ~np.isfinite(out)
            assert not bad.any(), (
                f"{self.call_str(p)} returned {int(bad.sum())} NaN or infinite values.")
            kept = out != 0
            assert kept.any(), f"{self.call_str(p)} returned all zeros; only p = 1 drops everything."
            f = median_ratio(out, x, kept)
            want = self.train_factor(p)
            mean_ratio = out.mean() / x.mean()
            if abs(f - want) > 1e-6 * want:
                assert False, self.train_hint(f, p, mean_ratio)
            assert np.allclose(out[kept], want * x[kept], rtol=1e-6, atol=0), (
                f"{self.call_str(p)}: most kept elements are x × {ratio(want, p)} as they should "
                f"be, but {int((~np.isclose(out[kept], want * x[kept], rtol=1e-6, atol=0)).sum())} "
                "are not: every kept element gets the same factor.")

    @pytest.mark.points(1)
    def test_no_mask_shared_by_the_batch(self, learner):
        """draws a coin per element: no mask shared by the rows of a batch"""
        shape, p = (2000, 50), 0.3
        r = self.run(learner, 30, shape=shape, p=p)
        (out,) = self.outputs(r, shape, p)
        dropped = out == 0
        same = (dropped == dropped[0]).all(axis=1).mean()
        # a correct layer repeats row 0's pattern with probability 0.58^50 ≈ 1.5e-12 per row
        assert same < 0.5, (
            f"{pct(same)} of the 2000 rows (examples) dropped exactly the same units as the first "
            "row: one mask is shared by the whole batch (a mask of shape (1, D) broadcast over the "
            "rows?). Every example needs its own coins: draw a mask of x's full shape.")
        cols = dropped.mean(axis=0)
        whole = ((cols == 0) | (cols == 1)).mean()
        # a column of 2000 correct coins is all-kept or all-dropped with probability < 1e-300
        assert whole < 0.5, (
            f"{pct(whole)} of the columns are dropped or kept for every example at once: one coin "
            "per column (unit) instead of one per element.")

    @pytest.mark.points(1)
    def test_every_row_drops_its_share(self, learner):
        """every row of a batch drops a share p of its elements (p = 0.3)"""
        shape, p = (200, 1000), 0.3
        r = self.run(learner, 40, shape=shape, p=p)
        (out,) = self.outputs(r, shape, p)
        rows = (out == 0).mean(axis=1)
        # union bound over the 200 rows: false failure < 1e-10 in all
        tol = hoeffding(shape[1], FAIL / shape[0])
        full, empty = np.flatnonzero(rows == 1), (rows == 0).mean()
        if len(full) and empty > 0.5:
            assert False, (
                f"Rows {', '.join(map(str, full[:4]))} of your output are entirely zero and "
                f"{pct(empty)} of the rows have no zero at all. That is what indexing with an "
                "integer 0/1 array does: out[int_mask] = 0 picks whole ROWS 0 and 1 (the values in "
                "the array are read as row numbers), not single elements. Index with a boolean "
                "mask, or multiply by the mask.")
        worst = int(np.argmax(np.abs(rows - p)))
        assert abs(rows[worst] - p) < tol, (
            f"Row {worst} of your output has {pct(rows[worst])} zeros; every row should have about "
            f"{pct(p)} (accepted {pct(p - tol)} to {pct(p + tol)}). "
            + ("Whole rows are dropped or kept: one coin per row instead of one per element."
               if ((rows == 0) | (rows == 1)).mean() > 0.5 else
               "The drop probability must be the same for every element."))

    @pytest.mark.points(2)
    def test_eval_mode(self, learner):
        """eval mode (train=False) gives the right deterministic output (p = 0.3)"""
        p = 0.3
        r = self.run(learner, 50, shape=(200, 300), p=p, train=False, calls=2)
        out, again = self.outputs(r, (200, 300), p, train=False)
        x = r["x"]
        zeros = (out == 0).mean()
        assert zeros == 0, (
            f"In eval mode (train=False) your output had {pct(zeros)} zeros: it still drops at "
            "eval. Dropout is active only while training; at test time every unit is used.")
        assert np.array_equal(out, again), (
            "Two eval-mode calls on the same x gave different outputs: eval mode must be "
            "deterministic (no random numbers).")
        f = median_ratio(out, x)
        want = self.eval_factor(p)
        if abs(f - want) > 1e-9:
            assert False, self.eval_hint(f, p)
        assert np.allclose(out, want * x, rtol=1e-12, atol=0), (
            f"In eval mode most elements are x × {ratio(want, p)} as they should be, but not all.")

    @pytest.mark.points(1)
    def test_eval_draws_no_random_numbers(self, learner):
        """eval mode leaves the generator untouched (draws no random numbers)"""
        r = self.run(learner, 60, shape=(50, 40), p=0.3, train=False)
        self.outputs(r, (50, 40), 0.3, train=False)
        assert not r["rng_used"] and not r["global_used"], (
            "The " + ("generator passed as rng" if r["rng_used"] else "global NumPy generator")
            + " was used by an eval-mode call (train=False): your function draws random numbers "
            "even when it does not drop. Each draw shifts every later random number (evaluating "
            "a model would change its next training step); draw the mask only when training.")

    @pytest.mark.points(1)
    def test_does_not_modify_x(self, learner):
        """never modifies the caller's x (training, eval, p = 1)"""
        for p, train in ((0.3, True), (0.3, False), (1.0, True)):
            r = self.run(learner, 70, shape=(100, 100), p=p, train=train, catch=True)
            changed = r["x_changed"]
            assert changed == 0, (
                f"{self.call_str(p, train)} modified the caller's x in place: {changed} of its "
                "10000 elements changed. The caller may still need x (the next layer's backward, "
                "a gradient check that perturbs and restores x): build a new array instead of "
                "writing into x (x *= …, x[...] = …, np.multiply(..., out=x)).")

    @pytest.mark.points(1)
    def test_p_zero_and_one(self, learner):
        """p = 0 keeps x; p = 1 gives zeros with no NaN, inf or warning"""
        shape = (60, 200)
        for p in (0.0, 0):
            r = self.run(learner, 80, shape=shape, p=p)
            (out,) = self.outputs(r, shape, p)
            assert np.allclose(out, r["x"], rtol=1e-12, atol=0), (
                f"At p = {p!r} (drop nothing) the training output should equal x; "
                f"{int((~np.isclose(out, r['x'], rtol=1e-12, atol=0)).sum())} of {out.size} "
                "elements differ.")
        for p in (1.0, 1):
            r = self.run(learner, 81, shape=shape, p=p, catch=True)
            if r["raised"]:
                assert False, (
                    f"At p = {p!r} your function raised {r['raised']}. With p = 1 every element is "
                    "dropped and 1 − p = 0: dividing by it fails. PyTorch returns zeros here; "
                    "handle p = 1 without dividing by zero.")
            (out,) = self.outputs(r, shape, p)
            nan, inf = int(np.isnan(out).sum()), int(np.isinf(out).sum())
            assert nan == 0 and inf == 0, (
                f"At p = {p!r} (drop everything) your output has {nan} NaN and {inf} inf among "
                f"{out.size} elements: 0 / (1 − p) = 0/0 is NaN. PyTorch returns zeros here; "
                "handle p = 1 without dividing by zero.")
            assert (out == 0).all(), (
                f"At p = {p!r} everything is dropped, but {int((out != 0).sum())} of {out.size} "
                "elements are not zero.")
            assert not r["warnings"], (
                f"At p = {p!r} the output is right but NumPy warned: {r['warnings'][0]}. That "
                "warning comes from dividing by 1 − p = 0 somewhere: handle p = 1 without "
                "dividing by zero.")

    @pytest.mark.points(1)
    def test_rejects_p_outside_0_1(self, learner):
        """raises ValueError for p outside [0, 1] (including NaN)"""
        ps = [-0.1, 1.1, 2, float("nan")]
        got = learner.call(invalid, (self.name,), name=self.name, ps=ps)
        for p, what in zip(ps, got):
            assert what != "accepted", (
                f"{self.name} accepted p = {p}. A probability must be in [0, 1]: raise ValueError "
                "otherwise, before anything else." + (
                    " NaN fails every comparison, so write the range test so that NaN lands on "
                    "the error side." if p != p else ""))
            assert what == "ValueError", (
                f"For p = {p} your function raised {what}; the contract asks for ValueError"
                + (" (assert statements vanish under python -O and raise the wrong type)."
                   if what == "AssertionError" else "."))

    @pytest.mark.points(1)
    def test_uses_the_generator_it_is_given(self, learner):
        """draws from the generator passed in: reproducible, and fresh with rng=None"""
        shape, p = (40, 50), 0.3
        o = learner.call(generators, (self.name,), helpers=(plain,), name=self.name, shape=shape,
                         p=p, seed=learner.seed(90))
        o = {k: as_array(v, shape, self.call_str(p)) for k, v in o.items()}
        assert np.array_equal(o["a"], o["b"]), (
            "Two generators made with the same seed gave different outputs: the mask should come "
            "from the generator passed as rng (not from np.random.* or a generator of your own).")
        # two correct masks of 2000 elements agree everywhere with probability 0.58^2000
        assert not np.array_equal(o["a"], o["other"]), (
            "Generators with different seeds gave the same output: is a seed fixed inside the "
            "function? Then every training step would drop the same units.")
        assert not np.array_equal(o["none1"], o["none2"]), (
            "With rng=None two calls gave the same output: make a fresh np.random.default_rng() "
            "when no generator is passed (never one with a fixed seed).")

    @pytest.mark.points(1)
    def test_vectorised(self, learner):
        """is vectorised: no Python loop over elements, not far slower than the reference"""
        times = learner.call(timing, (self.name,), timeout=30, helpers=TIMING_HELPERS,
                             name=self.name, ref_src=learner.reference(self.name), shape=TIMING_N,
                             p=0.3, seed=learner.seed(100), step_shapes=STEP_SHAPES,
                             steps_per_element=STEPS_PER_ELEMENT)
        assert_vectorised(times, f"{self.name}(x, 0.3, train=True)", "forward pass")


@pytest.mark.exercise("dropout_forward_classic")
class TestClassic(_ForwardChecks):
    name = "dropout_forward_classic"

    def train_factor(self, p):
        return 1.0

    def eval_factor(self, p):
        return 1 - p

    def train_hint(self, f, p, mean_ratio):
        name = factor_name(f, p)
        msg = (f"{self.call_str(p)}: kept elements are x × {ratio(f, p)}; classic dropout keeps "
               "them as they are (x × 1) while training. ")
        if name == "1/(1 − p)":
            return msg + ("You scale while training: dividing by 1 − p is inverted dropout. "
                          "Classic dropout moves the scaling to test time (x · (1 − p) in eval mode).")
        return msg + f"(training mean / input mean = {mean_ratio:.2f}; expected 1 − p = {1 - p:.2f}.)"

    def eval_hint(self, f, p):
        name = factor_name(f, p)
        msg = (f"In eval mode your output is x × {ratio(f, p)}; classic dropout multiplies by "
               f"1 − p = {1 - p:.2f} at test time, so that test activations match the training "
               "average E[mask · x] = (1 − p) · x. ")
        if name == "1":
            return msg + ("There is no eval scaling: the next layer, trained on activations "
                          f"shrunk to {1 - p:.2f}×, would see them {1 / (1 - p):.2f}× too large.")
        if name == "p":
            return msg + "You scaled by p (the drop probability) instead of 1 − p (the keep probability)."
        return msg


@pytest.mark.exercise("dropout_forward_inverted")
class TestInverted(_ForwardChecks):
    name = "dropout_forward_inverted"

    def train_factor(self, p):
        return 1 / (1 - p)

    def eval_factor(self, p):
        return 1.0

    def train_hint(self, f, p, mean_ratio):
        name = factor_name(f, p)
        msg = (f"{self.call_str(p)}: kept elements are x × {ratio(f, p)}; inverted dropout divides "
               f"them by 1 − p (x × {1 / (1 - p):.3f}) so that the average is unchanged. "
               f"Training mean / input mean = {mean_ratio:.2f}")
        if name == "1":
            return msg + (f" ≈ 1 − p: you forgot to divide by 1 − p while training.")
        if name == "1/p":
            return msg + ": you divide by p instead of 1 − p (p is the drop probability)."
        if name == "1 − p":
            return msg + ": you multiply by 1 − p where inverted dropout divides by it."
        return msg + "; expected 1.00."

    def eval_hint(self, f, p):
        name = factor_name(f, p)
        msg = (f"In eval mode your output is x × {ratio(f, p)}; inverted dropout returns x "
               "unchanged at test time")
        if name in ("1 − p", "1/(1 − p)"):
            return msg + (": you also scale at eval. The division by 1 − p during training "
                          "already keeps the average right; scaling again at test time shifts "
                          f"every activation the next layer sees by {ratio(f, p)}.")
        return msg + "."
