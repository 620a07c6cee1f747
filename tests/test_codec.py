"""The wire format: plain data round-trips; anything else is refused, never executed."""
import pickle

import numpy as np
import pytest

from grader.sandbox import codec


@pytest.mark.parametrize("value", [
    None, True, 3, -2**70, 1.5, float("inf"), "text ✓", [1, [2.0, None]], (1, (2, "x")),
    {"a": 1, "b": (np.float32(2.5),)}, np.arange(12, dtype=np.float32).reshape(3, 4),
    np.array([True, False]), np.zeros((0, 3)), np.array(5, dtype=np.int16),
    np.arange(6, dtype=">f8"), np.array([1 + 2j]),
])
def test_round_trip(value):
    back = codec.decode(codec.encode(value))
    if isinstance(value, np.ndarray):
        assert back.dtype == value.dtype and back.shape == value.shape and np.array_equal(back, value)
    else:
        assert repr(back) == repr(value) or back == value


def test_nan_round_trips():
    assert np.isnan(codec.decode(codec.encode(float("nan"))))


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("value", [Evil(), np.array([Evil()], dtype=object), {1: 2}, {"a"},
                                   np.zeros(2).view(np.recarray), lambda: 1, b"bytes",
                                   np.array([("a", 1)], dtype=[("n", "U1"), ("v", "i4")])])
def test_refuses_what_is_not_plain_data(value):
    with pytest.raises(codec.CodecError):
        codec.encode(value)


def test_decoder_never_unpickles():
    frame = pickle.dumps(Evil())
    with pytest.raises(codec.CodecError):
        codec.decode(frame)


@pytest.mark.parametrize("frame", [b"", b"\x00\x00\x00\x05{}", b"\x00\x00\x00\x02[]\x00",
                                   codec.encode(np.zeros(4))[:-3]])
def test_malformed_frames_are_codec_errors(frame):
    with pytest.raises(codec.CodecError):
        codec.decode(frame)


def test_forged_dtype_is_refused():
    frame = codec.encode(np.zeros(2)).replace(b"<f8", b"|O8")
    with pytest.raises(codec.CodecError):
        codec.decode(frame)
