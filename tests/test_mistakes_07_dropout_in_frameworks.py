"""The grader of notebook 07 against real mistakes in convert_rate, keras_dropout and
to_keras_weights, and against honest alternatives that must keep full marks.

Each fixture is a cell appended to solutions/07_dropout_in_frameworks.ipynb that redefines
one function.  A mistake must fail exactly the checks listed (each check tests the behaviour
its name states, so one mistake fails only the checks it really breaks), and the first
failing message must contain the words given (it names the mistake).
"""
import pytest

from tests.grading import assert_full_marks, assert_mistake, grade_variants

STEM = "07_dropout_in_frameworks"


def convert(body):
    return "def convert_rate(value, src, dst):\n" + "\n".join(
        "    " + ln for ln in body.strip("\n").splitlines()) + "\n"


CHECK_NAMES = '''if src not in CONVENTIONS or dst not in CONVENTIONS:
    raise ValueError("unknown convention")
'''
CHECK_VALUE = '''if not 0 <= value <= 1:
    raise ValueError("value outside [0, 1]")
'''


def dropout(body, signature="x, rate, training=False, rng=None", validate=True):
    """keras_dropout with this body after the usual validation and generator lines."""
    head = ("if not 0 <= rate <= 1:\n    raise ValueError(rate)\n" if validate else "")
    lines = (head + body.strip("\n")).splitlines()
    return f"def keras_dropout({signature}):\n" + "\n".join("    " + ln for ln in lines) + "\n"


def training_branch(mask="rng.random(np.shape(x)) >= rate", out="np.where(keep, x / (1 - rate), 0.0)",
                    eval_out="x", at_one=True):
    return (f"if not training or rate == 0:\n    return {eval_out}\n"
            + ("if rate == 1:\n    return np.zeros_like(x)\n" if at_one else "")
            + "rng = np.random.default_rng() if rng is None else rng\n"
            + f"keep = {mask}\nreturn {out}\n")


def weights(body):
    return "def to_keras_weights(params):\n" + "\n".join(
        "    " + ln for ln in body.strip("\n").splitlines()) + "\n"


ORDER = "test_order_is_kernel_then_bias_layer_by_layer"
KERNELS = "test_kernels_are_in_out_and_biases_1d"
TWELVE = "test_twelve_layers_in_numeric_order"
UNCHANGED = "test_leaves_params_unchanged"
DEFAULT = "test_default_is_inference"
SHARE = "test_training_drops_a_share_rate"
SCALE = "test_survivors_are_scaled_by_1_over_1_minus_rate"
COINS = "test_one_coin_per_element"
EDGES = "test_rate_zero_and_one"
INVALID = "test_rejects_rate_outside_0_1"
RNG = "test_uses_the_generator_it_is_given"
X_UNCHANGED = "test_leaves_x_unchanged"
SAME = "test_p_and_rate_are_the_same_number"
KEEP = "test_keep_prob_is_one_minus_the_drop_probability"
REJECT = "test_rejects_unknown_names_and_values_outside_0_1"

