"""Where scores are computed: one check file per notebook (test_NN_name.py, stems matching
the notebooks), run by grader/engine.py in the grader's own process, or by pytest through
grader/pytest_plugin.py (`python -m pytest --pyargs grader.checks --submission PATH`).

A check is a function `test_...(learner)` (or a method of a class `Test...`) marked with
`@mark.points(n)` and, on the function, its class or the module (`pytestmark = ...`),
`mark.exercise("name")`; optionally `mark.visibility("hidden")` for Gradescope.  Under pytest
`mark` is pytest's own; without pytest (grading needs NumPy only) it is a small stand-in that
records the same names and arguments.

Probes — the functions a check sends to the learner's process with learner.call(probe, ...)
— take `nb` first and only call the learner's code on the inputs given and return what it
returned; see grader/engine.py and the README's Authoring section.

Every module of this package is loaded by the loader below, whatever the interpreter's flags:
- compiled with optimize=0, so that `python -O`, `-OO` or PYTHONOPTIMIZE never strip a
  check's `assert` (a wrong answer would pass) or its docstring (the check's name); cached
  only as the plain .pyc (optimization level 0), never read from an .opt-N.pyc that -O wrote;
- a check file's probes are verified as it is imported (grader.checks.probes): a probe that
  uses a name the learner's process does not have fails the import, naming it (once for the
  same sources: a marker next to the bytecode remembers it).
"""
import importlib.abc
import importlib.machinery
import importlib.util
import marshal
import os
import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


class _Loader(importlib.machinery.SourceFileLoader):
    def get_code(self, fullname):
        """The module compiled with optimize=0: from the plain (unoptimized) .pyc when it
        matches the source's mtime and size, else compiled and that .pyc written."""
        path = self.get_filename(fullname)
        st = os.stat(path)
        header = importlib.util.MAGIC_NUMBER + struct.pack("<III", 0, int(st.st_mtime) & 0xFFFFFFFF,
                                                            st.st_size & 0xFFFFFFFF)
        cache = importlib.util.cache_from_source(path, optimization="")   # never the .opt-N.pyc
        try:
            data = Path(cache).read_bytes()
            if data[:16] == header:
                return marshal.loads(data[16:])
        except (OSError, ValueError, EOFError, TypeError):
            pass
        code = compile(self.get_data(path), path, "exec", dont_inherit=True, optimize=0)
        if not sys.dont_write_bytecode:
            try:
                Path(cache).parent.mkdir(exist_ok=True)
                tmp = f"{cache}.{os.getpid()}.tmp"
                Path(tmp).write_bytes(header + marshal.dumps(code))
                os.replace(tmp, cache)
            except OSError:
                pass   # a read-only install: compiled each time
        return code

    def exec_module(self, module):
        super().exec_module(module)
        if module.__name__.rpartition(".")[2].startswith("test_"):
            from grader.checks import probes
            probes.verify_once(module)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds grader.checks.<name> (the modules of this folder) for _Loader."""

    def find_spec(self, fullname, path=None, target=None):
        package, _, leaf = fullname.rpartition(".")
        if package != __name__:
            return None
        file = HERE / f"{leaf}.py"
        if not file.is_file():
            return None
        return importlib.util.spec_from_file_location(fullname, file, loader=_Loader(fullname, str(file)))


FINDER = _Finder()


def install_loader():
    """Put the loader first in sys.meta_path (before any assertion rewriter, whose messages
    would differ from the engine's).  Idempotent."""
    if sys.meta_path and sys.meta_path[0] is FINDER:
        return
    while FINDER in sys.meta_path:
        sys.meta_path.remove(FINDER)
    sys.meta_path.insert(0, FINDER)


install_loader()


class Mark:
    """A mark: a name and its arguments; applied to a function or class it is recorded in
    the object's `pytestmark` list (the engine reads it from there), as pytest's are."""

    def __init__(self, name, args):
        self.name, self.args = name, args

    def __call__(self, obj):
        obj.pytestmark = [*getattr(obj, "pytestmark", []), self]
        return obj

    def __repr__(self):
        return f"mark.{self.name}{self.args!r}"


class _Marks:
    def __getattr__(self, name):
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args: Mark(name, args)


# pytest's marks when pytest runs (it is always imported before the checks then); the engine
# never imports pytest, which grading does not need.  Both have .name and .args.
mark = sys.modules["pytest"].mark if "pytest" in sys.modules else _Marks()
