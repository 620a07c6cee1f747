"""Pieces shared by the checks of the dropout notebooks (01 mask, 02 forward, 03 backward, 05 layer).

Three kinds of function live here:
- probe helper (`plain`): shipped to the learner's sandbox with `learner.call(..., helpers=(plain,))`,
  so it uses only `np`, builtins and its argument;
- grader-side helpers (`as_array`, `factor_name`, `ratio`, `median_ratio`,
  `assert_independent_coins`): they read the plain data a probe returned and write the feedback;
- the timing of whole-array code (`reference_cpu`, `learner_cpu`, `assert_vectorised`): the
  learner's calls are timed by `learner.timed` (the CPU time of the fork that made them, measured
  by a process in which learner code never runs) and the instructor's by `time.process_time` in
  the grader's own process, on the same inputs and the same number of calls.  No reference code
  and no clock is ever sent to the learner's process.
"""
import re
import time

import numpy as np

from grader.reference import once

# Per call, a learner may take this many times the reference's CPU time, and never fails below
# FLOOR seconds.  Measured at 1e6 float32 elements (this repository's machine, one core):
# - inverted forward, reference 2.7 ms: honest whole-array code is 1-10x (float64 draws 1.3x,
#   np.where 2.1x, a vectorised loop over rows 3.0x, rng.binomial 4.9-6.4x, rng.choice 8.2x);
#   a Python loop over elements is 106x and np.vectorize 91x (a Python call per element);
# - backward, reference 0.37 ms: honest code is 0.6-11x (float32 scaled mask 0.6x, dout * keep
#   / (1 - p) 1.9x, float64 scaled mask 4x, np.where 8.5x, copy and zero 10.5x: at most 4 ms);
#   a loop over elements is 343x (128 ms) and np.vectorize 374x (140 ms).
# 25x sits a factor of 2.5 or more from both groups, so a busy machine (CPU time, not wall
# time, is compared) or another NumPy build moves neither across it.  FLOOR matters when the
# reference is very fast (the backward: 25 x 0.37 ms = 9 ms): 20 ms is 5x the slowest honest
# backward and 6x below a loop over 1e6 elements, which costs over 100 ms of Python work.
SLOWDOWN, FLOOR = 25, 0.02
TIMING_N = (1000, 1000)  # 1e6 float32 elements
# The learner's process pays a fixed cost in every timed fork (forking, loading the notebook's
# definitions, building the inputs).  It is measured by the same probe with no timed calls and
# subtracted, but never more than BASE_CAP seconds of it: whatever the learner's own code does
# to that baseline, it can shave at most BASE_CAP / calls off the time per call (100 ms of a
# forward's 5 calls, 62 ms of a backward's 8: a loop over elements, 246 ms or 128 ms a call,
# still fails by twice the limit).  The baseline varies by a few ms from fork to fork: a few
# calls divide that well below the limits (67 ms and 20 ms a call).  For
# the backward the baseline includes one call of the learner's forward pass (to get a cache):
# 0.5 s covers even a forward written as a loop over elements, which is not charged here.
BASE_CAP = 0.5
# What a timed run sends back of an output of the timing input's shape: its elements at
# TIMING_SAMPLE flat indices the grader draws (timing_sample), not all 1e6 (4 MB each).  The
# rule the timed calls are credited for (assert_same_rule_as_small, 03's follows_forward) is
# checked on them.  Timed outputs that skip the work on a share f of the elements (the only
# way garbage saves time) pass with probability (1 - f)^TIMING_SAMPLE: below 1e-9 from
# f = 0.07 %, at which they save nothing measurable.  The learner's code can find the indices
# (they are in the call), but nothing is lost with them: a cheap output that follows the
# rule everywhere (a fixed pattern in place of the random mask) passed the whole-array check
# too; what the timed run is credited for is also seen by the untimed checks.
TIMING_SAMPLE = 1 << 15


