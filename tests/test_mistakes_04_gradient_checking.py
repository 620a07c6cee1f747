"""The grader of notebook 04 against known mistakes and honest alternatives.

Each mistake is a buggy implementation appended to the solution notebook (redefining the
exercise); it must lose points, and the feedback must name the mistake.  Each honest
alternative must keep full marks.  The grader's checks test the contract, not these fixtures.
"""
import pytest

from tests.grading import grade_variants

STEM = "04_gradient_checking"


# ---------------------------------------------------------------- numerical_gradient
NG_MISTAKES = {
    "forward differences": ('''
def numerical_gradient(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    grad, f_x = np.zeros_like(x), f(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        grad[i] = (f(x) - f_x) / h
        x[i] = old
    return grad
''', "forward differences"),
    "divides by h instead of 2h": ('''
def numerical_gradient(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        grad[i] = (fp - fm) / h
    return grad
''', "divide it by 2h, not by h"),
    "leaves x perturbed": ('''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        x[i] += h
        fp = f(x)
        x[i] -= 2 * h
        fm = f(x)
        grad[i] = (fp - fm) / (2 * h)
    return grad
''', "leaves x perturbed"),
    "restores x by arithmetic": ('''
def numerical_gradient(f, x, h=1e-5):
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        x[i] += h
        fp = f(x)
        x[i] -= 2 * h
        fm = f(x)
        x[i] += h
        grad[i] = (fp - fm) / (2 * h)
    return grad
''', "instead of undoing the step by arithmetic"),
    "works only on 1-D arrays": ('''
def numerical_gradient(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    grad = np.zeros(len(x))
    for i in range(len(x)):
        old = x[i].copy()
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad
''', "works only on 1-D arrays"),
    "perturbs in float32": ('''
def numerical_gradient(f, x, h=1e-5):
    x = x.copy()
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        grad[i] = (fp - fm) / (2 * h)
    return grad
''', "Copy x to float64 first"),
    "ignores h": ('''
def numerical_gradient(f, x, h=1e-5):
    step = 1e-5
    x = np.array(x, dtype=np.float64)
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + step
        fp = f(x)
        x[i] = old - step
        fm = f(x)
        x[i] = old
        grad[i] = (fp - fm) / (2 * step)
    return grad
''', "does not seem to use the h it is given"),
}

NG_HONEST = {
    "nditer loop (CS231n style)": '''
def numerical_gradient(f, x, h=1e-5):
    x = x.astype(np.float64)
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad
''',
    "flat index loop on a flat view": '''
def numerical_gradient(f, x, h=1e-5):
    x64 = np.array(x, dtype=np.float64)
    flat = x64.reshape(-1)
    grad = np.empty(flat.size)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = f(x64)
        flat[i] = old - h
        down = f(x64)
        flat[i] = old
        grad[i] = (up - down) / (2 * h)
    return grad.reshape(x64.shape)
''',
    "copies x for every element": '''
def numerical_gradient(f, x, h=1e-5):
    x = np.asarray(x, dtype=np.float64)
    grad = np.zeros(x.shape)
    for idx in np.ndindex(x.shape):
        plus, minus = x.copy(), x.copy()
        plus[idx] += h
        minus[idx] -= h
        grad[idx] = (f(plus) - f(minus)) / (2 * h)
    return grad
''',
    "perturbs the caller's float64 x and restores it": '''
def numerical_gradient(f, x, h=1e-5):
    work = x if x.dtype == np.float64 else x.astype(np.float64)
    grad = np.zeros(work.shape)
    for k in range(work.size):
        idx = np.unravel_index(k, work.shape)
        old = work[idx]
        work[idx] = old + h
        fp = f(work)
        work[idx] = old - h
        fm = f(work)
        work[idx] = old
        grad[idx] = (fp - fm) / (2 * h)
    return grad
''',
}


# ---------------------------------------------------------------- relative_error
RE_MISTAKES = {
    "NaN for zeros (no floor)": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b))))
''', "0 / 0"),
    "mean instead of max": ('''
def relative_error(a, b):
    return float(np.mean(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))
''', "the mean of the element-wise errors"),
    "not symmetric": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))
''', "it is not symmetric"),
    "norm-based ratio": ('''
def relative_error(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-8))
''', "norm-based ratio"),
    "returns the element-wise array": ('''
def relative_error(a, b):
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)
''', "it should return one number"),
    "max(|a|, |b|) denominator": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-8)))
''', "divided by max(|a|, |b|)"),
}

RE_HONEST = {
    "np.maximum(1e-8, ...) first, NumPy scalar": '''
