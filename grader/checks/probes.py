"""What a probe may use, verified when its check file is imported (and again at each call).

A probe runs in the learner's process, which holds none of the grader's modules: it sees its
parameters, `np` (NumPy), the builtins, and the helper functions sent with it
(`learner.call(probe, uses, helpers=(plain, ...), **inputs)`).  A probe that reads any other
name (a constant of its check file, a function not listed in helpers) would only fail while
grading someone, with a message asking the learner to report a grader bug: instead, importing
the check file fails here, naming the probe and the name.

A check file's probes are the functions passed first to `learner.call` / `learner.timed` in it
and every function of the file whose first parameter is `nb`.  A probe's parameters are its
inputs: none may be called like one of the call's own options (options()), which would take it.
"""
import ast
import builtins
import functools
import hashlib
import inspect
import os
import pathlib
import symtable
import sys
import textwrap

from grader.sandbox.host import GraderBug, Sandbox

PROBE_GLOBALS = frozenset({"np"} | set(dir(builtins)))
_CALLS = ("call", "timed")


class ProbeError(ImportError):
    """A probe uses a name the learner's process does not have, or takes an option's name."""


def options():
    """Parameter names a probe may not take: learner.call's own (uses, helpers, callbacks) and
    those of the sandbox's call, which passes the probe's inputs on as keywords."""
    sandbox = [n for n, p in inspect.signature(Sandbox.call).parameters.items()
               if p.kind is not p.VAR_KEYWORD and n != "self"]
    return tuple(dict.fromkeys(["uses", "helpers", "callbacks", *sandbox]))


def _source(func):
    return textwrap.dedent(inspect.getsource(func))


@functools.cache
def _module_functions(filename):
    """{name: [symbol table, ...]} of a source file's top-level functions: one parse per file."""
    top = symtable.symtable(pathlib.Path(filename).read_text(encoding="utf-8"), filename, "exec")
    out = {}
    for table in top.get_children():
        if table.get_type() == "function":
            out.setdefault(table.get_name(), []).append(table)
    return out


def _table(func):
    """func's symbol table: from its file's one parse for a top-level function (its def line at
    or just after the first line of its code, decorators included), else from its own source."""
    filename = inspect.getsourcefile(func)
    if filename and func.__qualname__ == func.__name__ and os.path.isfile(filename):
        first = func.__code__.co_firstlineno
        found = [t for t in _module_functions(filename).get(func.__name__, []) if t.get_lineno() >= first]
        if found:
            return min(found, key=lambda t: t.get_lineno())
    return symtable.symtable(_source(func), filename or "<probe>", "exec").get_children()[0]


def global_names(func):
    """The names func (and everything nested in it) reads from its module's namespace."""
    out, stack = set(), [_table(func)]
    while stack:
        table = stack.pop()
        out |= {s.get_name() for s in table.get_symbols() if s.is_global() and s.is_referenced()}
        stack += table.get_children()
    return out


def _tuple_names(node, namespace):
    """Function names of a helpers=... expression: a tuple/list of names, or a module-level
    tuple; None when it cannot be read without running the check."""
    if isinstance(node, (ast.Tuple, ast.List)):
        names = set()
        for e in node.elts:   # a name, or *a module-level tuple of them
            part = ({e.id} if isinstance(e, ast.Name) else
                    _tuple_names(e.value, namespace) if isinstance(e, ast.Starred) else None)
            if part is None:
                return None
            names |= part
        return names
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):   # HELPERS + (more,)
        left, right = _tuple_names(node.left, namespace), _tuple_names(node.right, namespace)
        return None if left is None or right is None else left | right
    if isinstance(node, ast.Name) and isinstance(namespace.get(node.id), (tuple, list)):
        return {getattr(f, "__name__", "") for f in namespace[node.id]}
    return None


def _sites(module):
    """[(probe function, helper names or None)] for every learner.call/timed in the module, and
    every call of a function that makes them, f(learner, probe, ..., helpers=...)."""
    sites = []
    ns = vars(module)
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if not isinstance(node, ast.Call):
            continue
        if (isinstance(node.func, ast.Attribute) and node.func.attr in _CALLS
                and ast.unparse(node.func.value).startswith("learner") and node.args
                and isinstance(node.args[0], ast.Name)):
            probe = ns.get(node.args[0].id)
        elif (isinstance(node.func, ast.Name) and len(node.args) > 1 and isinstance(node.args[0], ast.Name)
              and node.args[0].id == "learner" and isinstance(node.args[1], ast.Name)):
            probe = ns.get(node.args[1].id)   # a helper that calls it: f(learner, probe, ..., helpers=...)
        else:
            continue
        if not inspect.isfunction(probe):
            continue   # a parameter (e.g. dropout_checks.learner_cpu's): checked where it is defined
        helpers = next((_tuple_names(k.value, ns) for k in node.keywords if k.arg == "helpers"), set())
        sites.append((probe, helpers))
    return sites


