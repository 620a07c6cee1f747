"""The student release's stand-in for the instructor's code: recorded reference results.

A check asks `learner.solution(name)` for the instructor's function to compute a reference
result from the inputs it chose (grader/engine.py).  The student release
(`python -m grader.package release OUT`) holds no instructor code, so there it gets a
Replayer instead: the results the instructor's functions returned while the release builder
graded the reference solutions with the public seed, looked up by a digest of the call's
inputs (arrays by dtype, shape and bytes; generators by their state).  A call the recording
does not cover — another seed, inputs too large to record (the timing checks call the
reference on 1e6 elements), a reference that returns an object — raises NotInRelease, which
the engine reports as "checked only by the instructor's grader", never as the learner's
mistake.  Grading for marks (batch, Gradescope, CI) always uses the instructor's full grader,
which has no release.json and computes every reference result itself, for any --seed.
"""
import base64
import hashlib
import json
from pathlib import Path

import numpy as np

GRADER_DIR = Path(__file__).resolve().parent
MANIFEST = GRADER_DIR / "release.json"     # exists only in a student release
ACTIVE = MANIFEST.is_file()
KIND = "not_in_release"
# a recorded call's results are kept up to this size (encoded); larger ones are left out
MAX_CALL_BYTES = 256 * 1024
MAX_TOTAL_BYTES = 4 * 1024 * 1024


class NotInRelease(Exception):
    """A check needs a reference result the student release did not record."""


class Unrecordable(Exception):
    """A value the recording cannot encode (an object, a function, ...)."""


# ---------------------------------------------------------------- canonical encoding
def encode(value):
    """Plain JSON for plain data: arrays, numbers, strings, tuples/lists/dicts of them."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise Unrecordable(f"an array of dtype {value.dtype}")
        a = np.ascontiguousarray(value)
        return {"nd": a.dtype.str, "shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode()}
    if isinstance(value, np.generic):
        return {"np": value.dtype.str, "v": encode(value.item())}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return {"int": str(value)}
    if isinstance(value, float):
        return {"float": value.hex()}
    if isinstance(value, complex):
        return {"complex": [value.real.hex(), value.imag.hex()]}
    if isinstance(value, (tuple, list)):
        return {"tuple" if isinstance(value, tuple) else "list": [encode(v) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[encode(k), encode(v)] for k, v in value.items()]}
    if isinstance(value, np.random.Generator):
        return {"generator": encode(value.bit_generator.state)}
    raise Unrecordable(type(value).__name__)


def decode(data):
    if not isinstance(data, dict):
        return data
    if "nd" in data:
        raw = base64.b64decode(data["b64"])
        return np.frombuffer(raw, dtype=np.dtype(data["nd"])).reshape(data["shape"]).copy()
    if "np" in data:
        return np.dtype(data["np"]).type(decode(data["v"]))
    if "int" in data:
        return int(data["int"])
    if "float" in data:
        return float.fromhex(data["float"])
    if "complex" in data:
        return complex(float.fromhex(data["complex"][0]), float.fromhex(data["complex"][1]))
    if "tuple" in data:
        return tuple(decode(v) for v in data["tuple"])
    if "list" in data:
        return [decode(v) for v in data["list"]]
    if "dict" in data:
        return {decode(k): decode(v) for k, v in data["dict"]}
    raise ValueError(f"not a recorded value: {sorted(data)}")


def _generators(args, kwargs):
    return [v for v in (*args, *kwargs.values()) if isinstance(v, np.random.Generator)]


def _arrays(args, kwargs):
    return [v for v in (*args, *kwargs.values()) if isinstance(v, np.ndarray)]


def _feed(h, value):
    """Hash value canonically: arrays by dtype, shape and bytes (never re-encoded), the rest
    by its encoding."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufc":
            raise Unrecordable(f"an array of dtype {value.dtype}")
        h.update(f"nd:{value.dtype.str}:{value.shape}:".encode())
        h.update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (tuple, list)):
        h.update(f"{type(value).__name__}:{len(value)}:".encode())
        for v in value:
            _feed(h, v)
    elif isinstance(value, dict):
        h.update(f"dict:{len(value)}:".encode())
        for k, v in value.items():
            _feed(h, k)
            _feed(h, v)
    else:
        h.update(json.dumps(encode(value), sort_keys=True, separators=(",", ":")).encode() + b";")


def digest(stem, name, args, kwargs):
    """The key of one call: what it is and every input, generators by their state."""
    h = hashlib.sha256(f"{stem}:{name}:".encode())
    _feed(h, tuple(args))
    _feed(h, dict(sorted(kwargs.items())))
    return h.hexdigest()


