"""The longer dropout measurements that notebook 05 quotes but does not run (they take minutes).

    python -m data.measure_dropout                 # both experiments, 5 seeds (a few minutes)
    python -m data.measure_dropout --only moons --seeds 3

It trains the course's own network — the instructor's Dropout, MLP, Adam and fit, read from
solutions/05_dropout_in_a_network.ipynb (the single source), so nothing here is a second
implementation — on the shipped data sets, and prints train and test accuracy as
mean ± sd over the seeds:

  moons   a wide network trained long: MLP([2, 256, 256, 2]), 3000 full-batch Adam steps at
          learning rate 3e-3, drop rates 0, 0.2 and 0.5 after both hidden layers;
  digits  MLP([64, 256, 256, 10]) on the first 100, 300 and all 1000 training images, 100
          epochs of Adam (learning rate 1e-3, mini-batches of 50), the same drop rates.

BLAS runs single-threaded (the matrices are small; threads only add contention).  Seed k
initialises the weights and draws the masks and batches from
np.random.default_rng([2014, k]); the data sets are fixed.
"""
import argparse
import ast
import json
import os
import time
from pathlib import Path

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")     # before NumPy loads its BLAS

import numpy as np  # noqa: E402 - after the BLAS settings above

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOK = ROOT / "solutions" / "05_dropout_in_a_network.ipynb"
NAMES = ("affine_forward", "affine_backward", "relu_forward", "relu_backward",
         "softmax_cross_entropy", "Dropout", "MLP", "Adam", "evaluate", "fit")
RATES = (0.0, 0.2, 0.5)


def course_code(path=NOTEBOOK, names=NAMES):
    """A namespace with the notebook's definitions of `names` (and numpy as np)."""
    nb = json.loads(path.read_text(encoding="utf-8"))
    ns = {"np": np}
    found = set()
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        try:
            tree = ast.parse(src)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in names:
                exec(compile(ast.Module([node], []), str(path), "exec"), ns)  # noqa: S102 - the course's own code
                found.add(node.name)
    missing = set(names) - found
    if missing:
        raise SystemExit(f"{path.name} defines no {', '.join(sorted(missing))}")
    return ns


def train_and_score(ns, sizes, p, data, steps, lr, batch, seed):
    rng = np.random.default_rng([2014, seed])
    net = ns["MLP"](sizes, p, rng=rng)
    hist = ns["fit"](net, data, steps, lr, batch=batch, every=steps, rng=rng)
    return hist["train_acc"][-1], hist["test_acc"][-1]


def row(label, scores):
    tr, te = 100 * np.array(scores).T
    return (f"{label:34s} train {tr.mean():5.1f} ± {tr.std():3.1f} %   "
            f"test {te.mean():5.1f} ± {te.std():3.1f} %   (range {te.min():.1f}–{te.max():.1f})")


def moons(ns, seeds):
    from data.load import load_dataset
    d = load_dataset("moons")
    data = (d.X_train, d.y_train, d.X_test, d.y_test)
    print(f"moons: MLP([2, 256, 256, 2]), 3000 full-batch Adam steps, lr 3e-3, {seeds} seeds")
    for p in RATES:
        scores = [train_and_score(ns, [2, 256, 256, 2], p, data, 3000, 3e-3, None, k) for k in range(seeds)]
        print("  " + row(f"p = {p} after both hidden layers", scores), flush=True)


def digits(ns, seeds):
    from data.load import load_dataset
    d = load_dataset("digits")
    print(f"digits: MLP([64, 256, 256, 10]), 100 epochs of Adam, lr 1e-3, batches of 50, {seeds} seeds")
    for n in (100, 300, 1000):
        data = (d.X_train[:n], d.y_train[:n], d.X_test, d.y_test)
        steps = 100 * n // 50
        for p in RATES:
            scores = [train_and_score(ns, [64, 256, 256, 10], p, data, steps, 1e-3, 50, k)
                      for k in range(seeds)]
            print("  " + row(f"{n:4d} images, p = {p}", scores), flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m data.measure_dropout", description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=5, help="seeds per setting (default 5)")
    ap.add_argument("--only", choices=("moons", "digits"), help="run one experiment")
    args = ap.parse_args(argv)
    ns = course_code()
    start = time.perf_counter()
    for name, experiment in (("moons", moons), ("digits", digits)):
        if args.only in (None, name):
            experiment(ns, args.seeds)
    print(f"({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
