"""Make data/moons.npz: two interleaving half-circles with Gaussian noise (NumPy only).

    python data/make_moons.py              # rewrites data/moons.npz (same bytes every time)
    python data/make_moons.py --out F.npz  # somewhere else

Class 0 is the upper moon (cos t, sin t), class 1 the lower one (1 - cos t, 1/2 - sin t),
with t uniform on [0, pi]; every point gets N(0, NOISE^2) noise on both coordinates.
The training and test sets are independent draws from the same distribution, each with
equal class counts, shuffled.  Coordinates are rounded to 6 decimals so that the last-bit
differences between platforms' sin/cos cannot change the file.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from data.load import save_npz  # noqa: E402

SEED = 20240505
NOISE = 0.35
N_TRAIN, N_TEST = 100, 2000


def two_moons(n, noise, rng):
    """n points (n even), half per class, shuffled: X float64 (n, 2), y int8 (n,)."""
    y = np.repeat(np.array([0, 1], dtype=np.int8), n // 2)
    t = rng.uniform(0.0, np.pi, size=n)
    upper = np.stack([np.cos(t), np.sin(t)], axis=1)
    lower = np.stack([1.0 - np.cos(t), 0.5 - np.sin(t)], axis=1)
    X = np.where(y[:, None] == 0, upper, lower) + noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return np.round(X[order], 6), y[order]


def make(path):
    rng = np.random.default_rng(SEED)
    X_train, y_train = two_moons(N_TRAIN, NOISE, rng)
    X_test, y_test = two_moons(N_TEST, NOISE, rng)
    return save_npz(path, {"X_train": X_train, "y_train": y_train,
                           "X_test": X_test, "y_test": y_test})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "moons.npz"))
    out = ap.parse_args().out
    print(f"wrote {out}  sha256 {make(out)}")
