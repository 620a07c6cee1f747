"""The grader of notebook 05 against buggy Dropout layers and networks (each must lose points
with a message naming its mistake) and honest alternatives (each must keep full marks).

Each fixture is a cell appended to solutions/05_dropout_in_a_network.ipynb that redefines
Dropout or MLP (often as a subclass of the reference, overriding one method).
"""
import pytest

from tests.grading import grade_variants

STEM = "05_dropout_in_a_network"

# ---------------------------------------------------------------- Dropout mistakes
def forward_variant(mask="self.rng.random(x.shape) >= self.p", out="x * self.mask / (1 - self.p)",
                    at_p1=True, extra=""):
    """A Dropout subclass whose training-mode forward draws `mask` and returns `out`."""
    p1 = ("        if self.p == 1:\n            self.mask = np.zeros(x.shape, dtype=bool)\n"
          "            return np.zeros_like(x)\n") if at_p1 else ""
    return ("\nclass Dropout(Dropout):\n" + extra + "    def forward(self, x):\n"
            "        if not self.training or self.p == 0:\n            self.mask = None\n"
            "            return x\n" + p1 + f"        self.mask = {mask}\n        return {out}\n")


EVAL_STILL_DROPS = '''
class Dropout(Dropout):
    def forward(self, x):                       # ignores self.training
        self.mask = self.rng.random(x.shape) >= self.p
        return x * self.mask / (1 - self.p)
'''

FORGETS_SCALE = forward_variant(out="x * self.mask", at_p1=False) + \
    "    def backward(self, dout):\n        return dout if self.mask is None else dout * self.mask\n"

BACKWARD_NEW_MASK = '''
class Dropout(Dropout):
    def backward(self, dout):
        if self.mask is None:
            return dout
        fresh = self.rng.random(dout.shape) >= self.p
        return dout * fresh / (1 - self.p)
'''

EVAL_KEEPS_TRAINING = '''
class Dropout(Dropout):
    def eval(self):
        return self                             # forgets training = False
'''

NO_RETURN = '''
class Dropout(Dropout):
    def train(self):
        self.training = True
    def eval(self):
        self.training = False
'''

SWAPPED = forward_variant(mask="self.rng.random(x.shape) < self.p")        # keeps with probability p
DIVIDES_BY_P = forward_variant(out="x * self.mask / self.p", at_p1=False) + \
    "    def backward(self, dout):\n        return dout if self.mask is None else dout * self.mask / self.p\n"
BACKWARD_SCALES_TWICE = forward_variant(mask="(self.rng.random(x.shape) >= self.p) / (1 - self.p)",
                                        out="x * self.mask", at_p1=False)  # scaled mask, divided again
NAN_AT_P1 = forward_variant(at_p1=False)
SHARED_MASK = forward_variant(mask="self.rng.random((1,) + x.shape[1:]) >= self.p")  # one row for all
GLOBAL_RNG = forward_variant(mask="np.random.rand(*x.shape) >= self.p")
PRIVATE_GENERATOR = forward_variant(mask="self._gen.random(x.shape) >= self.p", extra=(
    "    def __init__(self, p, rng=None):\n        super().__init__(p, rng)\n"
    "        self._gen = self.rng            # draws from a second reference, not self.rng\n"))
MODIFIES_X = forward_variant(out="np.multiply(x, self.mask / (1 - self.p), out=x)")

NO_VALIDATION = '''
class Dropout(Dropout):
    def __init__(self, p, rng=None):
        self.p = float(p)
        self.rng = np.random.default_rng() if rng is None else rng
        self.training = True
        self.mask = None
'''

EVAL_DRAWS = '''
class Dropout(Dropout):
    def forward(self, x):
        self.rng.random(x.shape)                 # drawn before looking at the mode, then unused
        return super().forward(x)
'''

# ---------------------------------------------------------------- MLP mistakes
NET_EVAL_NOT_PROPAGATED = '''
class MLP(MLP):
    def eval(self):
        self.training = False                    # the dropout layers never hear of it
        return self
'''

NET_TRAIN_NOT_PROPAGATED = '''
class MLP(MLP):
    def train(self):
        self.training = True
        return self
'''

