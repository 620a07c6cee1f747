"""Plain-data wire format between the grader and the learner's process.

Only plain values cross: None, bool, int, float, str, lists, tuples, dicts with
string keys, and NumPy arrays of numeric or boolean dtype.  Arrays travel as raw
bytes next to a JSON header, so decoding never runs code (no pickle, ever).

Frame:  4-byte header length | JSON header | per array: 8-byte length | bytes

The decoder reads what another process sent (the learner's, whose code may forge it): every
size is checked before anything is allocated, the number of values and arrays is bounded
(MAX_ITEMS, MAX_ARRAYS), and decoding is linear in the frame's size (see decode()).
"""
import json
import math
import re
import struct
from os import write as _write

import numpy as np

_DTYPES = {np.dtype(t).str for t in (
    "?", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "f2", "f4", "f8", "c8", "c16")}
_DTYPES |= {np.dtype(t).newbyteorder(">").str for t in ("i2", "i4", "i8", "u2", "u4", "u8", "f2", "f4", "f8")}
# Bound here, once: learner code in the same process may replace np.asarray & co. later
_ndarray, _generic, _contiguous, _asarray = np.ndarray, np.generic, np.ascontiguousarray, np.asarray
_bool, _packbits = np.dtype(bool), np.packbits
_dumps, _pack = json.dumps, struct.pack
MAX_FRAME = 256 * 2**20  # bytes; larger answers are refused, not read
MAX_HEADER = 32 * 2**20  # bytes of JSON; arrays travel outside it
MAX_ITEMS = 1 << 18      # JSON values in one header (lists, dicts, numbers, strings)
MAX_ARRAYS = 1 << 14     # arrays in one frame
MAX_DIMS = 32            # dimensions of one array (NumPy's own limit is 64)
MAX_BIGINT_DIGITS = 4300  # Python's own default limit for int(str)
ITEM_BYTES = 200         # generous bound on what one JSON value costs once decoded, twice over
ARRAY_BYTES = 1024       # and one array (its header dict, the ndarray, its view of the frame)
BITS_FROM = 4096         # boolean arrays from this many elements travel as packed bits
MAX_UNPACKED = MAX_FRAME  # booleans one frame may unpack to (8 per byte of the frame at most)
MMAP_FROM = 16 << 20     # frames from this size are read into anonymous memory, page by page


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
        if v.dtype == _bool and v.size >= BITS_FROM:   # a mask: one bit an element, not a byte
            bufs.append(memoryview(_packbits(v, axis=None)).cast("B"))
            return {"__bits__": len(bufs) - 1, "shape": list(v.shape)}
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


class _Frame:
    """What decoding one frame may still create: the objects of its header and its arrays."""

    def __init__(self, frame, spans):
        self.frame, self.spans, self.used = frame, spans, set()
        self.unpacked = 0   # booleans made from bits so far (MAX_UNPACKED)


def _int(text):
    """A JSON integer of the header: the encoder writes at most 20 digits (larger ints travel
    as __bigint__), so a longer one is forged and refused before int() reads it."""
    if len(text) > 21:
        raise CodecError("malformed frame: integer too long")
    return int(text)


def _buffer(shape, idx, fr):
    """(start, size) of an array's own bytes, checked with its shape."""
    if type(shape) is not list or len(shape) > MAX_DIMS or any(type(s) is not int or s < 0 for s in shape):
        raise CodecError("malformed array shape")
    if type(idx) is not int or not 0 <= idx < len(fr.spans) or idx in fr.used:
        raise CodecError("malformed array reference")
    fr.used.add(idx)               # each buffer backs one array: no bytes are copied twice
    return fr.spans[idx]


def _bits(v, fr):
    """A boolean array sent as packed bits (BITS_FROM): eight elements a byte, at most
    MAX_UNPACKED of them a frame."""
    shape = v.get("shape")
    start, size = _buffer(shape, v.get("__bits__"), fr)
    n = math.prod(shape)
    if (n + 7) // 8 != size:
        raise CodecError("bit array size does not match its bytes")
    fr.unpacked += n
    if fr.unpacked > MAX_UNPACKED:
        raise CodecError(f"more than {MAX_UNPACKED} booleans in one frame")
    bits = np.frombuffer(fr.frame, dtype=np.uint8, count=size, offset=start)
    return np.unpackbits(bits, count=n).view(np.bool_).reshape(shape)


def _array(v, fr):
    dt, shape = v.get("dtype"), v.get("shape")
    if type(dt) is not str or dt not in _DTYPES:
        raise CodecError(f"refused dtype {str(dt)[:40]!r}")
    start, size = _buffer(shape, v.get("__nd__"), fr)
    n = math.prod(shape)
    if n * np.dtype(dt).itemsize != size:
        raise CodecError("array size does not match its bytes")
    arr = np.frombuffer(fr.frame, dtype=dt, count=n, offset=start).reshape(shape) if n else \
        np.zeros(shape, dtype=dt)
    # a view of the frame when it is ours to keep (read_frame's buffer), else a copy
    return arr if arr.flags.writeable and arr.flags.aligned else arr.copy()


