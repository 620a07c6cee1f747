"""The learner's side of the sandbox.  Run as a script by grader.sandbox.host (as root, from a
staged copy inside the allowlist view that grader/sandbox/view.py builds).  The grader's own
process imports it only to run probes on the course's own handed-out cells (the stub shortcut,
grader/stubs.py), never on learner text.  It imports NumPy, codec.py and procs.py, nothing else of the grader.

It loads the learner's definitions (only: imports, def, class, simple constants) from
each notebook into a namespace of its own, then serves calls.  Each call is a trusted
probe function (source sent by the grader) run under time, memory and output limits in a
fork of this process: consecutive untimed calls of one notebook in that notebook's runner
(one fork, a fresh namespace per call, process-global state put back after each), a timed
call in a fork of its own; the answer goes back as plain data (grader.codec).
"""
import _signal
import ast
import json
import os
import re
import signal
import sys
import time
import traceback

# Run as a script (the only way the grader runs it): the first argument says whether this
# process is in the allowlist view (grader/sandbox/view.py) and where NumPy is.
VIEW = json.loads(sys.argv[1]) if __name__ == "__main__" and len(sys.argv) == 2 else {"view": False}
if __name__ == "__main__":
    sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), *VIEW.get("path", ())]
import numpy as np  # noqa: E402 - the one package warmed for every learner
import numpy.random  # noqa: E402,F401

if __package__:
    from grader.sandbox import codec, leftovers
    from grader.sandbox.ipc import remove_of_uid
    from grader.sandbox.procs import children_of
else:   # a script: codec.py, ipc.py, leftovers.py and procs.py are next to it (staged copies, in the view)
    import codec
    import leftovers
    from ipc import remove_of_uid
    from procs import children_of

try:
    import resource
except ImportError:   # native Windows: only the unsandboxed self-study mode runs there
    resource = None

LAZY = ("matplotlib", "IPython", "seaborn", "tqdm", "ipywidgets", "pandas", "sklearn", "scipy", "keras",
        "torch", "jax", "tensorflow")
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


CELLS = {}   # (cell number, source) -> prepare_cell(...): parsed and compiled once, in main


# [ \t] where \s would also match newlines: with \s, a run of blank lines is tried again from
# every line it holds (quadratic); this pattern is linear in the cell's length
_DEFINED = re.compile(r"^[ \t]*(?:async[ \t]+)?(?:def|class)[ \t]+(\w+)", re.M)


def _runs_nothing(node):
    """Is this definition a plain `def` whose execution only makes the function object: no
    decorator, and defaults and annotations that are literals or bare names (a name is looked
    up in plain dicts; nothing evaluated can run code)?  Loading it needs no time limit and can
    have patched nothing; should it fail (an unknown name), it says so as any other."""
    if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) or node.decorator_list:
        return False
    a = node.args
    evaluated = [*a.defaults, *a.kw_defaults, node.returns,
                 *(x.annotation for x in (*a.posonlyargs, *a.args, *a.kwonlyargs, a.vararg, a.kwarg) if x is not None)]
    return all(e is None or isinstance(e, (ast.Constant, ast.Name)) for e in evaluated)


def _defined_names(src):
    """Names a cell that cannot be loaded defines, to say which of them it took down."""
    return _DEFINED.findall(src)


def prepare_cell(idx, src):
    """A cell's definitions, parsed and compiled (cached: in batch grading the template
    prepares the course's own cells once, and every learner process forked from it reuses
    them for the cells the learner did not change).  ("error", message, names) for a cell
    that does not parse; ("ok", [(node, names, code)]) otherwise."""
    key = (idx, src)
    if key not in CELLS:
        clean = _strip_magics(src)
        try:
            tree = ast.parse(clean, filename=f"<cell {idx}>")
        except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
            line = getattr(e, "lineno", None)
            msg = f"{type(e).__name__} in cell {idx}" + (f", line {line}" if line else "") + \
                f": {getattr(e, 'msg', None) or e}"
            CELLS[key] = ("error", msg, _defined_names(clean))
        else:
            try:
                CELLS[key] = ("ok", [(node, names, compile(ast.Module(body=[node], type_ignores=[]),
                                                           f"<cell {idx}>", "exec"), _runs_nothing(node))
                                     for node, names in definitions(tree)])
            except (SyntaxError, ValueError, MemoryError, RecursionError) as e:
                CELLS[key] = ("error", f"{type(e).__name__} in cell {idx}: {_short(e)}",
                              _defined_names(clean))
    return CELLS[key]


def load_notebook(cells, ns, cell_seconds):
    """Execute the definitions of each cell; return {name: cell} and {name: problem}."""
    where, problems = {}, {}
    signal.signal(signal.SIGALRM, _alarm)
    for idx, src in enumerate(cells, start=1):
        prepared = prepare_cell(idx, src)
        if prepared[0] == "error":
            for name in prepared[2]:
                problems[name] = prepared[1]
            continue
        for node, names, code, inert in prepared[1]:
            if isinstance(node, (ast.Import, ast.ImportFrom)) and _import(node, ns):
                continue
            if not inert:   # a plain def runs nothing of the learner's: no timer, nothing to put back
                signal.setitimer(signal.ITIMER_REAL, cell_seconds)
            try:
                exec(code, ns)
                for n in names:
                    where[n] = idx
                    problems.pop(n, None)
            except BaseException as e:  # noqa: BLE001 - learner code may raise anything
                if isinstance(e, (_CellTimeout, MemoryError)) or (isinstance(e, OSError) and e.errno == 27):
                    STATE["limit"] = True   # a runner that hit a limit ends after the call
                if isinstance(e, _CellTimeout):
                    msg = f"the definition in cell {idx}, line {node.lineno} ran for more than {cell_seconds:g} s"
                elif isinstance(e, OSError) and e.errno == 27:  # EFBIG: the output limit
                    msg = (f"the definition in cell {idx}, line {node.lineno} printed more than "
                           f"{LIMITS['output'] // 1024} KiB of output")
                elif isinstance(e, MemoryError):
                    msg = (f"the definition in cell {idx}, line {node.lineno} ran out of memory "
                           f"(the limit is {LIMITS['mem'] // 2**20} MiB)")
                else:
                    msg = f"{type(e).__name__} in cell {idx}, line {node.lineno}: {_short(e)}"
                for n in names:
                    if n not in where:
                        problems[n] = msg
            finally:
                if not inert:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                    restore_modules("builtins")   # a class body may have replaced what loading uses
    signal.signal(signal.SIGALRM, signal.SIG_DFL)
    restore_modules()   # class bodies and decorators may have monkeypatched NumPy or builtins
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


def _from_learner(exc):
    """Did exc come out of the learner's own code (a frame of one of its cells)?"""
    try:
        return any(f.filename.startswith("<cell ") for f in traceback.extract_tb(exc.__traceback__))
    except BaseException:  # noqa: BLE001
        return False


def _where(exc):
    cells = [(f.filename, f.lineno) for f in traceback.extract_tb(exc.__traceback__)
             if f.filename.startswith("<cell ")]
    if not cells:
        return ""
    fname, line = cells[-1]
    return f" (at {fname[1:-1]}, line {line})"