DROPOUT_ON_OUTPUT = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.output_dropout = Dropout(self.dropouts[-1].p, self.rng)
    def train(self):
        self.output_dropout.train()
        return super().train()
    def eval(self):
        self.output_dropout.eval()
        return super().eval()
    def forward(self, X):
        return self.output_dropout.forward(super().forward(X))
    def backward(self, dscores):
        return super().backward(self.output_dropout.backward(dscores))
'''

DROPOUT_ON_OUTPUT_IN_LIST = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.dropouts.append(Dropout(self.dropouts[-1].p, self.rng))
    def forward(self, X):
        self.caches = []
        h = X
        L = self.n_layers
        for i in range(1, L + 1):
            a, cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a) if i < L else (a, None)
            h = self.dropouts[i - 1].forward(r)
            self.caches.append((cache, relu_cache))
        return h
    def backward(self, dscores):
        grads = {}
        dh = dscores
        for i in range(self.n_layers, 0, -1):
            cache, relu_cache = self.caches[i - 1]
            da = self.dropouts[i - 1].backward(dh)
            if relu_cache is not None:
                da = relu_backward(da, relu_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(da, cache)
        return grads
'''

NET_NO_RETURN = '''
class MLP(MLP):
    def train(self):
        super().train()
    def eval(self):
        super().eval()
'''

BACKWARD_SKIPS_DROPOUT = '''
class MLP(MLP):
    def backward(self, dscores):
        grads = {}
        L = self.n_layers
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, self.caches[-1])
        for i in range(L - 1, 0, -1):
            affine_cache, relu_cache = self.caches[i - 1]
            da = relu_backward(dh, relu_cache)           # the dropout layer is skipped
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(da, affine_cache)
        return grads
'''

ONE_RATE_FOR_ALL = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        first = p_drop if np.ndim(p_drop) == 0 else p_drop[0]
        super().__init__(sizes, first, rng)
'''

NO_DROPOUT_IN_FORWARD = '''
class MLP(MLP):
    def forward(self, X):
        self.caches = []
        h = X
        for i in range(1, self.n_layers):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            h, relu_cache = relu_forward(a)
            self.dropouts[i - 1].mask = None
            self.caches.append((affine_cache, relu_cache))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
'''

# ---------------------------------------------------------------- honest alternatives
SCALED_MASK_CACHE = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training:
            self.mask = None
            return x
        if self.p == 1:
            self.mask = np.zeros_like(x)
            return np.zeros_like(x)
        self.mask = (self.rng.random(x.shape) >= self.p) / (1.0 - self.p)
        return x * self.mask
    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask
'''

EVAL_RETURNS_COPY = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training:
            self.mask = None
            return x.copy()
        return super().forward(x)
'''

KEEP_BELOW_ONE_MINUS_P_FLOAT32_WHERE = '''
class Dropout:
    def __init__(self, p, rng=None):
        if not (0 <= p <= 1):
            raise ValueError("bad p")
        self.p, self.training, self.cache = p, True, None
        self.rng = rng if rng is not None else np.random.default_rng()
    def train(self):
        self.training = True
        return self
    def eval(self):
        self.training = False
        return self
    def forward(self, x):
        if self.training and self.p > 0:
            keep = self.rng.random(x.shape, dtype=np.float32) < 1 - self.p
            self.cache = keep
            return np.where(keep, x / max(1 - self.p, 1e-300), 0.0) if self.p < 1 else np.zeros_like(x)
        self.cache = None
        return x
    def backward(self, dout):
        if self.cache is None:
            return dout
        if self.p == 1:
            return np.zeros_like(dout)
        return np.where(self.cache, dout / (1 - self.p), 0.0)
'''

NET_OWN_GENERATORS_DROPOUT_BEFORE_RELU = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.dropouts = [Dropout(d.p, g) for d, g in zip(self.dropouts, self.rng.spawn(len(self.dropouts)))]
    def forward(self, X):
        self.caches = []
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            d = layer.forward(a)                        # dropout before the ReLU: the same function
            h, relu_cache = relu_forward(d)
            self.caches.append((affine_cache, relu_cache))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
    def backward(self, dscores):
        grads = {}
        L = self.n_layers
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, self.caches[-1])
        for i in range(L - 1, 0, -1):
            affine_cache, relu_cache = self.caches[i - 1]
            da = self.dropouts[i - 1].backward(relu_backward(dh, relu_cache))
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(da, affine_cache)
        return grads
'''

