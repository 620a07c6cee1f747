"""Checks for notebook 05: the Dropout layer (shaped like torch.nn.Dropout) and the MLP around it.

Contract (stated in the notebook):
  Dropout(p, rng=None): attributes p, rng, training (True after construction); train()/eval()
    set training and return the layer; forward(x): training -> x * mask / (1 - p) with a fresh
    mask per call (keep probability 1 - p per element), eval -> x; backward(dout) uses the mask
    of the last forward.  p outside [0, 1] -> ValueError.  Masks are drawn from `self.rng`.
  MLP(sizes, p_drop, rng=None): params {"W1", "b1", ...} (float64; the arrays the network uses),
    dropouts (one Dropout per hidden layer, input side first), training; train()/eval() reach
    every dropout layer and return the network; forward(X) -> scores; loss(X, y) -> (loss, grads).

Probes run in the learner's sandboxed process and return plain data; every comparison happens
here.  Randomized checks use fixed seeds (learner.seed) and bounds whose false-failure
probability for a correct implementation is stated next to each of them.
"""
import numpy as np
import pytest

from grader.dropout_checks import assert_independent_coins
from grader.stats import hoeffding, pct

LAYER = ("Dropout",)
NET = ("MLP", "Dropout")


# ---------------------------------------------------------------- helpers shipped to the sandbox
def plain(value, label):
    """A learner's array as a plain float/bool ndarray; LearnerFailure if it is not one."""
    if isinstance(value, np.ndarray) and value.dtype.kind in "biuf":
        return np.array(value)
    what = f"an array of dtype {value.dtype}" if isinstance(value, np.ndarray) else \
        ("None" if value is None else f"a {type(value).__name__}")
    raise LearnerFailure("contract", label.split(".")[0],
                         f"{label} returned {what}; it should return a NumPy array of numbers")


def method(nb, obj, name, owner):
    """obj.name as a guarded callable; a clear contract failure if there is no such method."""
    try:
        f = getattr(obj, name)
    except AttributeError:
        f = None
    except Exception as e:  # noqa: BLE001 - a learner property that raises
        raise LearnerRaised(f"{owner}.{name}", e)
    if not callable(f):
        raise LearnerFailure("contract", owner, f"{owner} has no method {name}(); the contract "
                             "(the table at the top of the notebook) asks for one")
    return lambda *a: nb.run(f"{owner}.{name}", f, *a)


def mode(obj):
    """obj.training as plain data: True/False, or a short description of what is there."""
    try:
        v = obj.training
    except AttributeError:
        return "missing"
    except Exception:  # noqa: BLE001
        return "error"
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return "a " + type(v).__name__


def layer(nb, p, seed):
    return nb.run("Dropout", nb.get("Dropout"), p, rng=np.random.default_rng(seed))


def network(nb, sizes, p_drop, seed, params=None):
    """The learner's MLP, its params dict and its dropout layers (params overwritten in place)."""
    nb.run("Dropout", nb.get("Dropout"), 0.5, rng=np.random.default_rng(0))  # the MLP needs it
    net = nb.run("MLP", nb.get("MLP"), sizes, p_drop, rng=np.random.default_rng(seed))
    P = getattr(net, "params", None)
    if not isinstance(P, dict):
        raise LearnerFailure("contract", "MLP", "net.params should be a dict of arrays "
                             f"{{'W1': ..., 'b1': ...}}; it is {type(P).__name__}")
    layers = getattr(net, "dropouts", None)
    if not isinstance(layers, (list, tuple)):
        raise LearnerFailure("contract", "MLP", "net.dropouts should be a list of the network's "
                             f"Dropout layers; it is {type(layers).__name__}")
    for k, v in (params or {}).items():
        have = P.get(k)
        if not isinstance(have, np.ndarray) or have.shape != v.shape:
            what = "missing" if have is None else (
                f"has shape {have.shape}" if isinstance(have, np.ndarray) else f"is a {type(have).__name__}")
            raise LearnerFailure("contract", "MLP", f"net.params[{k!r}] is {what}; expected an array "
                                 f"of shape {v.shape} for sizes {list(sizes)} (W_i is "
                                 "(sizes[i-1], sizes[i]) so that h @ W + b works; b_i is (sizes[i],))")
        if have.dtype != np.float64:
            raise LearnerFailure("contract", "MLP", f"net.params[{k!r}] has dtype {have.dtype}; "
                                 "the parameters should be float64 (a gradient check needs it)")
        have[...] = v
    return net, P, layers


SHIPPED = (plain, method, mode, layer)
SHIPPED_NET = (plain, method, mode, network)


