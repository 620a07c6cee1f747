"""Checks for notebook 01: bernoulli_mask(shape, p, rng=None) -> boolean mask, True = kept.

The probes below run in the learner's sandboxed process.  They only build inputs, call
bernoulli_mask and send back what it returned (or which exception it raised) and the state
of the random generators afterwards; every comparison and every verdict is made here.

Each check tests one behaviour, so that one mistake costs only the checks it really breaks:
only the kept-fraction check looks at which way round keep and drop are, only the
boolean-dtype check looks at the dtype (the others read a 0/1 array as a mask), only the
shape check tries other shapes.  Randomized checks use fixed grading seeds and bounds whose
false-failure probability for a correct implementation is stated next to each use.
"""
import numpy as np

from grader.checks import mark
from grader.checks.dropout_checks import assert_independent_coins, plain
from grader.checks.stats import hoeffding, pct, variance_ratio_ok

pytestmark = mark.exercise("bernoulli_mask")
USES = ("bernoulli_mask",)
GLOBAL_SEED = 12345  # generator_use seeds NumPy's global generator with this before calling


# ---------------------------------------------------------------- probes (run in the sandbox)
def masks(nb, shape, ps, seed, calls=1):
    """For each p in ps, `calls` masks drawn one after another from one seeded generator."""
    f = nb.fn("bernoulli_mask")
    rng = np.random.default_rng(seed)
    return [[plain(f(shape, p, rng)) for _ in range(calls)] for p in ps]


def mask_or_error(nb, shape, ps, seed):
    """For each p in ps, a mask, or the exception bernoulli_mask raised."""
    f = nb.fn("bernoulli_mask")
    rng = np.random.default_rng(seed)
    out = []
    for p in ps:
        try:
            out.append(plain(f(shape, p, rng)))
        except nb.Raised as e:
            out.append({"raised": e.type, "message": str(e)})
    return out


def generator_use(nb, shape, p, seed, global_seed):
    """Masks from generators seeded seed, seed and seed + 1, and the state of the first
    generator and of NumPy's global generator (seeded global_seed before) right after the
    first call; then the global generator's state after a call with rng=None (seeded
    global_seed again before it)."""
    f = nb.fn("bernoulli_mask")
    np.random.seed(global_seed)
    rng = np.random.default_rng(seed)
    first = plain(f(shape, p, rng))
    state, global_state = rng.bit_generator.state, np.random.get_state()
    again = plain(f(shape, p, np.random.default_rng(seed)))
    other = plain(f(shape, p, np.random.default_rng(seed + 1)))
    np.random.seed(global_seed)
    f(shape, p)
    return {"masks": [first, again, other], "rng_state": state, "global_state": global_state,
            "global_state_none": np.random.get_state()}


def fresh(nb, shape, p, seed):
    """Two masks from one generator, and two with rng=None (keyword and default)."""
    f = nb.fn("bernoulli_mask")
    rng = np.random.default_rng(seed)
    same = [plain(f(shape, p, rng=rng)), plain(f(shape, p, rng=rng))]
    return {"same_rng": same, "none": [plain(f(shape, p=p)), plain(f(shape, p, rng=None))]}


def shapes(nb, cases, p, seed):
    """One mask per requested shape, or the exception it raised."""
    f = nb.fn("bernoulli_mask")
    out = []
    for shape in cases:
        try:
            out.append(plain(f(shape, p, np.random.default_rng(seed))))
        except nb.Raised as e:
            out.append({"raised": e.type, "message": str(e)})
    return out


def invalid(nb, ps, seed):
    """For each p: None if bernoulli_mask returned, else the exception's class hierarchy."""
    f = nb.fn("bernoulli_mask")
    out = []
    for p in ps:
        try:
            f((4, 5), p, np.random.default_rng(seed))
            out.append(None)
        except nb.Raised as e:
            out.append({"type": e.type, "bases": [c.__name__ for c in type(e.exc).__mro__],
                        "message": str(e)})
    return out


# ---------------------------------------------------------------- helpers (grader side)
def call(shape, p):
    return f"bernoulli_mask({shape!r}, p={p!r}, rng)"


def mask_problem(value):
    """Why a returned value cannot be read as a keep-mask at all, or None if it can: a boolean
    array, or a numeric one holding 0 and at most one other value (0 = dropped)."""
    if not isinstance(value, np.ndarray):
        return f"gave {describe(value)}, which the grader cannot read as a mask"
    if value.dtype == bool or value.size == 0:
        return None
    if not np.isfinite(value).all():
        return "contains NaN or infinite values"
    vals = np.unique(value)
    if len(vals[vals != 0]) > 1:
        shown = ", ".join(f"{v:.3g}" for v in vals[:3]) + (", …" if len(vals) > 3 else "")
        why = (" (uniform draws? compare them with p to get the mask)"
               if vals.min() >= 0 and vals.max() < 1 and len(vals) > 10 else "")
        return f"holds {len(vals)} different values ({shown}), not just kept/dropped{why}"
    return None


