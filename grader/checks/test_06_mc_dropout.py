"""Checks for notebook 06: mc_dropout_predict(net, x, T) -> (mean, std).

The learner's function is run on a small network defined here (GradingNet: affine -> ReLU
-> dropout, twice, then an affine output), built from weights, a drop probability and a seed
that the grader chose.  Every case uses the same code: cases differ only in those data.  The
network lives in the grader's process: mc_dropout_predict gets a proxy of it (proxy_net), whose
every method call and every read or write of `training` is a round trip to the grader, so it
holds nothing the learner's code could introspect (copies of it, copy.copy / copy.deepcopy, are
made on the grader's side, as they would be of the network itself).  The probe sends back only
what mc_dropout_predict returned; what can be observed on the network afterwards (its mode
flags, the state of its random generator) is read here.

The grader builds the same network from the same data on its own side, so it knows the
output of every pass with dropout on (the k-th pass draws the k-th masks from the seeded
generator), the output in eval mode, and the generator's state after k passes.  Every
verdict compares the learner's results with those.  Nothing here is randomized in a way
that could fail a correct implementation: the network's draws are fixed by the grading
seed, and a correct implementation reproduces them exactly.

The network's dropout layers draw one mask per call of forward, shared by the rows of the
batch (as DropConnect-style layers do): T calls of net.forward(x) are T different thinned
networks, while one call on T stacked copies of x is a single one.  Its `training` flag is
a plain attribute, as in the course's networks: only train()/eval() reach the layers.
"""
import weakref

import numpy as np

from grader.checks import mark
from grader.sandbox.host import LearnerError

pytestmark = mark.exercise("mc_dropout_predict")
USES = ("mc_dropout_predict",)
NAME = "mc_dropout_predict"
HIDDEN = 16


# ---------------------------------------------------------------- the network (runs on both sides)
class BatchDropout:
    """Inverted dropout with one keep-mask per call of forward, shared by the batch's rows."""

    def __init__(self, p, rng):
        self.p, self.rng, self.training = p, rng, True

    def train(self, mode=True):
        self.training = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def forward(self, h):
        if not self.training:
            return h
        keep = self.rng.random(h.shape[-1]) >= self.p
        return h * keep / (1 - self.p)