# ---------------------------------------------------------------- probes: the layer
def construct(nb, p, seed):
    d = layer(nb, p, seed)
    try:
        got = float(d.p)
    except Exception:  # noqa: BLE001 - missing or not a number
        got = None
    return {"training": mode(d), "p": got}


def invalid(nb, ps):
    out = []
    for p in ps:
        try:
            nb.run("Dropout", nb.get("Dropout"), p, rng=np.random.default_rng(0))
            out.append("accepted")
        except LearnerRaised as e:
            out.append(e.type)
    return out


def switch(nb, seed):
    d = layer(nb, 0.3, seed)
    r_eval = method(nb, d, "eval", "Dropout")()
    after_eval = mode(d)
    r_train = method(nb, d, "train", "Dropout")()
    return {"eval_self": r_eval is d, "eval_type": type(r_eval).__name__, "after_eval": after_eval,
            "train_self": r_train is d, "train_type": type(r_train).__name__, "after_train": mode(d)}


def train_forward(nb, p, seed, x_seed, shape, calls=1):
    x = np.random.default_rng(x_seed).uniform(1.0, 2.0, shape)
    x0 = x.copy()
    fwd = method(nb, layer(nb, p, seed), "forward", "Dropout")
    outs = [plain(fwd(x), "Dropout.forward") for _ in range(calls)]
    return {"x": x0, "outs": outs, "x_changed": not np.array_equal(x, x0)}


def kept_masks(nb, p, seed, shape, calls):
    fwd = method(nb, layer(nb, p, seed), "forward", "Dropout")
    return [plain(fwd(np.ones(shape)), "Dropout.forward") != 0 for _ in range(calls)]


def eval_mode(nb, p, seed, x_seed):
    g = np.random.default_rng(x_seed)
    x, dout = g.uniform(1.0, 2.0, (300, 200)), g.standard_normal((300, 200))
    x0 = x.copy()
    rng = np.random.default_rng(seed)
    d = nb.run("Dropout", nb.get("Dropout"), p, rng=rng)
    method(nb, d, "eval", "Dropout")()
    before = rng.bit_generator.state["state"]["state"]
    fwd = method(nb, d, "forward", "Dropout")
    o1 = plain(fwd(x.copy()), "Dropout.forward")
    o2 = plain(fwd(x.copy()), "Dropout.forward")
    dx = plain(method(nb, d, "backward", "Dropout")(dout.copy()), "Dropout.backward")
    drew = rng.bit_generator.state["state"]["state"] != before
    return {"x": x0, "dout": dout, "outs": [o1, o2], "dx": dx,
            "drew": drew, "mode": mode(d)}


def rng_use(nb, p, seed):
    fwd = lambda d: plain(method(nb, d, "forward", "Dropout")(np.ones((50, 40))), "Dropout.forward")  # noqa: E731
    np.random.seed(12345)
    global_before = np.random.get_state()[1].copy()
    a = layer(nb, p, seed)
    first = fwd(a)
    global_same = bool((np.random.get_state()[1] == global_before).all())
    same_seed = fwd(layer(nb, p, seed))
    other_seed = fwd(layer(nb, p, seed + 1))
    a.rng = np.random.default_rng(seed)          # what the network's gradient check does
    reseeded = fwd(a)
    cls = nb.get("Dropout")
    nones = [fwd(nb.run("Dropout", cls, p)) for _ in range(2)]
    return {"first": first, "same_seed": same_seed, "other_seed": other_seed, "reseeded": reseeded,
            "global_same": global_same, "none": nones}


def backward_probe(nb, p, seed, x_seed):
    g = np.random.default_rng(x_seed)
    x, dout = g.uniform(1.0, 2.0, (200, 300)), g.standard_normal((200, 300))
    d = layer(nb, p, seed)
    fwd, back = method(nb, d, "forward", "Dropout"), method(nb, d, "backward", "Dropout")
    out1 = plain(fwd(x.copy()), "Dropout.forward")
    dx1 = plain(back(dout.copy()), "Dropout.backward")
    out2 = plain(fwd(x.copy()), "Dropout.forward")
    dx2 = plain(back(dout.copy()), "Dropout.backward")
    return {"x": x, "dout": dout, "outs": [out1, out2], "dxs": [dx1, dx2]}