def kept(value, shape, call):
    """The value as a boolean keep-mask of `shape`.  The dtype is the first check's business:
    here a 0/1 (or 0/c) array counts as a mask, nonzero = kept."""
    why = mask_problem(value)
    assert why is None, f"{call} {why} (see the first check)."
    assert value.shape == tuple(shape), (
        f"{call} returned shape {value.shape}; expected {tuple(shape)}: one coin per element.")
    return value != 0 if value.dtype != bool else value


def describe(value):
    if isinstance(value, dict) and "not_array" in value:
        return value["not_array"]
    return f"a {type(value).__name__}"


def readable(value, call):
    """Any NumPy array will do to compare masks; anything else cannot be judged."""
    assert isinstance(value, np.ndarray), (
        f"{call} gave {describe(value)}, which the grader cannot read: return a plain NumPy array "
        "(np.ndarray) of booleans, True where the element is kept.")
    return value


def same(a, b):
    return a.shape == b.shape and np.array_equal(a, b)


def same_global_state(got, want):
    try:
        return got[0] == want[0] and np.array_equal(got[1], want[1]) and tuple(got[2:]) == tuple(want[2:])
    except (TypeError, IndexError):
        return False


# ---------------------------------------------------------------- checks
@mark.points(1)
def test_returns_boolean_mask_of_shape(learner):
    """returns a boolean array of the requested shape"""
    shape, p = (3, 4), 0.3
    [[m]] = learner.call(masks, USES, helpers=(plain,), shape=shape, ps=[p], seed=learner.seed(1))
    where = call(shape, p)
    if isinstance(m, dict):
        readable(m, where)
    if m.dtype != bool:
        vals = np.unique(m)
        what = "0/1 integers" if m.dtype.kind in "iu" else "0/1 floats"
        if set(vals.tolist()) <= {0, 1}:
            hint = (f"{where} returned {what} (dtype {m.dtype}); the mask must be boolean: True "
                    "where the element is kept, False where it is dropped. Return booleans rather "
                    "than numbers (a comparison gives booleans).")
        elif len(vals[vals != 0]) == 1:
            hint = (f"{where} returned the numbers {vals.tolist()} (dtype {m.dtype}): a scaled mask. "
                    "This function returns only which elements are kept, as booleans; the scaling "
                    "belongs to the dropout layer (notebook 02).")
        else:
            hint = (f"{where} returned an array of dtype {m.dtype} with {len(vals)} different values "
                    f"({', '.join(f'{v:.3g}' for v in vals[:3])}, …); the mask must be boolean, True "
                    "where kept. Compare each uniform draw with p.")
        assert False, hint
    assert m.shape == shape, f"{where} returned shape {m.shape}; expected {shape}: one coin per element."


def _rows_and_columns_vary(m):
    """Do the coins of a 2-D mask look independent along both axes?  A mask shared by the
    batch has identical rows; one coin per row has constant rows.  For independent coins at
    p in [0.1, 0.875] on 1400 × 1400, two identical rows (or columns), or a constant one, have
    probability below 1400² · 0.875^1400 ≈ 1e-75."""
    if m.ndim != 2 or min(m.shape) < 2:
        return True
    rows_same = (m[1:] == m[:1]).all(axis=1).any()
    cols_same = (m[:, 1:] == m[:, :1]).all(axis=0).any()
    constant = (m.all(axis=1) | ~m.any(axis=1)).any() or (m.all(axis=0) | ~m.any(axis=0)).any()
    return not (rows_same or cols_same or constant)


