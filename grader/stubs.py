"""Handed-out stubs: which exercises of a notebook are still exactly as handed out, so that
calls into them are reported as not implemented without starting a learner process.

The shortcut may only ever save time, never change a grade: a name is a stub only when
nothing else in the notebook can give it another value.  When in doubt, it is not a stub
and the call runs.  The learner's cells are read as text here, never parsed or run (this is
the grader's own process), in one pass: time linear in their size, memory a constant
(MAX_RUN below) beyond the cells themselves.

A name N is a stub when all of these hold:
- a *stub cell* defines it: a cell made only of blank lines, comments and top-level stub
  definitions in the exact shape the course hands out (an undecorated `def N(...)` with
  literal defaults whose body is an optional docstring, comments and
  `raise NotImplementedError()`; or a plain `class N:` holding a docstring and such stub
  methods only, `__init__` among them);
- every other cell that mentions N anywhere is a cell handed out with the notebook, byte for
  byte (e.g. a demo cell calling N), and that cell never assigns N (nor uses exec() & co.
  when the notebook has cells of the learner's own);
- no other cell uses a way to bind a name without writing it (globals(), exec, `global`,
  setattr, a star import, ...: TRIGGERS) or rebinds NotImplementedError;
- no other cell of the learner's own runs code at definition time (a class body, a decorator,
  a default, an annotation or a value that calls: _inert), which could bind a name without
  spelling it.
"""
import ast
import builtins
import contextlib
import io
import keyword
import re
import symtable
import unicodedata
import warnings
from pathlib import Path

from grader import nbfile

# words that let a cell bind or replace a global without naming it, or replace a function's code
TRIGGERS = frozenset({
    "globals", "locals", "vars", "exec", "eval", "compile", "setattr", "delattr", "getattr",
    "__dict__", "__main__", "__import__", "importlib", "modules", "_getframe", "f_globals",
    "f_locals", "f_back", "tb_frame", "__globals__", "__code__", "__builtins__", "builtins", "gc",
    "inspect", "global", "nonlocal", "ctypes", "get_ipython", "user_ns", "__class__",
    "__subclasses__", "__defaults__", "__kwdefaults__", "__closure__", "NotImplementedError"})
MAX_STUBS = 64      # stub names a notebook may hold (each is searched for in the other cells)
MAX_RUN = 1 << 16   # characters of a non-ASCII cell normalized at once (NFKC: at most 18 times as long)

_TRIGGER = re.compile(r"(?:" + "|".join(sorted(TRIGGERS - {"NotImplementedError"}, key=len, reverse=True))
                      + r")(?!\w)")
