"""Checks for notebook 06: mc_dropout_predict(net, x, T) -> (mean, std).

The learner's function is run against a trusted stand-in network (SpyNet, below) whose
forward pass hands out pre-recorded outputs and logs every call and every change of
mode, so that the grading does not depend on the learner's own network: the checks know
exactly how many passes ran, in which mode, and which mean and population standard
deviation those passes have.  One check also runs the function on the course's network
(the instructor's RegressionMLP from solutions/06, executed inside the probe).
No check here is randomized in a way that could fail a correct implementation: the
spy's outputs are fixed by the grading seed, and the one real-network check is
deterministic for a given seed (see the comment there).
"""
import numpy as np
import pytest

pytestmark = pytest.mark.exercise("mc_dropout_predict")
USES = ("mc_dropout_predict",)
NAME = "mc_dropout_predict"


# ---------------------------------------------------------------- trusted code (runs in the sandbox)
class SpyNet:
    """A stand-in network.  In train mode the k-th call of forward(x) returns outputs[k]
    (cycling if more calls are made than outputs exist); in eval mode it returns
    eval_output; an input other than x raises ValueError.  `training` reads like a
    network's flag, but assigning it changes only the flag and not the (imaginary) dropout
    layers inside: only train()/eval() switch the layers, as in a network whose
    train()/eval() must reach every layer.  A copy (copy.copy / deepcopy) is a network of
    its own mode that shares the log, so passes run on a copy are counted too."""

    def __init__(self, x, outputs, eval_output, training, log=None):
        self._x, self._outputs, self._eval_output = x, outputs, eval_output
        self._flag = self._layers = bool(training)
        # calls: one bool per forward call (True = dropout on); handed: train-mode outputs
        # handed out; assigned: times `training` was assigned directly
        self.log = {"calls": [], "handed": 0, "assigned": 0} if log is None else log

    def __copy__(self):
        twin = SpyNet(self._x, self._outputs, self._eval_output, self._layers, self.log)
        twin._flag = self._flag
        return twin

    def __deepcopy__(self, memo):
        return self.__copy__()

    @property
    def training(self):
        return self._flag

    @training.setter
    def training(self, value):
        self.log["assigned"] += 1
        self._flag = bool(value)

    def train(self, mode=True):
        self._flag = self._layers = bool(mode)
        return self

    def eval(self):
        return self.train(False)

    def forward(self, x):
        a = np.asarray(x)
        if a.shape != self._x.shape or not np.array_equal(a, self._x):
            raise ValueError(
                f"net.forward got an input of shape {a.shape} that is not the x passed to "
                f"mc_dropout_predict (shape {self._x.shape}). Pass x itself, unchanged, on each of "
                "the T passes: one call of net.forward(x) per pass, not one call on T stacked "
                "copies.")
        self.log["calls"].append(self._layers)
        if not self._layers:
            return self._eval_output.copy()
        out = self._outputs[self.log["handed"] % len(self._outputs)].copy()
        self.log["handed"] += 1
        return out


def plain_arrays(value):
    """(mean, std) as float arrays where possible; otherwise the type's name (a string)."""
    got = []
    for v in value:
        if isinstance(v, np.ndarray) and v.dtype.kind in "biuf":
            got.append(v)
            continue
        try:
            got.append(np.asarray(v, dtype=float))
        except Exception:  # noqa: BLE001 - anything unreadable is reported by its type
            got.append(type(v).__name__)
    return got


def spy_run(nb, x, outputs, eval_output, T, training):
    f = nb.fn("mc_dropout_predict")
    net = SpyNet(x, list(outputs), eval_output, training)
    value = expect_pair(f(net, x, T), "mc_dropout_predict", "(mean, std)")
    mean, std = plain_arrays(value)
    return {"mean": mean, "std": std, "calls": net.log["calls"], "handed": net.log["handed"],
            "flag": net._flag, "layers": net._layers, "assigned": net.log["assigned"]}


