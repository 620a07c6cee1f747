"""The shipped datasets: checksums agree with data/README.md, the loader fails with one clear
message when a file is missing or damaged, and the generating scripts rebuild identical bytes."""
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from data.load import FILES, DatasetError, check_file, load_dataset, sha256  # noqa: E402

DATA = ROOT / "data"


def readme_checksums():
    text = (DATA / "README.md").read_text()
    return dict(re.findall(r"^\|\s*`([\w.]+\.npz)`\s*\|.*?`([0-9a-f]{64})`", text, re.M))


def test_readme_loader_and_files_agree():
    documented = readme_checksums()
    assert documented == {name: digest for name, (digest, _) in FILES.items()}
    for name, digest in documented.items():
        assert sha256(DATA / name) == digest, f"data/{name} does not match its documented checksum"


def test_small_enough():
    total = sum((DATA / name).stat().st_size for name in FILES)
    assert total < 5 * 2**20


@pytest.mark.parametrize("name, n_train, n_test, features, classes", [
    ("moons", 100, 2000, 2, 2), ("digits", 1000, 797, 64, 10)])
def test_load_dataset(name, n_train, n_test, features, classes):
    d = load_dataset(name)
    X_train, y_train, X_test, y_test = d                       # unpacks like a tuple
    assert X_train.shape == (n_train, features) and X_test.shape == (n_test, features)
    assert y_train.shape == (n_train,) and y_test.shape == (n_test,)
    assert X_train.dtype == X_test.dtype == np.float64 and y_train.dtype == y_test.dtype == np.int64
    assert set(np.unique(y_train)) == set(np.unique(y_test)) == set(range(classes))
    assert d.X_train is X_train
    if name == "digits":
        assert X_train.min() == 0.0 and X_train.max() == 1.0
    else:
        assert np.bincount(y_train).tolist() == [50, 50]


def copy_data(tmp_path):
    for name in FILES:
        shutil.copy(DATA / name, tmp_path / name)
    return tmp_path


def message(excinfo):
    text = str(excinfo.value)
    assert "\n" not in text and "Traceback" not in text
    return text


def test_missing_file_gives_one_clear_message(tmp_path):
    folder = copy_data(tmp_path)
    (folder / "moons.npz").unlink()
    with pytest.raises(DatasetError) as e:
        load_dataset("moons", data_dir=folder)
    text = message(e)
    assert "data/moons.npz is missing" in text
    assert "git checkout -- data/moons.npz" in text and "python data/make_moons.py" in text
    load_dataset("digits", data_dir=folder)                    # the other file is still fine


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty"])
def test_corrupt_file_gives_one_clear_message(tmp_path, damage):
    folder = copy_data(tmp_path)
    path = folder / "digits.npz"
    raw = bytearray(path.read_bytes())
    if damage == "flip a byte":
        raw[len(raw) // 2] ^= 0x01
    elif damage == "truncate":
        raw = raw[: len(raw) // 3]
    else:
        raw = b""
    path.write_bytes(bytes(raw))
    with pytest.raises(DatasetError) as e:
        load_dataset("digits", data_dir=folder)
    text = message(e)
    assert "data/digits.npz is corrupt" in text
    assert "git checkout -- data/digits.npz" in text and "python data/export_digits.py" in text


def test_unknown_name():
    with pytest.raises(DatasetError, match="unknown dataset 'mnist'"):
        load_dataset("mnist")
    with pytest.raises(DatasetError, match="unknown data file"):
        check_file("mnist.npz")


def test_the_course_never_needs_sklearn():
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from data.load import load_dataset; "
            "load_dataset('moons'); load_dataset('digits'); assert 'sklearn' not in sys.modules")
    subprocess.run([sys.executable, "-c", code, str(ROOT)], check=True, cwd=ROOT / "data")


def rebuild(script, tmp_path):
    out = tmp_path / "rebuilt.npz"
    subprocess.run([sys.executable, str(DATA / script), "--out", str(out)], check=True,
                   capture_output=True, cwd=tmp_path)
    return sha256(out)


def test_make_moons_rebuilds_identical_bytes(tmp_path):
    assert rebuild("make_moons.py", tmp_path) == FILES["moons.npz"][0]


@pytest.mark.skipif(importlib.util.find_spec("sklearn") is None,
                    reason="scikit-learn is needed only to re-export digits")
def test_export_digits_rebuilds_identical_bytes(tmp_path):
    assert rebuild("export_digits.py", tmp_path) == FILES["digits.npz"][0]