_RAISE_USE = re.compile(r"raise[ \t]+NotImplementedError(?!\w)")
_STAR = re.compile(r"import[ \t(]*\*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_RAISE = ("raise NotImplementedError()", "raise NotImplementedError")


def _identifier(name):
    return bool(_NAME.fullmatch(name)) and not keyword.iskeyword(name)


def _params_ok(text):
    """A parameter list a `def` certainly accepts, with literal defaults only (no code runs)."""
    if not text.strip():
        return True
    seen, default, star, kwargs = set(), False, False, False
    parts = [p.strip() for p in text.split(",")]
    if parts[-1] == "" and len(parts) > 1:
        parts.pop()                                 # one trailing comma
    for i, part in enumerate(parts):
        if kwargs:
            return False                            # nothing after **kwargs
        if part == "*":
            if star or i == len(parts) - 1:
                return False
            star = True
            continue
        name, eq, value = part.partition("=")
        name, value = name.strip(), value.strip()
        stars = len(name) - len(name.lstrip("*"))
        name = name.lstrip("*")
        if stars > 2 or not _identifier(name) or name in seen:
            return False
        seen.add(name)
        if eq:
            if stars or not (value in ("None", "True", "False") or _NUMBER.fullmatch(value)):
                return False
            default = default or not star
        elif stars == 1:
            if star:
                return False
            star = True
        elif stars == 2:
            kwargs = True
        elif default and not star:
            return False                            # a positional without default after one with
    return True


def _header(line, indent):
    """(kind, name) for a stub-shaped `def name(...):` or `class name:` at this indent, else None."""
    if not line.startswith(" " * indent) or line[indent:indent + 1] == " ":
        return None
    text = line[indent:].rstrip(" ")
    if text.startswith("def ") and text.endswith("):") and "(" in text:
        name, _, rest = text[4:].partition("(")
        name = name.strip()
        if _identifier(name) and _params_ok(rest[:-2]):
            return "def", name
    if text.startswith("class ") and text.endswith(":"):
        name = text[6:-1].strip()
        for tail in ("()", "(object)"):
            if name.endswith(tail):
                name = name[:-len(tail)].rstrip()
        if _identifier(name):
            return "class", name
    return None


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _skip(lines, i):
    """The index of the next line that is neither blank nor a comment."""
    while i < len(lines) and (not lines[i].strip() or lines[i].lstrip(" ").startswith("#")):
        i += 1
    return i


def _docstring(lines, i, indent):
    """The index after a docstring starting at lines[i] (at this indent), i if there is none,
    None if it is not one the shape allows (escapes, text after the closing quotes)."""
    if i >= len(lines) or _indent(lines[i]) != indent:
        return i
    text = lines[i].strip(" ")
    q = text[:3]
    if q not in ('"""', "'''"):
        return None if text[:1] in ("'", '"') else i
    rest = text[3:]
    while True:
        if "\\" in rest:
            return None
        if q in rest:
            return i + 1 if rest.index(q) == len(rest) - 3 else None
        i += 1
        if i >= len(lines):
            return None
        rest = lines[i].rstrip(" ")


def _stub_def(lines, i, indent):
    """The index after a stub function whose header is lines[i] (at indent), or None."""
    i = _skip(lines, i + 1)
    if i >= len(lines) or _indent(lines[i]) <= indent:
        return None
    body = _indent(lines[i])
    i = _docstring(lines, i, body)
    if i is None:
        return None
    i = _skip(lines, i)
    if i >= len(lines) or _indent(lines[i]) != body or lines[i].strip(" ") not in _RAISE:
        return None
    i = _skip(lines, i + 1)
    return i if i >= len(lines) or _indent(lines[i]) <= indent else None


def _stub_class(lines, i):
    """The index after a stub class whose header is lines[i], or None."""
    i = _skip(lines, i + 1)
    if i >= len(lines) or _indent(lines[i]) == 0:
        return None
    body = _indent(lines[i])
    i = _docstring(lines, i, body)
    if i is None:
        return None
    methods = set()
    i = _skip(lines, i)
    while i < len(lines) and _indent(lines[i]) > 0:
        head = _header(lines[i], body)
        if not head or head[0] != "def":
            return None
        methods.add(head[1])
        i = _stub_def(lines, i, body)
        if i is None:
            return None
    return i if "__init__" in methods else None


def stub_cell(src):
    """The names a cell defines if it holds nothing but handed-out-shaped stubs, else None."""
    if any(c in src for c in "\r\x0c\x00\t\\"):
        return None
    lines, names, i = src.split("\n"), [], 0
    i = _skip(lines, 0)
    while i < len(lines):
        head = _header(lines[i], 0)
        if not head:
            return None
        i = _stub_def(lines, i, 0) if head[0] == "def" else _stub_class(lines, i)
        if i is None:
            return None
        names.append(head[1])
    return names


def _chunks(text):
    """The text as Python reads its identifiers (NFKC), in pieces of at most MAX_RUN
    characters cut after a newline; None when a line is too long to normalize in one piece."""
    if text.isascii():
        yield text
        return
    start = 0
    while start < len(text):
        end = len(text) if len(text) - start <= MAX_RUN else text.rfind("\n", start, start + MAX_RUN) + 1
        if end <= start:
            yield None
            return
        yield unicodedata.normalize("NFKC", text[start:end])
        start = end


def _whole_word(pattern, text, attribute_ok=False):
    """Does the pattern (literal words, then `(?!\\w)`) match as a whole word?  It starts
    with a literal, so the regex engine skips ahead in C; the character before a match is
    checked here.  Linear in the text."""
    for m in pattern.finditer(text):
        before = text[m.start() - 1] if m.start() else " "
        if not (before.isalnum() or before == "_" or (attribute_ok and before == ".")):
            return True
    return False


def _mentions(text, wanted):
    """The words of `wanted` the text mentions anywhere (as Python reads identifiers: NFKC),
    plus "*" for a star import, a TRIGGERS word not used as an attribute (x.eval is fine) or
    NotImplementedError outside `raise NotImplementedError`; None when the text cannot be
    normalized within MAX_RUN.  Linear in the text."""
    found = set()
    for chunk in _chunks(text):
        if chunk is None:
            return None
        for name in wanted:
            if name in chunk and _whole_word(re.compile(re.escape(name) + r"(?!\w)"), chunk):
                found.add(name)
        if _whole_word(_TRIGGER, chunk, attribute_ok=True) or _STAR.search(chunk) or \
                chunk.count("NotImplementedError") > sum(1 for _ in _RAISE_USE.finditer(chunk)):
            found.add("*")
    return found


def bound_names(src):
    """Every name a trusted cell (handed out with the course) may bind, anywhere in it; None
    when it cannot be parsed."""
    try:
        tree = ast.parse(src)
    except (SyntaxError, ValueError):
        return None
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and not isinstance(node.ctx, ast.Load):
            out.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            out.add(node.name)
        elif isinstance(node, ast.alias):
            out.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            out.update(node.names)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            out.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            out.add(node.name)
    return out


_DEFINITION_TIME = re.compile(r"^(?:@|(?:class|async)(?!\w))", re.M)   # top-level decorators and blocks


def _inert(src):
    """Does a learner's own cell run no code of its own when the loader defines it?  Only
    comments, one-line `def` headers without a call or a decorator (their bodies run only
    when called) and top-level lines without a call or a decorator.  Code run at definition
    time (a class body, a decorator, a default or an annotation, a value that calls) can bind
    a stub's name in ways no search of the text sees (e.g. names spelled as "bern" "oulli_mask"),
    so such a cell turns the shortcut off.  Linear."""
    if _DEFINITION_TIME.search(src):
        return False
    if "(" not in src:
        return True
    in_def = False
    for line in src.split("\n"):
        if "(" not in line:
            if line[:1] not in (" ", "\t", "") and not line.startswith("#"):
                in_def = False   # a top-level statement: what follows indented is not a def's body
            continue
        if line[:1] in (" ", "\t"):       # indented: a def's body, or the continuation of a statement
            if not in_def and line.lstrip(" \t")[:1] != "#":
                return False
            continue
        if line.startswith("#"):
            continue
        in_def = line.startswith("def ") and line.count("(") == 1 and line.rstrip().endswith(":")
        if not in_def:
            return False
    return True


def stub_names(cells, handed_out=None):
    """Names that are certainly still the handed-out stub in a notebook's code cells.

    handed_out: {cell source: the names it may bind} of the notebook as handed out
    (handed_out_cells()); a learner cell equal to one of them is trusted to bind only those
    ("*" among them: it may bind others, e.g. by exec(), if another cell feeds it).
    """
    handed_out = handed_out or {}
    defined, trusted_binds, others = set(), set(), []
    for src in cells:
        names = stub_cell(src)
        if names is not None:
            defined.update(names)
        elif src in handed_out:
            trusted_binds |= handed_out[src]
        elif src:
            others.append(src)
    if not defined or len(defined) > MAX_STUBS or ("*" in trusted_binds and others):
        return set()   # none; more than a notebook hands out; or a handed-out exec() the others may feed
    for src in others:
        if not _inert(src):
            return set()
        found = _mentions(src, defined)
        if found is None or found & (TRIGGERS | {"*"}):
            return set()
        defined -= found
    return defined - trusted_binds


_HANDED_OUT = {}


def handed_out_cells(course, stem):
    """{cell source: names it may bind} for the notebook `stem` as the course hands it out:
    made from the instructor's solutions/ with the generator (the course's own text: parsed
    here), or, without them (the student release), the course's notebooks/; {} if neither can
    be read (a Gradescope zip: no shortcut, the calls run).  The shortcut only ever saves time."""
    key = (str(course), stem)
    if key not in _HANDED_OUT:
        _HANDED_OUT[key] = _handed_out(Path(course), stem)
    return _HANDED_OUT[key]


def _handed_out(course, stem):
    cells = None
    try:
        from grader.generate import CODE_STUB, MarkerError, replace_regions
        try:
            cells = [replace_regions(src, CODE_STUB)
                     for src in nbfile.code_cells(course / "solutions" / f"{stem}.ipynb")]
        except (nbfile.BadInput, MarkerError):
            cells = None
    except ImportError:   # a Gradescope zip or the student release: no generator
        pass
    if cells is None:
        try:
            cells = nbfile.code_cells(course / "notebooks" / f"{stem}.ipynb")
        except nbfile.BadInput:
            return {}
    out = {}
    for cell in cells:
        binds = bound_names(cell)
        if cell and binds is not None:
            dynamic = _mentions(cell, ())   # {"*"}: it may bind by other means
            out[cell] = binds | ({"*"} if dynamic is None else dynamic)
    return out


def notebook_stubs(course, stem, cells):
    """stub_names for one notebook of a submission, with the course's handed-out cells."""
    return stub_names(cells, handed_out_cells(course, stem))


# ---------------------------------------------------------------- the shortcut: probes on handed-out code
NOT_TAKEN = object()   # Shortcut.call's answer when the call must run in the learner's process


class _Unknown(BaseException):
    """A probe reached something the shortcut cannot stand for (a name a learner's cell may
    bind, a call-back): the call runs in the learner's process instead.  A BaseException, so
    that no probe's `except Exception` takes it for the learner's."""


_UNKNOWN = {}   # trusted cells (position, source) -> Shortcut.unknown for them
_PROBES = {}    # (probe, *helpers) -> their code, compiled


class Shortcut:
    """Calls into a notebook whose exercises are (partly) still as handed out, answered in the
    grader's process without starting the learner's: the probe runs here, on a namespace loaded
    from the course's own cells only (those of the learner's cells that are byte for byte a
    cell handed out with the notebook: the course's code, as trusted as the instructor's
    solutions the grader runs), by the learner process's own loader and Notebook, so that it
    says exactly what it would say there (e.g. 03's "paste your forward functions" when the
    pasted stubs are still stubs).  No learner text is parsed or run here.

    whole: every cell of the notebook is a handed-out cell (a blank notebook): its namespace
    here is the learner's, name for name.  Otherwise the probe may use only `fixed` names
    (stub_names: certainly still the stub; defined by a handed-out stub cell), and every name
    it is given to call must be one of them; anything else (another name, a call-back, a timed
    call that returns, an answer that cannot be encoded) and the call runs in the learner's
    process.  The shortcut only ever saves time."""

    def __init__(self, cells, trusted, fixed, whole):
        self.cells, self.trusted, self.fixed, self.whole = cells, trusted, fixed, whole
        self.unknown, self._ready = set(), False

    def _namespace(self, lm):
        """A fresh namespace, as the learner process's loader makes it from the trusted cells
        (imports other than NumPy and those the loader stubs are not made here: their names,
        and the names of whatever uses them, are unknown)."""
        ns = {"__name__": "__main__", "__builtins__": builtins}
        for idx in self.trusted:
            prepared = lm.prepare_cell(idx + 1, self.cells[idx])
            if prepared[0] != "ok":
                self.unknown.update(prepared[2])
                continue
            for node, names, code, _inert in prepared[1]:
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    if lm._import(node, ns):
                        continue
                    mods = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                    if not all(m.split(".")[0] == "numpy" for m in mods):
                        self.unknown.update(names)
                        continue
                try:
                    exec(code, ns)
                except Exception:  # noqa: BLE001 - the course's own cell; then its names are unknown
                    self.unknown.update(names)
        return ns

    def _close_unknown(self, lm):
        """Names whose definition reads an unknown name (when it runs or when it is called)
        are unknown too, until nothing changes."""
        reads = []
        for idx in self.trusted:
            prepared = lm.prepare_cell(idx + 1, self.cells[idx])
            for node, names, _code, _inert in prepared[1] if prepared[0] == "ok" else ():
                reads.append((set(names), _global_reads(node)))
        changed = True
        while changed:
            changed = False
            for names, read in reads:
                if read & self.unknown and not names <= self.unknown:
                    self.unknown |= names
                    changed = True

    def call(self, probe, uses, helpers, cpu, inputs, callbacks):
        """The call's value (or the LearnerError it raises), or NOT_TAKEN."""
        if not self.whole and not set(uses) <= self.fixed:
            return NOT_TAKEN
        import numpy as np

        from grader.sandbox import codec
        from grader.sandbox import learner as lm
        from grader.sandbox.host import SOURCES, LearnerError, answer_value, probe_source
        ns = self._namespace(lm)
        if not self._ready:   # the same trusted cells, the same unknown names: worked out once per process
            key = tuple((i, self.cells[i]) for i in self.trusted)
            if key not in _UNKNOWN:
                self._close_unknown(lm)
                if len(_UNKNOWN) >= 256:
                    _UNKNOWN.clear()
                _UNKNOWN[key] = frozenset(self.unknown)
            self.unknown = set(_UNKNOWN[key])
            self._ready = True
        reached = []
        shortcut = self

        class Nb(lm.Notebook):
            def _allowed(self, name):
                if name in shortcut.unknown or not (shortcut.whole or name in shortcut.fixed):
                    reached.append(name)
                    raise _Unknown(name)

            def has(self, name):
                self._allowed(name)
                return super().has(name)

            def get(self, name):
                self._allowed(name)
                return super().get(name)

            def proxy(self, name):
                def proxy(*args, **kwargs):
                    reached.append(name)
                    raise _Unknown(name)
                return proxy

        key = (probe, *helpers)
        if key not in _PROBES:   # compiled once per process, as the learner's process does
            for f in key:
                if f not in SOURCES:
                    SOURCES[f] = probe_source(f)
            _PROBES[key] = compile("\n\n".join(SOURCES[f] for f in (*helpers, probe)), "<probe>", "exec")
        try:
            kwargs = codec.decode(codec.encode(inputs))   # what the learner's process would get
        except codec.CodecError:
            return NOT_TAKEN
        g = {"np": np, "__builtins__": builtins}
        exec(_PROBES[key], g)
        who = uses[0] if uses else ""
        state, errs, printed = np.random.get_state(), np.geterr(), io.StringIO()
        try:
            with warnings.catch_warnings(record=True) as warned, \
                    contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
                warnings.simplefilter("always")
                answer = {"status": "ok", "value": g[probe.__name__](Nb(ns, {}), **kwargs)}
        except lm.LearnerFailure as e:
            answer = {"status": "learner", "kind": e.kind, "function": e.function, "message": e.message}
        except lm.LearnerRaised as e:
            f = e.failure()
            answer = {"status": "learner", "kind": f.kind, "function": f.function, "message": f.message}
        except _Unknown:
            return NOT_TAKEN
        except Exception as e:  # noqa: BLE001 - as the learner's process answers it
            if not lm._from_learner(e):
                return NOT_TAKEN    # a probe error: let the learner's process say it
            answer = {"status": "learner", "kind": "raised", "function": who,
                      "message": f"{who or 'your code'} raised {type(e).__name__}: {lm._short(e)}{lm._where(e)}"}
        finally:
            np.random.set_state(state)
            np.seterr(**errs)
        if printed.getvalue() or warned:
            return NOT_TAKEN        # output or a warning: what they do there is the learner process's to say
        if reached or (cpu and answer["status"] == "ok"):
            return NOT_TAKEN        # it reached what is not here; a timed call needs its CPU time
        try:
            body = codec.encode(answer)
        except codec.CodecError:
            return NOT_TAKEN
        if answer["status"] == "learner":
            raise LearnerError(answer["kind"], answer["function"], answer["message"])
        return answer_value(body, uses)


def _global_reads(node):
    """The global names a definition of the course's (an ast node) reads, at once or when called."""
    table = symtable.symtable(ast.unparse(node), "<cell>", "exec")
    out = {s.get_name() for s in table.get_symbols() if s.is_referenced()}
    stack = list(table.get_children())
    while stack:
        t = stack.pop()
        out |= {s.get_name() for s in t.get_symbols() if s.is_global() and s.is_referenced()}
        stack += t.get_children()
    return out


def shortcut(course, stem, cells):
    """The Shortcut for one notebook of a submission, or None when it has no handed-out stub
    the shortcut may stand for."""
    named = [stub_cell(c) for c in cells]
    if not any(named):
        return None   # no stub left (a finished notebook): the course's cells need not be read
    handed_out = handed_out_cells(course, stem)
    if not handed_out:
        return None
    if all(c in handed_out for c in cells if c):
        return Shortcut(cells, [i for i, c in enumerate(cells) if c], set(), True)
    fixed = stub_names(cells, handed_out)
    # only stubs the course's own cells define: a stub-shaped cell of the learner's (another
    # signature, say) is not run here, and its names are not stood for
    for c, names in zip(cells, named):
        if names and c not in handed_out:
            fixed -= set(names)
    trusted = [i for i, (c, names) in enumerate(zip(cells, named)) if names and set(names) & fixed]
    return Shortcut(cells, trusted, fixed, False) if fixed else None