def course_net_run(nb, reference, seed, T):
    """The learner's function on the course's own network (the instructor's code), with
    dropout (p = 0.25) and without (p = 0).  Weights and inputs are small multiples of
    powers of two, so every output is exact in float64: identical passes then have a mean
    equal to each pass and a spread of exactly 0 for any honest way of computing them."""
    f = nb.fn("mc_dropout_predict")
    ns = {"np": np}
    exec(reference, ns)
    x = ((2 * np.arange(-8, 9) + 1) / 8.0)[:, None]
    out = {}
    for p in (0.25, 0.0):
        net = ns["RegressionMLP"]([1, 16, 16, 1], p, np.random.default_rng(seed))
        for i in range(0, len(net.params), 2):
            net.params[i] = np.round(net.params[i] * 16) / 16
        net.eval()
        eval_pred = net.forward(x)
        value = expect_pair(f(net, x, T), "mc_dropout_predict", "(mean, std)")
        mean, std = plain_arrays(value)
        out[str(p)] = {"mean": mean, "std": std, "eval": eval_pred}
    return out


# ---------------------------------------------------------------- helpers (grader side)
def passes_for(learner, k, shape, T):
    """Pre-recorded outputs of T + 3 distinct passes (so extra passes differ too) and a
    distinct eval-mode output."""
    rng = learner.rng(k)
    outputs = rng.normal(2.0, 1.0, (T + 3,) + shape)
    return outputs, np.full(shape, -7.0)


def run_spy(learner, k, shape=(6, 3), T=5, training=False):
    x = np.linspace(-1, 1, shape[0])[:, None]
    outputs, eval_output = passes_for(learner, k, shape, T)
    r = learner.call(spy_run, USES, helpers=(SpyNet, plain_arrays), x=x, outputs=outputs,
                     eval_output=eval_output, T=T, training=training)
    r["outputs"] = outputs
    r["eval_output"] = eval_output
    return r


def definitions_only(source):
    """The reference source without its import lines: the classes need only np (which the
    probe has), and the notebook's other imports (pathlib, sys) are not needed in the sandbox
    — where a child running under an unprivileged uid may not even be able to read them."""
    return "\n".join(line for line in source.splitlines()
                     if not line.startswith(("import ", "from ")))


def mode_name(training):
    return "train" if training else "eval"


def as_array(value, shape, what, T):
    """value must be a float array shaped like one pass's output; say what is wrong if not."""
    assert not isinstance(value, str), (
        f"{NAME} returned a {value} as the {what}; return NumPy arrays (the mean and the standard "
        "deviation over the passes).")
    assert value.shape == shape, shape_message(value.shape, shape, what, T)
    return value


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


def wrong_axes(passes, reduce):
    """What reducing the stacked passes (T, ...) over an axis other than the first gives, as
    the learner might have laid them out (also transposed)."""
    out = []
    for ax in range(1, passes.ndim):
        c = reduce(passes, axis=ax)
        out += [c, c.T]
    return out


def close(a, b):
    return a.shape == b.shape and np.allclose(a, b, rtol=1e-6, atol=1e-9, equal_nan=False)


# ---------------------------------------------------------------- checks
@pytest.mark.points(1)
def test_returns_mean_and_std_shaped_like_one_pass(learner):
    """returns (mean, std), each shaped like one pass's output"""
    for k, (shape, T) in enumerate((((6, 3), 5), ((7,), 4), ((6, 3), 1))):
        r = run_spy(learner, 100 + k, shape, T)
        as_array(r["mean"], shape, "mean", T)
        as_array(r["std"], shape, "std", T)


