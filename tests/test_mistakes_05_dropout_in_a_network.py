"""The grader of notebook 05 against buggy Dropout layers and networks, and honest alternatives.

The mistake table: for every catalogued mistake, the exact set of check functions it must fail
(no more: one mistake is charged once, and a Dropout mistake never costs MLP points, because
the MLP is graded with the grader's own Dropout stand-in) and words its first failing message
must contain.  Honest alternatives, most of them unlike the reference, keep full marks.

Each fixture is a cell appended to solutions/05_dropout_in_a_network.ipynb that redefines
Dropout or MLP (a subclass of the reference overriding one method, or a class of its own).
"""
import pytest

from tests.grading import assert_full_marks, assert_mistake, grade_variants

STEM = "05_dropout_in_a_network"

# check functions
C, BAD, TE = "test_construct", "test_rejects_bad_p", "test_train_eval_return_the_layer"
TF, FR = "test_training_forward", "test_fresh_independent_masks"
EI, ED = "test_eval_is_identity", "test_eval_draws_nothing"
UG, BW, PZ = "test_uses_its_generator", "test_backward_uses_the_cached_mask", "test_p_zero_and_one"
ST, RE = "test_structure", "test_train_eval_reach_every_layer"
ES, TS, GC = "test_eval_scores", "test_training_scores", "test_gradient_check"
OWN, STEPS, RNG = "test_layers_keep_their_own_masks", "test_training_steps_start_afresh", \
    "test_randomness_comes_from_its_generator"


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
        if self.p == 1:
            self.mask = np.zeros(x.shape, dtype=bool)
            return np.zeros_like(x)
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
        if self.p == 1:
            return np.zeros_like(dout)
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
                                        out="x * self.mask")  # scaled mask, divided again in backward
NAN_AT_P1 = forward_variant(at_p1=False)
SHARED_MASK = forward_variant(mask="self.rng.random((1,) + x.shape[1:]) >= self.p")  # one row for all
GLOBAL_RNG = forward_variant(mask="np.random.rand(*x.shape) >= self.p")
FIXED_SEED = forward_variant(mask="np.random.default_rng(0).random(x.shape) >= self.p")
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

NAN_NOT_REJECTED = '''
class Dropout(Dropout):
    def __init__(self, p, rng=None):
        if p < 0 or p > 1:                      # NaN passes both comparisons
            raise ValueError("p must be in [0, 1]")
        self.p = float(p)
        self.rng = np.random.default_rng() if rng is None else rng
        self.training = True
        self.mask = None
'''

VALIDATES_IN_FORWARD = '''
class Dropout(Dropout):
    def __init__(self, p, rng=None):
        self.p = p
        self.rng = np.random.default_rng() if rng is None else rng
        self.training = True
        self.mask = None
    def forward(self, x):
        if not 0 <= self.p <= 1:
            raise ValueError("p must be in [0, 1]")
        return super().forward(x)
'''

EVAL_DRAWS = '''
class Dropout(Dropout):
    def forward(self, x):
        self.rng.random(x.shape)                 # drawn before looking at the mode, then unused
        return super().forward(x)
'''

NAN_BACKWARD_FROM_OUTPUT = '''
class Dropout(Dropout):
    def forward(self, x):
        out = super().forward(x)
        self.x, self.out = x, out
        return out
    def backward(self, dout):
        if self.mask is None:
            return dout
        if self.p == 1:
            return np.zeros_like(dout)
        return dout * self.out / self.x          # the factor recovered as out / x: 0/0 where x = 0
'''

STALE_MASK_IN_EVAL = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training:
            return x                             # the mask of the last training call stays
        return super().forward(x)
'''

EVAL_BACKWARD_RAISES = '''
class Dropout(Dropout):
    def forward(self, x):
        if self.training and self.p == 0:
            self.mask = np.ones(x.shape, dtype=bool)
            return x
        return super().forward(x)
    def backward(self, dout):
        if self.p == 1:
            return np.zeros_like(dout)
        return dout * self.mask / (1 - self.p)   # mask is None in eval mode: TypeError