class Notebook:
    """What a probe sees (its first argument): the learner's names, a guarded way to call
    them, and the exceptions it may catch (nb.Raised) or raise (nb.Failure)."""

    def __init__(self, ns, problems, load=None):
        self._ns, self._problems, self._load = ns, problems, load

    def fresh(self):
        """The learner's definitions loaded again, into a namespace of their own, with NumPy's
        and the random module's global generators, NumPy's error handling and the warning
        filters as the call found them, as for a call of its own: a probe that runs the
        learner's code on several inputs gives each a fresh one, so that what one run's code
        kept (in its globals, in a default argument, in a global generator) cannot reach the
        next.  Where nothing can be loaded again (the stub shortcut, which runs the course's
        own stubs), this notebook itself."""
        return Notebook(*self._load(), load=self._load) if self._load is not None else self

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
            STATE["limit"] = True
            raise LearnerFailure("memory", label, f"{label} ran out of memory "
                                 f"(the limit is {LIMITS['mem'] // 2**20} MiB)") from None
        except RecursionError:
            raise LearnerFailure("raised", label, f"{label} recursed too deeply (RecursionError)") from None
        except OSError as e:
            if getattr(e, "errno", None) == 27:  # EFBIG: the output limit
                STATE["limit"] = True
                raise LearnerFailure("output", label, f"{label} printed more than "
                                     f"{LIMITS['output'] // 1024} KiB of output") from None
            raise LearnerRaised(label, e) from None
        except Exception as e:  # noqa: BLE001
            raise LearnerRaised(label, e) from None
        except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt, GeneratorExit, own subclasses
            raise LearnerFailure("raised", label, f"{label} raised {type(e).__name__}"
                                 f"{': ' + _short(e) if _short(e) else ''}{_where(e)}; a function should "
                                 "return a value or raise an ordinary exception (a subclass of "
                                 "Exception)") from None

    def pair(self, value, name, what="(out, cache)"):
        """value, if it is a 2-tuple; otherwise the learner broke the contract."""
        return expect_pair(value, name, what)

    def fn(self, name):
        f = self.get(name)
        if not callable(f):
            raise LearnerFailure("contract", name, f"{name} is a {type(f).__name__}, not a function")
        return lambda *a, **k: self.run(name, f, *a, **k)


    def proxy(self, name):
        """A function whose every call is a round trip to the grader, where the object it
        stands for lives (Sandbox.call's callbacks): it holds nothing learner code could read
        but its name."""
        return _proxy(name)


Notebook.Raised, Notebook.Failure = LearnerRaised, LearnerFailure


# ---------------------------------------------------------------- call-backs to the grader
CALLBACK_LIMIT = 64 * 2**20   # bytes of one call-back request or reply


def _proxy(name):
    def proxy(*args, **kwargs):
        return _round_trip(name, args, kwargs)
    proxy.__name__ = proxy.__qualname__ = str(name)
    return proxy


def _to_wire(v, gens):
    """A learner value as plain data; a NumPy Generator travels as its state (and gets the
    state the grader's side left it in back)."""
    if isinstance(v, np.random.Generator):
        gens.append(v)
        return {"__generator__": v.bit_generator.state}
    if type(v) in (list, tuple):
        return type(v)(_to_wire(x, gens) for x in v)
    if type(v) is dict:
        return {k: _to_wire(x, gens) for k, x in v.items()}
    return v


def _round_trip(name, args, kwargs):
    up, down = STATE.get("cb") or (STATE["proto"] and (STATE["proto"][1], STATE["proto"][0])) or (None, None)
    gens = []
    try:
        msg = codec.encode({"name": name, "args": _to_wire(list(args), gens), "kwargs": _to_wire(dict(kwargs), gens)})
    except codec.CodecError as e:
        raise TypeError(f"{name}() got a value it cannot take: {e}") from None
    if STATE.get("local_cb") is not None:   # check() in a browser kernel: the grader is this process
        frame = STATE["local_cb"](msg)
    else:
        if STATE["cb"] is None:
            codec.write_frame(up, codec.encode({"callback": True}))
        codec.write_frame(up, msg)
        frame = codec.read_frame(down, limit=CALLBACK_LIMIT)
    if frame is None:
        raise RuntimeError(f"{name}() got no answer")
    reply = codec.decode(frame)
    for g, state in zip(gens, reply.get("states", ())):
        g.bit_generator.state = state
    if "error" in reply:
        cls = {"TypeError": TypeError, "ValueError": ValueError, "IndexError": IndexError,
               "KeyError": KeyError, "AttributeError": AttributeError}.get(reply["error"], RuntimeError)
        raise cls(reply.get("message", ""))
    return reply.get("value")


def expect_pair(value, name, what="(out, cache)"):
    if not (isinstance(value, tuple) and len(value) == 2):
        raise LearnerFailure("contract", name, f"{name} should return a pair {what}; "
                             f"it returned {_type_name(value)}")
    return value


def _type_name(v):
    if isinstance(v, tuple):
        return f"a tuple of length {len(v)}"
    return "None" if v is None else f"a {type(v).__name__}"


LIMITS = {}   # from the grader's settings (grader.config), the first frame read
PROBE_GLOBALS = {"np": np, "__builtins__": __builtins__}   # all a probe gets besides its arguments
CODE = {}   # probe source -> code object
STATE = {"rlimits": {}, "proto": (), "cb": None, "sweep_uid": False, "work": None, "pristine": (), "answer_path": (),
         "builtins": ()}


def _private(mod, depth=1):
    """A copy of a module's namespace (and of its submodules', depth levels down)."""
    import types
    copy = types.ModuleType(mod.__name__)
    copy.__dict__.update(mod.__dict__)
    if depth:
        for k, v in mod.__dict__.items():
            if isinstance(v, types.ModuleType) and v.__name__.startswith(mod.__name__ + "."):
                copy.__dict__[k] = _private(v, depth - 1)
    return copy


def snapshot_modules():
    """Before any learner code runs: remember the namespaces of the modules the answer is
    encoded with, and give probes private copies of NumPy's, time's and the builtins'
    namespaces, so that learner code that replaces np.random.get_state, time.perf_counter or
    isinstance cannot fool the probe measuring it (patches deep inside a library still can;
    they only ever fool measurements taken in the learner's own process)."""
    import builtins
    import json
    import json.encoder
    import struct
    everything = (builtins, np, np.random, codec, json, json.encoder, struct, os)
    STATE["pristine"] = tuple((m.__dict__, dict(m.__dict__)) for m in everything)
    STATE["answer_path"] = STATE["pristine"][:1] + STATE["pristine"][3:-1]   # not os: codec has os.write
    STATE["builtins"] = STATE["pristine"][:1]
    PROBE_GLOBALS.update(np=_private(np), __builtins__=dict(builtins.__dict__))


def restore_modules(which="pristine"):
    """Undo monkeypatching (names the learner replaced) of the remembered modules."""
    for live, saved in STATE[which]:
        for k, v in saved.items():
            if live.get(k, live) is not v:
                live[k] = v


# ---------------------------------------------------------------- processes
def _wait_all(block):
    """Collect every finished child; with block, wait until no child is left."""
    while True:
        try:
            pid, _ = os.waitpid(-1, 0 if block else os.WNOHANG)
        except ChildProcessError:
            return
        except InterruptedError:
            continue
        if pid == 0:
            return


def reap_all(pgid=None):
    """End every process the learner's code started: we are their subreaper, so detached
    ones (setsid + double fork) are our children too.  With a uid of our own (the grader
    ran as root), kill(-1) reaches every process of that uid, in one atomic sweep."""
    if STATE["sweep_uid"]:
        try:
            os.kill(-1, signal.SIGKILL)  # every process of our uid except ourselves
        except OSError:
            pass
        _wait_all(block=True)
        return
    if pgid:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    for _ in range(200):
        kids = set(children_of(os.getpid()))
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        _wait_all(block=bool(kids))
        if not kids:
            break