# name: (source, the exact set of checks it must fail, words in the first failing message)
MISTAKES = {
    # ---- convert_rate
    "rate read as a keep probability": (convert(CHECK_NAMES + CHECK_VALUE + '''
return value if src == dst else 1 - value
'''), {SAME}, "drop probability into a keep probability"),
    "always 1 - value": (convert(CHECK_NAMES + CHECK_VALUE + "return 1 - value\n"), {SAME},
                         "turned a drop probability"),
    "never converts": (convert(CHECK_NAMES + CHECK_VALUE + "return float(value)\n"), {KEEP},
                       "the number it was given"),
    "no validation of the value": (convert(CHECK_NAMES + '''
return value if CONVENTIONS[src] == CONVENTIONS[dst] else 1 - value
'''), {REJECT}, "outside [0, 1] should raise ValueError"),
    "unknown names count as drop": (convert(CHECK_VALUE + '''
keep_in, keep_out = src == "keep_prob", dst == "keep_prob"
return value if keep_in == keep_out else 1 - value
'''), {REJECT}, "unknown convention name"),
    "NaN slips through the range test": (convert(CHECK_NAMES + '''
if value < 0 or value > 1:
    raise ValueError(value)
return value if CONVENTIONS[src] == CONVENTIONS[dst] else 1 - value
'''), {REJECT}, "NaN"),
    # ---- keras_dropout
    "training defaults to True": (dropout(training_branch(), "x, rate, training=True, rng=None"),
                                  {DEFAULT}, "called without training"),
    "mode ignored: always drops": (dropout('''
rng = np.random.default_rng() if rng is None else rng
if rate == 1:
    return np.zeros_like(x)
keep = rng.random(np.shape(x)) >= rate
return np.where(keep, x / (1 - rate), 0.0)
'''), {DEFAULT}, "dropped"),
    "classic dropout (scale at inference)": (dropout(training_branch(
        out="np.where(keep, x, 0.0)", eval_out="x * (1 - rate)")), {DEFAULT, SCALE}, "classic dropout"),
    "keep and drop swapped": (dropout(training_branch(mask="rng.random(np.shape(x)) < rate")),
                              {SHARE}, "swapped"),
    "divides by rate": (dropout(training_branch(out="np.where(keep, x / rate, 0.0)")), {SCALE},
                        "divided by rate"),
    "forgets the scale": (dropout(training_branch(out="np.where(keep, x, 0.0)")), {SCALE},
                          "not scaled at all"),
    "0/0 at rate 1": (dropout(training_branch(out="x * keep / (1 - rate)", at_one=False)), {EDGES},
                      "nothing survives"),
    "no validation of rate": (dropout(training_branch(), validate=False), {INVALID},
                              "should raise ValueError"),
    "global generator": (dropout(training_branch(mask="np.random.rand(*np.shape(x)) >= rate")), {RNG},
                         "global generator"),
    "draws before looking at the mode": (dropout(
        "rng = np.random.default_rng() if rng is None else rng\n"
        "keep = rng.random(np.shape(x)) >= rate\n"
        "if not training or rate == 0:\n    return x\n"
        "if rate == 1:\n    return np.zeros_like(x)\n"
        "return np.where(keep, x / (1 - rate), 0.0)\n"), {DEFAULT}, "still drew random numbers"),
    "modifies x in place": (dropout(training_branch(
        out="np.multiply(x, keep / (1 - rate), out=x)")), {X_UNCHANGED}, "changed its input x"),
    "one mask shared by the batch": (dropout(training_branch(mask="rng.random(np.shape(x)[1:]) >= rate")),
                                     {COINS}, "shared by the whole batch"),
    # ---- to_keras_weights
    "trusts the dict's order": (weights("return list(params.values())\n"), {ORDER, TWELVE},
                                "Do not rely on the order of the dict"),
    "sorted keys": (weights("return [params[k] for k in sorted(params)]\n"), {ORDER, KERNELS, TWELVE},
                    "kernel then bias"),
    "layer numbers sorted as strings": (weights(
        "keys = sorted(params, key=lambda k: (k[1:], k[0] != 'W'))\nreturn [params[k] for k in keys]\n"),
        {TWELVE}, "W10 before W2"),
    "transposed for PyTorch": (weights(
        "n = len(params) // 2\nreturn [a for i in range(1, n + 1) for a in (params[f'W{i}'].T, params[f'b{i}'])]\n"),
        {KERNELS}, "PyTorch's nn.Linear layout"),
    "bias as a row": (weights(
        "n = len(params) // 2\n"
        "return [a for i in range(1, n + 1) for a in (params[f'W{i}'], params[f'b{i}'].reshape(1, -1))]\n"),
        {KERNELS}, "one dimension"),
    "casts params in place": (weights(
        "for k in params:\n    params[k] = params[k].astype(np.float32)\n"
        "n = len(params) // 2\nreturn [params[f'{c}{i}'] for i in range(1, n + 1) for c in 'Wb']\n"),
        {UNCHANGED}, "changed params"),
    "rounds the converted value to two decimals": (convert(CHECK_NAMES + CHECK_VALUE + '''
return value if CONVENTIONS[src] == CONVENTIONS[dst] else round(1 - value, 2)
'''), {KEEP}, "rounded to 2 decimals"),
    "rounds every result to two decimals": (convert(CHECK_NAMES + CHECK_VALUE + '''
return round(value if CONVENTIONS[src] == CONVENTIONS[dst] else 1 - value, 2)
'''), {SAME, KEEP}, "rounded to 2 decimals"),
    "returns early when both conventions are the same": (convert('''
if src == dst:
    return float(value)                  # nothing to convert... and nothing validated
''' + CHECK_NAMES + CHECK_VALUE + '''
return value if CONVENTIONS[src] == CONVENTIONS[dst] else 1 - value
'''), {REJECT}, "returns before validating"),
    "inference returns x before validating the rate": (dropout('''
if not training:
    return x                             # keras_dropout(x, 1.5) accepted
''' + "if not 0 <= rate <= 1:\n    raise ValueError(rate)\n" + training_branch(), validate=False),
        {INVALID}, "before it validates the rate"),
    "training=None treated as training": (dropout(training_branch().replace(
        "if not training or rate == 0:", "if training is False or rate == 0:")), {DEFAULT},
        "treats training=None as training"),
    "training compared with == False": (dropout(training_branch().replace(
        "if not training or rate == 0:", "if training == False or rate == 0:  # noqa")), {DEFAULT},
        "treats training=None as training"),
    "returns a dict": (weights("n = len(params) // 2\nreturn {f'{c}{i}': params[f'{c}{i}'] "
                               "for i in range(1, n + 1) for c in 'Wb'}\n"),
                       {ORDER, KERNELS, TWELVE}, "return a list of arrays"),
}

