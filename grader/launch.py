"""Where `python -m grader` and the `dropout-grader` command start, before any heavy import.

As root, learner code runs as another user, who can read every process's command line
(/proc/PID/cmdline) but not its environment: the grader starts again at once with its
arguments moved into the environment, so that where results are written is not visible.
Done here, with the standard library only, the restart costs an interpreter's start, not a
second import of NumPy and the engine; and here, before NumPy is imported, its BLAS is told to
use one thread.
"""
import json
import os
import sys

ARGV_ENV = "_GRADER_ARGV"
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def hide_arguments(argv=None):
    """Re-exec this process with sys.argv[1:] in the environment (as root, from the command
    line, once); otherwise do nothing."""
    if argv is not None or os.environ.get(ARGV_ENV) is not None:
        return
    if not (hasattr(os, "geteuid") and os.geteuid() == 0) or os.environ.get("GRADER_KEEP_ROOT") == "1":
        return
    if len(sys.argv) <= 1 or not hasattr(sys, "orig_argv"):
        return
    head = sys.orig_argv[:len(sys.orig_argv) - (len(sys.argv) - 1)]
    if "-m" not in head:
        if os.path.basename(sys.argv[0]) != "dropout-grader":
            return   # not started from the command line (e.g. runpy in a test)
        head = [sys.executable, "-m", "grader"]   # the dropout-grader command, as python -m grader
    env = dict(os.environ)
    env[ARGV_ENV] = json.dumps(sys.argv[1:])
    env["PYTHONPATH"] = os.pathsep.join([PACKAGE_PARENT] + [
        x for x in env.get("PYTHONPATH", "").split(os.pathsep) if x])
    try:
        sys.stdout.flush()
        os.execve(sys.executable, [sys.executable, *head[1:]], env)
    except OSError:
        return


def one_blas_thread():
    """NumPy's BLAS starts a thread per core that spins while it waits for work: the grader's
    matrix products are small, and the cores are for the learner processes it waits on (and, in
    a class, for the other workers, which inherit this).  Only where nobody chose otherwise."""
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")


def main():
    one_blas_thread()
    hide_arguments()
    from grader.cli import main as cli_main
    return cli_main()