def edges(nb, seed, x_seed):
    g = np.random.default_rng(x_seed)
    x, dout = g.standard_normal((30, 40)), g.standard_normal((30, 40))
    res = {}
    for p in (0.0, 0, 1.0, 1):
        key = repr(p)
        try:
            with np.errstate(all="raise"):
                d = layer(nb, p, seed)
                out = plain(method(nb, d, "forward", "Dropout")(x.copy()), "Dropout.forward")
                dx = plain(method(nb, d, "backward", "Dropout")(dout.copy()), "Dropout.backward")
            res[key] = {"out": out, "dx": dx}
        except LearnerRaised as e:
            res[key] = {"raised": f"{e.function} raised {e}"}
    return {"x": x, "dout": dout, "res": res}


# ---------------------------------------------------------------- probes: the network
def structure(nb, sizes, p_drop, seed):
    net, P, layers = network(nb, sizes, p_drop, seed)
    shapes = {str(k): (list(v.shape) if isinstance(v, np.ndarray) else type(v).__name__) for k, v in P.items()}
    rates = []
    for d in layers:
        try:
            rates.append(float(d.p))
        except Exception:  # noqa: BLE001
            rates.append(None)
    return {"shapes": shapes, "rates": rates, "types": [type(d).__name__ for d in layers],
            "is_dropout": [isinstance(d, nb.get("Dropout")) for d in layers],
            "training": mode(net), "layer_modes": [mode(d) for d in layers]}


def net_switch(nb, sizes, p_drop, seed):
    net, P, layers = network(nb, sizes, p_drop, seed)
    r_eval = method(nb, net, "eval", "MLP")()
    after_eval = [mode(net)] + [mode(d) for d in layers]
    r_train = method(nb, net, "train", "MLP")()
    after_train = [mode(net)] + [mode(d) for d in layers]
    return {"eval_self": r_eval is net, "eval_type": type(r_eval).__name__, "after_eval": after_eval,
            "train_self": r_train is net, "train_type": type(r_train).__name__, "after_train": after_train}


def net_scores(nb, sizes, p_drop, seed, params, X, train_calls):
    net, P, layers = network(nb, sizes, p_drop, seed, params)
    fwd = method(nb, net, "forward", "MLP")
    method(nb, net, "eval", "MLP")()
    evals = [plain(fwd(X), "MLP.forward") for _ in range(2)]
    method(nb, net, "train", "MLP")()
    trains = [plain(fwd(X), "MLP.forward") for _ in range(train_calls)]
    return {"eval": evals, "train": trains}


def net_gradcheck(nb, sizes, p_drop, seed, params, X, y, h):
    net, P, layers = network(nb, sizes, p_drop, seed, params)
    method(nb, net, "train", "MLP")()
    loss = method(nb, net, "loss", "MLP")

    def reseed(s):
        for k, d in enumerate(layers):
            d.rng = np.random.default_rng([s, k])

    def evaluate():
        v = loss(X, y)
        if not (isinstance(v, tuple) and len(v) == 2):
            raise LearnerFailure("contract", "MLP", "net.loss(X, y) should return a pair (loss, grads); "
                                 f"it returned {type(v).__name__}")
        try:
            value = float(v[0])
        except (TypeError, ValueError):
            raise LearnerFailure("contract", "MLP", "the loss returned by net.loss should be a number; "
                                 f"it is {type(v[0]).__name__}") from None
        return value, v[1]

    reseed(seed)
    l0, grads = evaluate()
    if not isinstance(grads, dict):
        raise LearnerFailure("contract", "MLP", f"grads should be a dict like params; it is {type(grads).__name__}")
    analytic = {}
    for k, theta in params.items():
        g = grads.get(k)
        if not isinstance(g, np.ndarray) or g.shape != theta.shape:
            what = "missing" if g is None else (f"has shape {g.shape}" if isinstance(g, np.ndarray)
                                                else f"is a {type(g).__name__}")
            raise LearnerFailure("contract", "MLP", f"grads[{k!r}] is {what}; it should be an array "
                                 f"shaped like params[{k!r}], {theta.shape}")
        analytic[k] = plain(g, "MLP.loss")
    reseed(seed)
    l1 = evaluate()[0]
    reseed(seed + 1)
    l2 = evaluate()[0]
    numeric = {}
    for k in params:
        theta, num = P[k], np.zeros(params[k].shape)
        for idx in np.ndindex(theta.shape):
            old = theta[idx]
            theta[idx] = old + h
            reseed(seed)
            plus = evaluate()[0]
            theta[idx] = old - h
            reseed(seed)
            minus = evaluate()[0]
            theta[idx] = old
            num[idx] = (plus - minus) / (2 * h)
        numeric[k] = num
    return {"losses": [l0, l1, l2], "analytic": analytic, "numeric": numeric}


# ---------------------------------------------------------------- grader-side helpers
def same_shape(value, shape, call):
    assert isinstance(value, np.ndarray) and value.shape == tuple(shape), (
        f"{call} returned shape {getattr(value, 'shape', None)}; expected {tuple(shape)} (the shape of x).")
    return value


