"""Reference work once per process: the instructor's timing is measured once per input
(configuration and seed) and reused for every later submission a worker grades."""
import numpy as np

from grader.checks.dropout_checks import reference_cpu
from grader.reference import once


def test_the_same_inputs_are_computed_once_and_other_inputs_again():
    calls = []

    @once
    def work(call, n):
        calls.append(n)
        return call() * n

    def reference(x, p):
        return float(x.sum()) * p

    def check(x, p, n=2):   # as a check does for each submission: one lambda, fresh inputs
        return work(lambda: reference(x, p), n)

    x = np.arange(6.0)
    first = check(x, 0.5)
    again = check(x.copy(), 0.5)    # equal inputs, new objects: remembered
    assert first == again == 15.0 and calls == [2]
    assert check(x + 1, 0.5) == 21.0 and calls == [2, 2]   # other data
    assert check(x, 0.25) == 7.5 and len(calls) == 3       # other constant
    assert check(x, 0.5, 3) == 22.5 and len(calls) == 4    # other argument

    def drawn(rng):
        return work(lambda: reference(x, rng.random()), 2)
    drawn(np.random.default_rng(1))
    drawn(np.random.default_rng(1))
    drawn(np.random.default_rng(2))     # a generator in another state: computed again
    assert len(calls) == 6


def test_inputs_it_cannot_key_on_are_never_remembered():
    calls = []

    @once
    def work(call):
        calls.append(1)
        return call()

    def check(box):
        return work(lambda: box["v"])
    check({"v": 1})
    assert check({"v": 2}) == 2 and len(calls) == 2


def test_the_reference_timing_is_measured_once_per_input():
    x = np.ones((200, 200), dtype=np.float32)
    seen = []

    def reference(a):
        seen.append(1)
        return a * 2

    def timing(x):
        return reference_cpu(lambda: reference(x), 3, repeats=2)
    t1 = timing(x)
    assert len(seen) == 1 + 3 * 2
    assert timing(x.copy()) == t1 and len(seen) == 1 + 3 * 2
    timing(x + 1)
    assert len(seen) == 2 * (1 + 3 * 2)
