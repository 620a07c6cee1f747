"""Checks for notebook 05: the Dropout layer (shaped like torch.nn.Dropout) and the MLP around it.

Contract (stated in the notebook):
  Dropout(p, rng=None): attributes p, rng, training (True after construction); train()/eval()
    set training and return the layer; forward(x): training -> x * mask / (1 - p) with a fresh
    mask per call (keep probability 1 - p per element), eval -> x; backward(dout) uses the mask
    of the last forward.  p outside [0, 1] or NaN -> ValueError.  Masks are drawn from `self.rng`.
  MLP(sizes, p_drop, rng=None): params {"W1", "b1", ...} (float64; the arrays the network uses),
    dropouts (one Dropout per hidden layer, input side first), training; train()/eval() reach
    every dropout layer and return the network; forward(X) -> scores; loss(X, y) -> (loss, grads).

The trust boundary.  Probes run in the learner's process and only build inputs, call the
learner's code and return what it returned (arrays, exception types, generator states, object
ids); every comparison, expected value and message is computed here, on the grader's side.

How the MLP is graded on its own (feedback rule "one mistake is charged once").  The MLP is
built from the learner's Dropout, so with the learner's own layer a Dropout bug (a stale mask,
eval() that does not set training, a backward that draws a new mask, ...) would also cost MLP
points.  Instead, every MLP probe first binds the name `Dropout`, in the namespace the learner's
MLP looks it up in, to a stand-in made by the grader (`install_standin`).  The stand-in is not
the instructor's code and holds no expected values: it is a container for data the grader
chooses.  Its keep-mask is read from a stream of numbers in [0, 1) that the grader sends
(element i is kept when coin i >= rate), and the rate of the k-th layer of net.dropouts is set
by the grader too; it records the mode and the shape of every forward call.  So every mask the
network uses is known to the grader before the call, the training-mode scores and gradients can
be checked exactly, and nothing the learner's Dropout does can change an MLP verdict.  The price:
the learner's MLP must talk to its layers through the contract (Dropout(p, rng), p, rng,
training, train(), eval(), forward(), backward(), and `mask`, the boolean keep-mask of the last
training-mode forward; also torch's layer(x) and train(False)), and must make its layers by
calling the name `Dropout` at run time.
The rates the MLP passes to Dropout(...) are graded by test_structure alone.

Randomized checks use fixed seeds (learner.seed) and bounds whose false-failure probability for
a correct implementation is stated next to each of them.
"""
import numpy as np

from grader.checks import mark
from grader.checks.dropout_checks import assert_independent_coins, distinct_digits, plain
from grader.checks.stats import hoeffding, pct

LAYER = ("Dropout",)
NET = ("MLP",)     # graded with the grader's Dropout stand-in: the learner's Dropout is not used


# ---------------------------------------------------------------- helpers shipped to the sandbox
def attribute(nb, obj, name, owner, missing=None):
    """obj.name, or `missing` when there is no such attribute (reading it may run learner code)."""
    try:
        return nb.run(f"{owner}.{name}", getattr, obj, name)
    except nb.Raised as e:
        if e.type == "AttributeError":
            return missing
        raise


def method(nb, obj, name, owner):
    """obj.name as a guarded callable; a contract failure if there is no such method."""
    f = attribute(nb, obj, name, owner)
    if not callable(f):
        raise nb.Failure("contract", owner, f"{owner} has no method {name}(); the contract "
                         "(the table at the top of the notebook) asks for one")
    return lambda *a: nb.run(f"{owner}.{name}", f, *a)


def mode(nb, obj, owner):
    """obj.training as plain data: True/False, or a short description of what is there."""
    absent = object()
    v = attribute(nb, obj, "training", owner, absent)
    if isinstance(v, (bool, np.bool_)):
        return bool(v)
    return "missing" if v is absent else "a " + type(v).__name__


def number(v):
    """A learner's scalar as a float, or a description of it."""
    if isinstance(v, (bool, np.bool_)):
        return {"not_number": f"a {type(v).__name__}"}
    if isinstance(v, (int, float, np.integer, np.floating)):
        return float(v)
    if isinstance(v, np.ndarray) and v.shape == () and v.dtype.kind in "iuf":
        return float(v)
    return {"not_number": "None" if v is None else f"a {type(v).__name__}"}


def set_mode(nb, d, training):
    """Put the layer in this mode by its attribute `training` (as eval()/train() should), so that
    a check of forward/backward does not also grade train()/eval(); a read-only one is left."""
    try:
        nb.run("Dropout.training", setattr, d, "training", training)
    except nb.Raised:
        pass


def layer(nb, p, seed=None, training=True):
    """A learner's Dropout(p, rng) in training mode (rng=None when seed is None)."""
    d = nb.fn("Dropout")(p) if seed is None else nb.fn("Dropout")(p, rng=np.random.default_rng(seed))
    set_mode(nb, d, training)
    return d


def switch_off(nb, d):
    """layer.eval(), then training = False set directly: eval() itself is graded by
    test_train_eval_return_the_layer, not by the checks of what eval mode does."""
    try:
        method(nb, d, "eval", "Dropout")()
    except (nb.Raised, nb.Failure):
        pass
    set_mode(nb, d, False)


LAYER_HELPERS = (plain, attribute, method, mode, number, set_mode, layer, switch_off)


# ---------------------------------------------------------------- probes: the layer
def construct(nb, p, seed):
    d = nb.fn("Dropout")(p, rng=np.random.default_rng(seed))
    absent = object()
    got = attribute(nb, d, "p", "Dropout", absent)
    return {"training": mode(nb, d, "Dropout"), "p": {"not_number": "missing"} if got is absent else number(got)}


def invalid(nb, ps, seed, x):
    """What the constructor does with each p; for a layer it accepted, what forward then does."""
    out = []
    for p in ps:
        try:
            d = nb.fn("Dropout")(p, rng=np.random.default_rng(seed))
        except nb.Raised as e:
            out.append({"type": e.type, "message": str(e)})
            continue
        try:
            set_mode(nb, d, True)
            method(nb, d, "forward", "Dropout")(x.copy())
            out.append({"accepted": True, "forward": None})
        except nb.Raised as e:
            out.append({"accepted": True, "forward": e.type})
    return out


def switch(nb, seed):
    """eval(), eval(), train(), train(), eval(): what each returned and the mode after it (notebook
    05's evaluate() calls eval() on a network already in eval mode)."""
    d = nb.fn("Dropout")(0.3, rng=np.random.default_rng(seed))
    steps = []
    for name in ("eval", "eval", "train", "train", "eval"):
        r = method(nb, d, name, "Dropout")()
        steps.append({"name": name, "id": id(r), "type": type(r).__name__, "mode": mode(nb, d, "Dropout")})
    return {"layer": id(d), "steps": steps}


def two_layers(nb, ps, seeds, xs, douts):
    """Two layers alive at once, used in turn for a few steps: forward A, forward B, backward B,
    backward A.  What each call returned (or the type of what it raised)."""
    made = [layer(nb, p, seed) for p, seed in zip(ps, seeds)]
    fwd = [method(nb, d, "forward", "Dropout") for d in made]
    back = [method(nb, d, "backward", "Dropout") for d in made]

    def run(f, a):
        try:
            return plain(f(a.copy()))
        except nb.Raised as e:
            return {"raised": e.type}
    steps = []
    for x, dout in zip(xs, douts):
        outs = [run(fwd[0], x[0]), run(fwd[1], x[1])]
        dx1 = run(back[1], dout[1])
        steps.append({"out": outs, "dx": [run(back[0], dout[0]), dx1]})
    return steps


def train_forward(nb, p, seed, x):
    given = x.copy()
    out = method(nb, layer(nb, p, seed), "forward", "Dropout")(given)
    return {"out": plain(out), "x_after": given}


def forward_calls(nb, p, seed, x, calls):
    fwd = method(nb, layer(nb, p, seed), "forward", "Dropout")
    return [plain(fwd(x.copy())) for _ in range(calls)]


def eval_mode(nb, p, seed, x, dout):
    """Train first (forward and backward: a mask is cached), then eval: two forwards, one backward."""
    d = layer(nb, p, seed)
    fwd, back = method(nb, d, "forward", "Dropout"), method(nb, d, "backward", "Dropout")
    trained = []
    for f, arg in ((fwd, x), (back, dout)):
        try:
            trained.append(plain(f(arg.copy())))
        except nb.Raised as e:   # training-mode problems are graded elsewhere
            trained.append({"raised": e.type})
    switch_off(nb, d)
    res = {"trained": trained, "outs": [], "dx": None}
    for _ in range(2):
        res["outs"].append(plain(fwd(x.copy())))
    try:
        res["dx"] = plain(back(dout.copy()))
    except nb.Raised as e:
        res["dx"] = {"raised": str(e)}
    return res