# ---------------------------------------------------------------- probe helper (sandbox)
def plain(v):
    """A copy of a learner's array if the grader can read it; otherwise a description."""
    if type(v) is np.ndarray and v.dtype.kind in "biuf":
        return v.copy()
    if isinstance(v, np.ndarray):
        return {"not_array": f"an array of dtype {v.dtype}"}
    if isinstance(v, tuple):
        return {"not_array": f"a tuple of length {len(v)}"}
    return {"not_array": "None" if v is None else f"a {type(v).__name__}"}


def sampled(v, shape, sample):
    """plain(v), but of an array of the timing input's shape (what a timed run sends back)
    only its elements at `sample` (flat indices the grader drew; None: all of it)."""
    if sample is not None and type(v) is np.ndarray and v.dtype.kind in "biuf" and v.shape == tuple(shape):
        return {"sample": v.reshape(-1)[sample]}
    return plain(v)


# ---------------------------------------------------------------- grader-side helpers
def timing_sample(learner, k):
    """The flat indices of the timing input whose elements a timed run sends back (sampled)."""
    return learner.rng(k).integers(0, int(np.prod(TIMING_N)), TIMING_SAMPLE).astype(np.uint32)


def at_sample(a, value, sample):
    """(a's elements at `sample`, the learner's there) for what sampled() sent back; (a, value)
    for anything else (which the rule's check then refuses: not an array of a's shape)."""
    got = value.get("sample") if isinstance(value, dict) and set(value) == {"sample"} else None
    if isinstance(got, np.ndarray) and got.shape == sample.shape:
        return a.reshape(-1)[sample], got
    return a, value


def as_array(value, shape, call, dtype=None):
    """The value must be a numeric ndarray of this shape (and dtype); say what is wrong if not."""
    if isinstance(value, dict) and "not_array" in value:
        assert False, (f"{call} gave {value['not_array']} where a NumPy array was expected; "
                       "return an np.ndarray of numbers.")
    assert isinstance(value, np.ndarray), f"{call} gave {type(value).__name__}; return an np.ndarray."
    assert value.shape == tuple(shape), (
        f"{call} returned shape {value.shape}; expected {tuple(shape)}, the shape of its input.")
    if dtype is not None and value.dtype != np.dtype(dtype) and value.dtype.itemsize < np.dtype(dtype).itemsize:
        assert False, (
            f"{call} returned dtype {value.dtype} for a {np.dtype(dtype)} input: {np.dtype(dtype)} in, "
            f"{value.dtype} out. Your output is cast down (an astype, an explicit dtype, an array of "
            f"{value.dtype} that everything is written into): keep x's dtype, whatever it is.")
    if dtype is not None and value.dtype != np.dtype(dtype):
        assert False, (
            f"{call} returned dtype {value.dtype} for a {np.dtype(dtype)} input: {np.dtype(dtype)} in, "
            f"{value.dtype} out. Something in your computation is {value.dtype} (a mask or scale "
            f"stored as {value.dtype}, np.float64(...), an explicit dtype): keep every array in "
            "x's dtype.")
    return value


def distinct(*values, decimals=3, most=12):
    """The values as strings with `decimals` decimals, or as many more as it takes (up to `most`)
    for values that differ to print differently: never "x1.429 ... expected x1.429"."""
    d = decimals
    while d < most:
        shown = [f"{v:.{d}f}" for v in values]
        if all((a == b) == (u == v) for i, (a, u) in enumerate(zip(shown, values))
               for b, v in zip(shown[i + 1:], values[i + 1:])):
            return shown
        d += 1
    return [f"{v:.{most}g}" for v in values]


def defining_notebook(name):
    """The notebook (e.g. '01') whose exercise is `name`, read from the check files' marks, or
    None: a name the learner used in one notebook but wrote in another."""
    from pathlib import Path
    for path in sorted(Path(__file__).parent.glob("test_[0-9][0-9]_*.py")):
        if re.search(r"""(mark\.exercise\(|name = )["']%s["']""" % re.escape(name), path.read_text()):
            return path.stem[len("test_"):][:2]
    return None


