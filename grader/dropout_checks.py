"""Pieces shared by the checks of the dropout notebooks (01 mask, 02 forward, 03 backward, 05 layer).

Two kinds of function live here:
- probe helpers (`plain`, `stopwatch`, `python_steps`, `race`): shipped to the learner's
  sandbox with `learner.call(..., helpers=(...))`, so they may use only `np`, `time`, the
  probe globals and their arguments;
- grader-side helpers (`as_array`, `factor_name`, `ratio`, `median_ratio`,
  `assert_vectorised`): they read the plain data a probe returned and write the feedback.
"""
import numpy as np

# A forward or backward pass may be this many times slower than the reference timed in the
# same process and run, and never fails below FLOOR seconds: an honest vectorised layer is
# 1–10x the reference at 1e6 elements; a Python loop over elements or np.vectorize is 40–200x.
SLOWDOWN, FLOOR = 25, 0.05
TIMING_N = (1000, 1000)  # 1e6 float32 elements: cache-resident, no first-touch stalls
# Python steps are counted at these two shapes: 3000 more elements, 20 more rows and 50 more
# columns.  A loop over rows or columns adds a few steps per row or column; a loop over
# elements adds at least one per element, so 0.5 extra steps per element is far from both.
STEP_SHAPES = ((20, 50), (40, 100))
STEPS_PER_ELEMENT = 0.5


# ---------------------------------------------------------------- probe helpers (sandbox)
def plain(v):
    """A copy of a learner's array if the grader can read it; otherwise a description."""
    if type(v) is np.ndarray and v.dtype.kind in "biuf":
        return v.copy()
    if isinstance(v, np.ndarray):
        return {"not_array": f"an array of dtype {v.dtype}"}
    if isinstance(v, tuple):
        return {"not_array": f"a tuple of length {len(v)}"}
    return {"not_array": "None" if v is None else f"a {type(v).__name__}"}


def stopwatch(reference, learner, runs=5, budget=3.0):
    """CPU seconds taken by two zero-argument callables, interleaved, after one warm-up call of
    each; stops early once `budget` seconds have gone (a very slow learner needs no more).
    CPU time, not wall time: a loaded machine makes a process wait for the CPU, and that wait
    would count against a short call far more than against a long one."""
    def clock(f):
        t = time.process_time()
        f()
        return time.process_time() - t
    clock(reference)
    first = clock(learner)
    if first > budget:
        return {"reference": [clock(reference)], "learner": [first]}
    ref, own = [], []
    start = time.process_time()
    while len(own) < runs and (len(own) < 2 or time.process_time() - start < budget):
        ref.append(clock(reference))
        own.append(clock(learner))
    return {"reference": ref, "learner": own}


def python_steps(prepare, shapes):
    """How many Python trace events (calls and lines, in every Python frame) one call makes
    at each shape; prepare(shape) builds the call's inputs and returns it, untraced.  Whole-
    array code makes the same number at any size; a loop over elements or np.vectorize (which
    calls a Python function per element) makes more with every element.  Unlike a timing,
    this count does not depend on how busy the machine is."""
    import sys
    counts = []
    for shape in shapes:
        call = prepare(shape)
        n = [0]

        def tracer(frame, event, arg):
            n[0] += 1
            return tracer
        sys.settrace(tracer)
        try:
            call()
        finally:
            sys.settrace(None)
        counts.append(n[0])
    return counts


def race(prepare, reference, learner, shape, step_shapes, steps_per_element):
    """The Python steps of the learner's call at two small shapes, then (unless those already
    show a loop over elements, which needs no timing) the CPU times of the reference's and the
    learner's calls at `shape`.  prepare(shape, f) builds the inputs of f and returns the call."""
    steps = python_steps(lambda s: prepare(s, learner), step_shapes)
    (n1, n2) = (int(np.prod(s)) for s in step_shapes)
    if (steps[1] - steps[0]) / (n2 - n1) >= steps_per_element:
        return {"steps": steps, "reference": [], "learner": []}
    return {"steps": steps, **stopwatch(prepare(shape, reference), prepare(shape, learner))}