def eval_draws(nb, p, seed, x, dout):
    """Generator states (the layer's and NumPy's global one) around eval-mode forward and
    backward calls, after a training-mode forward; what the calls raised is only recorded."""
    rng = np.random.default_rng(seed)
    d = nb.fn("Dropout")(p, rng=rng)
    set_mode(nb, d, True)
    fwd, back = method(nb, d, "forward", "Dropout"), method(nb, d, "backward", "Dropout")
    try:
        fwd(x.copy())
    except nb.Raised:
        pass
    switch_off(nb, d)
    np.random.seed(2024)
    states, results = [(rng.bit_generator.state, np.random.get_state()[1].copy())], []
    for f, arg in ((fwd, x), (fwd, x), (back, dout)):
        try:
            results.append(plain(f(arg.copy())))
        except nb.Raised as e:
            results.append({"raised": e.type})
        states.append((rng.bit_generator.state, np.random.get_state()[1].copy()))
    return {"own": [s[0] for s in states], "global": [s[1] for s in states], "results": results}


def rng_use(nb, p, seed, shape):
    def fwd(d):
        return plain(method(nb, d, "forward", "Dropout")(np.ones(shape)))
    np.random.seed(12345)
    global_before = np.random.get_state()[1].copy()
    a = layer(nb, p, seed)
    first = fwd(a)
    global_after = np.random.get_state()[1].copy()
    same_seed = fwd(layer(nb, p, seed))
    other_seed = fwd(layer(nb, p, seed + 1))
    nb.run("Dropout.rng", setattr, a, "rng", np.random.default_rng(seed))  # as the notebook's gradient check does
    reseeded = fwd(a)
    nones = [fwd(layer(nb, p)) for _ in range(2)]
    return {"first": first, "same_seed": same_seed, "other_seed": other_seed, "reseeded": reseeded,
            "global_before": global_before, "global_after": global_after, "none": nones}


def backward_probe(nb, p, seed, pairs):
    d = layer(nb, p, seed)
    fwd, back = method(nb, d, "forward", "Dropout"), method(nb, d, "backward", "Dropout")
    res = []
    for x, dout in pairs:
        out = plain(fwd(x.copy()))
        res.append({"out": out, "dx": plain(back(dout.copy()))})
    return res


def edges(nb, seed, x, dout):
    """At p = 0 and 1 (float and int), training mode: forward and backward, first with NumPy
    set to raise on invalid operations (what would be a warning), then without (the values)."""
    res = {}
    for p in (0.0, 0, 1.0, 1):
        for strict in (True, False):
            key = repr(p) + (" strict" if strict else "")
            try:
                with np.errstate(all="raise" if strict else "ignore"):
                    d = layer(nb, p, seed)
                    out = plain(method(nb, d, "forward", "Dropout")(x.copy()))
                    dx = plain(method(nb, d, "backward", "Dropout")(dout.copy()))
                res[key] = {"out": out, "dx": dx}
            except nb.Raised as e:
                res[key] = {"raised": str(e), "type": e.type}
    return res


# ---------------------------------------------------------------- probes: the network
def install_standin(nb, coins):
    """Bind `Dropout`, where the learner's MLP looks it up, to the grader's stand-in; return
    the list every stand-in adds itself to.  The stand-in's masks come from data: a stream of
    coins in [0, 1) (`coins`, or what the probe assigns per layer) and a rate."""
    made = []

    class Dropout:
        def __init__(self, p, rng=None):
            self.p, self.rng, self.training, self.mask = p, rng, True, None
            self.rate, self.coins, self.cursor, self.calls = None, coins, 0, []
            made.append(self)

        def train(self, mode=True):      # torch's signature, for networks that call train(False)
            self.training = bool(mode)
            return self

        def eval(self):
            self.training = False
            return self

        def __call__(self, x):           # for networks that call their layers torch-style
            return self.forward(x)

        def scale(self):
            rate = self.rate
            if rate is None:
                try:
                    rate = float(self.p)
                except (TypeError, ValueError):
                    rate = 0.5
            return rate, (1.0 / (1.0 - rate) if rate < 1 else 0.0)

        def forward(self, x):
            x = np.asarray(x)
            self.calls.append([bool(self.training), list(x.shape)])
            if not self.training:
                self.mask = None
                return x
            rate, scale = self.scale()
            coins = np.resize(self.coins, self.cursor + x.size)[self.cursor:]
            self.cursor += x.size
            self.mask = coins.reshape(x.shape) >= rate
            return x * self.mask * scale

        def backward(self, dout):
            if self.mask is None:
                return dout
            return dout * self.mask * self.scale()[1]

    cls = nb.get("MLP")
    found = [cls]
    for klass in getattr(cls, "__mro__", ()):
        found += list(vars(klass).values())
    for v in found:
        try:
            g = getattr(getattr(v, "__func__", v), "__globals__", None)
        except Exception:  # noqa: BLE001 - an odd object in a class body: it holds no functions
            g = None
        if isinstance(g, dict) and "MLP" in g:
            g["Dropout"] = Dropout
    return made


def network(nb, sizes, p_drop, seed, coins, params=None, gen=None):
    """The learner's MLP made with the stand-in (and the generator gen, or one seeded with seed);
    (net, P, layers, made, setup), where setup is None when the grader's params were written
    into net.params, else what was found instead."""
    made = install_standin(nb, coins)
    net = nb.fn("MLP")(sizes, p_drop, rng=np.random.default_rng(seed) if gen is None else gen)
    absent = object()
    P = attribute(nb, net, "params", "MLP", absent)
    layers = attribute(nb, net, "dropouts", "MLP", absent)
    setup = None
    if not isinstance(P, dict):
        setup = {"params": "missing" if P is absent else "a " + type(P).__name__}
    elif not isinstance(layers, (list, tuple)):
        setup = {"dropouts": "missing" if layers is absent else "a " + type(layers).__name__}
    else:
        for k, v in (params or {}).items():
            # The grader's values go into the network's own arrays, in the layout the network
            # chose (a transposed W, a (1, H) bias, float32): test_structure alone grades the
            # layout, and the other checks grade what the network computes with the values.
            have = P.get(k)
            if type(have) is not np.ndarray or have.size != v.size:
                setup = {"key": k, "found": "missing" if have is None else (
                    [list(have.shape), str(have.dtype)] if isinstance(have, np.ndarray) else type(have).__name__)}
                break
            value = v.T if have.shape == v.T.shape and have.shape != v.shape else v.reshape(have.shape)
            if have.dtype == np.float64:
                have[...] = value
            else:
                P[k] = value.copy()
    return net, P, layers, made, setup


def position(layers, d):
    """Where d is in net.dropouts (-1 if it is not there)."""
    for k, e in enumerate(layers):
        if e is d:
            return k
    return -1


def force(made, training):
    for d in made:
        d.training = training


def feed(layers, made, streams, rates):
    """Give the k-th layer of net.dropouts stream k and rate k; every stand-in starts its stream anew."""
    for d in made:
        d.cursor = 0
    for k, d in enumerate(layers):
        if k < len(streams) and position(made, d) >= 0:
            d.coins, d.rate = streams[k], rates[k]


def log(layers, made):
    """Every stand-in's forward calls so far ([training, shape] each) and its place in net.dropouts."""
    out = [{"position": position(layers, d), "calls": list(d.calls)} for d in made]
    for d in made:
        d.calls = []
    return out


def put(nb, net, made, training):
    """net.train() or net.eval(), then the mode set directly on the network and on every
    stand-in: whether train()/eval() reach the layers is graded by test_train_eval_reach_every_layer
    alone, not again by the checks of what forward does in each mode."""
    try:
        method(nb, net, "train" if training else "eval", "MLP")()
    except (nb.Raised, nb.Failure):
        pass
    try:
        nb.run("MLP.training", setattr, net, "training", training)
    except nb.Raised:
        pass
    force(made, training)


NET_HELPERS = (plain, attribute, method, mode, number, install_standin, network, position, force,
               feed, log, put)


def structure(nb, sizes, p_drop, seed, coins):
    net, P, layers, made, setup = network(nb, sizes, p_drop, seed, coins)
    if setup:
        return {"setup": setup}
    shapes = {str(k): ([list(v.shape), str(v.dtype)] if isinstance(v, np.ndarray) else type(v).__name__)
              for k, v in P.items()}
    return {"shapes": shapes, "rates": [number(d.p) if position(made, d) >= 0 else None for d in layers],
            "types": [type(d).__name__ for d in layers], "standin": [position(made, d) for d in layers],
            "made": len(made), "training": mode(nb, net, "MLP"),
            "layer_modes": [mode(nb, d, "Dropout") for d in layers]}


