"""Load the course's datasets, after checking that each file is the one we shipped.

    import sys; sys.path.insert(0, ROOT)        # the course folder (the notebooks do this)
    from data.load import load_dataset, DatasetError

    X_train, y_train, X_test, y_test = load_dataset("moons")
    d = load_dataset("digits"); d.X_train.shape  # (1000, 64)

load_dataset(name) -> Dataset, a named tuple (X_train, y_train, X_test, y_test):
X float64 of shape (n, features), y int64 class labels 0..classes-1.
  "moons"  : 2-D noisy two moons, 2 classes; 100 training / 2000 test points.
  "digits" : 8x8 handwritten digits, 10 classes, pixels scaled to [0, 1];
             1000 training / 797 test images.

A file that is missing, or whose SHA-256 differs from the one recorded here (and in
data/README.md), raises DatasetError with one message that says which file and what to do.
NumPy only; no network, no scikit-learn.
"""
import hashlib
import zipfile
from pathlib import Path
from typing import NamedTuple

import numpy as np

DATA_DIR = Path(__file__).resolve().parent

# file name -> (sha256, how to get it back).  Keep in step with data/README.md (a test checks).
FILES = {
    "moons.npz": ("7913b3f7abe657cfa8a6dadbac9c82847bfbebcaa2e6ef7fd15dd8cd89e36302",
                  "python data/make_moons.py"),
    "digits.npz": ("7c584104743ce08423642084a2d341b65359d816530a6aa60d96e255e68eb60b",
                   "python data/export_digits.py  (needs scikit-learn, only for this)"),
}
SCALE = {"moons": 1.0, "digits": 16.0}  # digits pixels are stored as integers 0..16


class DatasetError(Exception):
    """A course data file is missing or not the one shipped; the message says what to do."""


class Dataset(NamedTuple):
    X_train: np.ndarray
    y_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _fix(name, regenerate):
    return (f"Restore it with `git checkout -- data/{name}` (from the course folder), or "
            f"regenerate it with `{regenerate}`; see data/README.md.")


def check_file(name, data_dir=DATA_DIR):
    """The path of data file `name` after checking its checksum; DatasetError if it is wrong."""
    if name not in FILES:
        raise DatasetError(f"unknown data file {name!r}; the course ships {', '.join(FILES)}")
    expected, regenerate = FILES[name]
    path = Path(data_dir) / name
    if not path.is_file():
        raise DatasetError(f"The data file data/{name} is missing (looked in {path.parent}). "
                           + _fix(name, regenerate))
    try:
        got = sha256(path)
    except OSError as e:
        raise DatasetError(f"The data file data/{name} cannot be read ({e.strerror}). "
                           + _fix(name, regenerate)) from None
    if got != expected:
        raise DatasetError(f"The data file data/{name} is corrupt or was changed: its SHA-256 is "
                           f"{got[:12]}…, expected {expected[:12]}…. " + _fix(name, regenerate))
    return path


def load_dataset(name, data_dir=DATA_DIR):
    """Dataset(X_train, y_train, X_test, y_test) for "moons" or "digits" (see the module doc)."""
    if name not in SCALE:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(map(repr, SCALE))}")
    path = check_file(f"{name}.npz", data_dir)
    try:
        with np.load(path, allow_pickle=False) as z:
            parts = {k: z[k] for k in Dataset._fields}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as e:  # checksum ok, yet unreadable
        raise DatasetError(f"data/{name}.npz could not be read ({type(e).__name__}: {e}). "
                           + _fix(f"{name}.npz", FILES[f"{name}.npz"][1])) from None
    X_train = parts["X_train"].astype(np.float64) / SCALE[name]
    X_test = parts["X_test"].astype(np.float64) / SCALE[name]
    return Dataset(X_train, parts["y_train"].astype(np.int64), X_test, parts["y_test"].astype(np.int64))


def save_npz(path, arrays):
    """Write arrays to an uncompressed .npz whose bytes depend only on the arrays (fixed zip
    timestamps and attributes), so that regenerating a file reproduces its checksum.
    Used by the scripts that make the data files."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.create_system, info.external_attr = 3, 0o644 << 16
            with zf.open(info, "w") as f:
                np.lib.format.write_array(f, np.ascontiguousarray(arr), allow_pickle=False)
    tmp.replace(path)
    return sha256(path)