def kink_free(rng, sizes, p_drop, n):
    """X and parameters for a 2-hidden-layer net whose ReLUs are never within reach of their kink.

    Layer-1 pre-activations are redrawn until all are at least 0.05 away from 0 (a finite-
    difference step of 1e-5 moves them by < 1e-4).  Layer-2 biases exceed the largest possible
    |h1 @ W2| over every dropout mask by 0.5, so each layer-2 unit is on (or, the last one, off)
    whatever the masks are.  The output biases are nonzero, so an honest score is never exactly 0.
    """
    D, H1, H2, C = sizes
    X = rng.standard_normal((n, D))
    while True:
        W1, b1 = 0.6 * rng.standard_normal((D, H1)), 0.3 * rng.standard_normal(H1)
        A1 = X @ W1 + b1
        if np.abs(A1).min() > 0.05 and (A1 > 0).any(axis=0).all():
            break
    W2 = 0.6 * rng.standard_normal((H1, H2))
    reach = (np.maximum(A1, 0) / (1 - p_drop[0]) @ np.abs(W2)).max(axis=0)
    sign = np.ones(H2)
    sign[-1] = -1.0
    b2 = sign * (reach + 0.5)
    W3 = 0.5 * rng.standard_normal((H2, C))
    b3 = rng.choice([-1.0, 1.0], C) * (0.5 + np.abs(rng.standard_normal(C)))
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}
    return X, params


def reference_scores(X, params):
    h = np.maximum(X @ params["W1"] + params["b1"], 0)
    h = np.maximum(h @ params["W2"] + params["b2"], 0)
    return h @ params["W3"] + params["b3"]


NET_SIZES, NET_RATES, NET_N = [4, 6, 5, 3], [0.2, 0.6], 10


def net_case(learner, k):
    X, params = kink_free(learner.rng(k), NET_SIZES, NET_RATES, NET_N)
    return X, params


def layer_call(p):
    return f"Dropout({p}).forward(x)"