def _libc():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
    return libc


def _set_subreaper():
    try:
        _libc().prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        pass


def _setrlimit(which, value):
    try:
        resource.setrlimit(which, (value, value))
    except (ValueError, OSError):
        pass


# ---------------------------------------------------------------- isolation (before learner code)
# A fixed list, never one chosen by the learner's text: outside the view, a Python installation
# under a private home (e.g. pyenv in /root) is unreadable once privileges are dropped.
WARM = ("math", "random", "itertools", "functools", "collections", "operator", "copy", "statistics",
        "fractions", "numbers", "dataclasses", "typing", "warnings", "pathlib", "json", "time",
        "numpy.linalg", "numpy.fft", "numpy.polynomial", "numpy.ma", "numpy.testing", "numpy.lib.stride_tricks")


NEVER_WARM = {"antigravity", "this", "__hello__", "__phello__", "idlelib", "tkinter", "turtle", "turtledemo",
              "webbrowser", "pydoc", "ensurepip", "venv", "readline", "rlcompleter", "pty", "tty", "curses"}


def warm_named(notebooks):
    """After the limits, the drop and the view: import the standard-library and NumPy modules
    the cells' import statements name (parsed, not scanned), so that each call's fork finds
    them loaded.  Only modules of the installation: nothing of the course is there."""
    import importlib
    stdlib = getattr(sys, "stdlib_module_names", ())
    names = set()
    for cells in notebooks.values():
        for idx, src in enumerate(cells, start=1):
            prepared = prepare_cell(idx, src)
            if prepared[0] != "ok":
                continue
            for node, _names, _code, _inert in prepared[1]:
                if isinstance(node, ast.Import):
                    names.update(a.name for a in node.names)
                elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                    names.add(node.module)
    for name in sorted(names)[:100]:
        top = name.split(".")[0]
        if (top in stdlib or top == "numpy") and top not in NEVER_WARM:
            try:
                importlib.import_module(name)
            except BaseException:  # noqa: BLE001
                pass


def warm_fixed():
    """Import the fixed list above (nothing the learner's cells name)."""
    import importlib
    for name in WARM:
        try:
            importlib.import_module(name)
        except BaseException:  # noqa: BLE001 - a module missing from this installation
            pass


def drop_privileges(uid, gid):
    os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


def set_limits():
    """Memory, output and core-dump limits: the first thing done, before the learner's cells
    are read, parsed or compiled."""
    _setrlimit(resource.RLIMIT_CORE, 0)
    _setrlimit(resource.RLIMIT_AS, int(LIMITS["mem"]))
    _setrlimit(resource.RLIMIT_FSIZE, int(LIMITS["output"]))
    if hasattr(resource, "RLIMIT_MSGQUEUE"):   # no POSIX message queue: where no /dev/mqueue lists
        _setrlimit(resource.RLIMIT_MSGQUEUE, 0)   # them, one would outlive grading unseen
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the output limit: EFBIG, not death


def no_new_privs():
    try:
        _libc().prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS: setuid programs gain nothing
    except (OSError, AttributeError):
        pass


def working_folder(uid):
    """Where learner code may write: /tmp/work in the view (a private tmpfs); otherwise a
    folder `work` inside the grader's scratch folder, the only thing chown'ed to the learner's
    uid (the scratch folder itself stays the grader's: no clean-up of that uid touches it)."""
    if VIEW.get("view"):
        work = "/tmp/work"
        os.mkdir(work, 0o700)
    else:   # a new one per learner process (a restarted one finds its predecessor's)
        import tempfile
        work = tempfile.mkdtemp(prefix="work-", dir=os.getcwd())
    if uid is not None:
        os.chown(work, uid, uid if uid != 65534 else _nogroup())
    return work


def drop(uid):
    """To the leased uid (or `nobody` when it cannot be used)."""
    for candidate in dict.fromkeys([int(uid), 65534]):
        try:
            drop_privileges(candidate, candidate if candidate != 65534 else _nogroup())
            return
        except OSError:
            if candidate == 65534:
                raise


def harden(init):
    """Limits, no new privileges, a working folder, an unprivileged uid; never ptrace-able by
    the learner's forks.  Runs before any learner cell is read.  Returns a description of the
    isolation for the grader."""
    set_limits()
    no_new_privs()
    _not_dumpable()
    view = bool(VIEW.get("view"))
    info = {"uid": os.getuid(), "view": view, "network": view, "private_tmp": view, "ipc": view,
            "pid": view, "hidden": 0, "sweep": "tree",
            "cpu": "cgroup" if VIEW.get("cgroup_fd") is not None else "no process creation in timed calls"}
    if VIEW.get("why"):
        info["why_no_view"] = VIEW["why"]
    uid = init.get("uid")
    root = uid is not None and os.geteuid() == 0
    STATE["work"] = working_folder(int(uid) if root else None) if (root or view) else os.getcwd()
    os.chdir(STATE["work"])
    STATE["work_fd"] = os.open(".", os.O_RDONLY | os.O_DIRECTORY)   # reachable whatever its parents' modes
    if not root:
        return info
    if not view:
        warm_fixed()   # the installation may be unreadable by the learner's uid
    drop(uid)
    _new_session_keyring()
    _set_pdeathsig()   # a change of uid clears it
    info["uid"] = os.getuid()
    _not_dumpable()   # a change of uid may reset it
    if init.get("dedicated") and os.getuid() == int(uid) != 65534:
        STATE["sweep_uid"] = True
        info["sweep"] = "uid"
        _setrlimit(resource.RLIMIT_NPROC, int(LIMITS.get("nproc", 128)))
        reap_all()   # leftovers of a grader that crashed while using this uid
    return info


def _new_session_keyring():
    """An empty anonymous session keyring: the grader's (inherited, and possessed by whoever
    holds it) is no longer this process's, and nothing learner code adds to it outlives it."""
    nr = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)
    if nr is not None:
        try:
            _libc().syscall(nr, 1, None)   # KEYCTL_JOIN_SESSION_KEYRING, no name: a new one
        except (OSError, AttributeError):
            pass


def _set_pdeathsig():
    """Process 1 of the view ends with the process that started it."""
    if VIEW.get("view"):
        try:
            _libc().prctl(1, 9, 0, 0, 0)   # PR_SET_PDEATHSIG, SIGKILL
        except (OSError, AttributeError):
            pass


def _not_dumpable():
    """PR_SET_DUMPABLE 0: no process of the same uid (the learner's forks) may ptrace this one
    or open its /proc/PID/fd and /proc/PID/mem; the forks inherit it."""
    try:
        _libc().prctl(4, 0, 0, 0, 0)
    except (OSError, AttributeError):
        pass


def _nogroup():
    import pwd
    try:
        return pwd.getpwuid(65534).pw_gid
    except KeyError:
        return 65534


