"""Fuzzing the notebook reader (Hypothesis, derandomized, a few seconds): a file of any bytes
gives its code cells or one BadInput line, never a traceback, and never more cells or text
than the file holds."""
import json
import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader import nbfile
from tests.grading import ROOT

FUZZ = settings(derandomize=True, max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
DIR = tempfile.mkdtemp(prefix="fuzz-nbfile-")
REAL = (ROOT / "notebooks" / "01_bernoulli_mask.ipynb").read_bytes()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["cells", "cell_type", "source", "nbformat", "worksheets", "metadata", "x"]),
        inner, max_size=4), max_leaves=15)


def _read(raw):
    path = os.path.join(DIR, "01_fuzz.ipynb")
    with open(path, "wb") as f:
        f.write(raw)
    try:
        cells = nbfile.code_cells(path)
    except nbfile.BadInput as e:
        assert "\n" not in str(e) and str(e), repr(str(e))
        return
    assert isinstance(cells, list) and all(isinstance(c, str) for c in cells)
    assert len(cells) <= len(raw) and sum(map(len, cells)) <= len(raw)


@FUZZ
@given(st.binary(max_size=400))
def test_any_bytes(raw):
    _read(raw)


@FUZZ
@given(json_values)
def test_any_json(value):
    _read(json.dumps(value).encode())


@FUZZ
@given(st.lists(json_values, max_size=4), st.sampled_from([4, 3, None, "4", 4.0, 10**30]))
def test_notebook_shaped_json(cells, fmt):
    nb = {"cells": cells, "metadata": {}}
    if fmt is not None:
        nb["nbformat"] = fmt
    _read(json.dumps(nb).encode())


@FUZZ
@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 255)), min_size=1, max_size=6),
       st.integers(0, 10**7))
def test_damaged_real_notebooks(flips, cut):
    raw = bytearray(REAL)
    for pos, byte in flips:
        raw[pos % len(raw)] = byte
    _read(bytes(raw))
    _read(bytes(raw[:cut % (len(raw) + 1)]))