'''

P1_BEFORE_MODE = '''
class Dropout(Dropout):
    def forward(self, x):
        if self.p == 1:                          # checked before the mode: zeros in eval mode too
            self.mask = np.zeros(x.shape, dtype=bool)
            return np.zeros_like(x)
        return super().forward(x)
'''

ZERO_DIVISION_AT_P1 = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        scale = 1 / (1 - self.p)                 # ZeroDivisionError at p = 1
        self.mask = self.rng.random(x.shape) >= self.p
        return x * self.mask * scale
'''

WARNS_AT_P1 = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        self.mask = self.rng.random(x.shape) >= self.p
        out = x * self.mask / (1.0 - self.p)     # 0/0 at p = 1 (a RuntimeWarning), then overwritten
        if self.p == 1:
            out = np.zeros_like(x)
        return out
'''

SCALES_ONLY_IN_BACKWARD = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        if self.p == 1:
            self.mask = np.zeros(x.shape, bool)
            return np.zeros_like(x)
        self.mask = self.rng.random(x.shape) >= self.p
        return x * self.mask                     # the reference backward still divides by 1 - p
'''

ASSERT_INSTEAD_OF_VALUEERROR = '''
class Dropout(Dropout):
    def __init__(self, p, rng=None):
        assert 0 <= p <= 1, "p must be a probability"
        super().__init__(p, rng)
'''

MASK_DRAWN_ONCE = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        if getattr(self, "fixed", None) is None or self.fixed.shape != x.shape:
            self.fixed = self.rng.random(x.shape) >= self.p     # drawn at the first call only
        self.mask = self.fixed
        if self.p == 1:
            return np.zeros_like(x)
        return x * self.mask / (1 - self.p)
'''

WHERE_DIVIDES_BY_ZERO = '''
class Dropout(Dropout):
    def forward(self, x):
        if not self.training:
            self.mask = None
            return x
        self.mask = self.rng.random(x.shape) < (1 - self.p)
        return np.where(self.mask, x / (1 - self.p), 0.0)       # x/0 at p = 1, then discarded
    def backward(self, dout):
        if self.mask is None:
            return dout
        return np.where(self.mask, dout / (1 - self.p), 0.0)
'''

EVAL_TOGGLES = '''
class Dropout(Dropout):
    def eval(self):
        self.training = not self.training        # a second eval() switches dropout back on
        return self
'''

TRAIN_TOGGLES = '''
class Dropout(Dropout):
    def train(self):
        self.training = not self.training
        return self
'''

SHARED_CLASS_CACHE = '''
class Dropout(Dropout):
    cache = {}                                   # one dict for the class: every layer shares it
    def forward(self, x):
        out = super().forward(x)
        self.cache["mask"] = self.mask
        return out
    def backward(self, dout):
        mask = self.cache["mask"]
        if mask is None:
            return dout
        if self.p == 1:
            return np.zeros_like(dout)
        return dout * mask / (1 - self.p)
'''

# ---------------------------------------------------------------- MLP mistakes
CACHES_NEVER_EMPTIED = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.caches = []                             # emptied here only
    def forward(self, X):
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            h = layer.forward(r)
            self.caches.append((affine_cache, relu_cache))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
'''

CACHES_ONLY_FIRST_CALL = '''
class MLP(MLP):
    def forward(self, X):
        first = not hasattr(self, "caches")
        if first:
            return super().forward(X)
        saved = self.caches
        scores = super().forward(X)
        self.caches = saved                          # keeps the first call's caches
        return scores
'''

NET_EVAL_TOGGLES = '''
class MLP(MLP):
    def eval(self):
        self.training = not self.training
        for layer in self.dropouts:
            layer.eval()
        return self
'''

LAYERS_WITHOUT_RNG = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.dropouts = [Dropout(d.p) for d in self.dropouts]     # rng=None: unseeded generators
'''

LAYERS_WITH_NEW_GENERATORS = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.dropouts = [Dropout(d.p, np.random.default_rng()) for d in self.dropouts]
'''

WEIGHTS_FROM_GLOBAL_RNG = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        for i in range(1, self.n_layers + 1):
            W = self.params[f"W{i}"]
            W[...] = np.random.randn(*W.shape) * np.sqrt(2.0 / W.shape[0])
