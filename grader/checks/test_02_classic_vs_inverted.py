"""Checks for notebook 02: the two forward passes of dropout.

    dropout_forward_classic(x, p, train=True, rng=None) -> (out, cache)
        training: x * mask            eval: x * (1 - p)
    dropout_forward_inverted(x, p, train=True, rng=None) -> (out, cache)
        training: x * mask / (1 - p)  eval: x unchanged

The two exercises share most of their contract, so their checks are one class run twice
(TestClassic, TestInverted), each with its own scale factors and messages.

The grader builds every input here and sends it; the probes (run in the learner's sandbox)
only call the learner's function and send back what it returned, what it raised, x after the
call and the states of the random generators: every comparison happens here.  Inputs are
uniform in [1, 2] with about 10% exact zeros (a layer after a ReLU sees many), so out / x shows
each element's factor exactly and "kept" is read off the output: out != 0 where x != 0.

Each check tests the behaviour its name states and reads only what that behaviour needs, so
one mistake costs only the checks it really breaks: the shape check looks at shapes, the
independence checks compare the mask with its own kept share, the scaling check takes the mask
from the output.  Randomized checks use fixed seeds (learner.seed) and bounds from grader.stats
whose false-failure probability for a correct implementation is stated beside them.
"""
import weakref

import numpy as np

from grader.checks import mark
from grader.checks.dropout_checks import (
    TIMING_N,
    as_array,
    assert_independent_coins,
    assert_same_rule_as_small,
    assert_vectorised,
    at_sample,
    distinct,
    factor_name,
    factor_rule,
    learner_cpu,
    median_ratio,
    plain,
    raised_message,
    ratio,
    reference_cpu,
    sampled,
    timing_sample,
    undefined_name,
    valid_p_rejected,
)
from grader.checks.stats import FAIL, hoeffding, pct
from grader.sandbox.host import LearnerError

TIMING_CALLS = 5    # forward passes per timed run (about 15 ms of the reference's CPU time)


# ---------------------------------------------------------------- probes (run in the sandbox)
def forward_calls(nb, name, x, p, train=True, seed=0, calls=1, strict=False, flags=False):
    """`calls` forward passes with one generator made from `seed` (the first on x itself, the
    others on fresh copies of it), after seeding NumPy's global generator with `seed`.  Sends
    back the outputs (or the exception raised), x after the calls and both generators' states.
    strict: NumPy's floating-point warnings (divide, invalid, overflow) raise FloatingPointError
    in the calls instead.  flags: the third and later calls get `train` as 0 and as np.bool_
    (np.False_ for train=False), the way other code may pass a flag."""
    f = nb.fn(name)
    x = np.array(x)
    fresh = x.copy()
    rng = np.random.default_rng(seed)
    np.random.seed(seed)
    outs, raised = [], None
    try:
        for k in range(calls):
            arg = x if k == 0 else fresh.copy()
            flag = train if not flags or k < 2 else (int(train) if k == 2 else np.bool_(train))
            if strict:
                with np.errstate(divide="raise", invalid="raise", over="raise"):
                    value = f(arg, p, train=flag, rng=rng)
            else:
                value = f(arg, p, train=flag, rng=rng)
            outs.append(plain(nb.pair(value, name)[0]))
    except nb.Raised as e:
        raised = [e.type, str(e) + getattr(e, "where", "")]
    return {"outs": outs, "raised": raised, "x_after": x,
            "rng_state": rng.bit_generator.state, "global_state": np.random.get_state()}


def forward_each(nb, name, cases, seed):
    """One forward pass per (x, p, train) case, each with a generator made from `seed`: its
    output, or what it raised."""
    f, got = nb.fn(name), []
    for x, p, train in cases:
        try:
            got.append(plain(nb.pair(f(np.array(x), p, train=train, rng=np.random.default_rng(seed)), name)[0]))
        except nb.Raised as e:
            got.append({"raised": [e.type, str(e) + getattr(e, "where", "")]})
    return got


def generators(nb, name, x, p, seed):
    """Training outputs for two generators with the same seed, one with another seed, and
    twice rng=None (after seeding NumPy's global generator with `seed`: its state after them
    is sent back too)."""
    f = nb.fn(name)
    outs = {}
    for key, rng in (("a", np.random.default_rng(seed)), ("b", np.random.default_rng(seed)),
                     ("other", np.random.default_rng(seed + 1)), ("none1", None), ("none2", None)):
        if key == "none1":
            np.random.seed(seed)
        outs[key] = plain(nb.pair(f(np.array(x), p, train=True, rng=rng), name)[0])
    return outs, np.random.get_state()


