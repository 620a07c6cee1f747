"""Export scikit-learn's copy of the UCI handwritten digits to data/digits.npz (run once).

    python data/export_digits.py              # needs scikit-learn; the course itself does not
    python data/export_digits.py --out F.npz

load_digits() holds 1797 grey-level images of 8x8 pixels (integers 0..16) with labels 0..9:
the test part of "Optical Recognition of Handwritten Digits" (Alpaydin & Kaynak, UCI Machine
Learning Repository, CC BY 4.0).  We store them unchanged as uint8, split once with a fixed
seed into 1000 training and 797 test images.
"""
import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from data.load import save_npz  # noqa: E402

SEED = 20240506
N_TRAIN = 1000


def make(path):
    from sklearn.datasets import load_digits
    d = load_digits()
    X, y = d.data.astype(np.uint8), d.target.astype(np.uint8)
    assert np.array_equal(X, d.data) and X.shape == (1797, 64)
    order = np.random.default_rng(SEED).permutation(len(y))
    tr, te = order[:N_TRAIN], order[N_TRAIN:]
    return save_npz(path, {"X_train": X[tr], "y_train": y[tr], "X_test": X[te], "y_test": y[te]})


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "digits.npz"))
    out = ap.parse_args().out
    print(f"wrote {out}  sha256 {make(out)}")