# ================================================================ checks: Dropout
@pytest.mark.exercise("Dropout")
class TestDropout:
    @pytest.mark.points(1)
    def test_construct(self, learner):
        """Dropout(p, rng) stores p and starts in training mode"""
        r = learner.call(construct, LAYER, helpers=SHIPPED, p=0.3, seed=learner.seed(1))
        assert r["training"] is True, (
            f"After Dropout(0.3, rng) the attribute `training` is {r['training']!r}; a new layer "
            "starts in training mode (training = True), as torch.nn.Dropout does.")
        assert r["p"] is not None and abs(r["p"] - 0.3) < 1e-12, (
            f"Dropout(0.3, rng).p is {r['p']!r}; store the drop probability as the attribute `p`.")

    @pytest.mark.points(1)
    def test_rejects_bad_p(self, learner):
        """Dropout(p) raises ValueError for p outside [0, 1] (including NaN)"""
        ps = [-0.1, 1.1, 2, float("nan")]
        got = learner.call(invalid, LAYER, ps=ps)
        for p, what in zip(ps, got):
            assert what != "accepted", (
                f"Dropout({p}) was accepted. p is a probability: raise ValueError outside [0, 1]"
                + (" (NaN fails every comparison, so write the test so that NaN lands on the error "
                   "side)." if p != p else "."))
            assert what == "ValueError", f"Dropout({p}) raised {what}; the contract asks for ValueError."

    @pytest.mark.points(1)
    def test_train_eval_return_the_layer(self, learner):
        """train() and eval() set `training` and return the layer itself"""
        r = learner.call(switch, LAYER, helpers=SHIPPED, seed=learner.seed(2))
        assert r["after_eval"] is False, (
            f"After layer.eval() the attribute `training` is {r['after_eval']!r}; eval() must set "
            "training = False, or the layer keeps dropping at evaluation time.")
        assert r["after_train"] is True, (
            f"After layer.train() the attribute `training` is {r['after_train']!r}; train() must set "
            "training = True.")
        for name in ("eval", "train"):
            assert r[f"{name}_self"], (
                f"layer.{name}() returned {r[f'{name}_type']}; return the layer itself (return self), "
                f"as torch.nn.Module.{name}() does, so that calls chain: layer.{name}().forward(x).")

    @pytest.mark.points(2)
    def test_training_forward(self, learner):
        """training mode drops each element with probability p and divides the survivors by 1 − p (p = 0.2, 0.7)"""
        shape, n = (400, 500), 400 * 500
        tol = hoeffding(n)  # 2 uses: false failure < 2e-10
        for k, p in enumerate((0.2, 0.7)):
            r = learner.call(train_forward, LAYER, helpers=SHIPPED, p=p, seed=learner.seed(10 + k),
                             x_seed=learner.seed(20 + k), shape=shape)
            x, out = r["x"], same_shape(r["outs"][0], shape, layer_call(p))
            assert not r["x_changed"], (
                f"{layer_call(p)} changed its input x in place; compute a new array (x * mask …) "
                "instead of writing into x — the caller (and backward) still need the original.")
            kept = out != 0
            share = kept.mean()
            assert share > 0, (
                f"{layer_call(p)} in training mode returned all zeros; at p = {p} it should keep "
                f"{pct(1 - p)} of the elements.")
            assert abs(share - p) >= tol or abs(share - (1 - p)) < tol, (
                f"At p = {p} your layer kept {pct(share, 2)} of the elements: keep and drop are swapped. "
                "p is the probability of DROPPING an element; keep each with probability 1 − p.")
            assert share < 1 - 1e-12, (
                f"{layer_call(p)} dropped nothing on a fresh layer: a new layer is in training mode, "
                "and in training mode it must zero elements at rate p.")
            assert abs(share - (1 - p)) < tol, (
                f"At p = {p} your layer kept {pct(share, 2)} of {n} elements; expected "
                f"{pct(1 - p)} ± {pct(tol, 2)}.")
            ratio = out[kept] / x[kept]
            want = 1 / (1 - p)
            if not np.allclose(ratio, want, rtol=1e-6, atol=0):
                med = float(np.median(ratio))
                if abs(med - 1) < 1e-9:
                    hint = ("it forgets the scale: the survivors are returned as they are, so the "
                            f"expected output is (1 − p)·x = {1 - p:g}·x instead of x. Divide the kept "
                            "elements by 1 − p (inverted dropout).")
                elif abs(med - 1 / p) < 1e-6:
                    hint = "it divides by p; inverted dropout divides by the KEEP probability 1 − p."
                else:
                    hint = "check the scale factor: inverted dropout divides the kept elements by 1 − p."
                assert False, (
                    f"At p = {p} the kept elements were multiplied by {med:.4g} (median of out / x); "
                    f"expected 1 / (1 − p) = {want:.4g}: {hint}")
        r = learner.call(train_forward, LAYER, helpers=SHIPPED, p=0.3, seed=learner.seed(12),
                         x_seed=learner.seed(22), shape=(3, 4, 5))
        same_shape(r["outs"][0], (3, 4, 5), "Dropout(0.3).forward(x) on a 3-D x")

    @pytest.mark.points(1)
    def test_fresh_independent_masks(self, learner):
        """a fresh mask on every forward call, with an independent coin per element"""
        shape, p = (2000, 50), 0.3
        m1, m2 = learner.call(kept_masks, LAYER, helpers=SHIPPED, p=p, seed=learner.seed(30),
                              shape=shape, calls=2)
        same_shape(m1, shape, layer_call(p))
        # two correct masks agree everywhere with probability (0.7² + 0.3²)^100000 ≈ 0
        assert not np.array_equal(m1, m2), (
            "Two forward calls in training mode dropped exactly the same elements: draw a new mask "
            "on every forward call (is a seed fixed, or the mask drawn once in __init__?).")
        assert_independent_coins(m1, "training-mode mask")

    @pytest.mark.points(2)
    def test_eval_is_identity(self, learner):
        """eval mode returns x unchanged (the same every time) and backward passes dout through"""
        p = 0.4
        r = learner.call(eval_mode, LAYER, helpers=SHIPPED, p=p, seed=learner.seed(40),
                         x_seed=learner.seed(41))
        x = r["x"]
        o1, o2 = (same_shape(o, x.shape, "Dropout(0.4).eval().forward(x)") for o in r["outs"])
        zeros = (o1 == 0).mean()
        assert zeros == 0 and np.array_equal(o1, o2), (
            f"In eval mode your layer still drops: {pct(zeros)} of the outputs were 0"
            + ("" if np.array_equal(o1, o2) else " and two calls gave different outputs")
            + ". After eval(), forward must return x unchanged — check self.training in forward.")
        if not np.array_equal(o1, x):
            ratio = float(np.median(o1 / x))
            assert False, (
                f"In eval mode the output is {ratio:.4g}·x instead of x. With inverted dropout the "
                "scaling happens during training only; eval mode is the identity.")
        dx = same_shape(r["dx"], x.shape, "Dropout.backward(dout) in eval mode")
        assert np.array_equal(dx, r["dout"]), (
            "In eval mode backward should pass dout through unchanged (the layer is the identity); "
            f"your dx differs from dout (dx / dout ≈ {float(np.median(dx / r['dout'])):.4g}).")

    @pytest.mark.points(1)
    def test_eval_draws_nothing(self, learner):
        """eval mode draws no random numbers"""
        r = learner.call(eval_mode, LAYER, helpers=SHIPPED, p=0.4, seed=learner.seed(42),
                         x_seed=learner.seed(43))
        assert not r["drew"], (
            "In eval mode your layer still drew random numbers from its generator (its state "
            "changed), even though nothing is dropped. Check self.training before drawing: wasted "
            "draws shift every later mask and make runs hard to reproduce.")

    @pytest.mark.points(1)
    def test_uses_its_generator(self, learner):
        """draws the masks from `self.rng`, the generator it was given (reseedable, no global RNG)"""
        r = learner.call(rng_use, LAYER, helpers=SHIPPED, p=0.3, seed=learner.seed(50))
        assert r["global_same"], (
            "Your layer draws from NumPy's global generator (np.random.rand / np.random.seed …). "
            "Draw from self.rng, the generator passed to the constructor.")
        assert np.array_equal(r["first"], r["same_seed"]), (
            "Two layers made with generators of the same seed dropped different elements: the mask "
            "should depend only on the generator passed as rng.")
        # two correct masks of 2000 elements agree with probability 0.58^2000 ≈ 1e-473
        assert not np.array_equal(r["first"], r["other_seed"]), (
            "Layers with generators of different seeds dropped the same elements: is a seed fixed "
            "inside the layer?")
        assert np.array_equal(r["first"], r["reseeded"]), (
            "After `layer.rng = np.random.default_rng(seed)` the layer did not repeat the mask that "
            "generator gives: draw from the attribute self.rng at every forward call (do not keep "
            "a second reference or a copy). The gradient check of the network relies on this.")
        assert not np.array_equal(*r["none"]), (
            "With rng=None two layers dropped the same elements: make a fresh "
            "np.random.default_rng() when no generator is passed (never a fixed seed).")

    @pytest.mark.points(2)
    def test_backward_uses_the_cached_mask(self, learner):
        """backward multiplies dout by the mask of the last forward, divided by 1 − p"""
        p = 0.35
        r = learner.call(backward_probe, LAYER, helpers=SHIPPED, p=p, seed=learner.seed(60),
                         x_seed=learner.seed(61))
        x, dout = r["x"], r["dout"]
        for k, (out, dx) in enumerate(zip(r["outs"], r["dxs"]), start=1):
            same_shape(out, x.shape, layer_call(p))
            dx = same_shape(dx, x.shape, "Dropout.backward(dout)")
            expected = dout * out / x  # = dout · mask / (1 − p); x has no zeros
            if np.allclose(dx, expected, rtol=1e-9, atol=1e-12):
                continue
            pattern = ((dx != 0) != (out != 0)).mean()
            if pattern > 0:
                which = "the first forward" if k == 1 else "the second of two forward calls"
                assert False, (
                    f"After {which}, backward's dx is zero/non-zero in a different pattern from the "
                    f"elements forward dropped ({pct(pattern)} of the elements disagree): backward "
                    "draws a new mask (or uses an old one). Cache the mask in forward and multiply "
                    "by that same mask in backward.")
            kept = out != 0
            ratio = float(np.median(dx[kept] / dout[kept]))
            hint = (" — it forgets the 1/(1 − p) scale in backward" if abs(ratio - 1) < 1e-9 else
                    " — it divides by 1 − p twice" if abs(ratio - (1 - p) ** -2) < 1e-6 else "")
            assert False, (
                f"backward scaled the kept gradients by {ratio:.4g}; the derivative of "
                f"x · mask / (1 − p) is mask / (1 − p) = {1 / (1 - p):.4g} where kept{hint}.")

    @pytest.mark.points(1)
    def test_p_zero_and_one(self, learner):
        """p = 0 keeps everything; p = 1 drops everything (no NaN, no warning), forward and backward"""
        r = learner.call(edges, LAYER, helpers=SHIPPED, seed=learner.seed(70), x_seed=learner.seed(71))
        x, dout = r["x"], r["dout"]
        for p in ("0.0", "0", "1.0", "1"):
            res = r["res"][p]
            assert "raised" not in res, (
                f"At p = {p}: {res.get('raised')}. "
                + ("Do not divide by 1 − p when it is 0: at p = 1 return zeros directly."
                   if p.startswith("1") else "At p = 0 nothing is dropped and nothing scaled."))
            out = same_shape(res["out"], x.shape, f"Dropout({p}).forward(x)")
            dx = same_shape(res["dx"], x.shape, f"Dropout({p}).backward(dout)")
            if p.startswith("0"):
                assert np.array_equal(out, x) and np.array_equal(dx, dout), (
                    f"At p = {p} the layer should return x unchanged and pass dout through; "
                    f"{int((out != x).sum())} outputs and {int((dx != dout).sum())} gradients differed.")
            else:
                bad = int(np.isnan(out).sum() + np.isnan(dx).sum())
                assert bad == 0, (
                    f"At p = 1 the layer produced {bad} NaN values: 0/0 from dividing by 1 − p = 0. "
                    "Return zeros without dividing.")
                assert not out.any() and not dx.any(), (
                    f"At p = 1 everything is dropped: the output and the gradient should be all "
                    f"zeros; {int((out != 0).sum())} outputs and {int((dx != 0).sum())} gradients were not.")