def invalid(nb, name, x, cases):
    """For each (p, train): None if the call returned, else the type of what it raised."""
    f = nb.fn(name)
    got = []
    for p, train in cases:
        try:
            f(np.array(x), p, train=train, rng=np.random.default_rng(0))
            got.append(None)
        except nb.Raised as e:
            got.append(e.type)
    return got


def timing(nb, name, shape, p, seed, calls, sample):
    """`calls` training passes on one float32 x (timed from outside by learner.timed); the last
    output at the grader's sample of elements (sampled)."""
    f = nb.fn(name)
    x = np.random.default_rng(seed).uniform(1, 2, shape).astype(np.float32)
    last_x = x.copy()   # the last call gets x as built, even if an earlier call changed x in place
    rng = np.random.default_rng(seed + 1)
    res = None
    for k in range(calls):
        res = f(last_x if k == calls - 1 else x, p, train=True, rng=rng)
    return sampled(res[0] if isinstance(res, tuple) and len(res) == 2 else res, shape, sample)   # the last output


def small_forward(nb, name, shape, p, seed):
    """One training pass on a small float32 x (the rule the timing output must follow)."""
    x = np.random.default_rng(seed).uniform(1, 2, shape).astype(np.float32)
    try:
        res = nb.fn(name)(x, p, train=True, rng=np.random.default_rng(seed + 1))
    except nb.Raised as e:
        return {"raised": e.type}
    return plain(res[0] if isinstance(res, tuple) and len(res) == 2 else res)


# ---------------------------------------------------------------- grader side: inputs and diagnoses
def make_x(learner, k, shape, dtype="float64", zeros=0.1):
    """x for a check: uniform in [1, 2], with about `zeros` of its elements exactly 0."""
    g = learner.rng(k)
    x = g.uniform(1, 2, shape)
    x[g.random(shape) < zeros] = 0
    return x.astype(dtype)


def timing_x(seed):
    return np.random.default_rng(seed).uniform(1, 2, TIMING_N).astype(np.float32)


def returned_mask(out, x):
    """Does out look like a mask instead of x times one: at most two distinct nonzero values
    where x takes many?"""
    nz = out != 0
    if nz.sum() < 20 or out.shape != x.shape:
        return False
    return len(np.unique(out[nz])) <= 2 and len(np.unique(x[nz])) > 10


def mask_message(call, out, x):
    values = ", ".join(f"{v:g}" for v in np.unique(out[out != 0])[:2])
    where0 = int(((out != 0) & (x == 0)).sum())
    return (f"{call} returned the mask, not x times the mask: its nonzero values are all {values} "
            f"whatever x is" + (f", and {where0} of them sit where x is 0" if where0 else "")
            + ". The output of dropout is x with each element multiplied by its mask value: "
            "multiply x by the mask (and keep the mask in the cache).")


def integer_indexing(out, x):
    """A message if whole rows 0 and/or 1 (along axis 0) are dropped and nothing else: what
    out[m] = 0 does when m is an integer 0/1 array (its values are read as row numbers)."""
    if out.ndim < 1 or len(out) < 4 or out.shape != x.shape:
        return ""
    live = (x != 0).reshape(len(out), -1)
    dropped = (out == 0).reshape(len(out), -1) & live
    whole = live.any(axis=1) & (dropped == live).all(axis=1)   # every element that can show it dropped
    if not whole[:2].any() or dropped[2:].any():
        return ""
    rows = " and ".join(str(i) for i in np.flatnonzero(whole))
    both = whole[:2].all()
    what = ("Element" if out.ndim == 1 else "Row") + ("s" if both else "")
    return (f"{what} {rows} of your output {'are' if both else 'is'} "
            f"{'zero' if out.ndim == 1 else 'entirely zero'} and no other element is dropped. That "
            "is what indexing with an integer 0/1 array does: out[int_mask] = 0 reads the 0s and "
            "1s as ROW NUMBERS (index positions along the first axis) and zeroes whole rows 0 and "
            "1, not single elements. Index with a boolean mask, or multiply by the mask.")


def precision(out, rtol):
    """rtol, or what the output's own dtype can hold if that is coarser: an output in the wrong
    dtype is the dtype check's business, not every value check's."""
    return max(rtol, 4 * float(np.finfo(out.dtype).eps)) if out.dtype.kind == "f" else rtol