def undefined_name(message, stem):
    """For an exception message `NameError: name 'x' is not defined`, the first sentence of
    feedback that names the mistake; '' for any other exception."""
    m = re.search(r"NameError: name '(\w+)' is not defined", message or "")
    if not m:
        return ""
    name, where = m.group(1), defining_notebook(m.group(1))
    if where and where != stem[:2]:
        return (f"Your code calls {name}, which you wrote in notebook {where}, but it is not defined in "
                f"this notebook (notebook {stem[:2]}): each notebook is graded on its own, with only "
                "its own cells. Copy that function into a cell of this notebook above yours, or do the "
                "work here directly.")
    return (f"Your code uses the name {name}, which this notebook (notebook {stem[:2]}) does not define: "
            "a typo, or a name from another cell or notebook? Each notebook is graded on its own, with "
            "only its own cells.")


def raised_message(call, raised, stem, hint=""):
    """'<call> raised <exception>.' and a hint; an undefined name is named first, without the
    hint (which would be about something else)."""
    msg = raised[1]
    first = undefined_name(msg, stem)
    if first:
        return f"{first} ({call} raised {msg}.)"
    return f"{call} raised {msg}." + (f" {hint}" if hint else "")


def valid_p_rejected(raised, p):
    """A hint when the learner's own ValueError rejected a p the contract allows (0 or 1)."""
    if raised[0] != "ValueError" or not 0 <= p <= 1:
        return ""
    what = "drop nothing" if p == 0 else "drop everything" if p == 1 else "a probability"
    return (f"p = {p!r} is a valid drop probability ({what}): raise ValueError only for p outside "
            "[0, 1] (or NaN).")


def factor_name(r, p, rel=2e-3):
    """Name a multiplicative factor in terms of p, e.g. 1/(1 − p); '' if it is none of them."""
    q = 1 - p
    names = [(1.0, "1"), (0.0, "0"), (q, "1 − p"), (p, "p"), (q * q, "(1 − p)²")]
    if q:
        names += [(1 / q, "1/(1 − p)"), (1 / (q * q), "1/(1 − p)²")]
    if p:
        names += [(1 / p, "1/p"), (q / p, "(1 − p)/p")]
    for value, name in names:
        if abs(r - value) <= rel * max(abs(value), 1e-12):
            return name
    return ""


def ratio(r, p, other=None):
    """'0.700 (= 1 − p)' or '0.812'; with enough decimals to differ from `other` if it does, and
    named only when it is that factor to 1e-9 (a factor rounded to float16 is not 1/(1 − p))."""
    name = factor_name(r, p) if other is None or r == other else factor_name(r, p, rel=1e-9)
    shown = f"{r:.3f}" if other is None else distinct(r, other)[0]
    return shown + (f" (= {name})" if name and name not in ("1", "0") else "")


def median_ratio(a, b, where=None):
    """Median of a/b over `where` (default: where b is not zero); nan when that is empty."""
    where = (b != 0) if where is None else where & (b != 0)
    return float(np.median(a[where] / b[where])) if where.any() else float("nan")


# ---------------------------------------------------------------- timing (grader side)
@once   # per process: a batch's worker times the reference once per input (config and seed)
def reference_cpu(call, calls=1, repeats=7):
    """CPU seconds per call of the instructor's code, in this (the grader's) process: `call`
    is a zero-argument callable on inputs built beforehand; one warm-up call, then the median
    of `repeats` runs of `calls` calls each.  On 1e6 elements one call is milliseconds of CPU,
    well above the clock's resolution: the median of 7 single calls gives the median of 5 runs
    of 10 (within 3 %, on this repository's machine) for 8 calls instead of 51."""
    call()
    runs = []
    for _ in range(repeats):
        t = time.process_time()
        for _ in range(calls):
            call()
        runs.append((time.process_time() - t) / calls)
    return float(np.median(runs))