# name: (source, {exercise: distinctive substring of the feedback})
MISTAKES = {
    "eval still drops": (EVAL_STILL_DROPS, {"Dropout": "still drops", "MLP": "still active in eval mode"}),
    "forgets the scale": (FORGETS_SCALE, {"Dropout": "forgets the scale"}),
    "backward draws a new mask": (BACKWARD_NEW_MASK, {"Dropout": "backward draws a new mask",
                                                      "MLP": "gradients do not match"}),
    "Dropout.eval keeps training": (EVAL_KEEPS_TRAINING, {"Dropout": "eval() must set training = False",
                                                          "MLP": "did not reach every dropout layer"}),
    "train/eval return None": (NO_RETURN, {"Dropout": "return the layer itself"}),
    "keep and drop swapped": (SWAPPED, {"Dropout": "swapped"}),
    "divides by p": (DIVIDES_BY_P, {"Dropout": "divides by p"}),
    "backward scales twice": (BACKWARD_SCALES_TWICE, {"Dropout": "divides by 1 − p twice"}),
    "NaN at p = 1": (NAN_AT_P1, {"Dropout": "At p = 1"}),
    "no validation of p": (NO_VALIDATION, {"Dropout": "was accepted"}),
    "mask shared by the batch": (SHARED_MASK, {"Dropout": "shared by the whole batch"}),
    "global RNG": (GLOBAL_RNG, {"Dropout": "global generator"}),
    "eval mode draws": (EVAL_DRAWS, {"Dropout": "still drew random numbers"}),
    "draws from a private generator": (PRIVATE_GENERATOR, {"Dropout": "self.rng",
                                                           "MLP": "do not come (only) from the layers' rng"}),
    "modifies x in place": (MODIFIES_X, {"Dropout": "changed its input x in place"}),
    "network eval() does not reach the layers": (NET_EVAL_NOT_PROPAGATED, {
        "MLP": "net.eval() did not reach every dropout layer"}),
    "network train() does not reach the layers": (NET_TRAIN_NOT_PROPAGATED, {
        "MLP": "net.train() did not reach every dropout layer"}),
    "dropout on the output": (DROPOUT_ON_OUTPUT, {"MLP": "applied to the output layer"}),
    "dropout on the output, in the list": (DROPOUT_ON_OUTPUT_IN_LIST, {"MLP": "none after the output layer"}),
    "network train()/eval() return None": (NET_NO_RETURN, {"MLP": "return the network itself"}),
    "backward skips the dropout layer": (BACKWARD_SKIPS_DROPOUT, {"MLP": "gradients do not match"}),
    "one rate for every layer": (ONE_RATE_FOR_ALL, {"MLP": "one rate per hidden layer"}),
    "forward never applies dropout": (NO_DROPOUT_IN_FORWARD, {"MLP": "dropout is not active"}),
}

HONEST = {
    "reference": "",
    "scaled mask cached": SCALED_MASK_CACHE,
    "eval returns a copy": EVAL_RETURNS_COPY,
    "keep if u < 1 - p, float32 draws, np.where": KEEP_BELOW_ONE_MINUS_P_FLOAT32_WHERE,
    "own generator per layer, dropout before the ReLU": NET_OWN_GENERATORS_DROPOUT_BEFORE_RELU,
}


@pytest.fixture(scope="module")
def graded():
    sources = {name: src for name, (src, _) in MISTAKES.items()}
    sources.update(HONEST)
    return grade_variants(STEM, None, sources)


def exercise_tests(g, exercise):
    return [t for t in g.tests if f" · {exercise} · " in t["name"]]


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_loses_points_with_its_name(graded, name):
    g = graded[name]
    for exercise, phrase in MISTAKES[name][1].items():
        tests = exercise_tests(g, exercise)
        lost = [t for t in tests if t["status"] != "passed"]
        assert lost, f"{name}: no check of {exercise} failed\n{g!r}"
        outputs = "\n".join(t["output"] for t in lost)
        assert phrase in outputs, f"{name}: no {exercise} message says {phrase!r}\n{g!r}"
        assert all(t["output"] and "could not run this check" not in t["output"] for t in lost), g


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_alternative_keeps_full_marks(graded, name):
    g = graded[name]
    assert g.max_score > 0 and g.score == g.max_score, f"{name}\n{g!r}"