def rounded_factor(f, want, p=None):
    """A hint when a factor is right to 0.1 % but not to 1e-6 (it was rounded on the way), or is
    1/(1 − p) for p rounded to one or two decimals."""
    for d in (1, 2):
        if p is not None and round(p, d) != p and 0 < 1 - round(p, d) and \
                abs(f * (1 - round(p, d)) - 1) < 1e-6:
            return (f" {distinct(f, want)[0]} is 1/(1 − {round(p, d)}): p was rounded to {d} "
                    f"decimal{'s' if d > 1 else ''}. Use p exactly as it was given.")
    if f == want or abs(f / want - 1) > 1e-3:
        return ""
    return (f" Your factor is {distinct(f, want)[0]} where {distinct(want, f)[0]} is expected: right to "
            f"{abs(f / want - 1):.0e} only, so it was rounded on the way (stored as float16? rounded "
            "to a few decimals?). Compute it in full precision, in x's dtype or float64.")


def swapped(share, p, tol):
    """Is a measured drop share 1 − p rather than p?"""
    return abs(share - (1 - p)) < tol <= abs(share - p)


SWAPPED = ("In this course p is the probability of DROPPING an element (as in PyTorch): keep an "
           "element with probability 1 − p.")


# ---------------------------------------------------------------- checks, shared by both schemes
# Every run of forward_calls the checks below make, as (k, shape, p, options): they go to the
# learner's process in one call per scheme (learner.call_each) and each check looks its runs up.  A
# run missing here, or a batch that failed as a whole (a time-out, a crash, memory), is a call
# of its own: the table only saves calls, never changes a verdict (tests/test_batches.py says
# when it misses a run).  The batch names no learner function: its failure marks none as hung.
RUNS = (
    *((1 + k, shape, 0.3, {"train": train})
      for k, shape in enumerate(((7,), (30, 40), (2, 3, 40, 50))) for train in (True, False)),
    *((10 + k, (200_000,), p, {}) for k, p in enumerate((0.2, 0.7))),
    *((20 + k, (200, 300), p, {}) for k, p in enumerate((0.3, 0.875))),
    (30, (2000, 50), 0.3, {"zeros": 0}), (31, (2, 3, 40, 50), 0.3, {"zeros": 0}),
    (40, (200, 1000), 0.3, {"zeros": 0}),
    *((50 + k, (200, 300), p, {"train": False, "calls": 4, "flags": True}) for k, p in enumerate((0.3, 1.0))),
    (60, (50, 40), 0.3, {"train": False}),
    *((70, (100, 100), p, {"train": train}) for p, train in ((0.3, True), (0.3, False), (1.0, True), (0.0, True))),
    *((80 + k, (60, 200), p, {"strict": True}) for k, p in enumerate((0.0, 0, 1.0, 1))),
)
_BATCHES = weakref.WeakKeyDictionary()   # learner handle -> {scheme: {run: (x, its result)}}


def run_key(k, shape, p, train=True, dtype="float64", zeros=0.1, **kwargs):
    return (k, tuple(shape), repr(p), train, dtype, zeros, tuple(sorted(kwargs.items())))


def run_inputs(learner, name, k, shape, p, train=True, dtype="float64", zeros=0.1, **kwargs):
    """(x, forward_calls's arguments) of one run."""
    x = make_x(learner, k, shape, dtype, zeros)
    return x, dict(name=name, x=x, p=p, train=train, seed=learner.seed(1000 + k), **kwargs)