def relative_error(a, b):
    return np.max(np.abs(a - b) / np.maximum(1e-8, np.abs(a) + np.abs(b)))
''',
    "np.clip denominator, .max()": '''
def relative_error(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return (np.abs(a - b) / np.clip(np.abs(a) + np.abs(b), 1e-8, None)).max()
''',
    "additive 1e-8 in the denominator": '''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b) + 1e-8)))
''',
}


# ---------------------------------------------------------------- dropout_gradient_check
GC_MISTAKES = {
    "mask changes between evaluations": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    rng = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    f = lambda z: np.sum(forward(z, p, True, rng)[0] * dout)
    _, cache = forward(x, p, True, rng)
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', "the mask changed between evaluations"),
    "no generator at all (rng=None)": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed).standard_normal(x.shape)
    f = lambda z: np.sum(forward(z, p, True)[0] * dout)
    _, cache = forward(x, p, True)
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', "got rng=None"),
    "turns dropout off (eval mode)": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    f = lambda z: np.sum(forward(z, p, False, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, p, False, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', "turns dropout off"),
    "turns dropout off (p = 0)": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    f = lambda z: np.sum(forward(z, 0.0, True, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, 0.0, True, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', "turns dropout off"),
    "dout all ones": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.ones(x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, p, True, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', "is your dout all ones"),
}

GC_HONEST = {
    "CS231n style: standard normal dout, keyword arguments": '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    out, cache = forward(x, p, train=True, rng=np.random.default_rng(seed))
    dx = backward(dout, cache)
    dx_num = numerical_gradient(lambda xx: np.sum(forward(xx, p, train=True, rng=np.random.default_rng(seed))[0] * dout), x, h)
    return relative_error(dx, dx_num)
''',
    "PCG64 generator, own loop, own error, dout from the mask's seed": '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    def fresh():
        return np.random.Generator(np.random.PCG64(seed))
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed).random(x.shape)
    num = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        up = np.sum(forward(x, p, True, fresh())[0] * dout)
        x[i] = old - h
        down = np.sum(forward(x, p, True, fresh())[0] * dout)
        x[i] = old
        num[i] = (up - down) / (2 * h)
    dx = backward(dout, forward(x, p, True, fresh())[1])
    return float(np.max(np.abs(dx - num) / np.maximum(np.abs(dx) + np.abs(num), 1e-8)))
''',
}


# ---------------------------------------------------------------- the tests
EXERCISES = {"numerical_gradient": (NG_MISTAKES, NG_HONEST),
             "relative_error": (RE_MISTAKES, RE_HONEST),
             "dropout_gradient_check": (GC_MISTAKES, GC_HONEST)}
SOLUTION = "the solution itself"


@pytest.fixture(scope="module")
def graded():
    """{exercise: {variant: Graded}}, each exercise's variants graded (in parallel) on first use."""
    done = {}

    def get(exercise):
        if exercise not in done:
            mistakes, honest = EXERCISES[exercise]
            sources = {name: src for name, (src, _) in mistakes.items()}
            done[exercise] = grade_variants(STEM, exercise, {**sources, **honest, SOLUTION: None})
        return done[exercise]
    return get


@pytest.mark.parametrize("exercise,name", [(e, n) for e, (m, _) in EXERCISES.items() for n in m])
def test_mistake_loses_points_and_is_named(graded, exercise, name):
    result, phrase = graded(exercise)[name], EXERCISES[exercise][0][name][1]
    assert result.score < result.max_score, f"the mistake kept full marks: {result}"
    assert phrase.lower() in result.messages().lower(), \
        f"feedback does not name the mistake ({phrase!r}):\n{result.messages()}"


@pytest.mark.parametrize("exercise,name", [(e, n) for e, (_, h) in EXERCISES.items() for n in [*h, SOLUTION]])
def test_honest_alternative_keeps_full_marks(graded, exercise, name):
    result = graded(exercise)[name]
    assert result.max_score > 0 and result.score == result.max_score, f"lost points: {result}"


def test_mask_change_fails_the_correct_pair_check(graded):
    """The mask-changing check is caught by its behaviour (error near 1), not only by the spy."""
    msgs = graded("dropout_gradient_check")["mask changes between evaluations"].messages()
    assert "returns < 1e-8 for correct forward/backward pairs" in msgs, msgs


def test_dropout_off_misses_wrong_backwards(graded):
    """Checks that turn dropout off are caught by what they miss, not only by the spy."""
    for name in ("turns dropout off (eval mode)", "turns dropout off (p = 0)"):
        msgs = graded("dropout_gradient_check")[name].messages()
        assert "returns > 1e-2 for backwards that are wrong in training mode" in msgs, msgs
