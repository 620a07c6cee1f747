"""Plain-data wire format between the grader and the learner's process.

Only plain values cross: None, bool, int, float, str, lists, tuples, dicts with
string keys, and NumPy arrays of numeric or boolean dtype.  Arrays travel as raw
bytes next to a JSON header, so decoding never runs code (no pickle, ever).

Frame:  4-byte header length | JSON header | per array: 8-byte length | bytes
"""
import json
import math
import struct
from os import write as _write

import numpy as np

_DTYPES = {np.dtype(t).str for t in (
    "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")}
_DTYPES |= {np.dtype(t).newbyteorder(">").str for t in ("i2", "i4", "i8", "u2", "u4", "u8", "f2", "f4", "f8")}
# Bound here, once: learner code in the same process may replace np.asarray & co. later
_ndarray, _generic, _contiguous, _asarray = np.ndarray, np.generic, np.ascontiguousarray, np.asarray
_dumps, _pack = json.dumps, struct.pack
MAX_FRAME = 256 * 2**20  # bytes; larger answers are refused, not read
MAX_HEADER = 32 * 2**20  # bytes of JSON; arrays travel outside it


class CodecError(ValueError):
    """A value that is not plain data, or a frame that is not well formed."""


def _describe(v):
    return type(v).__module__ + "." + type(v).__qualname__


def _enc(v, bufs, depth=0):
    if depth > 50:
        raise CodecError("value nested more than 50 levels deep")
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int) and type(v) is int:
        return v if -2**63 <= v < 2**64 else {"__bigint__": str(v)}
    if type(v) is float:
        return v
    if isinstance(v, _ndarray) and type(v) is _ndarray:
        if v.dtype.str not in _DTYPES:
            raise CodecError(f"a NumPy array of dtype {v.dtype} (only numeric or boolean arrays can be read)")
        bufs.append(memoryview(_contiguous(v)).cast("B") if v.size else memoryview(b""))
        return {"__nd__": len(bufs) - 1, "dtype": v.dtype.str, "shape": list(v.shape)}
    if isinstance(v, _generic) and type(v).__module__ == "numpy":
        return {"__np__": _enc(_asarray(v).reshape(()), bufs, depth + 1)}
    if type(v) is tuple:
        return {"__tuple__": [_enc(x, bufs, depth + 1) for x in v]}
    if type(v) is list:
        return [_enc(x, bufs, depth + 1) for x in v]
    if type(v) is dict and all(type(k) is str for k in v):
        return {"__dict__": [[k, _enc(x, bufs, depth + 1)] for k, x in v.items()]}
    raise CodecError(f"an object of type {_describe(v)}")


def encode_parts(value):
    """The frame of a plain value as a list of buffers (arrays are not copied); CodecError
    for anything else.  b"".join(encode_parts(v)) == encode(v)."""
    bufs = []
    head = _dumps(_enc(value, bufs)).encode()
    head += b" " * ((4 - len(head)) % 8)   # JSON allows trailing spaces: the first array is 8-aligned
    parts = [_pack(">I", len(head)), head]
    for b in bufs:
        parts += [_pack(">Q", b.nbytes), b]
    return parts


def encode(value):
    """Encode a plain value as one frame (bytes); CodecError for anything else."""
    return b"".join(encode_parts(value))


def _dec(v, bufs):
    if isinstance(v, list):
        return [_dec(x, bufs) for x in v]
    if not isinstance(v, dict):
        return v
    if "__nd__" in v:
        dt = v["dtype"]
        if dt not in _DTYPES:
            raise CodecError(f"refused dtype {dt!r}")
        shape = tuple(int(s) for s in v["shape"])
        if any(s < 0 for s in shape):
            raise CodecError("negative array dimension")
        buf = bufs[v["__nd__"]]
        n = math.prod(shape)
        if n * np.dtype(dt).itemsize != len(buf):
            raise CodecError("array size does not match its bytes")
        arr = np.frombuffer(buf, dtype=dt).reshape(shape)
        # a view of the frame when it is ours to keep (read_frame's bytearray), else a copy
        return arr if arr.flags.writeable and arr.flags.aligned else arr.copy()
    if "__np__" in v:
        return _dec(v["__np__"], bufs)[()]
    if "__tuple__" in v:
        return tuple(_dec(x, bufs) for x in v["__tuple__"])
    if "__dict__" in v:
        return {str(k): _dec(x, bufs) for k, x in v["__dict__"]}
    if "__bigint__" in v:
        return int(v["__bigint__"])
    raise CodecError("unknown object in frame")


def decode(frame):
    """Decode one frame made by encode(); never executes anything it reads."""
    try:
        (hlen,) = struct.unpack_from(">I", frame, 0)
        if hlen > MAX_HEADER or hlen > len(frame) - 4:
            raise CodecError("malformed frame: header too long")
        head = json.loads(frame[4:4 + hlen].decode())
        bufs, pos, view = [], 4 + hlen, memoryview(frame)
        while pos < len(frame):
            (n,) = struct.unpack_from(">Q", frame, pos)
            bufs.append(view[pos + 8:pos + 8 + n])
            if len(bufs[-1]) != n:
                raise CodecError("truncated frame")
            pos += 8 + n
        return _dec(head, bufs)
    except CodecError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, struct.error, UnicodeDecodeError,
            RecursionError, OverflowError, AttributeError) as e:
        raise CodecError(f"malformed frame: {e}") from None


def write_frame(fd, payload):
    """Write a length-prefixed frame (bytes, or a list of buffers from encode_parts)."""
    parts = payload if isinstance(payload, list) else [payload]
    total = sum(memoryview(p).nbytes for p in parts)
    for part in [_pack(">Q", total), *parts]:
        view = memoryview(part).cast("B")
        while view:
            n = _write(fd, view)
            view = view[n:]


def read_exact(fd, n, deadline=None):
    """Read exactly n bytes into a new bytearray (None on EOF); TimeoutError after the
    monotonic deadline."""
    import os
    import select
    import time
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        k = os.readv(fd, [view[got:got + (1 << 22)]])
        if not k:
            return None
        got += k
    return buf


def read_frame(fd, deadline=None, limit=MAX_FRAME):
    """Read one length-prefixed frame; None on EOF, CodecError when over the limit."""
    head = read_exact(fd, 8, deadline)
    if head is None:
        return None
    (n,) = struct.unpack(">Q", head)
    if n > limit:
        raise CodecError(f"answer of {n} bytes is over the {limit}-byte limit")
    return read_exact(fd, n, deadline)