class _ForwardChecks:
    name = ""

    # per scheme: the factor on kept elements while training, and on every element at eval
    def train_factor(self, p, keep_share, tol):
        raise NotImplementedError

    def eval_factor(self, p):
        raise NotImplementedError

    def train_hint(self, f, p, mean_ratio, want):
        raise NotImplementedError

    def eval_hint(self, f, p):
        raise NotImplementedError

    # helpers
    def call_str(self, p, train=True, x="x"):
        return f"{self.name}({x}, p={p!r}{'' if train else ', train=False'})"

    def batch(self, learner):
        """{run key: (x, forward_calls's result or the LearnerError of its call)} of every run
        in RUNS, from one call (learner.call_each); {} when that call failed as a whole."""
        per = _BATCHES.setdefault(learner, {})
        if self.name not in per:
            runs = [(run_key(k, shape, p, **o), run_inputs(learner, self.name, k, shape, p, **o))
                    for k, shape, p, o in RUNS]
            rs = learner.call_each(forward_calls, [args for _, (_, args) in runs], helpers=(plain,))
            ok = rs is not None and all(isinstance(r, (dict, LearnerError)) for r in rs)
            per[self.name] = {key: (x, r) for (key, (x, _)), r in zip(runs, rs)} if ok else {}
        return per[self.name]

    def run(self, learner, k, shape, p, train=True, dtype="float64", zeros=0.1, **kwargs):
        done = self.batch(learner).get(run_key(k, shape, p, train, dtype, zeros, **kwargs))
        if done is None:
            x, args = run_inputs(learner, self.name, k, shape, p, train, dtype, zeros, **kwargs)
            r = learner.call(forward_calls, (self.name,), helpers=(plain,), **args)
        else:
            x, r = done
            if isinstance(r, LearnerError):   # what the learner's function did in this run
                raise r
            r = dict(r)
        r["x"], r["seed"], r["stem"] = x, learner.seed(1000 + k), learner.stem
        return r

    def outputs(self, r, p, train=True, dtype=None, x="x"):
        """The outputs of a run, each a numeric array of x's shape; fail if the call raised."""
        call = self.call_str(p, train, x)
        if r["raised"]:
            assert False, raised_message(call, r["raised"], r["stem"], valid_p_rejected(r["raised"], p))
        return [as_array(o, r["x"].shape, call, dtype) for o in r["outs"]]

    # checks
    @mark.points(1)
    def test_returns_out_and_cache_of_any_shape(self, learner):
        """returns (out, cache) with out shaped like x, for any shape (training and eval)"""
        for k, shape in enumerate(((7,), (30, 40), (2, 3, 40, 50))):
            for train in (True, False):
                r = self.run(learner, 1 + k, shape=shape, p=0.3, train=train)
                if r["raised"]:
                    assert False, raised_message(
                        self.call_str(0.3, train, f'x of shape {shape}'), r["raised"], learner.stem,
                        "x may have any number of dimensions: draw the mask with x's full shape "
                        "(x.shape) and work on whole arrays, with no assumption about rows and "
                        "columns.")
                self.outputs(r, 0.3, train, x=f"x of shape {shape}")

    @mark.points(1)
    def test_float32_stays_float32(self, learner):
        """keeps the dtype: float32 or float64 in, the same out (training, eval, and at p = 0 and 1)"""
        cases = [(make_x(learner, 4, (100, 200), dtype), p, train)
                 for dtype in ("float32", "float64") for p, train in ((0.3, True), (0.3, False))]
        cases += [(cases[0][0], p, True) for p in (0.0, 1.0)]    # float32 x: the shortcuts' dtype
        got = learner.call(forward_each, (self.name,), helpers=(plain,), name=self.name, cases=cases,
                           seed=learner.seed(1004))
        for (x, p, train), out in zip(cases, got):
            call = self.call_str(p, train, f"{x.dtype} x")
            if isinstance(out, dict) and "raised" in out:
                if p in (0, 1):
                    continue        # what p = 0 or 1 raises is the p = 0 / p = 1 check's business
                assert False, raised_message(call, out["raised"], learner.stem)
            if isinstance(out, np.ndarray) and out.dtype != x.dtype and returned_mask(out, x):
                assert False, mask_message(call, out, x)
            as_array(out, x.shape, call, x.dtype)

    @mark.points(1)
    def test_drops_a_share_p(self, learner):
        """drops each element with probability p (p = 0.2 and 0.7)"""
        seen = []
        for k, p in enumerate((0.2, 0.7)):
            # a 1-D x: a mask shared by the rows of a batch, or one coin per row, is one coin per
            # element here (their own check reports them); a 2-D x for code that needs one
            r = self.run(learner, 10 + k, shape=(200_000,), p=p)
            if r["raised"]:
                r = self.run(learner, 10 + k, shape=(400, 500), p=p)
            (out,) = self.outputs(r, p)
            x = r["x"]
            bad = integer_indexing(out, x)
            assert not bad, f"{self.call_str(p)}: {bad}"
            live = x != 0
            # 2 uses: false failure < 2e-10
            seen.append((p, ((out == 0) & live).sum() / live.sum(), hoeffding(int(live.sum()))))
        if all(swapped(z, p, tol) for p, z, tol in seen):
            assert False, (
                "Keep and drop are swapped: " + ", ".join(f"at p = {p} you dropped {pct(z)}" for p, z, _ in seen)
                + ". " + SWAPPED)
        for p, z, tol in seen:
            assert abs(z - p) < tol, (
                f"At p = {p} your training output dropped {pct(z, 2)} of the elements (zeros where "
                f"x is not 0); expected {pct(p)} ± {pct(tol, 2)}: each element is dropped with "
                "probability p. Check the threshold you compare the uniform draws with.")

    @mark.points(2)
    def test_scales_kept_elements(self, learner):
        """scales the kept elements correctly while training (p = 0.3 and 0.875)"""
        # 0.875 has three decimals: a p or a factor rounded to two decimals is off here
        for k, p in enumerate((0.3, 0.875)):
            r = self.run(learner, 20 + k, shape=(200, 300), p=p)
            (out,) = self.outputs(r, p)
            x, call = r["x"], self.call_str(p)
            bad = ~np.isfinite(out)
            assert not bad.any(), f"{call} returned {int(bad.sum())} NaN or infinite values."
            if returned_mask(out, x):
                assert False, mask_message(call, out, x)
            wrong = int(((out != 0) & (x == 0)).sum())
            assert wrong == 0, (
                f"{call} is not 0 at {wrong} elements where x is 0: dropout multiplies each element "
                "of x by a factor (0 when dropped), so 0 stays 0.")
            live = x != 0
            kept = (out != 0) & live
            assert kept.any(), f"{call} returned all zeros; only p = 1 drops everything."
            share, tol = kept.sum() / live.sum(), hoeffding(int(live.sum()))  # 2 uses: < 2e-10
            f = median_ratio(out, x, kept)
            want = self.train_factor(p, share, tol)
            if abs(f - want) > 1e-6 * want:
                hint = self.train_hint(f, p, out.mean() / x.mean(), want)
                assert False, hint + rounded_factor(f, want, p if self.name.endswith("inverted") else None)
            off = int((~np.isclose(out[kept], want * x[kept], rtol=1e-6, atol=0)).sum())
            assert off == 0, (
                f"{call}: most kept elements are x × {ratio(want, p)} as they should be, but {off} "
                "are not: every kept element gets the same factor.")

    @mark.points(1)
    def test_no_mask_shared_by_the_batch(self, learner):
        """draws one coin per element, for 2-D and 4-D x: no mask shared by a batch, no coin per row or column"""
        p = 0.3
        r = self.run(learner, 30, shape=(2000, 50), p=p, zeros=0)
        (out,) = self.outputs(r, p)
        bad = integer_indexing(out, r["x"])
        assert not bad, f"{self.call_str(p)}: {bad}"
        kept = out != 0
        whole = (kept.all(axis=1) | ~kept.any(axis=1)).mean()
        # a row of 50 independent coins is all kept or all dropped with probability 0.7^50 + 0.3^50 ≈ 1.8e-8
        assert whole < 0.1, (
            f"{pct(whole)} of the 2000 rows of your training output are kept or dropped as a whole: "
            "one coin per row (a mask of shape (rows, 1)?) instead of one per element. Draw a mask "
            "of x's full shape.")
        # designed for (2000, 50) at p = 0.3; 3 bounds inside: false failure < 3e-10, for any kept share
        assert_independent_coins(kept, "pattern of kept elements")
        cols = kept.mean(axis=0)
        whole = ((cols == 0) | (cols == 1)).mean()
        # a column of 2000 independent coins is all kept or all dropped with probability < 1e-300
        assert whole < 0.5, (
            f"{pct(whole)} of the columns are kept or dropped for every example at once: one coin per "
            "column (unit) instead of one per element.")
        shape = (2, 3, 40, 50)
        r = self.run(learner, 31, shape=shape, p=p, zeros=0)
        (out,) = self.outputs(r, p, x="a 4-D x")
        kept = out != 0
        for axis, n in enumerate(shape):
            # two slices of >= 6000 independent coins agree everywhere with probability < 0.6^6000
            same = (kept == kept.take([0], axis=axis)).all()
            assert not same, (
                f"For a 4-D x of shape {shape} (p = {p}) the pattern of kept elements is the same "
                f"for all {n} positions along axis {axis}: a mask of a smaller shape broadcast over "
                "x. Draw one coin per element of x, whatever its shape: a mask of shape x.shape.")

    @mark.points(1)
    def test_every_row_drops_its_share(self, learner):
        """every row of a batch drops the same share of its elements (p = 0.3)"""
        shape, p = (200, 1000), 0.3
        r = self.run(learner, 40, shape=shape, p=p, zeros=0)
        (out,) = self.outputs(r, p)
        bad = integer_indexing(out, r["x"])
        assert not bad, f"{self.call_str(p)}: {bad}"
        rows = (out == 0).mean(axis=1)
        overall = rows.mean()
        # rows against the share of the whole output, so that this is about rows alone: a union
        # bound over the 200 rows (< 1e-10) plus the overall share (< 1e-10)
        tol = hoeffding(shape[1], FAIL / shape[0]) + hoeffding(out.size)
        worst = int(np.argmax(np.abs(rows - overall)))
        if abs(rows[worst] - overall) >= tol:
            whole = ((rows == 0) | (rows == 1)).mean()
            assert False, (
                f"Row {worst} of your training output has {pct(rows[worst])} zeros, while the whole "
                f"output has {pct(overall)}: every row (example) should drop about the same share "
                f"(accepted: ± {pct(tol)}). "
                + (f"{pct(whole)} of the rows are dropped or kept as a whole: one coin per row (a "
                   "mask of shape (rows, 1)?) instead of one per element."
                   if whole > 0.5 else "The drop probability must be the same for every element."))

    @mark.points(2)
    def test_eval_mode(self, learner):
        """eval mode (train=False, also given as 0 or np.False_) gives the right deterministic output (p = 0.3 and 1)"""
        for k, p in enumerate((0.3, 1.0)):
            r = self.run(learner, 50 + k, shape=(200, 300), p=p, train=False, calls=4, flags=True)
            out, again, as_int, as_numpy = self.outputs(r, p, train=False)
            x, call = r["x"], self.call_str(p, False)
            bad = ~np.isfinite(out)
            assert not bad.any(), f"{call} returned {int(bad.sum())} NaN or infinite values."
            want = self.eval_factor(p)
            live = x != 0
            zeros = ((out == 0) & live).sum() / live.sum()
            if want and p == 1 and (out[live] == 0).all():
                assert False, self.eval_hint(0.0, p)
            if want:
                assert zeros == 0, (
                    f"In eval mode (train=False, p = {p}) your output had {pct(zeros)} zeros where x "
                    "is not 0: it still drops at eval. Dropout is active only while training; at "
                    "test time every unit is used.")
            assert np.array_equal(out, again), (
                f"Two calls of {call} on the same x gave different outputs: eval mode must be "
                "deterministic (no random numbers).")
            f = median_ratio(out, x)
            tol = precision(out, 1e-9)
            if abs(f - want) > tol:
                assert False, self.eval_hint(f, p) + rounded_factor(f, want)
            off = int((~np.isclose(out, want * x, rtol=precision(out, 1e-12), atol=0)).sum())
            assert off == 0, (
                f"In eval mode most elements are x × {ratio(want, p)} as they should be, but {off} "
                "are not: every element gets the same factor.")
            for flag, got in (("0", as_int), ("np.False_", as_numpy)):
                differ = int((got != out).sum())
                assert differ == 0, (
                    f"{self.name}(x, p={p!r}, train={flag}) differs from train=False at {differ} of "
                    f"{out.size} elements ({pct(((got == 0) & live).sum() / live.sum())} zeros where x "
                    f"is not 0, against {pct(zeros)}): a flag given as {flag} was not taken for eval "
                    "mode. Code that calls a layer may pass any false value — 0, or np.False_, what "
                    "NumPy comparisons return — so test whether the flag is true or false, not "
                    "whether it is the object False itself.")

    @mark.points(1)
    def test_eval_draws_no_random_numbers(self, learner):
        """eval mode leaves the generator untouched (draws no random numbers)"""
        r = self.run(learner, 60, shape=(50, 40), p=0.3, train=False)
        rng_used = r["rng_state"] != np.random.default_rng(r["seed"]).bit_generator.state
        before = np.random.RandomState(r["seed"]).get_state()
        after = r["global_state"]
        global_used = not (after[0] == before[0] and np.array_equal(after[1], before[1])
                           and after[2] == before[2])
        assert not rng_used and not global_used, (
            "The " + ("generator passed as rng" if rng_used else "global NumPy generator")
            + " was used by an eval-mode call (train=False): your function draws random numbers "
            "even when it does not drop. Each draw shifts every later random number (evaluating "
            "a model would change its next training step); draw the mask only when training.")

    @mark.points(1)
    def test_does_not_modify_x(self, learner):
        """never modifies the caller's x (training, eval, p = 0 and p = 1)"""
        for p, train in ((0.3, True), (0.3, False), (1.0, True), (0.0, True)):
            r = self.run(learner, 70, shape=(100, 100), p=p, train=train)
            x, after = r["x"], r["x_after"]
            changed = x.size if after.shape != x.shape else int((after != x).sum())
            assert changed == 0, (
                f"{self.call_str(p, train)} modified the caller's x in place: {changed} of its "
                f"{x.size} elements changed. The caller may still need x (the next layer's "
                "backward, a gradient check that perturbs and restores x): build a new array "
                "instead of writing into x (x *= …, x[...] = …, np.multiply(..., out=x)).")

    @mark.points(1)
    def test_p_zero_and_one(self, learner):
        """while training, p = 0 keeps x; p = 1 gives zeros with no NaN, inf or warning"""
        for k, p in enumerate((0.0, 0, 1.0, 1)):
            r = self.run(learner, 80 + k, shape=(60, 200), p=p, strict=True)
            x, call = r["x"], self.call_str(p)
            if r["raised"]:
                kind, msg = r["raised"]
                rejected = valid_p_rejected(r["raised"], p)
                assert not (rejected or undefined_name(msg, learner.stem)), \
                    raised_message(call, r["raised"], learner.stem, rejected)
                why = {"FloatingPointError": (
                    " — a NumPy division by zero or 0/0 (NumPy only warns by default; the grader "
                    "turns such warnings into errors)"), "ZeroDivisionError": " — a division by zero"}
                assert False, (
                    f"{call} raised {msg}{why.get(kind, '')}. "
                    + ("With p = 1 every element is dropped and 1 − p = 0: dividing by it fails. "
                       "PyTorch returns zeros here; handle p = 1 without dividing by zero."
                       if p == 1 else "With p = 0 nothing is dropped and the output is x itself; "
                       "the only thing that is 0 here is p. Is something divided by p? p is the "
                       "DROP probability: kept elements are divided by 1 − p."))
            (out,) = self.outputs(r, p)
            nan, inf = int(np.isnan(out).sum()), int(np.isinf(out).sum())
            assert nan == 0 and inf == 0, (
                f"{call} (drop {'everything' if p == 1 else 'nothing'}) returned {nan} NaN and {inf} "
                f"inf among {out.size} elements"
                + (": 0 / (1 − p) = 0/0 is NaN. PyTorch returns zeros here; handle p = 1 without "
                   "dividing by zero." if p == 1 else ": at p = 0 the output is x itself."))
            if returned_mask(out, x):
                assert False, mask_message(call, out, x)
            live = x != 0
            if p == 0:
                off = int((~np.isclose(out, x, rtol=precision(out, 1e-12), atol=0)).sum())
                bad = integer_indexing(out, x)
                assert off == 0, (
                    f"{call} (drop nothing) should return x; {off} of {out.size} elements differ. "
                    + (bad if bad else
                       f"All of them are 0: you dropped everything at p = 0. {SWAPPED}"
                       if (out[live] == 0).all() else ""))
            else:
                left = int((out != 0).sum())
                assert left == 0, (
                    f"{call} drops everything, but {left} of {out.size} elements are not zero"
                    + (f": your output is x itself, nothing was dropped. {SWAPPED}"
                       if np.array_equal(out != 0, live) else "."))

    @mark.points(1)
    def test_rejects_p_outside_0_1(self, learner):
        """raises ValueError for p outside [0, 1] (including NaN), in training and in eval mode"""
        cases = [(p, train) for train in (True, False)
                 for p in (-0.1, 1.1, 2, float("inf"), 1.001, -0.001, float("nan"))]
        got = learner.call(invalid, (self.name,), name=self.name, x=np.ones((4, 5)), cases=cases)
        for (p, train), what in zip(cases, got):
            call = self.call_str(p, train)
            assert what is not None, (
                f"{call} returned without error. A probability must be in [0, 1]: raise ValueError "
                "otherwise, before anything else"
                + (" — also in eval mode, which uses p too (1 − p for classic dropout) and is where a "
                   "wrong p would go unnoticed" if not train else "") + "."
                + (" NaN fails every comparison, so write the range test so that NaN lands on the "
                   "error side." if p != p else "")
                + (" Is p rounded before the range test? Test p exactly as it was given."
                   if p in (1.001, -0.001) else ""))
            assert what == "ValueError", (
                f"{call} raised {what}; the contract asks for ValueError"
                + (" (assert statements vanish under python -O and raise the wrong type)."
                   if what == "AssertionError" else "."))

    @mark.points(1)
    def test_uses_the_generator_it_is_given(self, learner):
        """draws from the generator passed in: reproducible, and fresh with rng=None (never from NumPy's global one)"""
        shape, p = (40, 50), 0.3
        x = make_x(learner, 90, shape, zeros=0)
        o, global_state = learner.call(generators, (self.name,), helpers=(plain,), name=self.name, x=x,
                                       p=p, seed=learner.seed(90))
        o = {k: as_array(v, shape, self.call_str(p)) for k, v in o.items()}
        bad = integer_indexing(o["a"], x)
        assert not bad, f"Your training output does not depend on the random draws at all. {bad}"
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
        before = np.random.RandomState(learner.seed(90)).get_state()
        assert global_state[0] == before[0] and np.array_equal(global_state[1], before[1]) \
            and tuple(global_state[2:]) == tuple(before[2:]), (
            "With rng=None your function draws from (or re-seeds) NumPy's global generator (the "
            "np.random module, np.random.rand, np.random.seed, …): its state changed during the "
            "calls. That is hidden state any other code can reset or advance; when no generator is "
            "passed, make a fresh one of your own, seeded by the operating system.")

    @mark.points(1)
    def test_vectorised(self, learner):
        """is vectorised: not far slower than the reference (no Python loop over elements)"""
        seed, p = learner.seed(100), 0.3
        reference, x = learner.solution(self.name), timing_x(seed)
        rng = np.random.default_rng(seed + 1)
        ref = reference_cpu(lambda: reference(x, p, train=True, rng=rng))
        sample = timing_sample(learner, 101)
        own = learner_cpu(learner, timing, (self.name,), TIMING_CALLS, ref, helpers=(plain, sampled),
                          name=self.name, shape=TIMING_N, p=p, seed=seed, sample=sample)
        assert_vectorised(own, ref, TIMING_CALLS, f"{self.name}(x, 0.3, train=True)", "forward pass")
        small_shape = (100, 200)
        x_small = np.random.default_rng(seed).uniform(1, 2, small_shape).astype(np.float32)
        small = learner.call(small_forward, (self.name,), helpers=(plain,), name=self.name, shape=small_shape,
                             p=p, seed=seed)
        assert_same_rule_as_small(factor_rule(x_small, small),
                                  factor_rule(*at_sample(x, learner_cpu.last_value, sample)), "forward pass")