def structures(nb, cases, seed, coins):
    """structure for each (sizes, p_drop): one call into the sandbox for all."""
    return [structure(nb, sizes, p_drop, seed, coins) for sizes, p_drop in cases]


def net_switch(nb, sizes, p_drop, seed, coins):
    net, _, layers, made, setup = network(nb, sizes, p_drop, seed, coins)
    if setup:
        return {"setup": setup}
    res = {"net": id(net)}
    for name in ("eval", "eval", "train", "train"):
        force(made, name == "eval")      # every layer in the mode opposite to the one asked for
        r = method(nb, net, name, "MLP")()
        res.setdefault(name, []).append({"id": id(r), "type": type(r).__name__, "net": mode(nb, net, "MLP"),
                                         "layers": [mode(nb, d, "Dropout") for d in layers]})
    return res


def net_scores(nb, sizes, p_drop, seed, coins, params, X, streams, rates):
    net, _, layers, made, setup = network(nb, sizes, p_drop, seed, coins, params)
    if setup:
        return {"setup": setup}
    fwd = method(nb, net, "forward", "MLP")
    put(nb, net, made, False)
    log(layers, made)
    evals = []
    for _ in range(2):
        evals.append(plain(fwd(X.copy())))
    eval_log = log(layers, made)
    put(nb, net, made, True)
    trains, train_logs = [], []
    for masks in streams:
        feed(layers, made, masks, rates)
        trains.append(plain(fwd(X.copy())))
        train_logs.append(log(layers, made))
    return {"eval": evals, "eval_log": eval_log, "train": trains, "train_logs": train_logs}


def net_steps(nb, sizes, p_drop, seed, coins, params, Xs, ys, streams, rates, lr):
    """A few training steps (loss, then an update of net.params by the returned gradients), with an
    evaluation in eval mode before the last one.  Before each step a new network is made in the
    same state — the same params, masks and generator state — and gives its own loss and gradients
    for that step: what the trained network returns must be the same."""
    gen = np.random.default_rng(seed)
    net, P, layers, made, setup = network(nb, sizes, p_drop, seed, coins, params, gen=gen)
    if setup:
        return {"setup": setup}
    put(nb, net, made, True)
    loss = method(nb, net, "loss", "MLP")

    def one(lossf, X, y):
        v = nb.pair(lossf(X.copy(), y.copy()), "MLP.loss", "(loss, grads)")
        grads = v[1] if isinstance(v[1], dict) else {}
        return number(v[0]), {k: plain(nb.run("grads.get", grads.get, k)) for k in P}, grads

    out = []
    for t, (X, y, masks) in enumerate(zip(Xs, ys, streams)):
        if t == len(Xs) - 1:          # a look at the validation set, as a training loop does
            put(nb, net, made, False)
            method(nb, net, "forward", "MLP")(X.copy())
            put(nb, net, made, True)
        fgen = np.random.default_rng(seed)
        fresh, fP, flayers, fmade, fsetup = network(nb, sizes, p_drop, seed, coins, None, gen=fgen)
        fgen.bit_generator.state = gen.bit_generator.state      # after its own initialisation
        for k, v in P.items():
            w = fP.get(k)
            if isinstance(v, np.ndarray) and isinstance(w, np.ndarray) and (w.shape, w.dtype) == (v.shape, v.dtype):
                w[...] = v
            else:
                fP[k] = v.copy() if isinstance(v, np.ndarray) else v
        put(nb, fresh, fmade, True)
        feed(flayers, fmade, masks, rates)
        f_loss, f_grads, _ = one(method(nb, fresh, "loss", "MLP"), X, y)
        feed(layers, made, masks, rates)
        t_loss, t_grads, raw = one(loss, X, y)
        out.append({"loss": t_loss, "grads": t_grads, "fresh_loss": f_loss, "fresh_grads": f_grads})
        for k in P:                   # plain SGD on the network's own arrays
            g = raw.get(k)
            if isinstance(P[k], np.ndarray) and isinstance(g, np.ndarray) and g.shape == P[k].shape:
                P[k][...] = P[k] - lr * g
    return {"steps": out}


def net_rng(nb, sizes, p_drop, seeds, coins):
    """Networks built with generators of the given seeds: their initial params, whether they drew
    from the generator, and what each layer's generator draws next (or what it is instead)."""
    np.random.seed(777)
    global_before = np.random.get_state()[1].copy()
    builds = []
    for s in seeds:
        gen = np.random.default_rng(s)
        before = gen.bit_generator.state
        net, P, layers, made, setup = network(nb, sizes, p_drop, s, coins, gen=gen)
        if setup:
            return {"setup": setup}
        item = {"consumed": gen.bit_generator.state != before,
                "params": {str(k): plain(v) for k, v in P.items()}, "rngs": []}
        for d in layers:
            r = d.rng if position(made, d) >= 0 else "not made by the network"
            if isinstance(r, np.random.Generator):
                item["rngs"].append({"draws": r.random(4)})
            else:
                item["rngs"].append({"type": r if isinstance(r, str) else "None" if r is None else type(r).__name__})
        builds.append(item)
    return {"builds": builds, "global_moved": not np.array_equal(np.random.get_state()[1], global_before)}


def net_gradcheck(nb, sizes, p_drop, seed, coins, params, X, y, h, streams, rates):
    net, P, layers, made, setup = network(nb, sizes, p_drop, seed, coins, params)
    if setup:
        return {"setup": setup}
    put(nb, net, made, True)
    loss = method(nb, net, "loss", "MLP")

    def evaluate():
        feed(layers, made, streams, rates)      # the same masks at every evaluation
        v = nb.pair(loss(X, y), "MLP.loss", "(loss, grads)")
        value = number(v[0])
        if isinstance(value, dict):
            raise nb.Failure("contract", "MLP", "the loss returned by net.loss(X, y) should be a "
                             f"number; it is {value['not_number']}")
        return value, v[1]

    l0, grads = evaluate()
    l1 = evaluate()[0]
    if not isinstance(grads, dict):
        return {"losses": [l0, l1], "grads": type(grads).__name__}
    analytic = {}
    for k in params:
        g = nb.run("grads.get", grads.get, k)
        analytic[k] = "missing" if g is None else plain(g)
    plus, minus = {}, {}
    for k in params:
        theta = P[k]       # in the network's own layout
        up, down = np.zeros(theta.shape), np.zeros(theta.shape)
        for idx in np.ndindex(theta.shape):
            old = theta[idx]
            theta[idx] = old + h
            up[idx] = evaluate()[0]
            theta[idx] = old - h
            down[idx] = evaluate()[0]
            theta[idx] = old
        plus[k], minus[k] = up, down
    return {"losses": [l0, l1], "analytic": analytic, "plus": plus, "minus": minus,
            "layout": {k: list(P[k].shape) for k in params}}


# ---------------------------------------------------------------- grader-side helpers
def isnan(v):
    return bool(np.isnan(v))


def as_array(value, shape, call):
    """The value must be a numeric ndarray of this shape; say what is wrong if not."""
    if isinstance(value, dict) and "not_array" in value:
        assert False, (f"{call} returned {value['not_array']} where a NumPy array was expected; "
                       "return an np.ndarray of numbers.")
    if isinstance(value, dict) and "raised" in value:
        assert False, f"{call} raised {value['raised']}."
    assert isinstance(value, np.ndarray) and value.shape == tuple(shape), (
        f"{call} returned shape {getattr(value, 'shape', None)}; expected {tuple(shape)} (the shape of its input).")
    return value


def finite(value, call, zeros=None, hint=""):
    """Every element finite; otherwise name NaN/inf, how many, and whether they sit where x = 0."""
    bad = ~np.isfinite(value)
    if not bad.any():
        return value
    kinds = " and ".join(w for w, m in (("NaN", np.isnan(value)), ("inf", np.isinf(value))) if m.any())
    where = ""
    if zeros is not None and zeros.any() and not (bad & ~zeros).any():
        where = (", all of them where x = 0 — 0/0: something is divided by x (or the mask recovered "
                 "as output / input). Multiply by the cached mask instead: a ratio of arrays is "
                 "undefined where x is 0")
        hint = ""
    assert False, (f"{call} returned {int(bad.sum())} {kinds} value(s) out of {value.size}{where}. "
                   "Every value should be a finite number." + (" " + hint if hint else ""))


def mask_of(out, x):
    """Kept elements where the mask can be seen (x != 0): out != 0 there."""
    return (out != 0) & (x != 0)


def tolerance(dtype):
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-9


def inputs(rng, shape, dtype=np.float64, zeros=0.1):
    """x in ±[1, 2) with a share of exact zeros, and an upstream gradient with no zeros."""
    x = rng.uniform(1.0, 2.0, shape) * rng.choice([-1.0, 1.0], shape)
    x[rng.random(shape) < zeros] = 0.0
    dout = rng.uniform(0.5, 1.5, shape) * rng.choice([-1.0, 1.0], shape)
    return x.astype(dtype), dout.astype(dtype)


