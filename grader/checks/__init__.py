"""Where scores are computed: one check file per notebook (test_NN_name.py, stems matching
the notebooks), run by grader/engine.py in the grader's own process.

A check is a function `test_...(learner)` (or a method of a class `Test...`) marked with
`@mark.points(n)` and, on the function, its class or the module (`pytestmark = ...`),
`mark.exercise("name")`; optionally `mark.visibility("hidden")` for Gradescope.  The marks
read like pytest's, without importing pytest: grading needs NumPy only.

Probes — the functions a check sends to the learner's process with learner.call(probe, ...)
— take `nb` first and only call the learner's code on the inputs given and return what it
returned; see grader/engine.py and the README's Authoring section.
"""


class Mark:
    """A mark: a name and its arguments; applied to a function or class it is recorded in
    the object's `pytestmark` list (the engine reads it from there)."""

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


mark = _Marks()
