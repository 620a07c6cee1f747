"""The grader of notebook 04 against known mistakes and honest alternatives.

Each mistake is a buggy implementation appended to the solution notebook (redefining the
exercise).  The mistake table says, for each one, exactly which checks it must fail (a mistake
fails the checks whose behaviour it breaks, and no other) and words the first failing message
must contain (it names the mistake).  Each honest alternative — written unlike the reference on
purpose — must keep full marks.  The grader's checks test the contract, not these fixtures.
"""
import pytest

from tests.grading import assert_full_marks, assert_mistake, grade_variants

STEM = "04_gradient_checking"

# check functions of grader/checks/test_04_gradient_checking.py
NG_SHAPE = "test_returns_float64_array_of_x_shape"
NG_ANY = "test_matches_the_true_gradient_for_any_shape"
NG_CENTRED = "test_centred_differences_error_is_order_h_squared"
NG_USES_H = "test_uses_the_step_h_it_is_given"
NG_DEFAULT = "test_default_step_is_1e_minus_5"
NG_X = "test_leaves_x_exactly_as_it_was"
NG_32 = "test_float32_input_is_differentiated_in_float64"
RE_ONE = "test_returns_one_number_and_leaves_inputs_alone"
RE_ZERO = "test_identical_arrays_give_zero_even_with_zeros"
RE_TINY = "test_tiny_differences_are_measured_against_the_floor"
RE_MAX = "test_takes_the_maximum_over_elements"
RE_SYM = "test_is_symmetric"
RE_VALUE = "test_value_on_random_arrays"
RE_NAN = "test_nan_and_inf_are_never_hidden"
GC_OK = "test_correct_pairs_give_a_tiny_error"
GC_WRONG = "test_wrong_backwards_give_a_large_error"
GC_ON = "test_keeps_dropout_on_with_one_mask"
GC_FLOAT = "test_returns_a_float_and_leaves_x_alone"


def centred(step="h", divisor="(2 * h)", prep="    x = np.array(x, dtype=np.float64)\n",
            signature="h=1e-5"):
    return (f"def numerical_gradient(f, x, {signature}):\n" + prep +
            "    grad = np.zeros(x.shape)\n"
            "    for i in np.ndindex(x.shape):\n"
            "        old = x[i]\n"
            f"        x[i] = old + {step}\n"
            "        fp = f(x)\n"
            f"        x[i] = old - {step}\n"
            "        fm = f(x)\n"
            "        x[i] = old\n"
            f"        grad[i] = (fp - fm) / {divisor}\n"
            "    return grad\n")