def returned(type_name):
    return "None" if type_name == "NoneType" else f"a {type_name} object"


def layer_call(p, what="forward(x)"):
    return f"Dropout({p}).{what}"


# ---------------------------------------------------------------- grader-side: the network
NET_SIZES, NET_RATES, NET_N = [4, 6, 5, 3], [0.2, 0.6], 10


def kink_free(rng, sizes, rates, n):
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
    reach = (np.maximum(A1, 0) / (1 - rates[0]) @ np.abs(W2)).max(axis=0)
    sign = np.ones(H2)
    sign[-1] = -1.0
    b2 = sign * (reach + 0.5)
    W3 = 0.5 * rng.standard_normal((H2, C))
    b3 = rng.choice([-1.0, 1.0], C) * (0.5 + np.abs(rng.standard_normal(C)))
    params = {"W1": W1, "b1": b1, "W2": W2, "b2": b2, "W3": W3, "b3": b3}
    return X, params


def masks_from(streams, rates, n, sizes):
    """The keep-masks the stand-ins draw from these coin streams (one per hidden layer)."""
    return [np.resize(s, n * H).reshape(n, H) >= r for s, r, H in zip(streams, rates, sizes[1:-1])]


def scores_with(X, params, masks=None, rates=None):
    """The contract's forward pass; with masks: dropout (mask / (1 − rate)) after each hidden ReLU."""
    L = len(params) // 2
    h = X
    for i in range(1, L):
        h = np.maximum(h @ params[f"W{i}"] + params[f"b{i}"], 0)
        if masks is not None:
            h = h * masks[i - 1] * (1.0 / (1.0 - rates[i - 1]))
    return h @ params[f"W{L}"] + params[f"b{L}"]


def net_case(learner, k, passes=1):
    X, params = kink_free(learner.rng(k), NET_SIZES, NET_RATES, NET_N)
    g = learner.rng(k + 1)
    streams = [[g.random(NET_N * H) for H in NET_SIZES[1:-1]] for _ in range(passes)]
    return X, params, streams


def coins(learner, k):
    """The coin stream of stand-ins outside net.dropouts."""
    return learner.rng(k).random(4096)


def assert_setup(r, sizes, own=False):
    """The grader could write its parameters into net.params and find net.dropouts."""
    s = r.get("setup")
    if not s:
        return
    also = "" if own else " (test_structure checks it too)"
    if "params" in s:
        assert False, (f"net.params is {s['params']}; it should be a dict of arrays {{'W1': ..., 'b1': ...}}, "
                       f"so the grader can set the parameters{also}.")
    if "dropouts" in s:
        assert False, (f"net.dropouts is {s['dropouts']}; it should be the list of the network's Dropout "
                       f"layers, input side first{also}.")
    found = s["found"]
    what = (f"has shape {tuple(found[0])} and dtype {found[1]}" if isinstance(found, list) else
            "is missing" if found == "missing" else f"is a {found}")
    assert False, (f"net.params[{s['key']!r}] {what}; the grader needs arrays of the contract's "
                   f"shapes for sizes {sizes} (W_i is (sizes[i-1], sizes[i]), b_i is (sizes[i],)) to "
                   "set the parameters for this check; test_structure checks them too.")


def describe_calls(entries, training=None):
    """(position, [training, shape]) for every forward call in a log."""
    return [(e["position"], c) for e in entries for c in e["calls"]
            if training is None or c[0] is training]


