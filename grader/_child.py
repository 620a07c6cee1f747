"""The learner's side of the sandbox.  Run as a script by grader.sandbox, never imported
by the grader's own process.

It loads the learner's definitions (only: imports, def, class, simple constants) from
each notebook into a namespace of its own, then serves calls.  Each call is a trusted
probe function (source sent by the grader) run in a fork of this process, under time,
memory and output limits; the answer goes back as plain data (grader.codec).
"""
import ast
import os
import re
import resource
import signal
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # holds grader/
from grader import codec  # noqa: E402
import numpy as np  # noqa: E402
import numpy.random  # noqa: E402,F401

LAZY = ("matplotlib", "IPython", "seaborn", "tqdm", "ipywidgets", "pandas", "sklearn", "scipy")
ALLOWED_CALL_ROOTS = {"np", "numpy", "math"}


# ---------------------------------------------------------------- learner definitions
class _Stub:
    """Stands in for `grader.check` and plotting modules: never needed to grade."""

    def __init__(self, name):
        self._name = name

    def __call__(self, *a, **k):
        return None

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Stub(self._name + "." + attr)


def _strip_magics(src):
    """IPython magics and shell escapes become `pass`, keeping line numbers."""
    lines = src.split("\n")
    if lines and lines[0].lstrip().startswith("%%"):
        magic = lines[0].lstrip()[2:].split()[0] if lines[0].strip() != "%%" else ""
        if magic not in ("time", "timeit", "capture", "prun"):
            return ""
        lines[0] = ""
    out = []
    for ln in lines:
        s = ln.lstrip()
        if s.startswith(("%", "!")) or re.match(r"^\w+\s*=\s*[!%]", s):
            ln = ln[: len(ln) - len(s)] + "pass"
        out.append(ln)
    return "\n".join(out)


def _calls_allowed(node):
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call):
            f = sub.func
            while isinstance(f, (ast.Attribute, ast.Call)):
                f = f.value if isinstance(f, ast.Attribute) else f.func
            if not (isinstance(f, ast.Name) and f.id in ALLOWED_CALL_ROOTS):
                return False
            if "random" in ast.unparse(sub.func):
                return False
        if isinstance(sub, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp,
                            ast.Await, ast.Yield, ast.YieldFrom, ast.NamedExpr)):
            return False
    return True


def _target_names(t):
    if isinstance(t, ast.Name):
        return [t.id]
    if isinstance(t, (ast.Tuple, ast.List)):
        names = [n for e in t.elts for n in _target_names(e)]
        return names if len(names) == len(t.elts) else []
    return []


def definitions(tree):
    """The statements of a cell worth running to grade it, with the names each defines."""
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            kept.append((node, [node.name]))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            kept.append((node, [(a.asname or a.name).split(".")[0] for a in node.names]))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [n for t in targets for n in _target_names(t)]
            if names and all(_target_names(t) for t in targets) and _calls_allowed(node.value):
                kept.append((node, names))
    return kept


def _import(node, ns):
    """Run an import, standing in stubs for the grader and plotting libraries."""
    mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
    if any(m.split(".")[0] == "grader" for m in mods) or (
            isinstance(node, ast.ImportFrom) and node.level):
        for a in node.names:
            ns[(a.asname or a.name).split(".")[0]] = _Stub(a.name)
        return True
    if any(m.split(".")[0] in LAZY for m in mods):
        for a in node.names:
            ns[(a.asname or a.name).split(".")[0]] = _Stub(a.name)
        return True
    return False


class _CellTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise _CellTimeout()