@pytest.mark.points(2)
def test_runs_T_passes_with_dropout_on(learner):
    """runs exactly T forward passes of x, with dropout on (train mode)"""
    for k, (T, training) in enumerate(((5, False), (12, True), (1, False), (9, False))):
        r = run_spy(learner, 200 + k, (6, 3), T, training)
        on = sum(r["calls"])
        off = len(r["calls"]) - on
        where = f"(T = {T}, network handed over in {mode_name(training)} mode)"
        if on == 0:
            hint = (" Assigning net.training only changes the flag, not the dropout layers inside "
                    "the network: call net.train()." if r["assigned"] else "")
            assert off > 0, f"{where} {NAME} never called net.forward."
            assert False, (
                f"{where} All {off} forward passes ran in eval mode, i.e. with dropout off: every "
                "pass is then the same network, and the spread is 0. MC dropout keeps dropout ON at "
                "prediction time: switch the network to train mode for the passes (and back "
                "afterwards)." + hint)
        assert on >= T, (
            f"{where} Your function ran only {on} forward pass(es) with dropout on; it must run "
            f"T = {T}." + (" Check the bounds of your loop: range(T) runs T times." if on == T - 1 else ""))
        assert on <= T, (
            f"{where} Your function ran {on} forward passes with dropout on; it must run exactly "
            f"T = {T} (each pass costs a full forward pass of the network).")


@pytest.mark.points(2)
def test_leaves_the_network_in_the_mode_it_found(learner):
    """leaves the network in the mode it found it (eval stays eval, train stays train)"""
    for k, training in enumerate((False, True)):
        r = run_spy(learner, 300 + k, (6, 3), 5, training)
        found = mode_name(training)
        if r["layers"] != training and r["flag"] == training and r["assigned"]:
            assert False, (
                f"A network handed over in {found} mode came back with net.training = {training} "
                f"but its dropout layers still in {mode_name(r['layers'])} mode: you assigned "
                "net.training directly, which changes the network's flag only. Switch modes with "
                "net.train() / net.eval(), which reach every dropout layer.")
        if not training:
            assert r["layers"] is False and r["flag"] is False, (
                "A network handed over in eval mode was left in train mode: every later "
                "prediction with it would be random. Remember net.training before switching, "
                "and put the network back in eval mode at the end.")
        else:
            assert r["layers"] is True and r["flag"] is True, (
                "A network handed over in train mode (for example in the middle of training) was "
                "left in eval mode: training would go on without dropout. Restore the mode you "
                "found, rather than always calling net.eval() at the end.")


@pytest.mark.points(3)
def test_mean_and_population_std_of_the_passes(learner):
    """returns the mean and the population standard deviation (ddof = 0) over the passes"""
    cases = (((6, 3), 5, False), ((5, 5), 5, True), ((8,), 7, False), ((4, 2), 1, False))
    for k, (shape, T, training) in enumerate(cases):
        r = run_spy(learner, 400 + k, shape, T, training)
        mean = as_array(r["mean"], shape, "mean", T)
        std = as_array(r["std"], shape, "std", T)
        n = r["handed"]
        assert n > 0, (
            f"No pass ran with dropout on (T = {T}), so there was no spread to measure: see the "
            "check on the number of passes.")
        passes = r["outputs"][np.arange(n) % len(r["outputs"])]
        want_mean, want_std = passes.mean(axis=0), passes.std(axis=0)
        where = f"For {T} pass(es) of shape {shape}"
        if not close(mean, want_mean):
            assert False, where + ", " + diagnose_mean(mean, passes, r["eval_output"], want_mean, std)
        if not close(std, want_std):
            assert False, where + ", " + diagnose_std(std, mean, passes, want_std, T)


def diagnose_mean(mean, passes, eval_output, want, std):
    err = np.max(np.abs(mean - want))
    if close(mean, eval_output):
        return ("your mean is the eval-mode output (dropout off), not the average of the passes "
                "with dropout on.")
    if close(std, want) or close(mean, passes.std(axis=0)):
        return "the mean and the std are swapped: return (mean, std) in that order."
    if any(close(mean, c) for c in wrong_axes(passes, np.mean)):
        return ("your mean is an average over the wrong axis (across points or outputs) — average "
                "over the passes, the axis you stacked them along.")
    return (f"your mean differs from the average of the passes by up to {err:.3g}. Average the T "
            "outputs of net.forward(x), elementwise.")