@mark.points(2)
def test_kept_fraction_is_one_minus_p(learner):
    """keeps each element with probability 1 − p (p = 0.1, 0.3, 0.875)"""
    n = 1400   # 1.96 million coins: the bound is 0.25%, and the three masks cost ~20 ms, not ~60
    # 0.875 has three decimals: a p rounded to two (0.88) or to whole percent, or drawn as
    # integers 0..99, keeps 12.0% or 13.0%, not 12.5% (0.5% off: twice the bound below)
    shape, ps = (n, n), (0.1, 0.3, 0.875)
    results, masks_seen = [], []
    for k, p in enumerate(ps):
        [[m]] = learner.call(masks, USES, helpers=(plain,), shape=shape, ps=[p], seed=learner.seed(10 + k))
        masks_seen.append(kept(m, shape, call(shape, p)))
        results.append((p, masks_seen[-1].mean()))
    # Independent coins: the kept share is the mean of n*n independent draws, so the bound is
    # tight (3 uses: false failure < 3e-10).  A mask whose coins are shared along rows or
    # columns (the next check's business, not this one's) still keeps each element with
    # probability 1 − p, but its share is the mean of only n independent row (or column)
    # means: for such a mask the bound widens to hoeffding(n), so that mistake is charged
    # once, by the independence check, while a wrong threshold on independent coins is
    # caught to a fraction of a percent.
    tight, loose = hoeffding(n * n), hoeffding(n)
    tol = tight if all(_rows_and_columns_vary(m) for m in masks_seen) else loose
    if all(abs(k - p) < tol for p, k in results):
        assert False, (
            "Keep and drop are swapped: " + ", ".join(f"at p = {p} your mask kept {pct(k)}" for p, k in results)
            + ". In this course p is the probability of DROPPING an element, so the kept share "
            "should be 1 − p, and True should mean kept.")
    if all(abs(k - 0.5) < tol for _, k in results):
        assert False, (
            "Your mask keeps about half of the elements whatever p is ("
            + ", ".join(f"{pct(k)} at p = {p}" for p, k in results)
            + "): p is not used to decide. Keep an element when its uniform draw u is at least p: "
            "P(u ≥ p) = 1 − p.")
    for p, k in results:
        assert abs(k - (1 - p)) < tol, (
            f"At p = {p} your mask kept {pct(k, 2)} of {n * n} elements; expected {pct(1 - p)} ± "
            f"{pct(tol, 2)} (1 − p, since p is the drop probability). For u uniform in [0, 1), "
            "P(u ≥ p) = 1 − p: look at how you turn the draws into the mask.")


@mark.points(2)
def test_every_element_gets_its_own_coin(learner):
    """draws an independent coin per element (no mask shared by the batch)"""
    shape, p = (2000, 50), 0.3
    [[m]] = learner.call(masks, USES, helpers=(plain,), shape=shape, ps=[p], seed=learner.seed(20))
    assert_independent_coins(kept(m, shape, call(shape, p)))


@mark.points(2)
def test_uses_the_generator_it_is_given(learner):
    """draws from the generator passed in (same seed, same mask; other seed, other mask), never from
    NumPy's global one, not even with rng=None"""
    shape, p, seed = (60, 60), 0.3, learner.seed(40)
    r = learner.call(generator_use, USES, helpers=(plain,), shape=shape, p=p, seed=seed,
                     global_seed=GLOBAL_SEED)
    first, again, other = (readable(m, call(shape, p)) for m in r["masks"])
    unused = r["rng_state"] == np.random.default_rng(seed).bit_generator.state
    seeded = np.random.RandomState(GLOBAL_SEED).get_state()
    global_used = not same_global_state(r["global_state"], seeded)
    global_when_none = not same_global_state(r["global_state_none"], seeded)
    # A correct mask has at least 60 independent coins (even if shared along rows or
    # columns): two differ with probability > 1 − 0.58^60 ≈ 1 − 6e-15.
    ignores_seed = same(first, other)
    if global_used:
        assert False, (
            "Your function draws from (or re-seeds) NumPy's global generator (np.random.rand, "
            "np.random.seed, …): its state changed during the call."
            + (" It also gave the same mask for generators with different seeds: it re-seeds the "
               "global generator on every call, so every mask is the same one. That is also why "
               "the checks on a new mask for every call and on the spread of the kept count fail."
               if ignores_seed else "")
            + " Draw the uniforms from the `rng` argument, so that the caller controls the randomness.")
    if ignores_seed:
        assert False, (
            "Generators with different seeds gave the same mask"
            + (" and the generator passed in was not used (its state did not change)" if unused else "")
            + ": a seed is fixed inside the function (np.random.default_rng(0) or similar), so every "
            "call gives the same mask and every training step would drop the same units. That is "
            "also why the checks on a new mask for every call and on the spread of the kept count "
            "fail. Draw from the generator passed as `rng`.")
    assert not global_when_none, (
        "With rng=None your function draws from (or re-seeds) NumPy's global generator "
        "(np.random.rand, the np.random module, np.random.seed, …): its state changed during the "
        "call. The global generator is hidden state that any other code can reset or advance, so "
        "these masks are neither reproducible nor independent of the rest of the program. When no "
        "generator is passed, make a fresh one of your own, seeded by the operating system.")
    assert same(first, again), (
        "Two generators made with the same seed gave different masks"
        + (": the generator passed in was not used (its state did not change), so the mask comes "
           "from somewhere else (a fresh np.random.default_rng()?)" if unused else "")
        + ". The mask must depend only on the generator passed as `rng`: draw the uniforms from it.")