def check(probe, helpers, where=""):
    """ProbeError unless probe reads only its parameters, np, builtins and `helpers` (names),
    and no parameter is named like a call option."""
    params = list(inspect.signature(probe).parameters)
    taken = [p for p in params[1:] if p in options()]
    if taken:
        raise ProbeError(f"{where}probe {probe.__name__} has a parameter named {taken[0]!r}, which "
                         f"the call takes for itself ({', '.join(options())}): rename it")
    unknown = sorted(global_names(probe) - PROBE_GLOBALS - set(helpers))
    if unknown:
        raise ProbeError(
            f"{where}probe {probe.__name__} uses {unknown[0]!r}, which the learner's process does not "
            f"have: a probe sees only its parameters, np, builtins and the helpers sent with it "
            f"(learner.call(..., helpers=(...))); pass {unknown[0]} as an argument or list it in helpers")


def verify(module):
    """Verify every probe of a check module (ProbeError names the first bad name)."""
    where = f"{getattr(module, '__file__', module.__name__)}: "
    sites = _sites(module)
    listed = set().union(*(h for _, h in sites if h))
    by_probe = {}
    for probe, helpers in sites:
        by_probe.setdefault(probe, set()).update(listed if helpers is None else helpers)
    for obj in vars(module).values():
        if inspect.isfunction(obj) and obj.__module__ == module.__name__ and obj not in by_probe:
            params = list(inspect.signature(obj).parameters)
            if params[:1] == ["nb"]:
                by_probe[obj] = listed   # sent through a helper (e.g. learner_cpu): any listed helper
    helper_funcs = {n: vars(module)[n] for n in listed if inspect.isfunction(vars(module).get(n))}
    for probe, helpers in by_probe.items():
        check(probe, helpers, where)
    for helper in helper_funcs.values():
        check(helper, listed, where)


@functools.cache
def _sources_key():
    """A digest of what verify()'s verdict on a check file depends on besides the file itself:
    the sources of this package (what check files import from it, this module), of the sandbox
    (its call's options) and the interpreter's version (its builtins)."""
    h = hashlib.sha256(sys.version.encode())
    for path in sorted(pathlib.Path(__file__).parent.glob("*.py")) + [pathlib.Path(inspect.getsourcefile(Sandbox))]:
        h.update(path.name.encode() + b"\0" + path.read_bytes())
    return h.hexdigest()[:24]


def verify_once(module):
    """verify(module), unless these very sources were verified before: a marker next to the
    module's bytecode says so (written where bytecode is, as the .pyc).  Verifying walks every
    check file's syntax tree, about 0.3 s for the course: once per install, not per grading."""
    source = pathlib.Path(module.__file__)
    cache, name = source.parent / "__pycache__", module.__name__.rpartition(".")[2]
    key = hashlib.sha256(_sources_key().encode() + source.read_bytes()).hexdigest()[:24]
    marker = cache / f"{name}.probes-verified-{key}"
    if marker.exists():
        return
    verify(module)
    if sys.dont_write_bytecode:
        return
    try:
        cache.mkdir(exist_ok=True)
        for old in cache.glob(f"{name}.probes-verified-*"):
            old.unlink()
        marker.touch()
    except OSError:
        pass   # a read-only install: verified at each import


_CHECKED = set()


def check_call(probe, helpers, inputs):
    """At each learner.call: the probe reads only what it is sent, and takes these inputs
    (GraderBug, for the instructor, otherwise)."""
    key = (probe, tuple(helpers))
    if key not in _CHECKED:
        try:
            check(probe, {h.__name__ for h in helpers})
            for h in helpers:
                check(h, {g.__name__ for g in helpers})
        except ProbeError as e:
            raise GraderBug(str(e)) from None
        _CHECKED.add(key)
    try:
        inspect.signature(probe).bind(None, **inputs)
    except TypeError as e:
        raise GraderBug(f"probe {probe.__name__} cannot take the inputs {sorted(inputs)}: {e} (limits "
                        "go in learner.limited(timeout=..., mem=...).call(...))") from None