@mark.exercise("dropout_forward_classic")
class TestClassic(_ForwardChecks):
    name = "dropout_forward_classic"

    def train_factor(self, p, keep_share, tol):
        return 1.0

    def eval_factor(self, p):
        return 1 - p

    def train_hint(self, f, p, mean_ratio, want):
        name = factor_name(f, p)
        msg = (f"{self.call_str(p)}: kept elements are x × {ratio(f, p, want)}; classic dropout keeps "
               "them as they are (x × 1) while training. ")
        if name == "1/(1 − p)":
            return msg + ("You scale while training: dividing by 1 − p is inverted dropout. "
                          "Classic dropout moves the scaling to test time (x · (1 − p) in eval mode).")
        return msg + f"(training mean / input mean = {mean_ratio:.2f}; expected 1 − p = {1 - p:.2f}.)"

    def eval_hint(self, f, p):
        name = factor_name(f, p)
        msg = (f"In eval mode (p = {p}) your output is x × {ratio(f, p, 1 - p)}; classic dropout multiplies "
               f"by 1 − p = {distinct(1 - p, f)[0]} at test time, so that test activations match the training "
               "average E[mask · x] = (1 − p) · x. ")
        if name == "1":
            return msg + ("There is no eval scaling: the next layer, trained on activations "
                          "shrunk by the mask, would see them too large"
                          + (f" ({1 / (1 - p):.2f}×)." if p < 1 else "."))
        if name == "p":
            return msg + "You scaled by p (the drop probability) instead of 1 − p (the keep probability)."
        return msg