def load_notebook(cells, ns, cell_seconds):
    """Execute the definitions of each cell; return {name: cell} and {name: problem}."""
    where, problems = {}, {}
    signal.signal(signal.SIGALRM, _alarm)
    for idx, src in enumerate(cells, start=1):
        src = _strip_magics(src)
        try:
            tree = ast.parse(src, filename=f"<cell {idx}>")
        except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
            line = getattr(e, "lineno", None)
            msg = f"{type(e).__name__} in cell {idx}" + (f", line {line}" if line else "") + \
                f": {getattr(e, 'msg', None) or e}"
            for name in re.findall(r"^\s*(?:async\s+)?(?:def|class)\s+(\w+)", src, re.M):
                problems[name] = msg
            continue
        for node, names in definitions(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and _import(node, ns):
                continue
            code = compile(ast.Module(body=[node], type_ignores=[]), f"<cell {idx}>", "exec")
            signal.setitimer(signal.ITIMER_REAL, cell_seconds)
            try:
                exec(code, ns)
                for n in names:
                    where[n] = idx
                    problems.pop(n, None)
            except BaseException as e:  # noqa: BLE001 - learner code may raise anything
                if isinstance(e, _CellTimeout):
                    msg = f"the definition in cell {idx}, line {node.lineno} ran for more than {cell_seconds:g} s"
                else:
                    msg = f"{type(e).__name__} in cell {idx}, line {node.lineno}: {_short(e)}"
                for n in names:
                    if n not in where:
                        problems[n] = msg
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    return where, problems


def _short(e, limit=300):
    try:
        s = str(e)
    except BaseException:  # noqa: BLE001
        s = "<unprintable>"
    s = " ".join(s.split())
    return s if len(s) <= limit else s[:limit] + "…"


# ---------------------------------------------------------------- probes' view of the notebook
class LearnerFailure(Exception):
    """Raised inside a probe when learner code misbehaves; becomes the call's answer."""

    def __init__(self, kind, function, message):
        super().__init__(message)
        self.kind, self.function, self.message = kind, function, message


class LearnerRaised(Exception):
    """The learner's code raised an ordinary exception; probes may catch it."""

    def __init__(self, function, exc):
        super().__init__(f"{type(exc).__name__}: {_short(exc)}")
        self.function = function
        self.exc = exc
        self.type = type(exc).__name__
        self.where = _where(exc)

    def failure(self):
        return LearnerFailure("raised", self.function,
                              f"{self.function} raised {self.type}: {_short(self.exc)}{self.where}")


def _where(exc):
    cells = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)
             if f.filename.startswith("<cell ")]
    if not cells:
        return ""
    fname, line = cells[-1]
    return f" (at {fname[1:-1]}, line {line})"


class Notebook:
    """What a probe sees: the learner's names, and a guarded way to call them."""

    def __init__(self, ns, problems):
        self._ns, self._problems = ns, problems

    def has(self, name):
        return name in self._ns

    def get(self, name):
        if name in self._ns:
            return self._ns[name]
        if name in self._problems:
            raise LearnerFailure("broken", name, f"{name} could not be defined: {self._problems[name]}")
        raise LearnerFailure("not_found", name,
                             f"{name} was not found in your notebook — did you rename it or not run its cell?")

    def run(self, label, f, *args, **kwargs):
        """Call learner code; translate what it does wrong into LearnerFailure/LearnerRaised."""
        try:
            return f(*args, **kwargs)
        except NotImplementedError:
            raise LearnerFailure("not_implemented", label, f"{label} is not implemented yet") from None
        except SystemExit as e:
            raise LearnerFailure("exit", label, f"{label} called sys.exit({e.code!r}); "
                                 "a function should return or raise, never end the process") from None
        except MemoryError:
            raise LearnerFailure("memory", label, f"{label} ran out of memory "
                                 f"(the limit is {LIMITS['mem'] // 2**20} MiB)") from None
        except RecursionError:
            raise LearnerFailure("raised", label, f"{label} recursed too deeply (RecursionError)") from None
        except OSError as e:
            if getattr(e, "errno", None) == 27:  # EFBIG: the output limit
                raise LearnerFailure("output", label, f"{label} printed more than "
                                     f"{LIMITS['output'] // 1024} KiB of output") from None
            raise LearnerRaised(label, e) from None
        except Exception as e:  # noqa: BLE001
            raise LearnerRaised(label, e) from None

    def fn(self, name):
        f = self.get(name)
        if not callable(f):
            raise LearnerFailure("contract", name, f"{name} is a {type(f).__name__}, not a function")
        return lambda *a, **k: self.run(name, f, *a, **k)


class Contract(Exception):
    """A probe found the learner's value in the wrong form (e.g. not a (out, cache) pair)."""


def expect_pair(value, name, what="(out, cache)"):
    if not (isinstance(value, tuple) and len(value) == 2):
        raise LearnerFailure("contract", name, f"{name} should return a pair {what}; "
                             f"it returned {_type_name(value)}")
    return value


def _type_name(v):
    if isinstance(v, tuple):
        return f"a tuple of length {len(v)}"
    return "None" if v is None else f"a {type(v).__name__}"


LIMITS = {"mem": 2 << 30, "output": 1 << 20, "seconds": 5.0}
PROBE_GLOBALS = {"np": np, "LearnerRaised": LearnerRaised, "LearnerFailure": LearnerFailure,
                 "Contract": Contract, "expect_pair": expect_pair, "time": time,
                 "__builtins__": __builtins__}


# ---------------------------------------------------------------- one call, in a fork
def _children_of(pid):
    kids = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return kids
    for d in entries:
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read().decode(errors="replace")
                if int(stat[stat.rindex(")") + 2:].split()[1]) == pid:
                    kids.append(int(d))
            except (OSError, ValueError):
                pass
    return kids


def reap_all(pgid=None):
    """Kill the call's process group and every orphan re-parented to us (we are a subreaper)."""
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for _ in range(50):
        kids = _children_of(os.getpid())
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        try:
            while os.waitpid(-1, os.WNOHANG)[0] > 0:
                pass
        except ChildProcessError:
            pass
        if not kids:
            break
        time.sleep(0.002)