# ================================================================ checks: MLP
@pytest.mark.exercise("MLP")
class TestMLP:
    @pytest.mark.points(1)
    def test_structure(self, learner):
        """MLP(sizes, p_drop, rng) has params of the right shapes and one Dropout per hidden layer, with its rate"""
        for sizes, p_drop in (([4, 6, 5, 7, 3], [0.1, 0.3, 0.6]), ([3, 8, 2], 0.25)):
            r = learner.call(structure, NET, helpers=SHIPPED_NET, sizes=sizes, p_drop=p_drop,
                             seed=learner.seed(100))
            call = f"MLP({sizes}, {p_drop})"
            L = len(sizes) - 1
            want = {f"W{i}": [sizes[i - 1], sizes[i]] for i in range(1, L + 1)}
            want.update({f"b{i}": [sizes[i]] for i in range(1, L + 1)})
            assert set(r["shapes"]) == set(want), (
                f"{call}.params has keys {sorted(r['shapes'])}; expected {sorted(want)} "
                "(one W and one b per affine layer, numbered from 1).")
            for k, shape in want.items():
                assert r["shapes"][k] == shape, (
                    f"{call}.params[{k!r}] has shape {r['shapes'][k]}; expected {tuple(shape)}.")
            rates = [p_drop] * (L - 1) if np.ndim(p_drop) == 0 else list(p_drop)
            n = len(r["rates"])
            assert n == L - 1, (
                f"{call} has {n} dropout layers; expected {L - 1}, one after each hidden layer"
                + (" — none after the output layer: the scores go straight to the loss."
                   if n == L else "."))
            assert all(r["is_dropout"]), (
                f"{call}.dropouts holds {r['types']}; it should hold your Dropout layers.")
            assert all(g is not None and abs(g - w) < 1e-12 for g, w in zip(r["rates"], rates)), (
                f"{call}: the dropout layers' rates are {r['rates']}; expected {rates} — one rate per "
                "hidden layer, input side first" + (" (a single float applies to every hidden layer)."
                                                    if np.ndim(p_drop) == 0 else "."))
            assert r["training"] is True and all(m is True for m in r["layer_modes"]), (
                f"A new {call} should be in training mode, with every dropout layer too; got "
                f"net.training = {r['training']!r}, layers {r['layer_modes']}.")

    @pytest.mark.points(1)
    def test_train_eval_reach_every_layer(self, learner):
        """net.train() and net.eval() switch the network and every dropout layer, and return the network"""
        sizes, p_drop = [4, 6, 5, 7, 3], [0.1, 0.3, 0.6]
        r = learner.call(net_switch, NET, helpers=SHIPPED_NET, sizes=sizes, p_drop=p_drop,
                         seed=learner.seed(110))
        for name, want in (("eval", False), ("train", True)):
            net_mode, *layer_modes = r[f"after_{name}"]
            wrong = [i for i, m in enumerate(layer_modes, start=1) if m is not want]
            assert not wrong, (
                f"After net.{name}(), dropout layer(s) {wrong} have training = "
                f"{[layer_modes[i - 1] for i in wrong]}: net.{name}() did not reach every dropout layer. "
                f"Call {name}() on each of them (and check that Dropout.{name}() sets training).")
            assert net_mode is want, f"After net.{name}(), net.training is {net_mode!r}; expected {want}."
            assert r[f"{name}_self"], (
                f"net.{name}() returned {r[f'{name}_type']}; return the network itself (return self), "
                "as torch.nn.Module does.")

    @pytest.mark.points(2)
    def test_eval_scores(self, learner):
        """eval mode: the scores are the plain forward pass without dropout, the same every time"""
        X, params = net_case(learner, 120)
        r = learner.call(net_scores, NET, helpers=SHIPPED_NET, sizes=NET_SIZES, p_drop=NET_RATES,
                         seed=learner.seed(121), params=params, X=X, train_calls=1)
        shape = (NET_N, NET_SIZES[-1])
        s1, s2 = (same_shape(s, shape, "net.forward(X)") for s in r["eval"])
        assert np.array_equal(s1, s2), (
            "After net.eval(), two forward passes gave different scores (max difference "
            f"{np.abs(s1 - s2).max():.3g}): dropout is still active in eval mode. Does net.eval() "
            "reach every Dropout layer, and does Dropout.forward look at self.training?")
        want = reference_scores(X, params)
        err = np.abs(s1 - want).max()
        assert np.allclose(s1, want, rtol=1e-9, atol=1e-12), (
            f"In eval mode your scores differ from the plain forward pass affine → ReLU → affine → "
            f"ReLU → affine with the network's params (max difference {err:.3g}). Is something "
            "scaled in eval mode, or is the order of the layers different from the contract?")

    @pytest.mark.points(1)
    def test_training_scores(self, learner):
        """training mode: dropout is active in the hidden layers and never applied to the output scores"""
        X, params = net_case(learner, 130)
        calls = 20
        r = learner.call(net_scores, NET, helpers=SHIPPED_NET, sizes=NET_SIZES, p_drop=NET_RATES,
                         seed=learner.seed(131), params=params, X=X, train_calls=calls)
        shape = (NET_N, NET_SIZES[-1])
        trains = [same_shape(s, shape, "net.forward(X)") for s in r["train"]]
        # Identical train-mode scores need identical masks on every active unit: with 40 always-
        # active layer-2 units at p = 0.6, probability <= 0.52^40 ≈ 4e-12.
        assert not np.array_equal(trains[0], trains[1]), (
            "After net.eval() and then net.train(), two training-mode forward passes gave the same "
            "scores: dropout is not active. Does net.train() reach every Dropout layer, and does "
            "forward call them?")
        zeros = np.mean([(s == 0).mean() for s in trains])
        # With nonzero output biases an honest score is exactly 0 with probability ~0.
        assert zeros == 0, (
            f"In training mode {pct(zeros)} of your scores were exactly 0 (over {calls} forward "
            "passes): dropout is applied to the output layer. Drop only after the hidden ReLUs; the "
            "scores of the last affine layer go straight to the loss.")

    @pytest.mark.points(3)
    def test_gradient_check(self, learner):
        """with dropout on, net.loss's gradient matches a seeded numerical gradient (relative error < 1e-6, float64)"""
        X, params = net_case(learner, 140)
        y = learner.rng(141).integers(0, NET_SIZES[-1], NET_N)
        r = learner.call(net_gradcheck, NET, helpers=SHIPPED_NET, timeout=20, sizes=NET_SIZES,
                         p_drop=NET_RATES, seed=learner.seed(142), params=params, X=X, y=y, h=1e-5)
        l0, l1, l2 = r["losses"]
        assert l0 == l1, (
            "With every dropout layer's `rng` replaced by the same freshly seeded generator, two "
            f"calls of net.loss(X, y) gave different losses ({l0:.10g} vs {l1:.10g}): the masks do "
            "not come (only) from the layers' rng attributes, so no gradient check can hold the "
            "masks fixed. Draw each mask from the layer's self.rng.")
        assert l0 != l2, (
            "In training mode net.loss(X, y) gave the same loss with differently seeded dropout "
            f"layers ({l0:.10g}): dropout does not seem to be applied (or not drawn from the layers' "
            "rng), so this gradient check would not test it.")
        errors = {}
        for k, a in r["analytic"].items():
            n = r["numeric"][k]
            denom = np.linalg.norm(a) + np.linalg.norm(n)
            errors[k] = float(np.linalg.norm(a - n) / denom) if denom > 0 else 0.0
        bad = {k: e for k, e in errors.items() if not e < 1e-6}
        # The parameters keep every ReLU away from its kink (kink_free), so a correct float64
        # network gives about 1e-9 or less here, whatever its mask convention.
        assert not bad, (
            "With the dropout masks held fixed (each layer reseeded before every evaluation), your "
            "gradients do not match the centred differences of your loss: relative error "
            + ", ".join(f"{k} {e:.1e}" for k, e in sorted(bad.items()))
            + " (should be < 1e-6; all: " + ", ".join(f"{k} {e:.0e}" for k, e in errors.items()) + "). "
            "Check the backward pass: each dropout layer's backward with its cached mask, the ReLU "
            "gate, and the order of the layers.")
