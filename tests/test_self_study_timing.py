"""The unsandboxed self-study mode (no fork per call, e.g. native Windows): a timed call reports
the CPU time of that call, not of the learner's process since it started — otherwise honest
whole-array code would lose the "vectorised" points once earlier calls had used some CPU."""
from grader.sandbox.host import Sandbox


def burn(nb, seconds):
    import time
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass
    return 0


def nothing(nb):
    return 0


def test_unsandboxed_timed_calls_report_their_own_cpu_time():
    with Sandbox({"nb": ["import numpy as np"]}, unsandboxed=True) as sb:
        sb.call("nb", burn, seconds=0.6)
        _, cpu = sb.call("nb", nothing, cpu=True)
        assert cpu < 0.3, cpu