def _dec(v, fr):
    if isinstance(v, list):
        return [_dec(x, fr) for x in v]
    if not isinstance(v, dict):
        return v
    if "__nd__" in v:
        return _array(v, fr)
    if "__bits__" in v:
        return _bits(v, fr)
    if "__np__" in v:
        return _dec(v["__np__"], fr)[()]
    if "__tuple__" in v:
        return tuple(_dec(x, fr) for x in v["__tuple__"])
    if "__dict__" in v:
        out = {}
        for k, x in v["__dict__"]:
            if type(k) is not str:
                raise CodecError("malformed frame: a dict key that is not a string")
            out[k] = _dec(x, fr)
        return out
    if "__bigint__" in v:
        digits = v["__bigint__"]
        if type(digits) is not str or len(digits) > MAX_BIGINT_DIGITS:
            raise CodecError("malformed frame: integer too long")
        return int(digits)
    raise CodecError("unknown object in frame")


# one JSON string (to its end, or the text's), or a run of anything but quotes and [ { ,; then
# one of [ { , (or the end): possessive throughout, so each byte is read once
_STRUCTURE = re.compile(rb'(?s)(?:"(?:[^"\\]++|\\.?)*+(?:"|\Z)|[^"\[{,]++)*+([\[{,]|\Z)')


def json_values(raw, limit, start=0, end=None):
    """A bound on the number of values in JSON text (its [ { and , outside strings, plus
    one), counted without parsing, in linear time; counting stops past `limit`."""
    end = len(raw) if end is None else end
    count = sum(raw.count(c, start, end) for c in (b"[", b"{", b",")) + 1
    if count <= limit:
        return count                # the common case: fewer even counting inside strings
    count = 1
    for m in _STRUCTURE.finditer(raw, start, end):
        if m.group(1):
            count += 1
            if count > limit:
                break
    return count


def _spans(frame, pos):
    """[(start, size)] of the arrays after the header, checked before anything is made."""
    spans, end = [], len(frame)
    while pos < end:
        if len(spans) >= MAX_ARRAYS:
            raise CodecError(f"malformed frame: more than {MAX_ARRAYS} arrays")
        if end - pos < 8:
            raise CodecError("truncated frame")
        (n,) = struct.unpack_from(">Q", frame, pos)
        if n > end - pos - 8:
            raise CodecError("truncated frame")
        spans.append((pos + 8, n))
        pos += 8 + n
    return spans


def decode(frame):
    """Decode one frame made by encode(); never executes anything it reads.

    Bounded before anything is built: the header's JSON values (MAX_ITEMS, counted as its
    brackets and commas outside strings: json_values), the arrays (MAX_ARRAYS, each backed by its own bytes), the digits
    of an integer.  Decoding a frame of F bytes whose header has H bytes therefore holds at
    most about F (arrays are views of it, or one copy when unaligned; boolean arrays sent as
    bits at most MAX_UNPACKED bytes more) + 8 H (the header's
    text and its strings, each at worst 4 bytes a character for one byte of ASCII) +
    MAX_ITEMS * ITEM_BYTES + MAX_ARRAYS * ARRAY_BYTES, in time linear in F."""
    try:
        if len(frame) < 4:
            raise CodecError("malformed frame: too short")
        (hlen,) = struct.unpack_from(">I", frame, 0)
        if hlen > MAX_HEADER or hlen > len(frame) - 4:
            raise CodecError("malformed frame: header too long")
        spans = _spans(frame, 4 + hlen)   # array lengths first: cheap, and no allocation
        src = frame if isinstance(frame, (bytes, bytearray)) else bytes(memoryview(frame)[:4 + hlen])
        if json_values(src, MAX_ITEMS, 4, 4 + hlen) > MAX_ITEMS:
            raise CodecError(f"malformed frame: more than {MAX_ITEMS} values")
        text = str(memoryview(src)[4:4 + hlen], "utf-8")
        del src
        head = json.loads(text, parse_int=_int)
        del text
        return _dec(head, _Frame(frame, spans))
    except CodecError:
        raise
    except (ValueError, KeyError, IndexError, TypeError, struct.error, UnicodeDecodeError,
            RecursionError, OverflowError, AttributeError, MemoryError) as e:
        raise CodecError(f"malformed frame: {str(e)[:200]}") from None


PIPE_BYTES = 1 << 20   # a pipe's buffer (Linux: /proc/sys/fs/pipe-max-size, 1 MiB by default)


def widen(*fds):
    """Give pipes a 1 MiB buffer instead of 64 KiB, where the system allows (Linux): a large
    frame then crosses in 16 times fewer reads, writes and task switches."""
    import fcntl
    for fd in fds:
        try:
            fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_BYTES)
        except (OSError, ValueError):
            pass   # not a pipe, a lower limit, or not Linux: the default buffer works too


def pipe():
    """os.pipe(), widened."""
    import os
    rd, wr = os.pipe()
    widen(rd)
    return rd, wr


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
    """Read exactly n bytes into a new writable buffer (None on EOF); TimeoutError after the
    monotonic deadline.  From MMAP_FROM bytes the buffer is anonymous memory whose pages are
    only made as the bytes arrive: a length announced but never sent costs nothing."""
    import mmap
    import os
    import select
    import time
    private = getattr(mmap, "MAP_PRIVATE", None)   # copy-on-write in forks (POSIX only)
    buf = bytearray(n) if n < MMAP_FROM or private is None else mmap.mmap(-1, n, flags=private)
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