def diagnose_std(std, mean, passes, want, T):
    if T > 1 and close(std, passes.std(axis=0, ddof=1)):
        return (f"your std is the SAMPLE standard deviation (ddof=1, dividing by T − 1 = {T - 1}). "
                f"The contract asks for the population standard deviation over the passes, dividing "
                f"by T = {T} (np.std's default, ddof=0).")
    if T == 1 and np.isnan(std).any():
        return ("your std is NaN with a single pass: the sample standard deviation (ddof=1) divides "
                "by T − 1 = 0. The population standard deviation (ddof=0) of one pass is 0.")
    if close(std, want ** 2):
        return "you returned the variance: take its square root to get the standard deviation."
    if any(close(std, c) for c in wrong_axes(passes, np.std)):
        return ("your std is taken over the wrong axis (across points or outputs) — take it over "
                "the passes, the axis you stacked them along.")
    extra = std ** 2 - want ** 2
    if np.all(extra > 0) and np.ptp(extra) <= 1e-3 * np.max(extra):
        return (f"your std is too large by the same amount everywhere: its square exceeds the "
                f"variance of the passes by {np.max(extra):.3g} at every point. Do you add a small "
                "constant (for example inside the square root)? Return the plain population std.")
    if np.isnan(std).any():
        return ("your std contains NaN: a variance computed as E[f²] − E[f]² can come out slightly "
                "negative from rounding; clip it at 0 before the square root, or compute the "
                "deviations from the mean.")
    err = np.max(np.abs(std - want))
    i = int(np.argmax(np.abs(std - want)))
    return (f"your std differs from the population standard deviation of the passes by up to "
            f"{err:.3g} (expected {want.flat[i]:.6g} at one point, got {std.flat[i]:.6g}).")


@pytest.mark.points(2)
def test_spread_with_dropout_and_none_without(learner):
    """on the course's network: std > 0 with dropout (p = 0.25), exactly 0 with p = 0"""
    T, x_shape = 20, (17, 1)
    r = learner.call(course_net_run, USES, helpers=(plain_arrays,),
                     reference=definitions_only(learner.reference("Dropout", "RegressionMLP")),
                     seed=learner.seed(500), T=T)
    drop, none = r["0.25"], r["0.0"]
    as_array(drop["mean"], x_shape, "mean", T)
    std = as_array(drop["std"], x_shape, "std", T)
    # Deterministic for a given seed.  With 16 + 16 hidden units at p = 0.25, an input's
    # output has zero spread over 20 passes only if no kept unit ever reaches it (the inputs
    # are odd multiples of 1/8: at x = 0, with zero biases, every unit would be 0 whatever the
    # mask).  The reference solution has spread at all 17 inputs for every seed tried (0..199),
    # so demanding it at 9 of 17 leaves a wide margin, while dropout off gives 0 of 17.
    assert not np.isnan(std).any(), (
        "With dropout (p = 0.25) on the course's network your std contains NaN: compute it from "
        "the deviations from the mean (or clip a variance computed as E[f²] − E[f]² at 0).")
    positive = int((std > 0).sum())
    assert positive >= 9, (
        f"With dropout (p = 0.25) on the course's network, your std was 0 at {17 - positive} of 17 "
        "inputs: the passes were identical. Is dropout really on during the passes (train mode)?")
    mean0 = as_array(none["mean"], x_shape, "mean", T)
    std0 = as_array(none["std"], x_shape, "std", T)
    assert np.all(std0 == 0), (
        f"With p = 0 every pass is the same network, so the spread must be exactly 0; your std was "
        f"up to {np.nanmax(np.abs(std0)):.3g}" + (" (and NaN somewhere)" if np.isnan(std0).any() else "")
        + ". Do you add a small constant (for example inside the square root)?")
    assert np.array_equal(mean0, none["eval"]), (
        f"With p = 0 every pass equals the eval-mode output, so the mean must equal it; yours "
        f"differs by up to {np.nanmax(np.abs(mean0 - none['eval'])):.3g}.")