@mark.points(1)
def test_fresh_mask_on_every_call(learner):
    """a new mask on every call: two calls with one generator differ, and so do two calls with rng=None"""
    shape, p = (60, 60), 0.3
    r = learner.call(fresh, USES, helpers=(plain,), shape=shape, p=p, seed=learner.seed(50))
    # identical with probability < 0.58^60 ≈ 6e-15 for a correct implementation (see above)
    same_rng = [readable(m, call(shape, p)) for m in r["same_rng"]]
    none = [readable(m, f"bernoulli_mask({shape!r}, p={p!r})") for m in r["none"]]
    assert not same(*same_rng), (
        "Two calls with the same generator returned the same mask: the function starts again from "
        "a fixed seed on every call (re-creating or re-seeding a generator) instead of drawing on "
        "from `rng`. Dropout would then silence the same units on every training step.")
    assert not same(*none), (
        "With rng=None, two calls gave the same mask: when no generator is passed, make a fresh "
        "np.random.default_rng() on each call (without a seed).")


@mark.points(2)
def test_kept_count_varies_like_a_binomial(learner):
    """the number kept varies from mask to mask as much as independent coins make it (not a fixed count)"""
    shape, p, calls = (10, 10), 0.3, 400
    n = 100
    [ms] = learner.call(masks, USES, helpers=(plain,), shape=shape, ps=[p], seed=learner.seed(30), calls=calls)
    bools = [kept(m, shape, call(shape, p)) for m in ms]
    counts = np.array([b.sum() for b in bools], dtype=float)
    var, expected = counts.var(ddof=1), n * p * (1 - p)
    # One-sided: too little spread is an exact count.  More spread than a binomial comes from
    # coins shared along rows or columns, which the independence check reports.
    _, (lo, _) = variance_ratio_ok(var / expected, calls - 1)  # false failure < 1e-10
    if all(np.array_equal(b, bools[0]) for b in bools[1:]):
        assert False, (
            f"All {calls} masks drawn one after another from one generator were identical, so the "
            "number kept never varied: every call starts from the same fixed seed (see the checks "
            "on the generator). Draw from the generator passed as `rng`.")
    assert var >= lo * expected, (
        f"Over {calls} masks of {n} elements at p = {p}, the number kept had mean {counts.mean():.1f} "
        f"and variance {var:.2f}; independent coins give variance n·p·(1 − p) = {expected:.0f} "
        f"(at least {lo * expected:.1f} is accepted)."
        + (f" Every mask kept exactly {int(counts[0])}: a fixed number of kept elements put in random "
           "places is not dropout — each element needs its own independent coin."
           if var == 0 else " The count is held close to a fixed number: each element needs its "
           "own independent coin, so that the count varies freely."))


@mark.points(1)
def test_any_shape(learner):
    """works for any shape: an int, a tuple of any length, an empty shape"""
    cases = [(7, (7,)), ((7,), (7,)), ((2, 3, 4, 5), (2, 3, 4, 5)), ((0, 3), (0, 3))]
    got = learner.call(shapes, USES, helpers=(plain,), cases=[c for c, _ in cases], p=0.3,
                       seed=learner.seed(60))
    for (shape, want), m in zip(cases, got):
        where = call(shape, 0.3)
        if isinstance(m, dict) and "raised" in m:
            assert False, (f"{where} raised {m['message']}. The shape may be an int or a tuple of "
                           "any length: pass it on to the generator as it is.")
        readable(m, where)
        assert m.shape == want, (
            f"{where} returned shape {m.shape}; expected {want}. The shape may be an int or a tuple "
            "of any length: pass it on to the generator as it is.")