def learner_cpu(learner, probe, uses, calls, ref, **kwargs):
    """CPU seconds per call of the learner's code: `probe(nb, calls=..., **kwargs)` builds its
    inputs and makes `calls` calls.  It runs twice under learner.timed, with `calls` and then
    with calls=0 (its fixed cost: the fork, loading the notebook, the inputs); the difference,
    less at most BASE_CAP of the fixed cost, per call.  None when the timed run ran out of time, which
    its limit makes mean far slower than SLOWDOWN x the reference."""
    from grader.sandbox import LearnerError
    timeout = 3 * calls * max(SLOWDOWN * ref, FLOOR) + 5
    # the timed run first: when it fails (a stub, say), the fixed cost is never needed; after a
    # time-out its names are marked as hung, so the fixed cost is then measured without them
    slow = False
    try:
        value, cpu = learner.limited(timeout=timeout).timed(probe, uses, calls=calls, **kwargs)
    except LearnerError as e:
        if e.kind != "timeout":
            raise
        slow = True
    try:
        _, base = learner.limited(timeout=timeout).timed(probe, () if slow else uses, calls=0, **kwargs)
    except LearnerError as e:
        if e.kind != "timeout":
            raise
        assert False, (
            f"The inputs of the timing could not even be prepared within {timeout:.0f} s (for the "
            "backward pass: one call of your forward pass on 1e6 elements), so the timing was not "
            "run. Make that code work on whole arrays first.")
    if slow:
        return None
    learner_cpu.last_value = value   # what the timed calls returned: see same_rule_as_small
    return max(cpu - min(base, BASE_CAP), 0.0) / calls


def factor_rule(x, out):
    """(factor, kept share) when out is x times one factor where kept and 0 elsewhere (x has no
    zeros); None for any other form."""
    if not (isinstance(out, np.ndarray) and out.shape == x.shape and out.dtype.kind == "f"
            and np.isfinite(out).all()):
        return None
    kept = out != 0
    if not kept.any():
        return 0.0, 0.0
    ratios = out[kept].astype(np.float64) / x[kept]
    c = float(np.median(ratios))
    if not np.allclose(ratios, c, rtol=1e-4, atol=0):
        return None
    return c, float(kept.mean())


def assert_same_rule_as_small(small, large, what):
    """The timed calls are credited only for the computation the other checks see: when the
    function follows a clean rule on a small input (x times one factor where kept, 0 elsewhere,
    with some elements kept and some dropped), its output on the timing input must follow the
    same rule: the same factor (within 0.1 %), and some elements kept and some dropped.  A
    function that is right on small inputs and returns something cheaper on large ones (zeros,
    x, x / (1 − p) everywhere) gains nothing.  The shares themselves are the other checks'
    business (coins shared by rows make them vary).  A function with no clean rule on small
    inputs is charged by the other checks, not here.  With 2e4 and 1e6 independent coins at
    p = 0.3, an honest mask keeps everything or nothing with probability below 0.7^20000."""
    if small is None or small[1] in (0.0, 1.0):
        return
    if large is None:
        assert False, (f"On the timing input (1e6 float32 elements) your {what} returned something that is "
                       "not x times one factor where kept and 0 elsewhere, although it does that on a "
                       "small input: the timing can only credit the computation the other checks see.")
    (c_small, k_small), (c_large, k_large) = small, large
    assert abs(c_small - c_large) <= 1e-3 * max(abs(c_small), 1e-12) and 0 < k_large < 1, (
        f"On a small input your {what} keeps {k_small:.3f} of the elements, scaled by {c_small:.4g}; on the "
        f"timing input (1e6 float32 elements) it keeps {k_large:.3f}, scaled by {c_large:.4g}. The timing can "
        "only credit the computation the other checks see: compute the same thing whatever the size.")

