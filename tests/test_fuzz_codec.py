"""Fuzzing the wire format (Hypothesis, derandomized, a few seconds): a frame of any bytes is
decoded or refused with CodecError, never anything else, and what it decodes to is no larger
than the frame (each value and each array byte came from a byte of it): memory and work are
bounded by the frame's size."""
import json
import struct

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from grader.sandbox import codec

FUZZ = settings(derandomize=True, max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

arrays = hnp.arrays(st.sampled_from(["<f8", "<i4", "|u1", "|b1", ">f4", "<c16"]),
                    hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4))
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
plain = st.recursive(scalars | arrays, lambda inner: st.lists(inner, max_size=4)
                     | st.tuples(inner, inner) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                     max_leaves=12)


KEYS = ["__nd__", "__np__", "__tuple__", "__dict__", "__bigint__", "dtype", "shape", "<f8", "|u1"]


def _size(v):
    """(values, array bytes) of a decoded value."""
    if isinstance(v, np.ndarray):
        return 1, v.nbytes
    if isinstance(v, (list, tuple)):
        parts = [_size(x) for x in v]
    elif isinstance(v, dict):
        parts = [_size(x) for x in v.values()]
    else:
        return 1, 0
    return 1 + sum(p[0] for p in parts), sum(p[1] for p in parts)


def _decoded_or_refused(frame):
    try:
        value = codec.decode(frame)
    except codec.CodecError:
        return
    values, nbytes = _size(value)
    assert values <= len(frame) and nbytes <= len(frame)


def _same(a, b):
    if isinstance(a, np.ndarray):
        nan = a.dtype.kind in "fc"
        return isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape and \
            np.array_equal(a, b, equal_nan=nan)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


@FUZZ
@given(plain)
def test_plain_values_round_trip(value):
    assert _same(codec.decode(codec.encode(value)), value)


@FUZZ
@given(st.binary(max_size=300))
def test_any_bytes_are_decoded_or_refused(frame):
    _decoded_or_refused(frame)


@FUZZ
@given(st.binary(max_size=200))
def test_any_header_is_decoded_or_refused(head):
    _decoded_or_refused(struct.pack(">I", len(head)) + head)


@FUZZ
@given(plain, st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 10**6))
def test_damaged_frames_are_decoded_or_refused(value, flips, cut):
    frame = bytearray(codec.encode(value))
    for pos, byte in flips:
        frame[pos % len(frame)] = byte
    _decoded_or_refused(bytes(frame))
    _decoded_or_refused(bytes(frame[:cut % (len(frame) + 1)]))


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8) | st.sampled_from(KEYS),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS + ["x"]),
                                                                                inner, max_size=3),
                    max_leaves=10),
       st.lists(st.binary(max_size=24), max_size=3))
def test_forged_headers_are_decoded_or_refused(head, bufs):
    raw = json.dumps(head).encode()
    frame = struct.pack(">I", len(raw)) + raw + b"".join(struct.pack(">Q", len(b)) + b for b in bufs)
    _decoded_or_refused(frame)