def nbytes(value):
    """About how large value's encoding is (arrays count 4/3 of their bytes)."""
    if isinstance(value, np.ndarray):
        return value.nbytes * 4 // 3 + 64
    if isinstance(value, (tuple, list)):
        return sum(nbytes(v) for v in value) + 16
    if isinstance(value, dict):
        return sum(nbytes(k) + nbytes(v) for k, v in value.items()) + 16
    return 64


# ---------------------------------------------------------------- recording (instructor side)
class Recorder:
    """Wraps the instructor's function while the release builder grades the solutions: every
    call runs the real function and records its result, the generators' states after it and
    the arrays it changed in place."""

    def __init__(self, table, stem, name, function):
        self.table, self.stem, self.name, self.function = table, stem, name, function

    def __call__(self, *args, **kwargs):
        try:
            key = digest(self.stem, self.name, args, kwargs)
            before = [a.copy() for a in _arrays(args, kwargs)]
        except Unrecordable as e:
            key, why = None, f"an input is {e}"
        result = self.function(*args, **kwargs)
        if key is not None and nbytes(result) > MAX_CALL_BYTES:
            key, why = None, f"results of {nbytes(result) / 1024:.0f} KiB"
        if key is not None:
            try:
                after = _arrays(args, kwargs)
                entry = {"result": encode(result),
                         "generators": [encode(g.bit_generator.state) for g in _generators(args, kwargs)],
                         "arrays": {str(i): encode(a) for i, (a, b) in enumerate(zip(after, before))
                                    if not np.array_equal(a, b, equal_nan=True)}}
                size = len(json.dumps(entry))
                why = f"results of {size / 1024:.0f} KiB" if size > MAX_CALL_BYTES else None
            except Unrecordable as e:
                why = f"it returns {e}"
            if why is None:
                self.table.add(key, entry, size)
            else:
                self.table.skip(f"{self.stem} {self.name}: {why}")
        else:
            self.table.skip(f"{self.stem} {self.name}: {why}")
        return result


class Recording:
    """The reference results recorded while grading the solutions once."""

    def __init__(self):
        self.calls, self.size, self.skipped = {}, 0, {}

    def add(self, key, entry, size):
        if key in self.calls:
            return
        if self.size + size > MAX_TOTAL_BYTES:
            self.skip("over the release's total of recorded results")
            return
        self.calls[key], self.size = entry, self.size + size

    def skip(self, why):
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def record(self, function_of):
        """A reference_function(course, stem, name) that records what the real one returns."""
        return lambda course, stem, name: Recorder(self, stem, name, function_of(course, stem, name))

    def manifest(self, **about):
        return {**about, "replay": dict(sorted(self.calls.items())),
                "not_recorded": [f"{why} ({n} call{'s' if n != 1 else ''})"
                                 for why, n in sorted(self.skipped.items())]}


# ---------------------------------------------------------------- replay (learner side)
_TABLE = None


def table():
    global _TABLE
    if _TABLE is None:
        _TABLE = json.loads(MANIFEST.read_text(encoding="utf-8")).get("replay", {}) if MANIFEST.is_file() else {}
    return _TABLE


class Replayer:
    """What learner.solution(name) gives in the student release: the recorded results."""

    def __init__(self, stem, name, calls=None):
        self.stem, self.name = stem, name
        self.calls = table() if calls is None else calls

    def __call__(self, *args, **kwargs):
        try:
            entry = self.calls.get(digest(self.stem, self.name, args, kwargs))
        except Unrecordable:
            entry = None
        if entry is None:
            raise NotInRelease(
                f"not checked by the student release: this check compares with the instructor's "
                f"{self.name} on inputs whose results the release does not hold; it is checked when "
                "your work is graded")
        for g, state in zip(_generators(args, kwargs), entry["generators"]):
            g.bit_generator.state = decode(state)
        arrays = _arrays(args, kwargs)
        for i, value in entry["arrays"].items():
            arrays[int(i)][...] = decode(value)
        return decode(entry["result"])


def about():
    """The release's manifest without its table (version, commit, seed), or None."""
    if not MANIFEST.is_file():
        return None
    data = json.loads(MANIFEST.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if k != "replay"}


def identity():
    """{"version", "commit"} of this grader: a release's recorded ones, else the package's
    version and the checkout's git commit (with "+dirty" for uncommitted changes; "unknown"
    outside a checkout, e.g. installed from a wheel)."""
    from grader import __version__
    made = about()
    if made:
        return {"version": made.get("version", __version__), "commit": made.get("commit", "unknown")}
    return {"version": __version__, "commit": git_commit(GRADER_DIR.parent)}


def git_commit(folder):
    import subprocess
    if not (Path(folder) / ".git").exists():
        return "unknown"
    try:
        head = subprocess.run(["git", "-C", str(folder), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "-C", str(folder), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