# ---------------------------------------------------------------- one call, in a fork
def become_learner_side(mem):
    """What a fork does before it runs learner code (a call's fork, or a runner): Python's usual
    SIGINT handler, the random module's generator in one fixed state, no way to the grader, a
    process group of its own, a new empty session keyring (keys added to it go with the
    process), its memory limit, EFBIG rather than death over the output limit."""
    signal.signal(signal.SIGINT, signal.default_int_handler)   # as in any Python program
    import random
    random.seed(0)   # CPython reseeds it from the system in every fork: every call finds one state
    watch = STATE.get("files")
    for fd in (*STATE["proto"], *([VIEW["cgroup_fd"]] if VIEW.get("cgroup_fd") is not None else []),
               *([watch.fd] if watch is not None and watch.fd is not None else [])):
        try:
            os.close(fd)   # the learner's code never talks to the grader, nor reads what it watches
        except OSError:
            pass
    try:
        os.setpgid(0, 0)
    except OSError:
        pass
    _new_session_keyring()   # keys a call adds to it go with its process
    _setrlimit(resource.RLIMIT_AS, mem)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def run_probe(req, notebooks):
    """Body of the forked process: limits, capture, run the probe, answer."""
    rd, wr = req["_pipe"]
    os.close(rd)
    if req.get("_cb"):
        mine, theirs = req["_cb"]
        for fd in theirs:
            os.close(fd)
        STATE["cb"] = mine
    become_learner_side(int(req.get("mem") or LIMITS["mem"]))
    if req.get("timed") and VIEW.get("cgroup_fd") is None:
        no_new_processes()
    cap = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=STATE["work_fd"])
    os.close(STATE["work_fd"])
    os.dup2(cap, 1)
    os.dup2(cap, 2)
    os.close(cap)
    frame = answer_frame(req, notebooks)
    try:
        codec.write_frame(wr, frame)
    finally:
        os._exit(0)


def answer_frame(req, notebooks):
    """Load the learner's definitions, run the probe, encode its answer (a frame)."""
    spaces = STATE["spaces"] = []   # a runner empties them after answering (cycles hold them)
    found = []   # the global generators and NumPy's error handling as this call found them

    def load():
        import random
        import warnings
        if not found:
            found.append((np.random.get_state(), np.geterr(), np.geterrcall(), random.getstate(),
                          list(warnings.filters)))
        else:   # each fresh load puts them back
            state, err, errcall, py_state, filters = found[0]
            np.random.set_state(state)
            np.seterr(**err)
            np.seterrcall(errcall)
            random.setstate(py_state)
            warnings.filters[:] = filters
            warnings._filters_mutated()
        for old in spaces[2:]:
            old.clear()   # the run before this fresh load is over: what it held goes now
        ns = {"__name__": "__main__", "__builtins__": __builtins__}
        spaces.append(ns)
        return ns, load_notebook(notebooks[req["stem"]], ns, float(LIMITS["cell_seconds"]))[1]
    nb = Notebook(*load(), load=load)
    who = req["uses"][0] if req["uses"] else ""
    g = dict(PROBE_GLOBALS)
    spaces.append(g)
    try:
        exec(req["_code"], g)
        answer = {"status": "ok", "value": g[req["probe_name"]](nb, **req["kwargs"])}
    except LearnerFailure as e:
        answer = {"status": "learner", "kind": e.kind, "function": e.function, "message": e.message}
    except LearnerRaised as e:
        f = e.failure()
        answer = {"status": "learner", "kind": f.kind, "function": f.function, "message": f.message}
    except BaseException as e:  # noqa: BLE001 - a probe bug, or learner values it could not use
        if _from_learner(e):   # raised inside the learner's code (a method the probe called)
            answer = {"status": "learner", "kind": "raised", "function": who,
                      "message": f"{who or 'your code'} raised {type(e).__name__}: {_short(e)}{_where(e)}"}
        else:
            answer = {"status": "probe_error", "message": f"{type(e).__name__}: {_short(e)}",
                      "traceback": traceback.format_exc(limit=-3)[-2000:]}
    restore_modules("answer_path")   # what encoding uses is as before any learner code ran
    try:
        frame = codec.encode_parts(answer)   # arrays go out without a copy
    except BaseException as e:  # noqa: BLE001 - e.g. an int too long to write, a recursive list
        why = str(e) if isinstance(e, codec.CodecError) else f"a value that cannot be written ({type(e).__name__})"
        frame = codec.encode({"status": "learner", "kind": "contract", "function": who,
                              "message": f"{who or 'your code'} returned {_short(why, 200)}, which the grader "
                              "cannot read; return NumPy arrays, numbers or tuples of them"})
    return frame


def serve_unsandboxed(req, notebooks):
    """The self-study mode where fork and resource limits are missing (native Windows): the
    probe runs here, without time, memory or output limits.  Never used to grade others."""
    src = req["probe_src"]
    if src not in CODE:
        CODE[src] = compile(src, "<probe>", "exec")
    req["_code"] = CODE[src]
    t0, cpu0 = time.monotonic(), time.process_time()
    frame = answer_frame(req, notebooks)
    cpu = time.process_time() - cpu0   # this call's CPU time, not the process's since it started
    restore_modules()
    frame = b"".join(memoryview(p).cast("B").tobytes() for p in frame) if isinstance(frame, list) else frame
    return {"timed_out": False, "exit": 0, "frame": frame, "oversize": False,
            "seconds": time.monotonic() - t0, "cpu": cpu, "output_bytes": 0, "pid": None}


def serve_call(req, notebooks):
    seconds = float(req.get("timeout") or LIMITS["seconds"])
    src = req["probe_src"]
    if src not in CODE:   # compiled once here, not in every fork
        try:
            CODE[src] = compile(src, "<probe>", "exec")
        except SyntaxError as e:
            CODE[src] = compile(f"raise SyntaxError({str(e)!r})", "<probe>", "exec")
    req["_code"] = CODE[src]
    rd, wr = codec.pipe()
    req["_pipe"] = (rd, wr)
    if req.get("callbacks"):
        (up_r, up_w), (down_r, down_w) = codec.pipe(), codec.pipe()
        req["_cb"] = ((up_w, down_r), (up_r, down_w))   # (the fork's ends, ours)
    t0 = time.monotonic()
    cpu0 = cpu_clock()
    pid = os.fork()
    if pid == 0:
        try:
            run_probe(req, notebooks)
        except BaseException:  # noqa: BLE001
            pass
        finally:
            os._exit(70)
    os.close(wr)
    cb = None
    if req.get("_cb"):
        for fd in req["_cb"][0]:
            os.close(fd)
        cb = req["_cb"][1]
    info = {"timed_out": False, "exit": None, "frame": b"", "oversize": False}
    try:
        frame = await_answer(rd, cb, t0 + seconds)
        info["frame"] = frame or b""
    except TimeoutError:
        info["timed_out"] = True
    except codec.CodecError:
        info["oversize"] = True
    os.close(rd)
    for fd in cb or ():
        os.close(fd)
    if info["timed_out"] or info["oversize"]:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    if info["frame"]:
        info["exit"] = 0    # answered: the process is ended after the answer is sent (finish_call)
    else:
        _, status = os.waitpid(pid, 0)
        info["exit"] = status
    info["seconds"] = time.monotonic() - t0
    finish_call(pid)   # the fork and everything it started are gone (and reaped) ...
    info["cpu"] = cpu_clock() - cpu0   # ... so their CPU time is all counted here
    try:
        info["output_bytes"] = os.stat("output.txt", dir_fd=STATE["work_fd"]).st_size
    except OSError:
        info["output_bytes"] = 0
    info["pid"] = pid
    forget_call()
    return info