def _set_subreaper():
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def run_probe(req, notebooks, tmp):
    """Body of the forked process: limits, capture, run the probe, answer."""
    rd, wr = req["_pipe"]
    os.close(rd)
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    mem, out_limit = int(req.get("mem") or LIMITS["mem"]), int(LIMITS["output"])
    for lim, val in ((resource.RLIMIT_AS, mem), (resource.RLIMIT_FSIZE, out_limit),
                     (resource.RLIMIT_CORE, 0)):
        try:
            resource.setrlimit(lim, (val, val))
        except (ValueError, OSError):
            pass
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    cap = os.open(os.path.join(tmp, "output.txt"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(cap, 1)
    os.dup2(cap, 2)
    os.close(cap)
    nb = Notebook(*notebooks[req["stem"]])
    try:
        g = dict(PROBE_GLOBALS)
        exec(compile(req["probe_src"], "<probe>", "exec"), g)
        value = g[req["probe_name"]](nb, **req["kwargs"])
        try:
            answer = {"status": "ok", "value": value}
            frame = codec.encode(answer)
        except codec.CodecError as e:
            frame = codec.encode({"status": "learner", "kind": "contract", "function": req["uses"][0] if req["uses"] else "",
                                  "message": f"returned {e}, which the grader cannot read; "
                                  "return NumPy arrays, numbers or tuples of them"})
    except LearnerFailure as e:
        frame = codec.encode({"status": "learner", "kind": e.kind, "function": e.function, "message": e.message})
    except LearnerRaised as e:
        f = e.failure()
        frame = codec.encode({"status": "learner", "kind": f.kind, "function": f.function, "message": f.message})
    except BaseException as e:  # noqa: BLE001 - a probe bug, or learner values it could not use
        tb = traceback.format_exc(limit=-3)
        frame = codec.encode({"status": "probe_error", "message": f"{type(e).__name__}: {_short(e)}",
                              "traceback": tb[-2000:]})
    try:
        codec.write_frame(wr, frame)
    finally:
        os._exit(0)


def serve_call(req, notebooks, tmp):
    seconds = float(req.get("timeout") or LIMITS["seconds"])
    rd, wr = os.pipe()
    req["_pipe"] = (rd, wr)
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            run_probe(req, notebooks, tmp)
        finally:
            os._exit(70)
    os.close(wr)
    info = {"timed_out": False, "exit": None, "frame": b"", "oversize": False}
    try:
        frame = codec.read_frame(rd, deadline=t0 + seconds)
        info["frame"] = frame or b""
    except TimeoutError:
        info["timed_out"] = True
    except codec.CodecError:
        info["oversize"] = True
    os.close(rd)
    if info["timed_out"] or info["oversize"]:
        os.kill(pid, signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    info["exit"] = status
    reap_all(pgid=pid)
    info["seconds"] = time.monotonic() - t0
    try:
        info["output_bytes"] = os.path.getsize(os.path.join(tmp, "output.txt"))
    except OSError:
        info["output_bytes"] = 0
    return info


def drop_privileges(tmp, uid):
    import pwd
    try:
        gid = pwd.getpwuid(uid).pw_gid
    except KeyError:
        gid = uid
    os.chown(tmp, uid, gid)
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def main():
    proto_in, proto_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    tmp = os.getcwd()
    _set_subreaper()
    frame = codec.read_frame(proto_in)
    init = codec.decode(frame)
    LIMITS.update(init.get("limits", {}))
    try:
        resource.setrlimit(resource.RLIMIT_AS, (LIMITS["mem"], LIMITS["mem"]))
    except (ValueError, OSError):
        pass
    if init.get("uid") is not None:
        drop_privileges(tmp, int(init["uid"]))
    notebooks, summary = {}, {}
    fork = hasattr(os, "fork") and not init.get("no_fork")
    for stem, cells in init["notebooks"].items():
        ns = {"__name__": "__main__", "__builtins__": __builtins__}
        where, problems = load_notebook(cells, ns, float(LIMITS.get("cell_seconds", 2.0)))
        notebooks[stem] = (ns, problems)
        summary[stem] = {"defined": where, "problems": problems}
    codec.write_frame(proto_out, codec.encode({"status": "ready", "notebooks": summary,
                                               "uid": os.getuid(), "fork": fork}))
    while True:
        frame = codec.read_frame(proto_in)
        if frame is None:
            break
        req = codec.decode(frame)
        if req.get("op") == "close":
            break
        info = serve_call(req, notebooks, tmp)
        head = {k: v for k, v in info.items() if k != "frame"}
        codec.write_frame(proto_out, codec.encode(head))
        codec.write_frame(proto_out, info["frame"])
    reap_all()


if __name__ == "__main__":
    main()