# ---------------------------------------------------------------- numerical_gradient
# name: (source, the exact set of checks it fails, words of the first failing message)
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
''', {NG_CENTRED}, "forward differences"),
    "divides by h instead of 2h": (centred(divisor="h"), {NG_ANY}, "divide it by 2h, not by h"),
    "'/ 2 * h' divides by 2, then multiplies by h": (
        centred(divisor="2 * h"), {NG_ANY}, "put it in parentheses"),
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
''', {NG_X, NG_32}, "leaves x perturbed"),
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
''', {NG_X, NG_32}, "instead of undoing the step by arithmetic"),
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
''', {NG_ANY}, "works only on 1-D arrays"),
    "perturbs in float32": (centred(prep="    x = x.copy()\n"), {NG_32}, "Copy x to float64 first"),
    "ignores h": (centred(step="1e-5", divisor="(2 * 1e-5)"), {NG_USES_H},
                  "does not seem to use the h it is given"),
    "default step h = 1e-2": (centred(signature="h=1e-2"), {NG_DEFAULT}, "default step is h = 1e-05"),
    "forward differences with a fixed step, h ignored": ('''
def numerical_gradient(f, x, h=1e-5):
    step = 1e-5                                   # fixed: the argument h is never used
    x = np.array(x, dtype=np.float64)
    grad, f_x = np.zeros_like(x), f(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + step
        grad[i] = (f(x) - f_x) / step
        x[i] = old
    return grad
''', {NG_CENTRED, NG_USES_H}, "forward differences"),
    "backward differences": ('''
def numerical_gradient(f, x, h=1e-5):
    x = np.array(x, dtype=np.float64)
    grad, f_x = np.zeros_like(x), f(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old - h
        grad[i] = (f_x - f(x)) / h
        x[i] = old
    return grad
''', {NG_CENTRED}, "backward differences"),
    "gradient array made before the float64 copy": (centred(
        prep="    grad0 = np.zeros_like(x)\n    x = np.array(x, dtype=np.float64)\n").replace(
        "grad = np.zeros(x.shape)", "grad = grad0"), {NG_32}, "the contract asks for float64"),
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
    "basis arrays e_i, ndenumerate, list of partials": '''
def numerical_gradient(f, x, h=1e-5):
    x = np.array(x, dtype=float)
    partials = []
    for idx, _ in np.ndenumerate(x):
        e = np.zeros_like(x)
        e[idx] = h
        partials.append((f(x + e) - f(x - e)) / (2.0 * h))
    return np.array(partials, dtype=np.float64).reshape(x.shape)
''',
    "all perturbed copies stacked at once, h positional": '''
def numerical_gradient(f, x, h=1e-5):
    base = np.asarray(x, dtype=np.float64).ravel()
    steps = np.eye(base.size) * h
    ups = [f((base + s).reshape(np.shape(x))) for s in steps]
    downs = [f((base - s).reshape(np.shape(x))) for s in steps]
    return ((np.array(ups) - np.array(downs)) / (2 * h)).reshape(np.shape(x))
''',
}


# ---------------------------------------------------------------- relative_error
RE_MISTAKES = {
    "NaN for zeros (no floor)": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b))))
''', {RE_ZERO, RE_TINY}, "0 / 0"),
    "mean instead of max": ('''
def relative_error(a, b):
    return float(np.mean(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))
''', {RE_MAX, RE_VALUE}, "the mean of the element-wise errors"),
    "not symmetric (divides by |b|)": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-8)))
''', {RE_SYM, RE_VALUE}, "the denominator must treat a and b alike"),
    "norm-based ratio": ('''
def relative_error(a, b):
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-8))
''', {RE_MAX, RE_VALUE}, "norm-based ratio"),
    "returns the element-wise array": ('''
def relative_error(a, b):
    return np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)
''', {RE_ONE}, "It should return one number"),
    "max(|a|, |b|) denominator": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.maximum(np.abs(a), np.abs(b)), 1e-8)))
''', {RE_VALUE}, "divided by max(|a|, |b|)"),
    "no absolute value in the numerator": ('''
def relative_error(a, b):
    return float(np.max((a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))
''', {RE_SYM, RE_VALUE}, "absolute value of the difference"),
    "np.nanmax drops NaN": ('''
def relative_error(a, b):
    return float(np.nanmax(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8)))
''', {RE_NAN}, "np.nanmax"),
    "Python's max() over the elements": ('''
def relative_error(a, b):
    a, b = np.ravel(a).tolist(), np.ravel(b).tolist()
    return max(abs(x - y) / max(abs(x) + abs(y), 1e-8) for x, y in zip(a, b))
''', {RE_NAN}, "Python's max()"),
    "'if denominator > 0 else 0' instead of the floor": ('''
def relative_error(a, b):
    num, den = np.abs(a - b), np.abs(a) + np.abs(b)
    safe = np.where(den > 0, den, 1.0)
    return float(np.max(np.where(den > 0, num / safe, 0.0)))
''', {RE_TINY, RE_NAN}, "100% error"),
    "np.nan_to_num on the result": ('''
def relative_error(a, b):
    return float(np.nan_to_num(np.max(np.abs(a - b) / np.maximum(np.abs(a) + np.abs(b), 1e-8))))