'''


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

RATES_REVERSED = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        rates = p_drop if np.ndim(p_drop) == 0 else list(p_drop)[::-1]   # output side first
        super().__init__(sizes, rates, rng)
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

NAN_GRADIENT_FROM_ACTIVATIONS = '''
class MLP(MLP):
    def forward(self, X):
        self.caches = []
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            h = layer.forward(r)
            self.caches.append((affine_cache, relu_cache, r, h))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
    def backward(self, dscores):
        grads = {}
        L = self.n_layers
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, self.caches[-1])
        for i in range(L - 1, 0, -1):
            affine_cache, relu_cache, r, h = self.caches[i - 1]
            dr = dh * h / r                      # dropout's factor as output / input: 0/0 where r = 0
            da = relu_backward(dr, relu_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(da, affine_cache)
        return grads
'''

DROPOUT_MADE_IN_FORWARD = '''
class MLP(MLP):
    def forward(self, X):
        self.caches, self.used = [], []
        h = X
        for i, listed in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            layer = Dropout(listed.p, self.rng)  # a new layer at every call: always training
            h = layer.forward(r)
            self.used.append(layer)
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
            da = relu_backward(self.used[i - 1].backward(dh), relu_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(da, affine_cache)
        return grads
'''

SCALES_AGAIN = '''
class MLP(MLP):
    def forward(self, X):
        self.caches = []
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            h = layer.forward(r)
            if self.training:
                h = h / (1 - layer.p)            # the layer already scaled: now twice
            self.caches.append((affine_cache, relu_cache))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
'''

INLINE_DROPOUT = '''
class MLP(MLP):
    def forward(self, X):                        # draws its own masks; the Dropout layers sit unused
        self.caches = []
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            m = (self.rng.random(r.shape) >= layer.p) / (1 - layer.p) if self.training else 1.0
            h = r * m
            self.caches.append((affine_cache, relu_cache, m))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
    def backward(self, dscores):
        grads = {}
        L = self.n_layers
        dh, grads[f"W{L}"], grads[f"b{L}"] = affine_backward(dscores, self.caches[-1])
        for i in range(L - 1, 0, -1):
            affine_cache, relu_cache, m = self.caches[i - 1]
            da = relu_backward(dh * m, relu_cache)
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(da, affine_cache)
        return grads
'''

FLOAT32_PARAMS = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.params = {k: v.astype(np.float32) for k, v in self.params.items()}
'''

W_OUT_BY_IN = '''
class MLP(MLP):
    """W_i stored as (sizes[i], sizes[i-1]) and used as h @ W.T"""
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        for i in range(1, self.n_layers + 1):
            self.params[f"W{i}"] = np.ascontiguousarray(self.params[f"W{i}"].T)
    def forward(self, X):
        self.caches = []
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"].T, self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            h = layer.forward(r)
            self.caches.append((affine_cache, relu_cache))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"].T, self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
    def backward(self, dscores):
        grads = super().backward(dscores)
        return {k: (g.T if k.startswith("W") else g) for k, g in grads.items()}
'''

INPUT_DROPOUT = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        self.dropouts.insert(0, Dropout(0.2, self.rng))          # also drops the inputs
    def forward(self, X):
        X = self.dropouts[0].forward(X)
        saved, self.dropouts = self.dropouts, self.dropouts[1:]
        try:
            return super().forward(X)
        finally:
            self.dropouts = saved
    def backward(self, dscores):
        saved, self.dropouts = self.dropouts, self.dropouts[1:]
        try:
            return super().backward(dscores)
        finally:
            self.dropouts = saved
'''

EVAL_NOT_CALLED = '''
class MLP(MLP):
    def eval(self):
        self.training = False
        for layer in self.dropouts:
            layer.eval                               # no parentheses: nothing happens
        return self
'''

# name: (source, the exact set of checks it fails, words of the first failing message)
MISTAKES = {
    # Dropout
    "eval still drops": (EVAL_STILL_DROPS, {EI, ED}, "still drops"),
    "forgets the scale": (FORGETS_SCALE, {TF}, "forgets the scale"),
    "backward draws a new mask": (BACKWARD_NEW_MASK, {BW}, "draws a new mask"),
    "Dropout.eval keeps training": (EVAL_KEEPS_TRAINING, {TE}, "eval() must set training = False"),
    "train/eval return None": (NO_RETURN, {TE}, "return the layer itself"),
    "keep and drop swapped": (SWAPPED, {TF}, "swapped"),
    "divides by p": (DIVIDES_BY_P, {TF}, "divides by p"),
    "backward scales twice": (BACKWARD_SCALES_TWICE, {BW}, "divides by 1 − p twice"),
    "NaN at p = 1": (NAN_AT_P1, {PZ}, "At p = 1"),
    "ZeroDivisionError at p = 1": (ZERO_DIVISION_AT_P1, {PZ}, "ZeroDivisionError"),
    "0/0 at p = 1, then overwritten": (WARNS_AT_P1, {PZ}, "warns"),
    "no validation of p": (NO_VALIDATION, {BAD}, "accepted"),
    "NaN not rejected": (NAN_NOT_REJECTED, {BAD}, "NaN"),
    "p validated in forward, not in the constructor": (VALIDATES_IN_FORWARD, {BAD}, "only when forward"),
    "mask shared by the batch": (SHARED_MASK, {FR}, "shared by the whole batch"),
    "global RNG": (GLOBAL_RNG, {UG}, "global generator"),
    "fixed seed inside the layer": (FIXED_SEED, {FR, UG}, "exactly the same elements"),
    "eval mode draws": (EVAL_DRAWS, {ED}, "still drew random numbers"),
    "draws from a private generator": (PRIVATE_GENERATOR, {UG}, "self.rng"),
    "modifies x in place": (MODIFIES_X, {TF}, "changed its input x in place"),
    "backward as dout·out/x (NaN where x = 0)": (NAN_BACKWARD_FROM_OUTPUT, {BW}, "NaN"),
    "stale mask in eval-mode backward": (STALE_MASK_IN_EVAL, {EI}, "mask cached by the last training-mode forward"),
    "eval-mode backward raises": (EVAL_BACKWARD_RAISES, {EI}, "TypeError"),
    "p = 1 zeros even in eval mode": (P1_BEFORE_MODE, {EI}, "before the special case p = 1"),
    "scales only in backward": (SCALES_ONLY_IN_BACKWARD, {TF, BW}, "forgets the scale"),
    "assert instead of ValueError": (ASSERT_INSTEAD_OF_VALUEERROR, {BAD}, "AssertionError"),
    "mask drawn once": (MASK_DRAWN_ONCE, {FR}, "drawn once"),
    "np.where computes x/0 at p = 1": (WHERE_DIVIDES_BY_ZERO, {PZ}, "warns"),
    "eval() toggles the mode": (EVAL_TOGGLES, {TE}, "toggles the mode"),
    "train() toggles the mode": (TRAIN_TOGGLES, {TE}, "toggles the mode"),
    "mask cached in a dict on the class": (SHARED_CLASS_CACHE, {OWN}, "share their cache"),
    # MLP
    "network eval() does not reach the layers": (NET_EVAL_NOT_PROPAGATED, {RE},
                                                 "net.eval() did not reach every dropout layer"),
    "network train() does not reach the layers": (NET_TRAIN_NOT_PROPAGATED, {RE},
                                                  "net.train() did not reach every dropout layer"),
    "dropout on the output": (DROPOUT_ON_OUTPUT, {TS}, "output scores"),
    "dropout on the output, in the list": (DROPOUT_ON_OUTPUT_IN_LIST, {ST, TS}, "none after the output layer"),
    "network train()/eval() return None": (NET_NO_RETURN, {RE}, "return the network itself"),
    "backward skips the dropout layer": (BACKWARD_SKIPS_DROPOUT, {GC}, "gradients do not match"),
    "one rate for every layer": (ONE_RATE_FOR_ALL, {ST}, "one rate per hidden layer"),
    "rates in reverse order": (RATES_REVERSED, {ST}, "input side first"),
    "forward never applies dropout": (NO_DROPOUT_IN_FORWARD, {TS}, "dropout is not active"),
    "NaN gradient from output / input": (NAN_GRADIENT_FROM_ACTIVATIONS, {GC}, "NaN"),
    "dropout layers made inside forward": (DROPOUT_MADE_IN_FORWARD, {ES, TS}, "made inside forward"),
    "network scales again": (SCALES_AGAIN, {TS, GC}, "nothing else is scaled"),
    "masks drawn in the network, layers unused": (INLINE_DROPOUT, {TS, GC}, "never called the forward"),
    "float32 parameters": (FLOAT32_PARAMS, {ST}, "float64"),
    "W stored as (out, in)": (W_OUT_BY_IN, {ST}, "expected an array of shape"),
    "dropout on the inputs too": (INPUT_DROPOUT, {ST, TS}, "none on the inputs"),
    "net.eval() forgets the parentheses": (EVAL_NOT_CALLED, {RE}, "net.eval() did not reach"),
    "caches never emptied": (CACHES_NEVER_EMPTIED, {STEPS}, "never empties"),
    "caches of the first call kept": (CACHES_ONLY_FIRST_CALL, {STEPS}, "earlier call is used again"),
    "net.eval() toggles the mode": (NET_EVAL_TOGGLES, {RE}, "toggles the mode"),
    "Dropout layers made without the network's generator": (LAYERS_WITHOUT_RNG, {RNG}, "rng = None"),
    "Dropout layers with new unseeded generators": (LAYERS_WITH_NEW_GENERATORS, {RNG}, "not the network's"),
    "weights from NumPy's global generator": (WEIGHTS_FROM_GLOBAL_RNG, {RNG}, "global generator"),
}

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

BINOMIAL_INT_MASK_PROPERTY = '''
import math

class Dropout:
    """binomial integer mask, mode kept as a string behind a `training` property"""
    def __init__(self, p=0.5, rng=None):
        if math.isnan(p) or p < 0 or p > 1:
            raise ValueError(f"p must be a probability, got {p}")
        self.p = p
        self.rng = np.random.default_rng() if rng is None else rng
        self._mode = "train"
        self._keep = None
    @property
    def training(self):
        return self._mode == "train"
    @training.setter
    def training(self, value):
        self._mode = "train" if value else "eval"
    def train(self):
        self._mode = "train"
        return self
    def eval(self):
        self._mode = "eval"
        return self
    def forward(self, x):
        if self._mode == "eval":
            self._keep = None
            return x
        self._keep = self.rng.binomial(1, 1 - self.p, size=x.shape)
        if self.p == 1:
            return x * 0
        return x * self._keep / (1 - self.p)
    def backward(self, dout):
        if self._keep is None:
            return dout
        if self.p == 1:
            return dout * 0
        return dout * self._keep / (1 - self.p)
'''

IN_PLACE_ON_A_COPY_UINT8 = '''
class Dropout:
    def __init__(self, p, rng=None):
        p = float(p)
        if not 0.0 <= p <= 1.0:
            raise ValueError("dropout probability must be between 0 and 1")
        self.p, self.rng, self.training = p, (rng or np.random.default_rng()), True
        self.scale = 0.0 if p == 1.0 else 1.0 / (1.0 - p)
        self.keep = None
    def train(self):
        self.training = True
        return self
    def eval(self):
        self.training = False
        return self
    def forward(self, x):
        self.keep = None
        if not self.training:
            return x
        self.keep = (self.rng.uniform(size=x.shape) > self.p).astype(np.uint8)
        out = np.array(x, copy=True)
        out[self.keep == 0] = 0
        out *= self.scale
        return out
    def backward(self, dout):
        if self.keep is None:
            return dout
        dx = dout.copy()
        dx[self.keep == 0] = 0
        dx *= self.scale
        return dx
'''

FLOAT32_MASK_CALL = '''
class Layer:
    def __call__(self, x):
        return self.forward(x)

class Dropout(Layer):
    def __init__(self, p, rng=None, *, name="dropout"):
        if not (p >= 0 and p <= 1):
            raise ValueError("p out of range")
        self.p, self.name, self.training, self.mask = p, name, True, None
        self.rng = np.random.default_rng() if rng is None else rng
    def train(self, mode=True):
        self.training = mode
        return self
    def eval(self):
        return self.train(False)
    def forward(self, x):
        if not self.training or self.p == 0:
            self.mask = None
            return x
        keep = 1.0 - self.p
        if keep == 0:
            self.mask = np.zeros(x.shape, np.float32)
        else:
            self.mask = (self.rng.random(x.shape) < keep).astype(np.float32) / np.float32(keep)
        return x * self.mask
    def backward(self, dout):
        return dout if self.mask is None else dout * self.mask
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

NET_OF_LAYER_OBJECTS = '''
class Affine:
    def __init__(self, params, i):
        self.params, self.i = params, i
    def forward(self, h):
        self.h = h
        return h @ self.params[f"W{self.i}"] + self.params[f"b{self.i}"]
    def backward(self, da, grads):
        grads[f"W{self.i}"] = self.h.T @ da
        grads[f"b{self.i}"] = da.sum(axis=0)
        return da @ self.params[f"W{self.i}"].T

class ReLU:
    def forward(self, a):
        self.on = a > 0
        return np.where(self.on, a, 0.0)
    def backward(self, dr, grads):
        return dr * self.on

class Wrap:                                       # a Dropout layer in the chain
    def __init__(self, layer):
        self.layer = layer
    def forward(self, h):
        return self.layer.forward(h)
    def backward(self, d, grads):
        return self.layer.backward(d)

class MLP:
    def __init__(self, sizes, p_drop, rng=None):
        self.rng = rng if rng is not None else np.random.default_rng()
        n_hidden = len(sizes) - 2
        rates = np.broadcast_to(np.asarray(p_drop, dtype=float), (n_hidden,))
        self.params = {}
        for i in range(1, len(sizes)):
            self.params[f"W{i}"] = self.rng.normal(0.0, np.sqrt(2.0 / sizes[i - 1]), (sizes[i - 1], sizes[i]))
            self.params[f"b{i}"] = np.zeros(sizes[i])
        self.dropouts = [Dropout(p=float(r), rng=self.rng) for r in rates]
        self.chain = []
        for i in range(1, len(sizes)):
            self.chain.append(Affine(self.params, i))
            if i < len(sizes) - 1:
                self.chain += [ReLU(), Wrap(self.dropouts[i - 1])]
        self.training = True
    def _mode(self, on):
        self.training = on
        for d in self.dropouts:
            d.training = on
        return self
    def train(self):
        return self._mode(True)
    def eval(self):
        return self._mode(False)
    def forward(self, X):
        for layer in self.chain:
            X = layer.forward(X)
        return X
    def backward(self, dscores):
        grads = {}
        for layer in reversed(self.chain):
            dscores = layer.backward(dscores, grads)
        return grads
    def loss(self, X, y):
        scores = self.forward(X)
        value, dscores = softmax_cross_entropy(scores, y)
        return value, self.backward(dscores)
    def predict(self, X):
        was = self.training
        out = self.eval().forward(X).argmax(axis=1)
        self._mode(was)
        return out
'''

NET_SKIPS_LAYERS_IN_EVAL = '''
class MLP(MLP):
    def forward(self, X):
        self.caches = []
        h = X
        for i in range(1, self.n_layers):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            h, relu_cache = relu_forward(a)
            if self.training:                        # the layers are only called while training
                h = self.dropouts[i - 1].forward(h)
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
            if self.training:
                dh = self.dropouts[i - 1].backward(dh)
            dh, grads[f"W{i}"], grads[f"b{i}"] = affine_backward(relu_backward(dh, relu_cache), affine_cache)
        return grads
'''

TORCH_STYLE_CALLS = '''
class Dropout(Dropout):
    def __call__(self, x):
        return self.forward(x)
    def train(self, mode=True):
        self.training = mode
        return self
    def eval(self):
        return self.train(False)

class MLP(MLP):
    def train(self, mode=True):
        self.training = mode
        for layer in self.dropouts:
            layer.train(mode)
        return self
    def eval(self):
        return self.train(False)
    def forward(self, X):
        self.caches = []
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            h = layer(r)                                 # torch style: the layer is called
            self.caches.append((affine_cache, relu_cache))
        L = self.n_layers
        scores, affine_cache = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        self.caches.append(affine_cache)
        return scores
'''

CACHE_IN_A_DICT = '''
class Dropout(Dropout):
    def __init__(self, p, rng=None):
        super().__init__(p, rng)
        self.state = {}                              # per instance: made in __init__
    def forward(self, x):
        out = super().forward(x)
        self.state["mask"] = self.mask
        return out
    def backward(self, dout):
        self.mask = self.state.get("mask")
        return super().backward(dout)
'''

NET_CACHES_BY_LAYER = '''
class MLP(MLP):
    def forward(self, X):
        self.store = {}                              # a dict by layer number, replaced at every call
        h = X
        for i, layer in enumerate(self.dropouts, start=1):
            a, affine_cache = affine_forward(h, self.params[f"W{i}"], self.params[f"b{i}"])
            r, relu_cache = relu_forward(a)
            h = layer.forward(r)
            self.store[i] = (affine_cache, relu_cache)
        L = self.n_layers
        scores, self.store[L] = affine_forward(h, self.params[f"W{L}"], self.params[f"b{L}"])
        return scores
    def backward(self, dscores):
        L = self.n_layers
        self.caches = [self.store[i] for i in range(1, L)] + [self.store[L]]
        return super().backward(dscores)
    def eval(self):
        return self.train_mode(False)
    def train(self):
        return self.train_mode(True)
    def train_mode(self, on):
        self.training = bool(on)
        for layer in self.dropouts:
            layer.training = bool(on)                # set, never toggled: eval() twice is still eval
        return self
'''

NET_SPAWNED_PER_LAYER = '''
class MLP(MLP):
    def __init__(self, sizes, p_drop, rng=None):
        super().__init__(sizes, p_drop, rng)
        children = self.rng.spawn(len(self.dropouts))
        self.dropouts = [Dropout(d.p, rng=g) for d, g in zip(self.dropouts, children)]
'''

HONEST = {
    "reference": "",
    "mask kept in a per-instance dict": CACHE_IN_A_DICT,
    "network caches in a dict replaced at every call, modes set by attribute": NET_CACHES_BY_LAYER,
    "one generator spawned per layer (keywords)": NET_SPAWNED_PER_LAYER,
    "scaled mask cached": SCALED_MASK_CACHE,
    "eval returns a copy": EVAL_RETURNS_COPY,
    "keep if u < 1 - p, float32 draws, np.where": KEEP_BELOW_ONE_MINUS_P_FLOAT32_WHERE,
    "binomial int mask, training as a property, math.isnan": BINOMIAL_INT_MASK_PROPERTY,
    "uniform > p, uint8 mask, in-place ops on a copy": IN_PLACE_ON_A_COPY_UINT8,
    "scaled float32 mask, train(mode), __call__, keyword-only extra": FLOAT32_MASK_CALL,
    "own generator per layer, dropout before the ReLU": NET_OWN_GENERATORS_DROPOUT_BEFORE_RELU,
    "chain of layer objects, modes set by attribute, Dropout(p=, rng=)": NET_OF_LAYER_OBJECTS,
    "network calls its layers only while training": NET_SKIPS_LAYERS_IN_EVAL,
    "torch-style layer(x) and train(mode)": TORCH_STYLE_CALLS,
}

# every Dropout honest variant with every MLP honest variant would be slow; the MLP variants run
# with the reference Dropout, and one more pairs the chain network with the property layer
HONEST["chain network with the property layer"] = BINOMIAL_INT_MASK_PROPERTY + NET_OF_LAYER_OBJECTS


@pytest.fixture(scope="module")
def graded():
    sources = {name: src for name, (src, _, _) in MISTAKES.items()}
    sources.update(HONEST)
    return grade_variants(STEM, None, sources)


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_fails_exactly_its_checks(graded, name):
    g = graded[name]
    _, expected, words = MISTAKES[name]
    assert_mistake(g, name, expected, words)
    assert all(t["output"] for t in g.failed()), f"{name}: a failed check without a message\n{g!r}"


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_alternative_keeps_full_marks(graded, name):
    assert_full_marks(graded[name], name)