@mark.points(1)
def test_p_zero_and_one(learner):
    """p = 0 keeps every element and p = 1 drops every one, for floats and ints (no stray element)"""
    shape = (400, 400)
    ps = [0.0, 0, 1.0, 1, 0.3]
    got = learner.call(mask_or_error, USES, helpers=(plain,), shape=shape, ps=ps, seed=learner.seed(70))
    for p, m in zip(ps, got):
        if isinstance(m, dict) and "raised" in m:
            assert False, (f"{call(shape, p)} raised {m['message']}. p = 0 (drop nothing) and p = 1 "
                           "(drop everything) are valid drop probabilities, as floats and as ints.")
    for p, m in zip(ps[:4], got[:4]):
        assert not (isinstance(m, np.ndarray) and m.dtype != bool and not np.isfinite(m).all()), (
            f"{call(shape, p)} returned NaN or infinite values"
            + (": it divides by 1 − p, which is 0 at p = 1." if p == 1 else ".")
            + " The mask is only which elements are kept, as booleans: no scaling.")
    for p, m in zip(ps[:4], got[:4]):
        # the dtype at p = 0.3 is the first check's business; a shortcut for p = 0 or 1 is its own path
        assert not (isinstance(m, np.ndarray) and m.dtype != bool
                    and isinstance(got[4], np.ndarray) and got[4].dtype == bool), (
            f"{call(shape, p)} returned an array of dtype {m.dtype}, while at p = 0.3 it returns "
            "booleans: the mask is boolean on every path. Does a shortcut for p = 0 or p = 1 build "
            "its array of ones or zeros without asking for the boolean dtype?")
    ends = [(p, kept(m, shape, call(shape, p))) for p, m in zip(ps[:4], got[:4])]
    shares = [m.mean() for _, m in ends]
    assert not all(0.1 < f < 0.9 for f in shares), (
        "Your mask keeps about the same share of elements at p = 0 and at p = 1 ("
        + ", ".join(f"{pct(f)} at p = {p!r}" for (p, _), f in zip(ends, shares))
        + "): it does not depend on p (the same mistake as in the kept-fraction check, if that "
        "fails too). At p = 0 every "
        "element must be kept and at p = 1 every one dropped.")
    # Which way round keep and drop are is the kept-fraction check's business: a mask that
    # keeps p instead of 1 − p at p = 0.3 (within hoeffding(400) = 0.17, valid even for coins shared
    # along rows or columns; false failure < 1e-10) is judged here with the roles swapped.
    share = kept(got[4], shape, call(shape, 0.3)).mean()
    swapped = abs(share - 0.3) < hoeffding(400)
    for p, m in ends:
        want = (p == 0) != swapped
        wrong = int((m != want).sum())
        kind = "keep" if want else "drop"
        assert wrong == 0, (
            f"At p = {p!r} the mask should {kind} every element; {wrong} of {m.size} were "
            f"{'dropped' if want else 'kept'}."
            # a draw equal to p exactly is a 2**-53 event (2**-24 for float32 draws): only a
            # handful of strays can come from the comparison at the boundary
            + (" A few strays: look at how the comparison treats a draw that equals p exactly "
               "(uniform draws lie in [0, 1), so 0.0 can come up and 1.0 never does)."
               if wrong <= 3 else
               f" Uniform draws lie in [0, 1), so none of them reaches 1 — but {pct(wrong / m.size, 3)} "
               "of yours do: are they rounded to a low precision (float16?), or drawn from a range "
               "that includes 1?"
               if p == 1 and not swapped and wrong < m.size // 100 else
               f" That is {pct(wrong / m.size)} of them: the threshold your draws are compared with "
               f"is not p itself at p = {p!r}."
               if wrong < m.size // 10 else
               f" Follow what your code does when p is exactly {p!r}: p = 0 and p = 1 must work, "
               "as ints and as floats."))


@mark.points(1)
def test_rejects_p_outside_0_1(learner):
    """raises ValueError for p outside [0, 1] and for p = NaN"""
    ps = [-0.1, 1.1, 2, -1, float("inf"), 1.001, -0.001, float("nan")]
    got = learner.call(invalid, USES, ps=ps, seed=learner.seed(80))
    accepted = [p for p, r in zip(ps, got) if r is None]
    if accepted == [ps[-1]]:
        assert False, (
            "bernoulli_mask rejected every p outside [0, 1] but accepted p = NaN. NaN fails every "
            "comparison, so a test like `p < 0 or p > 1` lets it through: write the range test so "
            "that NaN lands on the error side, e.g. by testing that p IS in range.")
    assert not accepted, (
        f"bernoulli_mask accepted p = {', '.join(map(repr, accepted))}. A probability must be in "
        "[0, 1]: raise ValueError otherwise."
        + (" Only values just outside the range got through: is p rounded before the range test? "
           "Test p exactly as it was given." if set(accepted) <= {1.001, -0.001} else ""))
    for p, r in zip(ps, got):
        assert "ValueError" in r["bases"], (
            f"For p = {p!r} your function raised {r['type']}; the contract asks for ValueError"
            + (" (assert statements are removed under python -O, and raise AssertionError)."
               if r["type"] == "AssertionError" else f" ({r['message']})."))