# ---------------------------------------------------------------- a runner per notebook
# Consecutive untimed calls of one notebook are served by one forked process, the notebook's
# runner, instead of a fork per call: each call still gets a fresh namespace (the notebook's
# definitions loaded again) and the process-global state its code may change is put back
# afterwards (Hygiene, for honest code).  The runner is learner code's own process: its word
# can only end it.  This process checks from outside, after each call, whether the call left
# anything a later call could find (leftovers.py: files, SysV IPC, keys, limits, threads,
# processes, the runner's kernel-side state), and ends the runner if so or if the call timed
# out, crashed, sent an oversize answer or hit a limit; end_runner then removes what it left
# (forget_call).  A call that hit a limit or ended its runner is answered again by a fork of
# its own.  Timed calls, calls with call-backs or another memory limit keep a fresh fork of
# their own, and no runner exists while they run.
RUNNER = {"stem": None, "pid": None, "to": None, "frm": None, "watch": None, "serial": 0, "calls": 0}
GROWTH = 64 * 2**20   # bytes of address space a runner may gain over its start before it ends (at most)
RERUN_WITHIN = 5.0    # seconds: a runner call that hit a limit or ended its runner sooner is run again in a fork


def runner_serves(req):
    """Whether this call may be served by the notebook's runner (never where /proc is missing
    or the folders learner code may write in cannot be watched: what a call left behind could
    not be checked)."""
    if "proc" not in STATE:
        STATE["proc"] = os.path.isdir("/proc/self/task") and os.path.isdir("/proc/self/fd")
    return bool(LIMITS.get("runner")) and STATE["proc"] and not req.get("timed") \
        and not req.get("callbacks") and int(req.get("mem") or LIMITS["mem"]) == int(LIMITS["mem"])


def _file_watch():
    """This process's inotify watch on the folders learner code may write in (made once; the
    captured-output file is made first, so that only writing it is a runner's normal doing)."""
    if "files" not in STATE:
        try:
            os.close(os.open("output.txt", os.O_WRONLY | os.O_CREAT, 0o600, dir_fd=STATE["work_fd"]))
            STATE["files"] = leftovers.FileWatch(STATE["work"], view=bool(VIEW.get("view")))
        except (OSError, AttributeError) as e:
            STATE["files"], STATE["why_no_runner"] = None, str(e)[:200]
    return STATE["files"]


def start_runner(stem, notebooks):
    """Fork the notebook's runner and take the baseline of what its calls could leave (after it
    says it is ready, before any learner code runs in it).  False if no runner can be watched
    here: the call then gets a fork of its own."""
    files = _file_watch()
    if files is None:
        STATE["proc"] = False
        return False
    to_r, to_w = codec.pipe()
    from_r, from_w = codec.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(to_w)
            os.close(from_r)
            run_runner(to_r, from_w, notebooks)
        except BaseException:  # noqa: BLE001
            pass
        finally:
            os._exit(70)
    os.close(to_r)
    os.close(from_w)
    RUNNER.update(stem=stem, pid=pid, to=to_w, frm=from_r, serial=RUNNER["serial"] + 1, calls=0)
    try:
        ready = codec.read_frame(from_r, deadline=time.monotonic() + 10, limit=4096)
        if ready is None or codec.decode(ready) != {"ready": True}:
            raise OSError("the runner did not start")
        files.events()   # what happened before this runner (a fork's output, a clean-up) is not its doing
        RUNNER["watch"] = leftovers.Leftovers(pid, files, view=bool(VIEW.get("view")),
                                              growth=min(GROWTH, int(LIMITS["mem"]) // 8))
    except (OSError, TimeoutError, codec.CodecError) as e:
        STATE["why_no_runner"] = str(e)[:200]
        end_runner()
        if isinstance(e, leftovers.Unwatchable):
            STATE["proc"] = False
        return False
    return True


def end_runner():
    """Kill the runner and everything it started, reap them, and remove what they left
    (forget_call): the next process forked from here starts as a fresh fork would."""
    pid = RUNNER.get("pid")
    if pid is None:
        return
    for fd in (RUNNER["to"], RUNNER["frm"]):
        try:
            os.close(fd)
        except OSError:
            pass
    for kill in (os.killpg, os.kill):
        try:
            kill(pid, signal.SIGKILL)
        except OSError:
            pass
    RUNNER.update(stem=None, pid=None, to=None, frm=None, watch=None)
    reap_all(pgid=pid)
    forget_call()


def runner_left(said):
    """What the call the runner just served left that a later call could find ([]: nothing),
    checked from here (Leftovers), not by the runner; the runner's own word (said: what its
    Hygiene could not put back) can only end it."""
    left = RUNNER["watch"].changed() if RUNNER["watch"] is not None else ["unwatched"]
    if not (isinstance(said, dict) and said.get("keep") is True):
        left.append("process-global state")
    return left


def _send(fd, frame, deadline):
    """Write one frame to the runner before the deadline: False if it is gone or not reading."""
    try:
        return _write_before(fd, frame, deadline)
    except (TimeoutError, OSError):
        return False


def serve_in_runner(req, raw, notebooks):
    """One call answered by the notebook's runner (started when needed); same answer as
    serve_call's."""
    seconds = float(req.get("timeout") or LIMITS["seconds"])
    t0 = time.monotonic()
    deadline = t0 + seconds
    if RUNNER["pid"] is not None and (RUNNER["stem"] != req["stem"] or RUNNER["watch"].files.changed()):
        end_runner()   # another notebook's, or its files changed since its last call was checked
    for attempt in (1, 2, 3):
        if attempt == 3 or (RUNNER["pid"] is None and not start_runner(req["stem"], notebooks)):
            end_runner()
            info = serve_call(req, notebooks)
            info["served"] = {"runner": None, "why": STATE.get("why_no_runner", "the runner did not read")}
            return info
        if _send(RUNNER["to"], raw, deadline):
            break
        end_runner()   # gone between calls (or not reading): a fresh one, once
    pid = RUNNER["pid"]
    RUNNER["calls"] += 1
    served = {"runner": RUNNER["serial"], "call": RUNNER["calls"], "left": None}   # for the grader's log and tests
    info = {"timed_out": False, "exit": None, "frame": b"", "oversize": False, "cpu": 0.0, "pid": pid,
            "served": served}
    keep = again = False
    try:
        frame = codec.read_frame(RUNNER["frm"], deadline=deadline)
        if frame:
            info["frame"], info["exit"] = frame, 0
            status = codec.read_frame(RUNNER["frm"], deadline=time.monotonic() + 5, limit=4096)
            said = codec.decode(status) if status is not None else None   # the runner's word
            served["left"] = runner_left(said)[:20]
            keep = not served["left"]
            again = isinstance(said, dict) and "limit" in (said.get("left") or ())
    except TimeoutError:
        info["timed_out"] = not info["frame"]
    except codec.CodecError:
        info["oversize"] = not info["frame"]
    if not info["frame"] and not info["timed_out"] and not info["oversize"]:
        info["exit"] = _exit_status(pid, deadline)   # it died (or shut its pipe and went on)
        info["timed_out"] = info["exit"] is None
        again = not info["timed_out"]
    if not keep:
        end_runner()
    if again and time.monotonic() - t0 < RERUN_WITHIN:
        # a limit hit, or the runner ended, in a process that earlier calls used: the verdict
        # is a fresh fork's, as if no runner had served the call (the runner's word can only
        # cost this extra fork)
        info = serve_call(req, notebooks)
        info["served"] = dict(served, again=True)
        return info
    info["seconds"] = time.monotonic() - t0
    try:
        info["output_bytes"] = os.stat("output.txt", dir_fd=STATE["work_fd"]).st_size
    except OSError:
        info["output_bytes"] = 0
    return info


def _exit_status(pid, deadline):
    """The runner's wait status once it has ended; None if it still runs at the deadline."""
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return 0
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.001)


def run_runner(rd, wr, notebooks):
    """Body of a runner: answer calls until the pipe closes, putting back after each what the
    call's code changed in the process (Hygiene), and saying whether that succeeded."""
    become_learner_side(int(LIMITS["mem"]))
    devnull = os.open(os.devnull, os.O_RDWR)
    keep = (0, 1, 2, rd, wr, devnull, STATE["work_fd"])
    try:
        for fd in [int(fd) for fd in os.listdir("/proc/self/fd")]:
            if fd not in keep:
                try:
                    os.close(fd)   # every call starts with the same descriptors
                except OSError:
                    pass
    except OSError:
        pass
    clean = Hygiene(keep_fds=keep)
    try:
        _libc().prctl(4, 1, 0, 0, 0)   # PR_SET_DUMPABLE: process 1 (same uid) reads its /proc/PID/{fd,cwd,timers}
    except (OSError, AttributeError):
        pass
    codec.write_frame(wr, codec.encode({"ready": True}))   # before any learner code: the baseline is taken now
    while True:
        frame = codec.read_frame(rd)
        if frame is None:
            os._exit(0)
        req = codec.decode(frame)
        del frame
        src = req["probe_src"]
        if src not in CODE:
            try:
                CODE[src] = compile(src, "<probe>", "exec")
            except SyntaxError as e:
                CODE[src] = compile(f"raise SyntaxError({str(e)!r})", "<probe>", "exec")
        req["_code"] = CODE[src]
        STATE["limit"] = False
        cap = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600, dir_fd=STATE["work_fd"])
        os.dup2(cap, 1)
        os.dup2(cap, 2)
        os.close(cap)
        answer = answer_frame(req, notebooks)
        del req
        try:
            os.dup2(devnull, 1)   # printed output goes nowhere between calls
            os.dup2(devnull, 2)
        except OSError:
            pass
        codec.write_frame(wr, answer)   # the call's answer does not wait for the clean-up
        del answer
        for space in STATE.pop("spaces", ()):
            space.clear()
        left = clean.restore(devnull)
        codec.write_frame(wr, codec.encode({"keep": not left, "left": left[:10]}))