class GradingNet:
    """weights = [W1, b1, ..., Wk, bk]: affine -> ReLU -> BatchDropout(p) for each hidden
    layer, then an affine output (a 1-D last W gives one output per row, shape (N,))."""

    def __init__(self, weights, p, seed, training):
        self.params = [np.asarray(w) for w in weights]
        self.rng = np.random.default_rng(seed)
        self.drops = [BatchDropout(p, self.rng) for _ in range(len(self.params) // 2 - 1)]
        self.training = True
        self.train(training)

    def train(self, mode=True):
        self.training = bool(mode)
        for layer in self.drops:
            layer.train(mode)
        return self

    def eval(self):
        return self.train(False)

    @staticmethod
    def affine(h, W, b):
        # elementwise products and a NumPy sum, not BLAS: the same bits on both sides
        if W.ndim == 1:
            return (h * W).sum(axis=-1) + b
        return (h[:, :, None] * W).sum(axis=1) + b

    def forward(self, x):
        h = np.asarray(x)
        for i, layer in enumerate(self.drops):
            z = self.affine(h, self.params[2 * i], self.params[2 * i + 1])
            h = layer.forward(np.maximum(z, 0))
        return self.affine(h, self.params[-2], self.params[-1])


# ---------------------------------------------------------------- probe helpers and probe (sandbox)
def raw_array(v):
    """What the learner returned, as a float array if it reads as one; else a description."""
    if type(v) is np.ndarray and v.dtype.kind in "biuf":
        return v.copy()
    try:
        a = np.asarray(v, dtype=float)
    except Exception:  # noqa: BLE001 - anything unreadable is described by its type
        a = None
    if type(a) is np.ndarray:
        return a
    return {"not_array": "None" if v is None else f"a {type(v).__name__}"}


def proxy_net(nb, prefix=""):
    """The network handed to mc_dropout_predict: an object whose forward(x), train(mode),
    eval(), `training` (read or assigned), copy.copy and copy.deepcopy each call the grader
    (nb.proxy, the names starting with prefix), where the networks live; it holds only its
    network's number there."""
    ops = {name: nb.proxy(prefix + "net." + name) for name in ("forward", "train", "eval", "get", "set", "copy")}

    class Net:
        __slots__ = ("_id",)

        def __init__(self, i=0):
            self._id = i

        def forward(self, x):
            return ops["forward"](self._id, x)

        def train(self, mode=True):
            ops["train"](self._id, mode)
            return self

        def eval(self):
            ops["eval"](self._id)
            return self

        @property
        def training(self):
            return ops["get"](self._id)

        @training.setter
        def training(self, value):
            ops["set"](self._id, value)

        def __copy__(self):
            return Net(ops["copy"](self._id, False))

        def __deepcopy__(self, memo):
            return Net(ops["copy"](self._id, True))

    return Net()


def predict(nb, x, T, prefix=""):
    f = nb.fn("mc_dropout_predict")
    value = f(proxy_net(nb, prefix), x, T)
    if not (isinstance(value, (tuple, list)) and len(value) == 2):
        nb.pair(value, "mc_dropout_predict", "(mean, std)")   # raises: not a pair
    container = "tuple" if isinstance(value, tuple) else type(value).__name__
    return {"container": container, "mean": raw_array(value[0]), "std": raw_array(value[1])}


HELPERS = (raw_array, proxy_net)


# ---------------------------------------------------------------- the network's grader side
MAX_ROWS = 10_000    # rows of one forward call (the checks send at most 20 x 17)
MAX_NETS = 1_000     # networks (the one handed over and its copies) per call


def observe(net):
    """The network's mode flags and generator state after the call, as plain data."""
    def flag(v):
        return bool(v) if isinstance(v, (bool, int, np.bool_)) else f"a {type(v).__name__}"
    return {"training": flag(net.training), "layers": [flag(d.training) for d in net.drops],
            "state": net.rng.bit_generator.state}


def net_callbacks(nets, prefix=""):
    """What each call of proxy_net's object runs here, on nets[i] (nets[0]: the network handed
    over; copies are appended), named as proxy_net(nb, prefix) calls them.  Everything it gets
    is the learner's: checked before use."""
    def net(i):
        if type(i) is not int or not 0 <= i < len(nets):
            raise ValueError("not a network of this call")
        return nets[i]

    def forward(i, x):
        x = np.asarray(x)
        if x.dtype.kind not in "biuf" or x.ndim != 2 or x.shape[1] != 1 or not 0 < x.shape[0] <= MAX_ROWS:
            raise ValueError(f"this network takes an array of shape (N, 1), N <= {MAX_ROWS}, "
                             f"like the x it was given; got shape {x.shape}")
        return net(i).forward(x)

    def copy(i, deep):
        if len(nets) >= MAX_NETS:
            raise RuntimeError(f"more than {MAX_NETS} copies of the network")
        import copy as copying
        nets.append(copying.deepcopy(net(i)) if deep else copying.copy(net(i)))
        return len(nets) - 1

    def assign(i, value):
        net(i).training = value

    ops = {"net.forward": forward, "net.train": lambda i, mode=True: net(i).train(mode) and None,
           "net.eval": lambda i: net(i).eval() and None, "net.get": lambda i: net(i).training,
           "net.set": assign, "net.copy": copy}
    return {prefix + name: op for name, op in ops.items()}


# ---------------------------------------------------------------- the grader's side
class Case:
    """One call of the learner's function, and what the grader knows about the network."""

    def __init__(self, learner, k, shape, T, training=False, dtype=np.float64, p=0.3, dyadic=False):
        rng = learner.rng(k)
        n, outs = shape[0], shape[1:]
        x = np.linspace(-1, 1, n)
        x[n // 2] = 0.0                        # a zero input among the others
        sizes = [(1, HIDDEN), (HIDDEN,), (HIDDEN, HIDDEN), (HIDDEN,), (HIDDEN,) + outs, outs]
        scales = [1.5, 0.5, 0.4, 0.3, 0.5, 1.0]
        weights = [np.asarray(rng.normal(0, s, size)) for s, size in zip(scales, sizes)]
        if dyadic:   # small multiples of powers of two: every output is exact in float64
            x = (2 * np.arange(n) - n + 1) / 8.0
            weights = [np.round(w * 16) / 16 for w in weights]
        self.x = x[:, None].astype(dtype)
        self.weights = [w.astype(dtype) for w in weights]
        self.shape, self.T, self.training, self.p = tuple(shape), T, training, p
        self.dtype, self.dyadic = dtype, dyadic
        self.seed = learner.seed(10_000 + k)
        self.where = (f"(T = {T}, network handed over in {mode_name(training)} mode"
                      + (", float32" if dtype == np.float32 else "") + ")")

    def network(self):
        """The network handed over, here."""
        return GradingNet(self.weights, self.p, self.seed, self.training)

    def answered(self, r, net):
        """This case with the learner's answer r, the network handed over (net) as the call left it,
        and what the grader knows of the network."""
        if not isinstance(r, dict) or not {"container", "mean", "std"} <= set(r):
            raise LearnerError("contract", NAME, "the answer from the learner's process was not the "
                               "one the grader asked for (was it forged?)")
        r = dict(r, **observe(net))
        self.r = r
        self.mean, self.std = r["mean"], r["std"]
        T, p = self.T, self.p
        # the same network on this side: every pass with dropout on, and the eval output
        net = GradingNet(self.weights, p, self.seed, True)
        self.kmax = max(3 * T, T + 5)
        self.states, passes = [net.rng.bit_generator.state], []
        for _ in range(self.kmax):
            passes.append(net.forward(self.x))
            self.states.append(net.rng.bit_generator.state)
        self.passes = np.stack(passes)
        self.eval_output = GradingNet(self.weights, p, self.seed, False).forward(self.x)
        self.k = self.states.index(r["state"]) if r["state"] in self.states else None
        scale = float(np.max(np.abs(self.passes[:T]))) + 1.0
        self.rtol, self.atol = (1e-4, 1e-5 * scale) if self.dtype == np.float32 else (1e-7, 1e-9 * scale)
        return self

    def close(self, a, b):
        return (isinstance(a, np.ndarray) and a.shape == b.shape
                and bool(np.allclose(a, b, rtol=self.rtol, atol=self.atol, equal_nan=False)))

    def stacks(self):
        """The sets of passes the learner's function can have averaged, given what it did:
        the T passes asked for; the k passes the generator says ran with dropout on; with
        the last T of k > T passes; if no pass moved the network's generator: passes that all
        equal the eval output (dropout off), or that all repeat the first pass with dropout on
        (a fresh copy of the network, and of its generator, for each pass).  (T stacked copies
        in one call are k = 1 pass.)"""
        out = [self.passes[:self.T]]
        if self.k:
            out.append(self.passes[:self.k])
        if self.k and self.k > self.T:   # extra passes first, then the T it kept
            out.append(self.passes[self.k - self.T:self.k])
        if self.k == 0:   # the network's own generator never moved
            out += [self.eval_output[None], self.passes[:1]]
        return out

    def main_stack(self):
        return self.passes[:self.k] if self.k else self.passes[:self.T]


# Every case the checks use, by its number k (its seeds; the checks take them a hundred at a
# time): (shape, T, training, dtype[, p, dyadic]).
F64, F32 = np.float64, np.float32
CASES = {
    100: ((6, 3), 5, False, F64), 101: ((7,), 4, True, F64), 102: ((6, 3), 1, False, F64),
    103: ((5, 2), 6, True, F32),
    200: ((6, 3), 5, False, F64), 201: ((6, 3), 12, True, F64), 202: ((6, 3), 1, False, F64),
    203: ((6, 3), 9, False, F32),
    300: ((6, 3), 5, False, F64), 301: ((6, 3), 5, True, F64),
    400: ((6, 3), 5, False, F64), 401: ((5, 5), 5, True, F64), 402: ((8,), 7, False, F64),
    403: ((4, 2), 2, False, F64), 404: ((6, 3), 6, True, F32),
    500: ((17, 1), 20, False, F64, 0.0, True), 501: ((9, 4), 7, False, F64, 0.0, False),
}
_ANSWERS = weakref.WeakKeyDictionary()   # learner handle -> {k: (answer, network)} of the batch


def batch(learner):
    """{k: (the learner's answer or the LearnerError of its call, the network handed over as the
    call left it)} for every case, from one call of the learner's process (learner.call_each,
    case i's network given as proxies named "i net.…"); {} when that call failed as a whole:
    each case then gets a call of its own."""
    if learner not in _ANSWERS:
        cases = {k: Case(learner, k, *spec) for k, spec in CASES.items()}
        nets = {k: [c.network()] for k, c in cases.items()}
        callbacks = {}
        for i, k in enumerate(cases):
            callbacks.update(net_callbacks(nets[k], f"{i} "))
        runs = [{"x": c.x, "T": c.T, "prefix": f"{i} "} for i, c in enumerate(cases.values())]
        rs = learner.call_each(predict, runs, helpers=HELPERS, callbacks=callbacks)
        _ANSWERS[learner] = {k: (r, nets[k][0]) for k, r in zip(cases, rs)} if rs is not None else {}
    return _ANSWERS[learner]


def cases(learner, group):
    """The cases numbered group, group + 1, ... with the learner's answers, one at a time."""
    for k in sorted(CASES):
        if group <= k < group + 100:
            c, done = Case(learner, k, *CASES[k]), batch(learner)
            if k in done:
                r, net = done[k]
                if isinstance(r, LearnerError):   # what the learner's function did in this case
                    raise r
                yield c.answered(r, net)
                continue
            nets = [c.network()]
            r = learner.call(predict, USES, helpers=HELPERS, callbacks=net_callbacks(nets), x=c.x, T=c.T)
            yield c.answered(r, nets[0])


def mode_name(training):
    return "train" if training else "eval"


def shape_message(got, want, what, T):
    msg = (f"The {what} returned by {NAME} has shape {got}; one pass's output has shape {want}, "
           f"and the {what} over the {T} passes must have that shape too.")
    if got == ():
        msg += (" You reduced over everything at once: reduce only over the passes (the axis you "
                "stacked them along).")
    elif got == (1,) + want:
        msg += " Drop the axis of the passes after reducing over it (no keepdims)."
    elif len(got) == len(want) and T in got:
        msg += (" That is the shape you get by reducing over the wrong axis: over the points or "
                "outputs instead of over the passes.")
    else:
        msg += " Stack the passes along a new first axis and reduce over that axis only."
    return msg


def as_array(value, shape, what, T):
    """value must be an array shaped like one pass's output; say what is wrong if not."""
    if isinstance(value, dict):
        assert False, (f"{NAME} returned {value['not_array']} as the {what}, which the grader cannot "
                       "read; return NumPy arrays (the mean and the standard deviation over the passes).")
    assert value.shape == tuple(shape), shape_message(value.shape, tuple(shape), what, T)
    return value


def wrong_axes(passes, reduce):
    """What reducing the stacked passes (T, ...) over an axis other than the first gives, as
    the learner might have laid them out (also transposed)."""
    out = []
    for ax in range(1, passes.ndim):
        c = reduce(passes, axis=ax)
        out += [c, c.T]
    return out


def diagnose_mean(c, passes):
    mean, std, want = c.mean, c.std, passes.mean(axis=0)
    if c.close(mean, c.eval_output):
        return ("your mean is the eval-mode output (dropout off), not the average of the passes "
                "with dropout on.")
    if c.close(std, want) or c.close(mean, passes.std(axis=0)):
        return "the mean and the std are swapped: return (mean, std) in that order."
    if not np.isfinite(mean).all():
        return "your mean contains NaN or infinite values."
    err = float(np.max(np.abs(mean - want)))
    return (f"your mean differs from the average of the passes by up to {err:.3g}. Average the T "
            "outputs of net.forward(x), elementwise.")


def diagnose_std(c, passes, T):
    std, want = c.std, passes.std(axis=0)
    if T > 1 and c.close(std, passes.std(axis=0, ddof=1)):
        return (f"your std is the SAMPLE standard deviation (ddof=1, dividing by T − 1 = {T - 1}). "
                f"The contract asks for the population standard deviation over the passes, dividing "
                f"by T = {T} (np.std's default, ddof=0).")
    if T == 1 and np.isnan(std).any():
        return ("your std is NaN with a single pass: the sample standard deviation (ddof=1) divides "
                "by T − 1 = 0. The population standard deviation (ddof=0) of one pass is 0.")
    if c.close(std, want ** 2):
        return "you returned the variance: take its square root to get the standard deviation."
    if np.isnan(std).any():
        return ("your std contains NaN: a variance computed as E[f²] − E[f]² can come out slightly "
                "negative from rounding; clip it at 0 before the square root, or compute the "
                "deviations from the mean.")
    extra = std ** 2 - want ** 2
    if np.all(extra > 0) and np.ptp(extra) <= 1e-3 * np.max(extra):
        return (f"your std is too large by the same amount everywhere: its square exceeds the "
                f"variance of the passes by {np.max(extra):.3g} at every point. Do you add a small "
                "constant (for example inside the square root)? Return the plain population std.")
    i = int(np.argmax(np.abs(std - want)))
    return (f"your std differs from the population standard deviation of the passes by up to "
            f"{float(np.abs(std - want).flat[i]):.3g} (expected {want.flat[i]:.6g} at one point, "
            f"got {std.flat[i]:.6g}).")


# ---------------------------------------------------------------- checks
@mark.points(1)
def test_returns_mean_and_std_shaped_like_one_pass(learner):
    """returns a tuple (mean, std), each shaped like one pass's output"""
    for c in cases(learner, 100):
        for what in ("mean", "std"):
            as_array(c.r[what], c.shape, what, c.T)
        assert c.r["container"] == "tuple", (
            f"{NAME} returned a {c.r['container']} [mean, std]; the contract is a tuple (mean, std): "
            "return mean, std.")


@mark.points(2)
def test_runs_T_passes_with_dropout_on(learner):
    """runs exactly T forward passes of x with dropout on (train mode)"""
    for c in cases(learner, 200):
        T = c.T
        want = c.passes[:T].mean(axis=0)
        if c.k == T or c.close(c.mean, want) or c.close(c.std, want):
            continue   # the generator or the returned mean shows T passes with dropout on
        same_passes = c.close(c.std, np.zeros_like(want))   # every pass gave the same output
        if c.k == 0:
            if c.close(c.mean, c.eval_output):
                assert False, (
                    f"{c.where} Every pass ran with dropout off: your mean is the eval-mode output and "
                    "the network's random generator never drew a mask, so the spread is 0. MC dropout "
                    "keeps dropout ON at prediction time: put the network in train mode with "
                    "net.train() for the passes (and back afterwards). Assigning net.training = True "
                    "changes only the network's flag, not its dropout layers.")
            if same_passes and c.close(c.mean, c.passes[0]):
                assert False, (
                    f"{c.where} All your passes gave the same output, the one the network's first "
                    "pass with dropout on gives, while the network's own random generator never "
                    "moved: each pass ran on a fresh copy of the network, and a copy copies the "
                    "generator, so every copy draws the same masks. Run the T passes on one "
                    "network (or on one copy).")
            assert False, (
                f"{c.where} No forward pass ran with dropout on: the network's random generator "
                "never drew a mask. Call net.forward(x) T times with the network in train mode "
                "(net.train()).")
        if c.k is None:
            assert False, (
                f"{c.where} The network's random generator ended in a state that no number of "
                f"passes from 0 to {c.kmax} explains, and your mean is not the average of the first "
                f"{T} passes. Call net.forward(x) exactly T times, in train mode, and draw nothing "
                "else from the network's generator.")
        stacked = (c.k == 1 and T > 2 and same_passes)
        assert c.k >= T, (
            f"{c.where} Your function ran only {c.k} forward pass(es) with dropout on; it must run "
            f"T = {T}."
            + (" Check the bounds of your loop: range(T) runs T times." if c.k == T - 1 else "")
            + (" If you stacked T copies of x into one call of net.forward: a network may draw one "
               "mask per call (this one does, like DropConnect), and then all T copies share it. "
               "Call net.forward(x) T times." if stacked else ""))
        assert False, (
            f"{c.where} Your function ran {c.k} forward passes with dropout on; it must run exactly "
            f"T = {T} (each pass costs a full forward pass of the network).")


@mark.points(2)
def test_leaves_the_network_in_the_mode_it_found(learner):
    """leaves the network in the mode it found it (eval stays eval, train stays train)"""
    for c in cases(learner, 300):
        training = c.training
        flag, layers = c.r["training"], c.r["layers"]
        found = mode_name(training)
        assert isinstance(layers, list) and flag in (True, False), (
            f"After {NAME}, the network handed over in {found} mode no longer has its `training` flag "
            f"and dropout layers (training = {flag!r}): do not replace or delete the network's parts.")
        if flag == training and any(v != training for v in layers):
            assert False, (
                f"A network handed over in {found} mode came back with net.training = {training} "
                f"but its dropout layers in {mode_name(not training)} mode: you assigned "
                "net.training directly, which changes the network's flag only (or switched the "
                "layers through a shallow copy of the network, which shares them). Switch modes "
                "with net.train() / net.eval() on the network itself: they reach every dropout layer.")
        if not training:
            assert flag is False and not any(layers), (
                "A network handed over in eval mode was left in train mode: every later "
                "prediction with it would be random. Remember net.training before switching, "
                "and put the network back in eval mode at the end.")
        else:
            assert flag is True and all(layers), (
                "A network handed over in train mode (for example in the middle of training) was "
                "left in eval mode: training would go on without dropout. Restore the mode you "
                "found, rather than always calling net.eval() at the end.")


@mark.points(3)
def test_mean_and_population_std_of_the_passes(learner):
    """returns the mean and the population standard deviation (ddof = 0) over the passes"""
    # (T = 1, where the spread is 0, belongs to the last check.)
    for c in cases(learner, 400):
        shape, T, dtype = c.shape, c.T, c.dtype
        where = f"For {T} pass(es) of shape {shape}" + (" in float32" if dtype == np.float32 else "")
        for what in ("mean", "std"):
            value = c.r[what]
            if isinstance(value, np.ndarray) and value.shape != shape:
                assert False, (
                    f"{where}, your {what} has shape {value.shape} instead of {shape}, so its values "
                    f"cannot be the {what} over the passes (the shape check above says why).")
            as_array(value, shape, what, T)
        # which passes the function averaged is the previous check's business: here the
        # mean and std must be those of the passes it ran
        if any(c.close(c.mean, s.mean(axis=0)) and c.close(c.std, s.std(axis=0)) for s in c.stacks()):
            continue
        passes = c.main_stack()
        if not c.close(c.mean, passes.mean(axis=0)):
            assert False, f"{where}, " + diagnose_mean(c, passes)
        assert False, f"{where}, " + diagnose_std(c, passes, len(passes))


@mark.points(2)
def test_std_is_exactly_zero_when_every_pass_agrees(learner):
    """with p = 0 every pass is the same: the std is exactly 0 (never NaN) and the mean is that output"""
    # First with weights and inputs that are small multiples of powers of two: every output,
    # sum and square is exact in float64, so any honest formula gives exactly 0 and exactly
    # the output.  Then with ordinary numbers, where rounding may leave a tiny spread.
    for c in cases(learner, 500):
        shape, T, dyadic = c.shape, c.T, c.dyadic
        out = c.passes[0]
        mean, std = c.mean, c.std
        if not all(isinstance(v, np.ndarray) and v.shape == shape for v in (mean, std)):
            continue   # the form of the result is the first check's business
        limit = 0.0 if dyadic else 1e-6 * (1 + np.abs(out))
        if np.allclose(std, out, rtol=1e-9, atol=1e-12) and np.all(np.abs(mean) <= limit):
            continue   # (mean, std) swapped: the mean-and-std check reports it
        assert np.isfinite(std).all(), (
            f"With p = 0 all {T} passes are the same, but your std contains NaN or inf at "
            f"{int((~np.isfinite(std)).sum())} of {std.size} points: a variance computed as "
            "E[f²] − E[f]² can come out slightly negative from rounding; clip it at 0 before the "
            "square root, or compute the deviations from the mean.")
        assert np.all(np.abs(std) <= limit), (
            f"With p = 0 every one of the {T} passes is the same network, so the spread must be "
            + ("exactly 0" if dyadic else "0 up to rounding") + f"; your std was up to "
            f"{float(np.max(np.abs(std))):.3g}. Do you add a small constant (for example inside the "
            "square root)? Return the plain population standard deviation.")
        assert np.array_equal(mean, out) if dyadic else np.allclose(mean, out, rtol=1e-9, atol=1e-12), (
            f"With p = 0 every pass gives the same output, so the mean must equal it; yours "
            f"differs by up to {float(np.nanmax(np.abs(mean - out))):.3g}.")