HONEST = {
    "reference": "",
    "convert_rate via keep probabilities": convert('''
keep = {"p": lambda v: 1 - v, "rate": lambda v: 1 - v, "keep_prob": lambda v: v}
if src not in keep or dst not in keep or not (0 <= value <= 1):
    raise ValueError((value, src, dst))
k = keep[src](value)
return float(k if dst == "keep_prob" else 1 - k)
'''),
    "convert_rate returns np.float64": convert(CHECK_NAMES + CHECK_VALUE + '''
same = (src == "keep_prob") == (dst == "keep_prob")
return np.float64(value) if same else np.float64(1) - value
'''),
    "keras_dropout with a binomial mask and a product": dropout('''
if not training:
    return x
rng = rng if rng is not None else np.random.default_rng()
if rate >= 1:
    return np.zeros_like(x)
mask = rng.binomial(1, 1 - rate, size=np.shape(x))
return x * mask * (1.0 / (1.0 - rate))
'''),
    "keras_dropout: float32 in training, like Keras": dropout(training_branch(
        mask="rng.random(np.shape(x), dtype=np.float32) >= rate",
        out="np.where(keep, x / (1 - rate), 0.0).astype(np.float32)")),
    "keras_dropout: copy at inference, training=None": dropout('''
if training is None or training is False or not training:
    return np.array(x, copy=True)
if rate == 1:
    return np.zeros_like(x)
rng = np.random.default_rng() if rng is None else rng
keep = rng.random(np.shape(x)) < 1 - rate
out = np.zeros_like(x, dtype=float)
out[keep] = x[keep] / (1 - rate)
return out
'''),
    "convert_rate validates the converted value, Decimal arithmetic": convert(CHECK_NAMES + '''
from decimal import Decimal
same = CONVENTIONS[src] == CONVENTIONS[dst]
out = value if same else float(Decimal(1) - Decimal(repr(float(value))))
if not 0.0 <= out <= 1.0:
    raise ValueError(f"not a probability: {value!r}")
return float(out)
'''),
    "keras_dropout: bool(training), validation first": dropout('''
training = bool(training)
if training and rate > 0:
    if rate == 1:
        return np.zeros_like(x)
    rng = rng if rng is not None else np.random.default_rng()
    return x * (rng.random(np.shape(x)) >= rate) / (1 - rate)
return x
'''),
    "to_keras_weights: float32 tuple from the highest layer number": weights('''
n = max(int(k[1:]) for k in params)
return tuple(np.asarray(params[f"{c}{i}"], dtype=np.float32) for i in range(1, n + 1) for c in "Wb")
'''),
}


@pytest.fixture(scope="module")
def graded():
    sources = {name: src for name, (src, _, _) in MISTAKES.items()}
    sources.update(HONEST)
    return grade_variants(STEM, "07", sources)


@pytest.mark.parametrize("name", list(MISTAKES))
def test_mistake_fails_exactly_its_checks_and_names_itself(graded, name):
    _, checks, words = MISTAKES[name]
    assert_mistake(graded[name], name, checks, words)


@pytest.mark.parametrize("name", list(HONEST))
def test_honest_alternative_gets_full_marks(graded, name):
    assert_full_marks(graded[name], name)