class Hygiene:
    """Process-global state of a runner, taken before any learner code runs in it, and put back
    after each call, so that each call of honest code sees what a fresh fork would: NumPy's
    error handling, print options and legacy global generator, the random module's state,
    warning filters, the attributes of every loaded module (and the lists, dicts and sets held
    by sys, warnings and NumPy's top level), sys.modules, the working folder, the environment,
    the umask, resource limits, signal handlers, the signal mask and interval timers, the
    interpreter's settings (recursion limit, switch interval, trace and profile functions, int
    digits, gc) and the locale; descriptors the call opened are closed.  restore() answers what
    could not be put back (a limit it lowered, an audit hook, a leftover thread or child, the
    address space grown by over GROWTH, a limit hit), and the runner then ends."""

    def __init__(self, keep_fds):
        import _locale
        import random
        import types
        import warnings
        self.keep = {fd: self._ident(fd) for fd in keep_fds if fd is not None}
        self.modules = dict(sys.modules)
        spaces = {id(m.__dict__): m.__dict__ for m in self.modules.values() if isinstance(m, types.ModuleType)}
        for extra in (PROBE_GLOBALS["np"].__dict__, PROBE_GLOBALS["__builtins__"]):
            spaces[id(extra)] = extra
        self.spaces = [(d, dict(d)) for d in spaces.values()]
        inner = {}
        for mod in (sys, warnings, np, np.random):   # their lists, dicts and sets too (sys.path, ...)
            for v in vars(mod).values():
                if type(v) in (list, dict, set) and v is not sys.modules:
                    inner[id(v)] = v
        self.inner = [(v, v.copy()) for v in inner.values()]
        self.err, self.errcall, self.bufsize = np.geterr(), np.geterrcall(), np.getbufsize()
        self.printopts = np.get_printoptions()
        self.np_state = np.random.get_state()
        self.py_state = random.getstate()
        self.warnings = warnings
        self.cwd = os.fstat(STATE["work_fd"])
        self.environ = dict(os.environ)
        self.umask = os.umask(0o077)
        os.umask(self.umask)
        self.rlimits = {}
        for name in dir(resource):
            if name.startswith("RLIMIT_"):
                try:
                    self.rlimits[getattr(resource, name)] = resource.getrlimit(getattr(resource, name))
                except (ValueError, OSError):
                    pass
        self.handlers = {}
        for sig in signal.valid_signals():
            if sig not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    self.handlers[sig] = _signal.getsignal(sig)
                except (ValueError, OSError):
                    pass
        self.sigmask = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.interp = (sys.getrecursionlimit(), sys.getswitchinterval(),
                       getattr(sys, "get_int_max_str_digits", lambda: None)(), sys.getdlopenflags())
        import gc
        self.gc = (gc.isenabled(), gc.get_threshold())
        self.locale = _locale.setlocale(_locale.LC_ALL, None)
        self.audit = [False]
        real = sys.addaudithook

        def addaudithook(hook):   # an audit hook cannot be removed: the runner ends
            self.audit[0] = True
            return real(hook)
        sys.addaudithook = addaudithook
        self.spaces = [(d, dict(d)) for d, _ in self.spaces]   # with the wrapper
        self.size = self._address_space()

    @staticmethod
    def _ident(fd):
        try:
            st = os.fstat(fd)
            return st.st_dev, st.st_ino
        except OSError:
            return None

    @staticmethod
    def _address_space():
        try:
            with open("/proc/self/statm") as f:
                return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            return None

    def restore(self, devnull):
        """Put everything back; what could not be (empty: all of it was)."""
        import _locale
        import gc
        import random
        bad = []
        for fd in (1, 2):   # printed output goes nowhere between calls
            try:
                os.dup2(devnull, fd)
            except OSError:
                bad.append("output")
        for stream in (sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()   # what a call left buffered must not reach the next call's output
            except BaseException:  # noqa: BLE001
                pass
        for sig in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            signal.setitimer(sig, 0)
        for sig, handler in self.handlers.items():
            try:
                if _signal.getsignal(sig) is not handler and handler is not None:
                    _signal.signal(sig, handler)
            except (ValueError, OSError, TypeError):
                bad.append(f"signal {sig}")
        signal.pthread_sigmask(signal.SIG_SETMASK, self.sigmask)
        live = sys.modules
        for name in [n for n in live if n not in self.modules]:
            del live[name]
        for name, mod in self.modules.items():
            if live.get(name) is not mod:
                live[name] = mod
        for d, saved in self.spaces:
            if not _same(d, saved):
                _put_back(d, saved)
        for v, saved in self.inner:
            if _same(v, saved):
                continue
            if type(v) is list:
                v[:] = saved
            elif type(v) is dict:
                _put_back(v, saved)
            else:
                v.clear()
                v.update(saved)
        self.warnings._filters_mutated()
        try:
            np.seterr(**self.err)
            np.seterrcall(self.errcall)
            np.setbufsize(self.bufsize)
            if np.get_printoptions() != self.printopts:
                np.set_printoptions(**self.printopts)
            np.random.set_state(self.np_state)
            random.setstate(self.py_state)
        except BaseException:  # noqa: BLE001 - something of NumPy's replaced deeper down
            bad.append("numpy")
        try:
            os.fchdir(STATE["work_fd"])
            st = os.stat(".")
            if (st.st_dev, st.st_ino) != (self.cwd.st_dev, self.cwd.st_ino):
                bad.append("cwd")
        except OSError:
            bad.append("cwd")
        env = os.environ
        if dict(env) != self.environ:
            for k in [k for k in env if k not in self.environ]:
                del env[k]
            for k, v in self.environ.items():
                if env.get(k) != v:
                    env[k] = v
        os.umask(self.umask)
        for which, value in self.rlimits.items():
            try:
                if resource.getrlimit(which) != value:
                    resource.setrlimit(which, value)
            except (ValueError, OSError):
                bad.append(f"rlimit {which}")   # a hard limit lowered cannot be raised again
        limit, interval, digits, dlopen = self.interp
        sys.setrecursionlimit(limit)
        sys.setswitchinterval(interval)
        if digits is not None:
            sys.set_int_max_str_digits(digits)
        sys.setdlopenflags(dlopen)
        if sys.gettrace() is not None:
            sys.settrace(None)
        if sys.getprofile() is not None:
            sys.setprofile(None)
        (enabled, threshold) = self.gc
        (gc.enable if enabled else gc.disable)()
        gc.set_threshold(*threshold)
        try:
            if _locale.setlocale(_locale.LC_ALL, None) != self.locale:
                _locale.setlocale(_locale.LC_ALL, self.locale)
        except (_locale.Error, ValueError):
            bad.append("locale")
        try:
            fds = [int(fd) for fd in os.listdir("/proc/self/fd")]
        except OSError:
            fds = []
            bad.append("fds")
        for fd in fds:
            if fd not in self.keep:
                try:
                    os.close(fd)
                except OSError:
                    pass
        for fd, ident in self.keep.items():
            if fd > 2 and self._ident(fd) != ident:
                bad.append(f"fd {fd}")   # one of ours replaced (dup2 over it)
        size = self._address_space()
        if size is None or self.size is None or size > self.size + min(GROWTH, int(LIMITS["mem"]) // 8):
            bad.append("memory")
        try:
            if len(os.listdir("/proc/self/task")) != 1:
                bad.append("thread")
        except OSError:
            bad.append("thread")
        try:
            os.waitpid(-1, os.WNOHANG)
            bad.append("process")   # a child (running, or ended and not yet reaped) was left
        except ChildProcessError:
            pass
        if self.audit[0]:
            bad.append("audit hook")
        if STATE.get("limit"):
            bad.append("limit")
        return bad


def _same(live, saved):
    """Whether a container holds what it held: the same objects, or objects that say they are
    equal (a container compares its items by identity first, so this costs about one lookup
    per item).  Hygiene is for the determinism of honest code: hostile code can keep state
    between its own calls whatever is checked (as files in its work folder always allowed), and
    nothing it keeps reaches a verdict, which is made in the grader's process."""
    try:
        return bool(live == saved)
    except BaseException:  # noqa: BLE001 - an array put in place of another, say
        return False


def _put_back(d, saved):
    """A dict as it was (the same keys bound to the same objects)."""
    for k in [k for k in d if k not in saved]:
        del d[k]
    for k, v in saved.items():
        if d.get(k, _MISSING) is not v:
            d[k] = v


_MISSING = object()


def await_answer(rd, cb, deadline):
    """The call's answer frame; meanwhile each call-back the fork sends (on cb) goes to the
    grader, whose reply goes back to the fork."""
    import select
    while cb is not None:
        ready = select.select([rd, cb[0]], [], [], max(0.0, deadline - time.monotonic()))[0]
        if not ready:
            raise TimeoutError
        if rd in ready:
            break
        frame = codec.read_frame(cb[0], deadline=deadline, limit=CALLBACK_LIMIT)
        if frame is None:
            break
        proto_in, proto_out = STATE["proto"]
        codec.write_frame(proto_out, codec.encode({"callback": True}))
        codec.write_frame(proto_out, frame)
        reply = codec.read_frame(proto_in, limit=CALLBACK_LIMIT)
        if reply is None:
            raise TimeoutError
        _write_before(cb[1], reply, deadline)
    return codec.read_frame(rd, deadline=deadline)


def _write_before(fd, frame, deadline):
    """A frame to the fork, which may not be reading: TimeoutError at the deadline; False
    when it is gone."""
    import select
    import struct
    os.set_blocking(fd, False)
    for view in (memoryview(struct.pack(">Q", len(frame))), memoryview(frame).cast("B")):   # no copy
        while view:
            if not select.select([], [fd], [], max(0.0, deadline - time.monotonic()))[1]:
                raise TimeoutError
            try:
                view = view[os.write(fd, view):]
            except BlockingIOError:
                continue
            except BrokenPipeError:
                return False
    return True


def _cgroup_seconds(fd):
    """CPU seconds of every process that was ever in the submission's control group."""
    os.lseek(fd, 0, 0)
    text = os.read(fd, 4096).decode()
    if VIEW.get("cgroup") == "v2":
        return int(text.split("usage_usec", 1)[1].split()[0]) / 1e6
    return int(text.split()[0]) / 1e9


def cpu_clock():
    """CPU seconds used by the processes this one started.  With a control group: the group's
    total minus this process's own, so every process and thread a call started counts, reaped
    or not (children whose SIGCHLD is ignored included).  Without one, timed calls may not
    start processes (run_probe), and the reaped children's rusage is exact."""
    fd = VIEW.get("cgroup_fd")
    if fd is not None:
        me = resource.getrusage(resource.RUSAGE_SELF)
        return _cgroup_seconds(fd) - (me.ru_utime + me.ru_stime)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def no_new_processes():
    """A timed call without a control group: RLIMIT_NPROC 1, below what the uid runs already,
    so the call can start no process or thread whose CPU time would escape the measurement
    (the kernel refuses a fork or a thread while the uid has that many; root is exempt, and
    learner code never runs as root)."""
    if os.getuid() != 0:
        _setrlimit(resource.RLIMIT_NPROC, 1)


def finish_call(pid):
    """End the call's process (it normally ends by itself right after answering) and every
    process it started; runs while the grader reads the answer, and before any next call."""
    end = time.monotonic() + 0.5
    try:
        while os.waitpid(pid, os.WNOHANG)[0] == 0 and time.monotonic() < end:
            time.sleep(0.0002)
    except ChildProcessError:
        pass
    reap_all(pgid=pid)


SHARED_FOLDERS = ("/tmp", "/var/tmp", "/dev/shm", "/run/lock", "/dev/mqueue")


def forget_call():
    """After a call and everything it started are gone: remove what it left for the next call
    of this submission: files of our uid in the working folder and the world-writable folders
    (POSIX shared memory is files there; POSIX message queues cannot be made: set_limits),
    SysV IPC objects of our uid, keys in our uid's keyrings; and restore this process's
    resource limits, which a call may change with prlimit().  Every call then starts as the
    fresh fork it is meant to be (a cached result must not let a timed call skip its work).
    Only with a uid of our own or in the view: a learner's own files are never touched in
    self-study."""
    if not (VIEW.get("view") or STATE["sweep_uid"]):
        return
    import shutil
    uid = os.getuid()
    for folder in (*SHARED_FOLDERS, "."):
        try:
            fd = STATE["work_fd"] if folder == "." else None
            entries = list(os.scandir(fd if fd is not None else folder))
        except OSError:
            continue
        for e in entries:
            path = e.name if folder == "." else e.path
            try:
                if e.stat(follow_symlinks=False).st_uid != uid or os.path.abspath(path) == STATE["work"] \
                        or (folder == "." and e.name == "output.txt"):
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    os.unlink(path)
            except OSError:
                pass
    remove_of_uid(uid)
    for which, (soft, hard) in STATE["rlimits"].items():   # a call may prlimit() this process
        now = resource.getrlimit(which)
        if now != (soft, hard):
            try:
                resource.setrlimit(which, (soft if soft != resource.RLIM_INFINITY and
                                           (now[1] == resource.RLIM_INFINITY or soft <= now[1]) else now[1], now[1]))
            except (ValueError, OSError):
                pass
    nr = {"x86_64": 250, "aarch64": 219}.get(os.uname().machine)   # keyctl
    if nr is not None and STATE["sweep_uid"]:   # a uid of our own: never `nobody`'s keyrings
        for ring in (-4, -5):   # KEY_SPEC_USER_KEYRING, KEY_SPEC_USER_SESSION_KEYRING
            try:
                _libc().syscall(nr, 7, ring)   # KEYCTL_CLEAR
            except (OSError, AttributeError):
                pass


def warm_up():
    """Do once here what every call would otherwise do first in its fork (NumPy's lazy
    set-up of generators, ufunc loops, the codec): forks then start warm."""
    for dt in (np.float64, np.float32):
        rng = np.random.default_rng(0)
        x = rng.random((8, 8), dtype=dt)
        m = x >= dt(0.3)
        y = np.multiply(x, m, out=np.empty_like(x))
        y *= dt(1 / 0.7)
        codec.decode(codec.encode({"v": (y, m, float(y.mean()), int(m.sum()))}))
    np.random.default_rng().random(4)
    np.random.seed(0)
    np.random.rand(2)
    np.random.get_state()


def serve_zygotes(sock_fd):
    """A process starter (batch grading): each submission's learner process is a fork of this
    one that at once execs a fresh interpreter (grader/sandbox/view.py, then learner.py): never
    a fork of a process that read anything.  It runs no learner code itself; orphans of a dead
    learner process re-parent here and are killed here.  Requests come on a Unix socket, one codec
    message each (the same wire format as everywhere), with the new process's pipes as passed
    file descriptors:
      {"op": "spawn", "cwd": folder, "argv": [...], "env": {...}} + [stdin, stdout, stderr]
                                                              -> {"pid": pid}
      {"op": "wait", "pid": pid, "timeout": s}                -> {"status": int or None}
      {"op": "kill"}  kill every process forked (and re-parented here) -> {"ok": true}"""
    import socket
    sock = socket.socket(fileno=sock_fd)
    _set_subreaper()   # orphans of a dead learner process come here, and are killed here
    exited = {}

    def reply(obj):
        sock.sendall(codec.encode(obj))

    def collect(block_pid=None, timeout=0.0):
        end = time.monotonic() + timeout
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                pid = 0
            if pid:
                exited[pid] = status
                continue
            if block_pid is None or block_pid in exited or time.monotonic() >= end:
                return
            time.sleep(0.001)

    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(sock, 65536, 3)
        except OSError:
            break
        if not msg:
            break
        req = codec.decode(msg)
        if req["op"] == "spawn":
            collect()
            pid = os.fork()
            if pid == 0:
                try:
                    sock.close()
                    os.setsid()
                    for i, fd in enumerate(fds):
                        os.dup2(fd, i)
                        os.close(fd)
                    os.chdir(req["cwd"])
                    os.execve(req["argv"][0], req["argv"], req["env"])   # a fresh process image
                finally:
                    os._exit(0)
            for fd in fds:
                os.close(fd)
            reply({"pid": pid})
        elif req["op"] == "wait":
            collect(req["pid"], float(req.get("timeout") or 0))
            reply({"status": exited.pop(req["pid"], None)})
        elif req["op"] == "kill":
            for _ in range(200):
                kids = set(children_of(os.getpid()))
                for k in kids:
                    for kill in (os.killpg, os.kill):
                        try:
                            kill(k, signal.SIGKILL)
                        except OSError:
                            pass
                collect(None)
                _wait_all(block=bool(kids))
                if not kids:
                    break
            exited.clear()
            reply({"ok": True})
    reap_all()
    os._exit(0)


def main(warm=True):
    """Serve one learner's submission.  This process never runs learner code: it sets the
    limits, drops privileges, parses and compiles the cells (after both), then answers each
    call in a fork that loads the learner's definitions and runs one probe."""
    if warm:
        warm_up()
    proto_in, proto_out = os.dup(0), os.dup(1)
    STATE["proto"] = (proto_in, proto_out)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    if resource is not None:
        _set_subreaper()
    if VIEW.get("view"):   # process 1 of its pid namespace: with no handler, no signal from inside reaches it
        signal.signal(signal.SIGINT, signal.SIG_DFL)
    frame = codec.read_frame(proto_in, limit=1 << 16)   # the settings: small, read first
    if frame is None:
        return
    settings = codec.decode(frame)
    LIMITS.update(settings.get("limits", {}))
    unsandboxed = bool(settings.get("unsandboxed"))
    if unsandboxed:   # self-study on the learner's own machine: the course's packages are importable
        if settings.get("course"):
            sys.path.insert(0, os.path.abspath(settings["course"]))
        STATE["work_fd"] = None
        isolation, STATE["work"] = {"uid": os.getuid() if hasattr(os, "getuid") else None,
                                    "unsandboxed": True}, os.getcwd()
    else:
        isolation = harden(settings)   # limits, no new privileges, the learner's uid: before any cell is read
        import shutil  # noqa: F401 - forget_call's, loaded before any call: every call sees the same modules
        STATE["rlimits"] = {getattr(resource, n): resource.getrlimit(getattr(resource, n))
                            for n in dir(resource) if n.startswith("RLIMIT_")}   # restored after each call
    frame = codec.read_frame(proto_in)
    if frame is None:
        return
    notebooks = codec.decode(frame)["notebooks"]
    del frame
    snapshot_modules()
    summary = {}
    for stem, cells in notebooks.items():
        problems = {}
        for idx, src in enumerate(cells, start=1):
            prepared = prepare_cell(idx, src)   # parsed and compiled, never run, in this process
            if prepared[0] == "error":
                problems.update(dict.fromkeys(prepared[2], prepared[1]))
        summary[stem] = {"problems": problems}
    if not unsandboxed and (VIEW.get("view") or os.getuid() != 0):
        warm_named(notebooks)   # as the learner's uid, in its view: never before
    import gc
    gc.freeze()   # what is loaded now is never collected: forks and runners do not touch (copy) it
    codec.write_frame(proto_out, codec.encode({"status": "ready", "notebooks": summary,
                                               "uid": os.getuid(), "isolation": isolation}))
    while True:
        frame = codec.read_frame(proto_in)
        if frame is None:
            break
        req = codec.decode(frame)
        if req.get("op") == "close":
            break
        if unsandboxed:
            info = serve_unsandboxed(req, notebooks)
        elif runner_serves(req):
            info = serve_in_runner(req, frame, notebooks)
        else:
            end_runner()   # no runner exists while a call runs in a fork of its own
            info = serve_call(req, notebooks)
        del frame
        head = {k: v for k, v in info.items() if k not in ("frame", "pid")}
        codec.write_frame(proto_out, codec.encode(head))
        codec.write_frame(proto_out, info["frame"])
    if not unsandboxed:
        reap_all()
    os._exit(0)   # no interpreter tear-down: nothing is left to flush


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--server":
        serve_zygotes(int(sys.argv[2]))
    else:
        main()