# ================================================================ checks: Dropout
@mark.exercise("Dropout")
class TestDropout:
    @mark.points(1)
    def test_construct(self, learner):
        """Dropout(p, rng) stores p and starts in training mode"""
        r = learner.call(construct, LAYER, helpers=LAYER_HELPERS, p=0.3, seed=learner.seed(1))
        assert r["training"] is True, (
            f"After Dropout(0.3, rng) the attribute `training` is {r['training']!r}; a new layer "
            "starts in training mode (training = True), as torch.nn.Dropout does.")
        got = r["p"]
        assert isinstance(got, float) and abs(got - 0.3) < 1e-12, (
            f"Dropout(0.3, rng).p is {got['not_number'] if isinstance(got, dict) else got}; store the "
            "drop probability as the attribute `p`.")

    @mark.points(1)
    def test_rejects_bad_p(self, learner):
        """Dropout(p) raises ValueError for p outside [0, 1] or NaN, in the constructor"""
        ps = [-0.1, 1.1, 2, float("inf"), float("nan")]
        got = learner.call(invalid, LAYER, helpers=LAYER_HELPERS, ps=ps, seed=learner.seed(3),
                           x=np.ones((4, 5)))
        accepted = [p for p, g in zip(ps, got) if g.get("accepted")]
        if accepted:
            only_nan = all(np.isnan(p) for p in accepted)
            later = [p for p, g in zip(ps, got) if g.get("accepted") and g["forward"] == "ValueError"]
            assert not later, (
                f"Dropout(p) accepted p = {', '.join(map(str, accepted))} in the constructor"
                + ("" if len(later) == len(accepted) else f"; forward raised ValueError for "
                   f"p = {', '.join(map(str, later))}") + ". Your layer checks p only when forward "
                "runs; check it in the constructor, so that a layer with an invalid p (outside "
                "[0, 1] or NaN) cannot be made at all — the error then points at the line that "
                "made it.")
            assert False, (
                f"Dropout(p) accepted p = {', '.join(map(str, accepted))} in the constructor. p is a "
                "probability: the constructor should raise ValueError when p is outside [0, 1] or NaN"
                + (". Your range test lets NaN through: NaN fails every comparison, so a test of the "
                   "form 'p below 0 or p above 1' is False for NaN. Test that p lies in the valid range "
                   "and raise when that test fails." if only_nan else
                   " (test that p lies in the valid range and raise when it does not — written that "
                   "way round, NaN is rejected too)."))
        for p, g in zip(ps, got):
            assert g["type"] == "ValueError", (
                f"Dropout({p}) raised {g['message']}; the contract asks for ValueError for a p "
                "outside [0, 1] or NaN.")

    @mark.points(1)
    def test_train_eval_return_the_layer(self, learner):
        """train() and eval() set `training` (also when called twice) and return the layer itself"""
        r = learner.call(switch, LAYER, helpers=LAYER_HELPERS, seed=learner.seed(2))
        steps = r["steps"]
        first = {}
        for k, step in enumerate(steps):
            name, want = step["name"], step["name"] == "train"
            again = k > 0 and steps[k - 1]["name"] == name
            if step["mode"] is not want and again and steps[k - 1]["mode"] is want:
                assert False, (
                    f"After layer.{name}() was called twice in a row, `training` is {step['mode']!r}: "
                    f"your {name}() toggles the mode instead of setting it. A network in eval mode gets "
                    "eval() again (notebook 05's evaluate() does exactly that), and the layer must "
                    f"then stay in {'training' if want else 'eval'} mode: set training = {want}, whatever "
                    "it was before.")
            assert step["mode"] is want, (
                f"After layer.{name}() the attribute `training` is {step['mode']!r}; {name}() must set "
                f"training = {want}" + (", or the layer keeps dropping at evaluation time." if not want else "."))
            first.setdefault(name, step)
        for name, step in first.items():
            assert step["id"] == r["layer"], (
                f"layer.{name}() returned {returned(step['type'])}; return the layer itself (return self), "
                f"as torch.nn.Module.{name}() does, so that calls chain: layer.{name}().forward(x).")

    @mark.points(2)
    def test_training_forward(self, learner):
        """training mode drops each element with probability p and divides the survivors by 1 − p (p = 0.2,
        0.7; float64 and float32)"""
        shape = (8, 25000)   # long rows: a mask shared by the rows still has 25000 coins
        for k, (p, dtype) in enumerate(((0.2, np.float64), (0.7, np.float32))):
            x, _ = inputs(learner.rng(20 + k), shape, dtype)
            r = learner.call(train_forward, LAYER, helpers=LAYER_HELPERS, p=p, seed=learner.seed(10 + k), x=x)
            call = f"{layer_call(p)} (x {np.dtype(dtype).name})"
            out = finite(as_array(r["out"], shape, call), call, x == 0)
            assert np.array_equal(r["x_after"], x), (
                f"{call} changed its input x in place; compute a new array instead of writing into x "
                "— the caller (and backward) still need the original.")
            seen = x != 0
            kept = mask_of(out, x)
            n = int(seen.sum())
            tol = hoeffding(n)  # 2 uses: false failure < 2e-10
            share = kept.sum() / n
            assert share > 0, (
                f"{call} in training mode returned all zeros; at p = {p} it should keep "
                f"{pct(1 - p)} of the elements.")
            assert abs(share - p) >= tol or abs(share - (1 - p)) < tol, (
                f"At p = {p} your layer kept {pct(share, 2)} of the elements: keep and drop are swapped. "
                "p is the probability of DROPPING an element; keep each with probability 1 − p.")
            assert share < 1 - 1e-12, (
                f"{call} dropped nothing on a fresh layer: a new layer is in training mode, "
                "and in training mode it must zero elements at rate p.")
            assert abs(share - (1 - p)) < tol, (
                f"At p = {p} your layer kept {pct(share, 2)} of {n} nonzero elements; expected "
                f"{pct(1 - p)} ± {pct(tol, 2)}.")
            assert not out[~seen].any(), (
                f"{call} returned nonzero values where x is 0 ({int((out[~seen] != 0).sum())} elements): "
                "dropout only multiplies each element by 0 or 1/(1 − p).")
            ratio = out[kept].astype(np.float64) / x[kept]
            want = 1 / (1 - p)
            if not np.allclose(ratio, want, rtol=100 * tolerance(dtype), atol=0):
                med = float(np.median(ratio))
                if abs(med - 1) < 1e-4:
                    hint = ("it forgets the scale: the survivors are returned as they are, so the "
                            f"expected output is (1 − p)·x = {1 - p:g}·x instead of x. Divide the kept "
                            "elements by 1 − p (inverted dropout).")
                elif abs(med - 1 / p) < 1e-4 * med:
                    hint = "it divides by p; inverted dropout divides by the KEEP probability 1 − p."
                else:
                    hint = "check the scale factor: inverted dropout divides the kept elements by 1 − p."
                shown, wanted = distinct_digits(med, want, 4)
                assert False, (
                    f"At p = {p} the kept elements were multiplied by {shown} (median of out / x); "
                    f"expected 1 / (1 − p) = {wanted}: {hint}")
        x, _ = inputs(learner.rng(22), (3, 4, 5))
        r = learner.call(train_forward, LAYER, helpers=LAYER_HELPERS, p=0.3, seed=learner.seed(12), x=x)
        as_array(r["out"], (3, 4, 5), "Dropout(0.3).forward(x) on a 3-D x")

    @mark.points(1)
    def test_fresh_independent_masks(self, learner):
        """a fresh mask on every forward call, with an independent coin per element"""
        shape, p = (2000, 50), 0.3
        outs = learner.call(forward_calls, LAYER, helpers=LAYER_HELPERS, p=p, seed=learner.seed(30),
                            x=np.ones(shape), calls=2)
        m1, m2 = (as_array(o, shape, layer_call(p)) != 0 for o in outs)
        # two correct masks agree everywhere with probability (0.7² + 0.3²)^100000 ≈ 0
        assert not np.array_equal(m1, m2), (
            "Two forward calls in training mode dropped exactly the same elements: draw a new mask "
            "on every forward call (is a seed fixed, or the mask drawn once in __init__?).")
        assert_independent_coins(m1, "training-mode mask")

    @mark.points(2)
    def test_eval_is_identity(self, learner):
        """after training, eval mode returns x unchanged (the same every time) and backward passes dout
        through (p = 0.4 and 1)"""
        for k, (p, dtype) in enumerate(((0.4, np.float64), (1.0, np.float32))):
            x, dout = inputs(learner.rng(41 + k), (300, 200), dtype)
            r = learner.call(eval_mode, LAYER, helpers=LAYER_HELPERS, p=p, seed=learner.seed(40 + k),
                             x=x, dout=dout)
            call = f"Dropout({p}).eval().forward(x)"
            o1, o2 = (finite(as_array(o, x.shape, call), call, x == 0) for o in r["outs"])
            dropped = ((o1 == 0) & (x != 0)).mean()
            assert dropped == 0 and np.array_equal(o1, o2), (
                f"In eval mode (p = {p}) your layer still drops: {pct(dropped)} of the outputs were 0 "
                "where x was not" + ("" if np.array_equal(o1, o2) else ", and two calls gave different outputs")
                + ". After eval(), forward must return x unchanged — forward should look at self.training"
                + (" before anything else, also before the special case p = 1." if p == 1 else "."))
            if not np.array_equal(o1, x):
                ratio = float(np.median(o1[x != 0] / x[x != 0]))
                assert False, (
                    f"In eval mode (p = {p}) the output is {ratio:.4g}·x instead of x. With inverted "
                    "dropout the scaling happens during training only; eval mode is the identity.")
            call = f"Dropout({p}).backward(dout) in eval mode"
            if isinstance(r["dx"], dict) and "raised" in r["dx"]:
                assert False, (
                    f"After a training-mode forward and then eval(), {call} raised {r['dx']['raised']}. "
                    "In eval mode the layer is the identity, so backward should return dout as it is: "
                    "it has no mask to multiply by (the eval-mode forward drew none).")
            dx = finite(as_array(r["dx"], x.shape, call), call)
            if not np.array_equal(dx, dout):
                stale = isinstance(r["trained"][0], np.ndarray) and (dx == 0).any()
                assert False, (
                    f"After a training-mode forward and then eval(), backward should pass dout through "
                    f"unchanged (in eval mode the layer is the identity); {pct((dx != dout).mean())} of "
                    f"your dx differ from dout"
                    + (f" and {pct((dx == 0).mean())} are 0: backward still uses the mask cached by the "
                       "last training-mode forward. An eval-mode forward must leave backward nothing to "
                       "multiply by (or backward must look at the mode)." if stale else
                       f" (dx / dout ≈ {float(np.median(dx / dout)):.4g})."))

    @mark.points(1)
    def test_eval_draws_nothing(self, learner):
        """eval mode draws no random numbers (forward and backward, after training)"""
        x, dout = inputs(learner.rng(43), (300, 200))
        r = learner.call(eval_draws, LAYER, helpers=LAYER_HELPERS, p=0.4, seed=learner.seed(42), x=x, dout=dout)
        own, glob = r["own"], r["global"]
        for i, what in enumerate(("the first eval-mode forward", "a second eval-mode forward",
                                  "backward in eval mode")):
            drew = own[i] != own[i + 1]
            drew_global = not np.array_equal(glob[i], glob[i + 1])
            out = r["results"][i]
            drops = (i < 2 and isinstance(out, np.ndarray) and out.shape == x.shape
                     and bool(((out == 0) & (x != 0)).any()))
            assert not (drew or drew_global), (
                "In eval mode your layer still drew random numbers from "
                + ("its generator" if drew else "NumPy's global generator")
                + f" (its state changed during {what})"
                + (": it still drops in eval mode (see the check that eval mode returns x unchanged), "
                   "and drawing that mask moved the generator. Once forward looks at self.training "
                   "before drawing, this check passes too." if drops else
                   ", even though nothing is dropped. Look at self.training before drawing: wasted "
                   "draws shift every later mask and make runs hard to reproduce."))

    @mark.points(1)
    def test_uses_its_generator(self, learner):
        """draws the masks from `self.rng`, the generator it was given (reseedable, no global RNG)"""
        shape = (50, 40)
        r = learner.call(rng_use, LAYER, helpers=LAYER_HELPERS, p=0.3, seed=learner.seed(50), shape=shape)
        first, same, other, reseeded = (as_array(r[k], shape, layer_call(0.3)) != 0
                                        for k in ("first", "same_seed", "other_seed", "reseeded"))
        assert np.array_equal(r["global_before"], r["global_after"]), (
            "Your layer draws from NumPy's global generator (np.random.rand / np.random.seed …). "
            "Draw from self.rng, the generator passed to the constructor.")
        assert np.array_equal(first, same), (
            "Two layers made with generators of the same seed dropped different elements: the mask "
            "should depend only on the generator passed as rng.")
        # two correct masks of 2000 elements agree with probability 0.58^2000 ≈ 1e-473
        assert not np.array_equal(first, other), (
            "Layers with generators of different seeds dropped the same elements: is a seed fixed "
            "inside the layer?")
        assert np.array_equal(first, reseeded), (
            "After `layer.rng = np.random.default_rng(seed)` the layer did not repeat the mask that "
            "generator gives: draw from the attribute self.rng at every forward call (do not keep "
            "a second reference or a copy). The gradient check of the network relies on this.")
        n1, n2 = (as_array(o, shape, "Dropout(0.3) (rng=None).forward(x)") != 0 for o in r["none"])
        assert not np.array_equal(n1, n2), (
            "With rng=None two layers dropped the same elements: make a fresh "
            "np.random.default_rng() when no generator is passed (never a fixed seed).")

    @mark.points(2)
    def test_backward_uses_the_cached_mask(self, learner):
        """backward multiplies dout by the mask of the last forward, divided by 1 − p (x with zeros; float64
        and float32)"""
        p = 0.35
        pairs = [inputs(learner.rng(61), (200, 300)), inputs(learner.rng(62), (200, 300), np.float32)]
        res = learner.call(backward_probe, LAYER, helpers=LAYER_HELPERS, p=p, seed=learner.seed(60),
                           pairs=pairs)
        for k, ((x, dout), r) in enumerate(zip(pairs, res), start=1):
            which = "the first forward" if k == 1 else "the second of two forward calls"
            out = finite(as_array(r["out"], x.shape, layer_call(p)), layer_call(p), x == 0)
            call = f"Dropout({p}).backward(dout) after {which} (x {x.dtype})"
            dx = finite(as_array(r["dx"], x.shape, call), call, x == 0)
            seen = x != 0
            kept = mask_of(out, x)
            # Graded against the forward the layer ran (its scale is graded by test_training_forward):
            # out = x · factor, so dx = dout · factor = dout · out / x where x != 0.
            factor = np.divide(out, x, out=np.zeros(x.shape), where=seen)
            scale = float(np.median(factor[kept])) if kept.any() else 1 / (1 - p)
            rtol = 100 * tolerance(x.dtype)
            expected = dout * factor
            # where x = 0 the mask is not visible in out: dx must be one of the two possible values
            unseen_ok = (dx == 0) | np.isclose(dx, dout * scale, rtol=rtol, atol=0) | seen
            if np.allclose(dx[seen], expected[seen], rtol=rtol, atol=1e-30) and unseen_ok.all():
                continue
            pattern = ((dx[seen] != 0) != kept[seen]).mean()
            if pattern > 0:
                assert False, (
                    f"After {which}, backward's dx is zero/non-zero in a different pattern from the "
                    f"elements forward dropped ({pct(pattern)} of the elements disagree): backward "
                    "draws a new mask (or uses an old one). Cache the mask in forward and multiply "
                    "by that same mask in backward.")
            assert not np.allclose(dx[seen], expected[seen], rtol=rtol, atol=1e-30), (
                f"After {which}, where x is 0 backward's dx is neither 0 nor dout · {scale:.4g} "
                f"({int((~unseen_ok).sum())} elements): a dropped element's gradient is 0 and a kept "
                "one's is dout times the forward's factor, whatever x is. Multiply dout by the "
                "cached mask (and the scale), not by something computed from x.")
            on = kept & (dout != 0)
            ratio = float(np.median(dx[on] / dout[on]))
            q = 1 / (1 - p)

            def near(a, b):
                return abs(a - b) < 1e-4 * max(abs(b), 1)
            hint = (" — it forgets the 1/(1 − p) scale in backward" if near(scale, q) and near(ratio, 1) else
                    " — it divides by 1 − p twice (is the cached mask already scaled?)"
                    if near(scale, q) and near(ratio, q * q) else
                    " — backward divides by 1 − p but your forward does not: forward and backward must "
                    "use the same factor" if near(scale, 1) and near(ratio, q) else "")
            shown, wanted = distinct_digits(ratio, scale, 4)
            assert False, (
                f"backward scaled the kept gradients by {shown}, but your forward multiplied the "
                f"kept elements by {wanted}; the derivative of out = x · factor is that same factor "
                f"where kept{hint}.")

    @mark.points(1)
    def test_layers_keep_their_own_masks(self, learner):
        """two layers alive at once, used in turn for three steps: each backward uses its own layer's mask"""
        ps, shape = (0.3, 0.6), (40, 50)
        xs, douts = [], []
        for t in range(3):
            pair = [inputs(learner.rng(80 + 2 * t + j), shape) for j in range(2)]
            xs.append([pair[0][0], pair[1][0]])
            douts.append([pair[0][1], pair[1][1]])
        steps = learner.call(two_layers, LAYER, helpers=LAYER_HELPERS, ps=ps,
                             seeds=[learner.seed(80), learner.seed(81)], xs=xs, douts=douts)
        names = ("A", "B")
        for t, step in enumerate(steps):
            for j in range(2):
                out, dx, other = step["out"][j], step["dx"][j], step["out"][1 - j]
                arrays = [v for v in (out, dx, other) if isinstance(v, np.ndarray) and v.shape == shape]
                if len(arrays) < 3:
                    continue          # a call that raised or returned no array: the other checks say why
                x, x_other = xs[t][j], xs[t][1 - j]
                seen = (x != 0) & (x_other != 0)
                used = dx[seen] != 0               # dout has no zeros: dx is 0 exactly where dropped
                own = mask_of(out, x)[seen]
                theirs = mask_of(other, x_other)[seen]
                # a correct layer's pattern is its own mask; it equals the other layer's (independent,
                # p = 0.3 and 0.6: an element agrees with probability 0.46) with probability
                # below 0.46^1000 for the >= 1000 elements seen here: never
                if np.array_equal(used, own) or not np.array_equal(used, theirs):
                    continue              # its own mask, or some other mistake graded elsewhere
                assert False, (
                    f"Two Dropout layers A (p = {ps[0]}) and B (p = {ps[1]}) were alive at once; at step "
                    f"{t + 1} (forward A, forward B, backward B, backward A) layer {names[j]}'s backward "
                    f"used the mask of layer {names[1 - j]}'s last forward. The layers share their cache: "
                    "is it stored on the class (an attribute set in the class body, such as a dict or "
                    "list that forward fills) rather than on the instance (self.…, set in __init__ or "
                    "forward)? Every layer of a network must keep its own mask.")

    @mark.points(1)
    def test_p_zero_and_one(self, learner):
        """training mode at p = 0 keeps everything and p = 1 drops everything (no NaN, no warning), forward
        and backward"""
        x, dout = inputs(learner.rng(71), (30, 40))
        r = learner.call(edges, LAYER, helpers=LAYER_HELPERS, seed=learner.seed(70), x=x, dout=dout)
        for p in ("0.0", "0", "1.0", "1"):
            loose, strict = r[p], r[p + " strict"]
            at_one = p.startswith("1")
            if "raised" in loose:
                assert False, (
                    f"At p = {p}: {loose['raised']}. "
                    + ("Do not divide by 1 − p when it is 0: at p = 1 return zeros directly."
                       if at_one else "At p = 0 nothing is dropped and nothing scaled."))
            hint = ("0/0 and x/0 come from dividing by 1 − p = 0: at p = 1 return zeros without dividing."
                    if at_one else "")
            out = finite(as_array(loose["out"], x.shape, f"Dropout({p}).forward(x)"),
                         f"At p = {p}, Dropout({p}).forward(x)", x == 0, hint)
            dx = finite(as_array(loose["dx"], x.shape, f"Dropout({p}).backward(dout)"),
                        f"At p = {p}, Dropout({p}).backward(dout)", x == 0, hint)
            if not at_one:
                assert np.array_equal(out, x) and np.array_equal(dx, dout), (
                    f"At p = {p} the layer should return x unchanged and pass dout through; "
                    f"{int((out != x).sum())} outputs and {int((dx != dout).sum())} gradients differed.")
            else:
                assert not out.any() and not dx.any(), (
                    f"At p = 1 everything is dropped: the output and the gradient should be all "
                    f"zeros; {int((out != 0).sum())} outputs and {int((dx != 0).sum())} gradients were not.")
            if "raised" in strict:
                assert False, (
                    f"At p = {p} your layer gives the right numbers but NumPy warns on the way "
                    f"({strict['raised']}): "
                    + ("it computes 0/0 or x/0 (dividing by 1 − p = 0) and then overwrites the result. "
                       "At p = 1 return zeros without dividing." if at_one else
                       "an invalid operation happens although nothing should be computed at p = 0."))


