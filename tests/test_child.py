"""What the sandboxed child runs of a learner's cells: definitions only, cell by cell."""
import ast

from grader.sandbox import learner as _child


def kept(src):
    return [ast.unparse(n).split("\n")[0] for n, _ in _child.definitions(ast.parse(src))]


def test_only_definitions_imports_and_constants_run():
    src = ("import numpy as np\nSEED = 0\nN: int = 3 * SEED\nEPS = np.finfo(float).eps\n"
           "rng = np.random.default_rng(SEED)\nhistory = train(net)\nplt.plot([1])\nprint('hi')\n"
           "np.random.seed = None\nfor i in range(10**9):\n    pass\n"
           "def f(x):\n    return x\nclass C:\n    pass\nsquares = [i * i for i in range(9)]\n")
    assert kept(src) == ["import numpy as np", "SEED = 0", "N: int = 3 * SEED",
                         "EPS = np.finfo(float).eps", "def f(x):", "class C:"]


def test_magics_become_pass_and_keep_line_numbers():
    src = "%matplotlib inline\nx = 1\n  !ls\nfiles = !ls\n"
    assert _child._strip_magics(src).split("\n") == ["pass", "x = 1", "  pass", "pass", ""]
    assert _child._strip_magics("%%bash\necho hi") == ""
    assert _child._strip_magics("%%time\ny = 2") == "\ny = 2"


def test_a_broken_cell_costs_only_its_own_names():
    ns = {"__builtins__": __builtins__}
    cells = ["import numpy as np", "def good():\n    return 1", "def bad(:\n    pass\ndef also_lost():\n    pass",
             "@undefined_decorator\ndef lost():\n    pass\ndef kept_too():\n    return 2",
             "while True:\n    pass", "def slow():\n    pass\nclass Hang:\n    while True:\n        pass"]
    where, problems = _child.load_notebook(cells, ns, cell_seconds=0.5)
    assert {"good", "kept_too", "slow"} <= set(where)
    assert "SyntaxError in cell 3" in problems["bad"] and "also_lost" in problems
    assert "NameError in cell 4" in problems["lost"]
    assert "more than 0.5 s" in problems["Hang"]
    assert ns["kept_too"]() == 2


def test_grader_and_plotting_imports_are_stubbed():
    ns = {"__builtins__": __builtins__}
    _child.load_notebook(["from grader import check\nimport matplotlib.pyplot as plt"], ns, 1.0)
    assert ns["check"]("x") is None and ns["plt"].plot([1]) is None


def test_only_a_plain_def_is_loaded_without_the_time_limit_and_the_clean_up():
    """A def with no decorator and only literal defaults and annotations makes a function
    object and runs nothing, so loading it skips the timer and putting builtins back; any
    def that evaluates something at definition time keeps both."""
    plain = ["def f(x, y=1, *a, z='s', **k) -> int:\n    return x", "async def g():\n    pass",
             "def h(x: 'T' = None, y=SEED):\n    pass"]
    runs = ["@d\ndef f():\n    pass", "def f(x=g()):\n    pass", "def f(x: g() = 1):\n    pass",
            "def f() -> g():\n    pass", "def f(*, k=[]):\n    pass", "def f(x: np.ndarray):\n    pass",
            "class C:\n    pass", "x = 1"]
    assert all(_child._runs_nothing(ast.parse(s).body[0]) for s in plain)
    assert not any(_child._runs_nothing(ast.parse(s).body[0]) for s in runs)
    ns = {"__builtins__": __builtins__}
    cells = ["def hang(x=any(False for _ in iter(int, 1))):\n    pass\ndef after():\n    return 1",
             "def hang_too(*, k=any(False for _ in iter(int, 1))):\n    pass", "def unknown(x=NOT_DEFINED):\n    pass"]
    where, problems = _child.load_notebook(cells, ns, cell_seconds=0.3)
    assert "more than 0.3 s" in problems["hang"] and "more than 0.3 s" in problems["hang_too"]
    assert where["after"] == 1 and ns["after"]() == 1
    assert problems["unknown"].startswith("NameError in cell 3, line 1")