''', {RE_NAN}, "turned into a number"),
    "overwrites a in place to save memory": ('''
def relative_error(a, b):
    den = np.maximum(np.abs(a) + np.abs(b), 1e-8)
    a -= b
    np.abs(a, out=a)
    return float(np.max(a / den))
''', {RE_ONE}, "changed its inputs"),
    "|a + b| in the denominator": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a + b), 1e-8)))
''', {RE_VALUE}, "|a + b|"),
    "ratio of the maxima": ('''
def relative_error(a, b):
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a) + np.abs(b)), 1e-8))
''', {RE_MAX, RE_VALUE}, "the worst element is"),
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
    "np.fmax floor, np.amax, .item(), float32 kept": '''
def relative_error(a, b):
    diff = np.absolute(np.subtract(a, b))
    scale = np.fmax(np.absolute(a) + np.absolute(b), 1e-8)
    return np.amax(diff / scale).item()
''',
    "errors array first, explicit NaN check": '''
def relative_error(a, b):
    a = np.array(a, dtype=np.float64, copy=True).ravel()
    b = np.array(b, dtype=np.float64, copy=True).ravel()
    errors = np.abs(a - b)
    errors /= np.maximum(np.abs(a) + np.abs(b), 1e-8)
    if np.isnan(errors).any():
        return float("nan")
    return float(errors.max())
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
''', {GC_OK, GC_ON}, "the mask changed between evaluations"),
    "no generator at all (rng=None)": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed).standard_normal(x.shape)
    f = lambda z: np.sum(forward(z, p, True)[0] * dout)
    _, cache = forward(x, p, True)
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', {GC_OK, GC_ON}, "got rng=None"),
    "turns dropout off (eval mode)": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    f = lambda z: np.sum(forward(z, p, False, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, p, False, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', {GC_WRONG, GC_ON}, "turns dropout off"),
    "turns dropout off (p = 0)": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    f = lambda z: np.sum(forward(z, 0.0, True, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, 0.0, True, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', {GC_OK, GC_WRONG, GC_ON}, "turns dropout off"),
    "dout all ones": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.ones(x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, p, True, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', {GC_WRONG}, "your dout is the same number"),
    "mask from seed + 1, dout from seed": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed).uniform(-1, 1, x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed + 1))[0] * dout)
    _, cache = forward(x, p, True, np.random.default_rng(seed + 1))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', {GC_OK}, "not the state of np.random.default_rng(seed)"),
    "f forgets dout": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).uniform(0.5, 1.5, x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0])
    _, cache = forward(x, p, True, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
''', {GC_OK, GC_WRONG}, "without dout"),
    "own error with np.nanmax hides NaN": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).uniform(0.5, 1.5, x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0] * dout)
    dx = backward(dout, forward(x, p, True, np.random.default_rng(seed))[1])
    num = numerical_gradient(f, x, h)
    return float(np.nanmax(np.abs(dx - num) / np.maximum(np.abs(dx) + np.abs(num), 1e-8)))
''', {GC_WRONG}, "returns NaN got through"),
    "returns the element-wise errors": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).uniform(0.5, 1.5, x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0] * dout)
    dx = backward(dout, forward(x, p, True, np.random.default_rng(seed))[1])
    num = numerical_gradient(f, x, h)
    return np.abs(dx - num) / np.maximum(np.abs(dx) + np.abs(num), 1e-8)
''', {GC_FLOAT}, "should return one number"),
    "own loop restores x by arithmetic": ('''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    dout = np.random.default_rng(seed + 1).uniform(0.5, 1.5, x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0] * dout)
    num = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        x[i] += h
        up = f(x)
        x[i] -= 2 * h
        down = f(x)
        x[i] += h
        num[i] = (up - down) / (2 * h)
    dx = backward(dout, forward(x, p, True, np.random.default_rng(seed))[1])
    return relative_error(dx, num)