# ================================================================ checks: MLP
@mark.exercise("MLP")
class TestMLP:
    """The MLP is graded with the grader's Dropout stand-in (see the module docstring)."""

    @mark.points(1)
    def test_structure(self, learner):
        """MLP(sizes, p_drop, rng) has float64 params of the right shapes and one Dropout per hidden layer,
        with its rate"""
        cases = (([4, 6, 5, 7, 3], [0.1, 0.3, 0.6]), ([3, 8, 2], 0.25))
        rs = learner.call(structures, NET, helpers=NET_HELPERS + (structure,), cases=cases,
                          seed=learner.seed(100), coins=coins(learner, 101))
        for (sizes, p_drop), r in zip(cases, rs):
            assert_setup(r, sizes, own=True)
            call = f"MLP({sizes}, {p_drop})"
            L = len(sizes) - 1
            want = {f"W{i}": [sizes[i - 1], sizes[i]] for i in range(1, L + 1)}
            want.update({f"b{i}": [sizes[i]] for i in range(1, L + 1)})
            assert set(r["shapes"]) == set(want), (
                f"{call}.params has keys {sorted(r['shapes'])}; expected {sorted(want)} "
                "(one W and one b per affine layer, numbered from 1).")
            for k, shape in want.items():
                got = r["shapes"][k]
                assert isinstance(got, list) and got[0] == shape, (
                    f"{call}.params[{k!r}] is "
                    + (f"an array of shape {tuple(got[0])}" if isinstance(got, list) else f"a {got}")
                    + f"; expected an array of shape {tuple(shape)} (W_i is (sizes[i-1], sizes[i]) so "
                    "that h @ W + b works; b_i is (sizes[i],)).")
                assert got[1] == "float64", (
                    f"{call}.params[{k!r}] has dtype {got[1]}; the parameters should be float64 "
                    "(a gradient check needs it).")
            rates = [p_drop] * (L - 1) if np.ndim(p_drop) == 0 else list(p_drop)
            n = len(r["rates"])
            assert n == L - 1, (
                f"{call} has {n} dropout layers; expected {L - 1}, one after each hidden layer"
                + (" — none on the inputs and none after the output layer: the scores go straight "
                   "to the loss." if n > L - 1 else "."))
            assert all(s >= 0 for s in r["standin"]), (
                f"{call}.dropouts holds {r['types']}, not the layers made by calling Dropout(p, rng) "
                "when the network is built. (The grader grades your MLP with its own Dropout layer, "
                "given to your code under the name Dropout, so that a mistake in your Dropout does "
                "not cost MLP points too; make the layers in __init__ with Dropout(p, rng).)")
            assert len(set(r["standin"])) == n, (
                f"{call}.dropouts holds the same Dropout layer more than once; make one layer per "
                "hidden layer, each with its own rate.")
            got = [g if isinstance(g, float) else None for g in r["rates"]]
            assert all(g is not None and abs(g - w) < 1e-12 for g, w in zip(got, rates)), (
                f"{call}: the dropout layers' rates are {r['rates']}; expected {rates} — one rate per "
                "hidden layer, input side first" + (" (a single float applies to every hidden layer)."
                                                    if np.ndim(p_drop) == 0 else "."))
            assert r["training"] is True and all(m is True for m in r["layer_modes"]), (
                f"A new {call} should be in training mode, with every dropout layer too; got "
                f"net.training = {r['training']!r}, layers {r['layer_modes']}.")

    @mark.points(1)
    def test_train_eval_reach_every_layer(self, learner):
        """net.train() and net.eval() switch the network and every dropout layer (also when called twice), and
        return the network"""
        sizes, p_drop = [4, 6, 5, 7, 3], [0.1, 0.3, 0.6]
        r = learner.call(net_switch, NET, helpers=NET_HELPERS, sizes=sizes, p_drop=p_drop,
                         seed=learner.seed(110), coins=coins(learner, 111))
        assert_setup(r, sizes)
        for name, want in (("eval", False), ("train", True)):
            for k, step in enumerate(r[name]):
                assert not (k == 1 and step["net"] is not want), (
                    f"After net.{name}() was called twice in a row, net.training is {step['net']!r}: "
                    f"your {name}() toggles the mode instead of setting it (notebook 05's evaluate() "
                    f"calls eval() on a network already in eval mode). Set training = {want}, whatever "
                    "it was before.")
                wrong = [i for i, m in enumerate(step["layers"], start=1) if m is not want]
                assert not wrong, (
                    f"After net.{name}(), dropout layer(s) {wrong} have training = "
                    f"{[step['layers'][i - 1] for i in wrong]}: net.{name}() did not reach every dropout "
                    f"layer. Switch each of them (net.dropouts) as well as the network.")
                assert step["net"] is want, (
                    f"After net.{name}(), net.training is {step['net']!r}; expected {want}.")
                assert step["id"] == r["net"], (
                    f"net.{name}() returned {returned(step['type'])}; return the network itself (return self), "
                    "as torch.nn.Module does.")

    @mark.points(2)
    def test_eval_scores(self, learner):
        """eval mode: the scores are the plain forward pass without dropout, the same every time"""
        X, params, streams = net_case(learner, 120)
        r = learner.call(net_scores, NET, helpers=NET_HELPERS, sizes=NET_SIZES, p_drop=NET_RATES,
                         seed=learner.seed(121), coins=coins(learner, 122), params=params, X=X,
                         streams=streams, rates=NET_RATES)
        assert_setup(r, NET_SIZES)
        shape = (NET_N, NET_SIZES[-1])
        s1, s2 = (finite(as_array(s, shape, "net.forward(X) in eval mode"), "net.forward(X) in eval mode")
                  for s in r["eval"])
        active = describe_calls(r["eval_log"], training=True)
        assert not active, (
            "After net.eval() (and with every Dropout layer the network made switched to eval mode), "
            "your forward still called a dropout layer in training mode"
            + (": a layer that is not in net.dropouts — made inside forward? A layer made there is "
               "new at every call, so eval() can never reach it. Make the layers once, in __init__."
               if any(pos < 0 for pos, _ in active) else
               ": forward switches it back to training mode. The mode is set by train()/eval() only."))
        assert np.array_equal(s1, s2), (
            "After net.eval(), two forward passes gave different scores (max difference "
            f"{np.abs(s1 - s2).max():.3g}): something in your forward pass is random in eval mode.")
        want = scores_with(X, params)
        err = np.abs(s1 - want).max()
        assert np.allclose(s1, want, rtol=1e-9, atol=1e-12), (
            f"In eval mode your scores differ from the plain forward pass affine → ReLU → affine → "
            f"ReLU → affine with the network's params (max difference {err:.3g}). Is something "
            "scaled in eval mode, or is the order of the layers different from the contract?")

    @mark.points(1)
    def test_training_scores(self, learner):
        """training mode: each hidden layer's dropout follows its ReLU, and none is applied to the output scores"""
        X, params, streams = net_case(learner, 130, passes=3)
        r = learner.call(net_scores, NET, helpers=NET_HELPERS, sizes=NET_SIZES, p_drop=NET_RATES,
                         seed=learner.seed(131), coins=coins(learner, 132), params=params, X=X,
                         streams=streams, rates=NET_RATES)
        assert_setup(r, NET_SIZES)
        shape = (NET_N, NET_SIZES[-1])
        hidden = [[NET_N, H] for H in NET_SIZES[1:-1]]
        for t, (s, entries) in enumerate(zip(r["train"], r["train_logs"])):
            s = finite(as_array(s, shape, "net.forward(X) in training mode"), "net.forward(X) in training mode")
            calls = describe_calls(entries, training=True)
            on_scores = [pos for pos, c in calls if c[1] == list(shape)]
            assert not on_scores, (
                f"In training mode your forward applies dropout to the output scores (a dropout layer "
                f"received an array of shape {shape}, the scores'). Drop only after the hidden ReLUs: "
                "the scores of the last affine layer go straight to the loss.")
            assert all(pos >= 0 for pos, _ in calls), (
                "In training mode your forward used dropout layers that are not in net.dropouts "
                "(made inside forward?). Use the layers made in __init__ — net.train() and net.eval() "
                "can only reach those.")
            used = {pos for pos, _ in calls}
            unused = [k + 1 for k in range(len(hidden)) if k not in used]
            assert not unused, (
                f"In training mode your forward never called the forward of dropout layer(s) {unused} "
                "of net.dropouts: dropout is not active. Each hidden layer's ReLU output goes through "
                "its Dropout layer's forward.")
            masks = masks_from(streams[t], NET_RATES, NET_N, NET_SIZES)
            want = scores_with(X, params, masks, NET_RATES)
            if not np.allclose(s, want, rtol=1e-9, atol=1e-12):
                order = [c[1] for _, c in sorted(calls, key=lambda e: e[0])]
                assert False, (
                    "In training mode your scores differ from affine → ReLU → dropout → affine → ReLU → "
                    f"dropout → affine with the masks your dropout layers drew (max difference "
                    f"{np.abs(s - want).max():.3g}"
                    + ("" if order == hidden else f"; the layers received arrays of shapes {order}, "
                       f"expected {hidden}: are they used in the order of net.dropouts?")
                    + "). Each dropout layer's output is the next affine layer's input, and nothing "
                    "else is scaled: the layer already divides by 1 − p.")

    @mark.points(2)
    def test_training_steps_start_afresh(self, learner):
        """over several training steps (and an evaluation in between), each step's loss and gradients are
        those of that step alone: nothing is left over from earlier calls"""
        X, params, _ = net_case(learner, 150)
        g = learner.rng(151)
        steps = 4
        Xs = [X] + [g.standard_normal(X.shape) for _ in range(steps - 1)]
        ys = [g.integers(0, NET_SIZES[-1], NET_N) for _ in range(steps)]
        streams = [[g.random(NET_N * H) for H in NET_SIZES[1:-1]] for _ in range(steps)]
        r = learner.call(net_steps, NET, helpers=NET_HELPERS + (net_steps,), sizes=NET_SIZES,
                         p_drop=NET_RATES, seed=learner.seed(152), coins=coins(learner, 153),
                         params=params, Xs=Xs, ys=ys, streams=streams, rates=NET_RATES, lr=0.1)
        assert_setup(r, NET_SIZES)
        for t, step in enumerate(r["steps"]):
            diffs = {}
            for k, a in step["grads"].items():
                b = step["fresh_grads"][k]
                if not (isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and a.shape == b.shape):
                    continue              # the gradients' form is the gradient check's business
                if not np.allclose(a, b, rtol=1e-9, atol=1e-12, equal_nan=True):
                    with np.errstate(invalid="ignore"):
                        diffs[k] = float(np.nanmax(np.abs(a - b))) if np.isfinite(a - b).any() else float("nan")
            la, lb = step["loss"], step["fresh_loss"]
            loss_differs = (isinstance(la, float) and isinstance(lb, float) and not (
                la == lb or (isnan(la) and isnan(lb)) or abs(la - lb) <= 1e-9 * max(abs(la), abs(lb))))
            if not diffs and not loss_differs:
                continue
            after = ("after an evaluation in eval mode, " if t == steps - 1 else "") + \
                (f"after {t} earlier step(s) of net.loss and an update of the parameters" if t else "")
            what = (", ".join(f"grads[{k!r}] by up to {v:.3g}" for k, v in sorted(diffs.items()))
                    if diffs else f"the loss ({la:.10g} instead of {lb:.10g})")
            earlier = ("The first step agreed, so something computed by an earlier call is used again: "
                       "a list of caches that forward appends to but never empties (backward then reads "
                       "the first call's entries), a cache filled only on the first call, or state kept "
                       "on the class. Start every forward pass with fresh caches."
                       if t else "They differ already at the first step: your network's result depends on "
                       "more than its parameters, its layers' masks and its input (random numbers drawn "
                       "outside the Dropout layers, or state left from building it).")
            assert False, (
                f"At training step {t + 1} ({after or 'the first step'}), net.loss(X, y) differs from "
                f"what a new network in exactly the same state (same parameters, masks and input) "
                f"returns: {what}. {earlier}"
                + (" Here the step right after an eval-mode forward pass differs: that forward pass "
                   "left something behind that the training step used." if t == steps - 1 else ""))

    @mark.points(1)
    def test_randomness_comes_from_its_generator(self, learner):
        """MLP(sizes, p_drop, rng) draws its weights from rng and gives every Dropout layer rng (or a
        generator spawned from it): the same seed makes the same network, nothing global"""
        sizes, p_drop = [4, 6, 5, 3], [0.2, 0.5]
        seed = learner.seed(160)
        r = learner.call(net_rng, NET, helpers=NET_HELPERS + (net_rng,), sizes=sizes, p_drop=p_drop,
                         seeds=[seed, seed, seed + 1], coins=coins(learner, 161))
        assert_setup(r, sizes)
        a, b, c = r["builds"]
        for k, item in enumerate(a["rngs"], start=1):
            assert "draws" in item, (
                f"MLP({sizes}, {p_drop}, rng) made dropout layer {k} with rng = {item['type']}: the layer "
                "then draws its masks from a fresh, unseeded generator of its own, so no run can be "
                "repeated from the seed. Give every Dropout layer the network's generator, "
                "Dropout(p, self.rng) (or one spawned from it).")
        same = {k: isinstance(v, np.ndarray) and isinstance(b["params"].get(k), np.ndarray)
                and v.shape == b["params"][k].shape and np.array_equal(v, b["params"][k])
                for k, v in a["params"].items()}
        glob = " It draws from NumPy's global generator (np.random.…)." if r["global_moved"] else ""
        assert all(same.values()), (
            f"Two networks built with generators of the same seed got different initial parameters "
            f"({', '.join(k for k, v in same.items() if not v)}).{glob} Draw the weights from the "
            "generator rng only, so that a seed repeats a run.")
        for k, (x, y) in enumerate(zip(a["rngs"], b["rngs"]), start=1):
            assert np.array_equal(x["draws"], y["draws"]), (
                f"Dropout layer {k} of two networks built with generators of the same seed draws "
                "different numbers: its generator is not the network's (a new np.random.default_rng() "
                "made without the seed?). Give it self.rng, or a generator spawned from self.rng.")
        assert not r["global_moved"], (
            "Building the network drew from NumPy's global generator (np.random.…); the network's "
            "generator rng must be the only source of randomness.")
        assert a["consumed"], (
            f"MLP({sizes}, {p_drop}, rng) drew nothing from the generator it was given: the initial "
            "weights must come from rng (self.rng), so that the seed decides them.")
        # generators of two different seeds draw the same 4 doubles with probability ~2^-200: never
        assert not all(np.array_equal(x["draws"], y["draws"]) for x, y in zip(a["rngs"], c["rngs"])), (
            "Dropout layers of networks built with generators of different seeds draw the same "
            "numbers: is a seed fixed inside the network? Use the generator rng that was passed.")

    @mark.points(3)
    def test_gradient_check(self, learner):
        """with dropout on, net.loss's gradient matches a numerical gradient with the masks held fixed
        (relative error < 1e-6, float64)"""
        X, params, streams = net_case(learner, 140)
        y = learner.rng(141).integers(0, NET_SIZES[-1], NET_N)
        h = 1e-5
        r = learner.limited(timeout=20).call(
            net_gradcheck, NET, helpers=NET_HELPERS, sizes=NET_SIZES, p_drop=NET_RATES,
            seed=learner.seed(142), coins=coins(learner, 143), params=params, X=X, y=y, h=h,
            streams=streams[0], rates=NET_RATES)
        assert_setup(r, NET_SIZES)
        l0, l1 = r["losses"]
        assert np.isfinite(l0), (
            f"net.loss(X, y) returned a loss of {l0} in training mode; it should be a finite number. "
            "Look for 0/0 or log(0) in the forward pass and the softmax cross-entropy.")
        assert l0 == l1, (
            "With every dropout layer's masks held fixed, two calls of net.loss(X, y) gave different "
            f"losses ({l0:.10g} vs {l1:.10g}): something else in your network is random (a mask drawn "
            "outside the Dropout layers?), so no gradient check can hold the network fixed. Let the "
            "Dropout layers in net.dropouts do all the dropping.")
        assert "analytic" in r, (f"net.loss(X, y) should return (loss, grads) with grads a dict like "
                                 f"params; grads is a {r.get('grads')}.")
        analytic = {}
        for k in params:
            g, shape = r["analytic"][k], tuple(r["layout"][k])
            what = ("missing" if isinstance(g, str) else
                    g["not_array"] if isinstance(g, dict) else
                    None if g.shape == shape else f"an array of shape {g.shape}")
            assert what is None, (f"grads[{k!r}] is {what}; it should be an array shaped like "
                                  f"params[{k!r}], {shape}.")
            analytic[k] = g.astype(np.float64)
        bad = {k: g for k, g in analytic.items() if not np.isfinite(g).all()}
        assert not bad, (
            "Your gradients contain non-finite values: "
            + ", ".join(f"grads[{k!r}] has {int(np.isnan(g).sum())} NaN and {int(np.isinf(g).sum())} inf "
                        f"of {g.size}" for k, g in bad.items())
            + ". A gradient must be a finite number everywhere. NaN usually comes from 0/0 — e.g. a "
            "dropout gradient recovered as (output / input), which is 0/0 wherever a ReLU is off; "
            "use the dropout layer's backward with its cached mask instead.")
        errors = {}
        for k, a in analytic.items():
            n = (r["plus"][k] - r["minus"][k]) / (2 * h)
            assert np.isfinite(n).all(), (
                f"The loss became non-finite when params[{k!r}] moved by ±{h:g}: the numerical "
                "gradient cannot be computed. Look for 0/0 or log(0) in the forward pass.")
            denom = np.linalg.norm(a) + np.linalg.norm(n)
            errors[k] = float(np.linalg.norm(a - n) / denom) if denom > 0 else 0.0  # both exactly 0
        bad = {k: e for k, e in errors.items() if not e < 1e-6}
        # The parameters keep every ReLU away from its kink (kink_free), so a correct float64
        # network gives about 1e-9 or less here, whatever its mask convention.
        assert not bad, (
            "With the dropout masks held fixed, your gradients do not match the centred differences "
            "of your loss: relative error "
            + ", ".join(f"{k} {e:.1e}" for k, e in sorted(bad.items()))
            + " (should be < 1e-6; all: " + ", ".join(f"{k} {e:.0e}" for k, e in errors.items()) + "). "
            "Check the backward pass: each hidden layer's dropout backward (its layer's backward), "
            "the ReLU gate, and the order of the layers.")