@mark.exercise("dropout_forward_inverted")
class TestInverted(_ForwardChecks):
    name = "dropout_forward_inverted"

    def train_factor(self, p, keep_share, tol):
        # 1/(1 − p); but a mask that keeps a share p (keep and drop swapped, which the drop-share
        # check reports) scaled consistently by 1/p is right for the mask it drew
        return 1 / p if swapped(1 - keep_share, p, tol) else 1 / (1 - p)

    def eval_factor(self, p):
        return 1.0

    def train_hint(self, f, p, mean_ratio, want):
        name = factor_name(f, p)
        msg = (f"{self.call_str(p)}: kept elements are x × {ratio(f, p, want)}; inverted dropout divides "
               f"them by 1 − p (x × {distinct(want, f)[0]}) so that the average is unchanged. "
               f"Training mean / input mean = {mean_ratio:.2f}")
        if name == "1":
            return msg + " ≈ 1 − p: you forgot to divide by 1 − p while training."
        if name == "1/p":
            return msg + ": you divide by p instead of 1 − p (p is the drop probability)."
        if name == "1 − p":
            return msg + ": you multiply by 1 − p where inverted dropout divides by it."
        return msg + "; expected 1.00."

    def eval_hint(self, f, p):
        name = factor_name(f, p)
        msg = (f"In eval mode (p = {p}) your output is x × {ratio(f, p, 1.0)}; inverted dropout returns x "
               "unchanged at test time, whatever p")
        if name in ("1 − p", "1/(1 − p)") and p < 1:
            return msg + (": you also scale at eval. The division by 1 − p during training "
                          "already keeps the average right; scaling again at test time shifts "
                          f"every activation the next layer sees by {ratio(f, p)}.")
        if p == 1:
            return msg + (" — also at p = 1 (is a shortcut for p = 1 placed before the test for "
                          "train?).")
        return msg + "."