''', {GC_FLOAT}, "changed the x it was given"),
}

BROKEN_DEPENDENCIES = '''
def numerical_gradient(f, x, h=1e-5):              # divides by h: notebook 04's first exercise is wrong
    x = np.array(x, dtype=np.float64)
    grad = np.zeros(x.shape)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + h
        fp = f(x)
        x[i] = old - h
        fm = f(x)
        x[i] = old
        grad[i] = (fp - fm) / h
    return grad


def relative_error(a, b):                          # |a + b|: the second exercise is wrong too
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(a + b), 1e-8)))
'''

GC_MISTAKES["mask changes between evaluations, other exercises wrong too"] = (
    BROKEN_DEPENDENCIES + GC_MISTAKES["mask changes between evaluations"][0],
    {GC_OK, GC_ON}, "the mask changed between evaluations")

GC_HONEST = {
    # the exercise's own code is right; numerical_gradient and relative_error are not, and cost
    # points only in their own exercises: here the grader puts correct ones in their place
    "the reference check, with a numerical_gradient and relative_error that are wrong": BROKEN_DEPENDENCIES,
    "CS231n style: standard normal dout, keyword arguments": '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).standard_normal(x.shape)
    out, cache = forward(x, p, train=True, rng=np.random.default_rng(seed))
    dx = backward(dout, cache)
    def loss(xx):
        return np.sum(forward(xx, p, train=True, rng=np.random.default_rng(seed))[0] * dout)
    dx_num = numerical_gradient(loss, x, h)
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
    "all keywords, SeedSequence, arguments of relative_error swapped, np.vdot": '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    x = x.astype(np.float64, copy=True)
    g = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    dout = g.uniform(-1.5, 1.5, size=x.shape)

    def loss(z):
        out, _ = forward(x=z, p=p, train=True, rng=np.random.default_rng(np.random.SeedSequence(seed)))
        return float(np.vdot(out, dout))

    numeric = numerical_gradient(loss, x, h=h)
    _, cache = forward(x=x.copy(), p=p, train=True, rng=np.random.default_rng(seed))
    analytic = backward(dout=dout.copy(), cache=cache)
    return relative_error(numeric, analytic)
''',
    "one seeded generator for dout first, then fresh ones for the masks; float return via item": '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    rng = np.random.default_rng(seed)
    dout = rng.choice([-1.0, 1.0], size=np.shape(x)) * rng.uniform(0.5, 1.5, size=np.shape(x))
    def f(z):
        return (forward(z, p, True, np.random.default_rng(seed))[0] * dout).sum()
    cache = forward(np.asarray(x, dtype=float), p, True, np.random.default_rng(seed))[1]
    err = relative_error(backward(dout, cache), numerical_gradient(f, np.asarray(x, dtype=float)))
    return np.float64(err).item()
''',
    "one generator, deep-copied for every evaluation; forward without train": '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    import copy
    base = np.random.default_rng(seed)
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).normal(size=x.shape)
    grad = numerical_gradient(lambda z: float(np.sum(forward(z, p, rng=copy.deepcopy(base))[0] * dout)), x, h)
    dx = backward(dout, forward(x, p, rng=copy.deepcopy(base))[1])
    return relative_error(dx, grad)
''',
    "one generator whose state is reset before every evaluation": '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    gen = np.random.default_rng(seed)
    start = gen.bit_generator.state
    def run(z):
        gen.bit_generator.state = start
        return forward(z, p, True, gen)
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).uniform(-1, 1, x.shape)
    num = numerical_gradient(lambda z: np.sum(run(z)[0] * dout), x, h)
    return relative_error(backward(dout, run(x)[1]), num)
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
            sources = {name: src for name, (src, _, _) in mistakes.items()}
            extra = {"snoop": SNOOP} if exercise == "dropout_gradient_check" else {}   # in the same batch
            done[exercise] = grade_variants(STEM, exercise, {**sources, **honest, SOLUTION: None, **extra})
        return done[exercise]
    return get