# ---------------------------------------------------------------- grader-side helpers
def as_array(value, shape, call, dtype=None):
    """The value must be a numeric ndarray of this shape (and dtype); say what is wrong if not."""
    if isinstance(value, dict) and "not_array" in value:
        assert False, (f"{call} gave {value['not_array']} where a NumPy array was expected; "
                       "return an np.ndarray of numbers.")
    assert isinstance(value, np.ndarray), f"{call} gave {type(value).__name__}; return an np.ndarray."
    assert value.shape == tuple(shape), (
        f"{call} returned shape {value.shape}; expected {tuple(shape)}, the shape of its input.")
    if dtype is not None and value.dtype != np.dtype(dtype):
        assert False, (
            f"{call} returned dtype {value.dtype} for a {np.dtype(dtype)} input: {np.dtype(dtype)} in, "
            f"{value.dtype} out. Something in your computation is {value.dtype} (a mask or scale "
            f"stored as {value.dtype}, np.float64(...), an explicit dtype): keep every array in "
            "x's dtype, or cast the result back with .astype(x.dtype).")
    return value


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


def ratio(r, p):
    """'0.700 (= 1 − p)' or '0.812'."""
    name = factor_name(r, p)
    return f"{r:.3f}" + (f" (= {name})" if name and name not in ("1", "0") else "")


def median_ratio(a, b, where=None):
    """Median of a/b over `where` (default: where b is not zero); nan when that is empty."""
    where = (b != 0) if where is None else where & (b != 0)
    return float(np.median(a[where] / b[where])) if where.any() else float("nan")


def assert_vectorised(r, call, what="function"):
    """Fail a Python loop over elements (counted, see python_steps), and a learner far slower
    than the reference timed beside it (see SLOWDOWN) — never honest whole-array code."""
    (n1, n2), (s1, s2) = (int(np.prod(s)) for s in STEP_SHAPES), r["steps"]
    per_element = (s2 - s1) / (n2 - n1)
    assert per_element < STEPS_PER_ELEMENT, (
        f"{call} runs Python code for every element: Python executed {s1} steps for {n1} "
        f"elements and {s2} for {n2}, {per_element:.1f} more per extra element. That is a "
        "per-element Python loop or np.vectorize (which calls a Python function once per "
        "element), about 50 times slower than NumPy on whole arrays: compare, multiply and "
        "divide whole arrays, one NumPy expression each.")
    own, ref = min(r["learner"]), float(np.median(r["reference"]))
    limit = max(SLOWDOWN * ref, FLOOR)
    n = int(np.prod(TIMING_N))
    assert own <= limit, (
        f"{call} took {own * 1e3:.0f} ms of CPU time on {n:.0e} float32 elements (fastest of "
        f"{len(r['learner'])} runs); the reference {what} took {ref * 1e3:.1f} ms in the same "
        f"process: {own / ref:.0f}x slower (allowed: {SLOWDOWN}x, and never less than "
        f"{FLOOR * 1e3:.0f} ms). That is the cost of a per-element Python loop or np.vectorize "
        "(np.vectorize is a loop too): work on whole arrays — compare, multiply and divide them "
        "in one NumPy expression each.")


TIMING_HELPERS = (stopwatch, python_steps, race)  # what a timing probe ships with it


def assert_independent_coins(m, what="mask"):
    """Feedback for a boolean keep-mask of shape (rows, cols), rows = examples: one coin per
    element, not per row, not shared by the batch, neighbours independent.  Designed for
    (2000, 50) at p = 0.3 (the probabilities in the comments assume it)."""
    from grader.stats import hoeffding, pct
    rows, cols = m.shape
    same_as_first = (m == m[0]).all(axis=1).mean()
    # a correct mask repeats row 0 with probability (0.7² + 0.3²)^50 ≈ 1.5e-12 per row
    assert same_as_first < 0.5, (
        f"{pct(same_as_first)} of the {rows} rows of the {what} are identical to the first row: one "
        "mask is shared by the whole batch. Each example (row) needs its own coins — one per "
        "element of the full shape.")
    whole = ((m.sum(axis=1) == 0) | (m.sum(axis=1) == cols)).mean()
    # a correct row is all kept or all dropped with probability 0.7^50 + 0.3^50 ≈ 1.8e-8
    assert whole < 0.1, (
        f"{pct(whole)} of the rows of the {what} are kept or dropped as a whole: one coin per row "
        "instead of one per element.")
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