def assert_vectorised(own, ref, calls, call, what="function"):
    """Fail a learner whose calls take more than SLOWDOWN x the reference's CPU time (and more
    than FLOOR seconds) each — a Python loop over elements or np.vectorize — never honest
    whole-array code (see SLOWDOWN)."""
    limit = max(SLOWDOWN * ref, FLOOR)
    n = int(np.prod(TIMING_N))
    fix = ("That is the cost of a per-element Python loop or np.vectorize (np.vectorize is a loop "
           "too: it calls a Python function once per element): work on whole arrays — compare, "
           "multiply and divide them in one NumPy expression each.")
    assert own is not None, (
        f"{calls} calls of {call} on {n:.0e} float32 elements did not finish within "
        f"{3 * calls * limit + 5:.0f} s, while the reference {what} takes {ref * 1e3:.1f} ms of "
        f"CPU time per call (allowed: {SLOWDOWN}x that, and never less than {FLOOR * 1e3:.0f} ms). "
        + fix)
    assert own <= limit, (
        f"{call} took {own * 1e3:.0f} ms of CPU time per call on {n:.0e} float32 elements "
        f"({calls} calls); the reference {what} takes {ref * 1e3:.1f} ms on the same inputs: "
        f"{own / ref:.0f}x slower (allowed: {SLOWDOWN}x, and never less than {FLOOR * 1e3:.0f} ms). "
        + fix)


def assert_independent_coins(m, what="mask"):
    """Feedback for a boolean keep-mask of shape (rows, cols), rows = examples: one coin per
    element, not per row, not shared by the batch, neighbours independent.  Designed for
    (2000, 50) at p = 0.3 (the probabilities in the comments assume it)."""
    from grader.checks.stats import hoeffding, pct
    rows, cols = m.shape
    # first rows kept or dropped as a whole (one coin per row), which also makes most rows equal
    # to the first one when it is kept: a correct row is all kept or all dropped with
    # probability 0.7^50 + 0.3^50 ≈ 1.8e-8
    whole = ((m.sum(axis=1) == 0) | (m.sum(axis=1) == cols)).mean()
    assert whole < 0.1, (
        f"{pct(whole)} of the rows of the {what} are kept or dropped as a whole: one coin per row "
        "instead of one per element.")
    same_as_first = (m == m[0]).all(axis=1).mean()
    # a correct mask repeats row 0 with probability (0.7² + 0.3²)^50 ≈ 1.5e-12 per row
    assert same_as_first < 0.5, (
        f"{pct(same_as_first)} of the {rows} rows of the {what} are identical to the first row: one "
        "mask is shared by the whole batch. Each example (row) needs its own coins — one per "
        "element of the full shape.")
    # Neighbouring pairs against the mask's own kept share f, so that this is about
    # independence alone: |f² − q²| <= 2·t_f, and the pair share is within t_pair of f².
    # 3 uses of hoeffding: false failure < 3e-10.
    f, t_f, t_pair = m.mean(), hoeffding(m.size), hoeffding(rows * (cols - 1))
    for where, both in (("side by side in a row", (m[:, 1:] & m[:, :-1]).mean()),
                        ("above each other in a column", (m[1:, :] & m[:-1, :]).mean())):
        assert abs(both - f * f) < t_pair + 2 * t_f, (
            f"Two neighbouring elements ({where}) are both kept {pct(both)} of the time, while "
            f"{pct(f)} of all elements are kept; independent coins give {pct(f)}² = {pct(f * f)} "
            f"± {pct(t_pair + 2 * t_f)}. The coins are not independent.")


def distinct_digits(got, want, least=3):
    """got and want written with the fewest SIGNIFICANT digits (at least `least`, at most 17)
    that tell them apart (distinct() counts decimals): for numbers of any size, such as
    relative errors, a message never shows two different numbers as the same."""
    for digits in range(least, 18):
        a, b = f"{got:.{digits}g}", f"{want:.{digits}g}"
        if a != b:
            return a, b
    return a, b