@pytest.mark.parametrize("exercise,name", [(e, n) for e, (m, _) in EXERCISES.items() for n in m])
def test_mistake_fails_exactly_its_checks_and_is_named(graded, exercise, name):
    _, expected, words = EXERCISES[exercise][0][name]
    assert_mistake(graded(exercise)[name], name, expected, words)


@pytest.mark.parametrize("exercise,name", [(e, n) for e, (_, h) in EXERCISES.items() for n in [*h, SOLUTION]])
def test_honest_alternative_keeps_full_marks(graded, exercise, name):
    assert_full_marks(graded(exercise)[name], name)


def test_mistake_table_uses_real_check_names():
    """Every check named in the table exists in the check file (a renamed check cannot pass silently)."""
    import ast

    from tests.grading import ROOT
    tree = ast.parse((ROOT / "grader" / "checks" / "test_04_gradient_checking.py").read_text())
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    used = {c for mistakes, _ in EXERCISES.values() for _, expected, _ in mistakes.values() for c in expected}
    assert used <= names, used - names


def test_mask_change_fails_the_correct_pair_check(graded):
    """The mask-changing check is caught by its behaviour (error near 1), not only by the spy."""
    msgs = graded("dropout_gradient_check")["mask changes between evaluations"].messages()
    assert "returns < 1e-8 for correct forward/backward pairs" in msgs, msgs


def test_dropout_off_misses_wrong_backwards(graded):
    """Checks that turn dropout off are caught by what they miss, not only by the spy."""
    for name in ("turns dropout off (eval mode)", "turns dropout off (p = 0)"):
        msgs = graded("dropout_gradient_check")[name].messages()
        assert "for backwards that are wrong in training mode" in msgs, msgs


SNOOP = '''
def dropout_gradient_check(forward, backward, x, p, seed, h=1e-5):
    # Looks everywhere it can reach for a word that would tell the cases apart -- the probe's
    # frames, the request's arguments, the closures of forward and backward -- and raises if it
    # finds one; otherwise it does an honest check.
    import sys
    words = ("correct", "wrong", "buggy", "forget", "fresh", "twice", "returns_dout", "ignores",
             "inverted_scale", "nan_at", "expected", "verdict", "label", "bug")
    seen = []
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_filename == "<probe>":
            seen.append(repr({k: v for k, v in frame.f_locals.items() if k != "nb"}))
        elif "req" in frame.f_locals and isinstance(frame.f_locals["req"], dict):
            seen.append(repr(frame.f_locals["req"].get("kwargs")))
        frame = frame.f_back
    for fn in (forward, backward):
        for cell in fn.__closure__ or ():
            seen.append(repr(cell.cell_contents))
    text = " ".join(seen).lower()
    found = [w for w in words if w in text]
    if found:
        raise RuntimeError(f"found label {found}")
    x = np.array(x, dtype=np.float64)
    dout = np.random.default_rng(seed + 1).uniform(0.5, 1.5, x.shape)
    f = lambda z: np.sum(forward(z, p, True, np.random.default_rng(seed))[0] * dout)
    _, cache = forward(x, p, True, np.random.default_rng(seed))
    return relative_error(backward(dout, cache), numerical_gradient(f, x, h))
'''


def test_no_label_within_reach_of_the_learner(graded):
    """A check that walks the frames and closures it can reach finds nothing that names a case
    (it would raise), and keeps full marks by checking honestly."""
    result = graded("dropout_gradient_check")["snoop"]
    assert "found label" not in result.messages(), result.messages()
    assert result.score == result.max_score, result


def test_replaced_dependencies_are_named(graded):
    """A dropout_gradient_check graded with the grader's numerical_gradient / relative_error says so."""
    result = graded("dropout_gradient_check")["mask changes between evaluations, other exercises wrong too"]
    assert "your numerical_gradient and relative_error did not pass" in result.first_message(), result
