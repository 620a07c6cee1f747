"""Where learner code runs.

- view.py     as root: new namespaces and an empty root holding only Python, NumPy and the
              learner-side modules (an allowlist), then a fresh exec of learner.py in it
- learner.py  the learner's process: run as a script; the grader's own process imports it only
              for its cell reader and probe runner on the course's own handed-out cells (the
              stub shortcut, grader/stubs.py) and never runs learner text with it; sets its
              limits, drops privileges, parses the cells, and answers each call from a fork
              that loads the learner's definitions and runs the probe (a runner per notebook
              for untimed calls, one fork per timed call)
- host.py     the grader's side: starts that process, sends calls, reads raw results,
              ends every process it started (Sandbox, Limits, LearnerError)
- codec.py    the wire format: length-prefixed frames, JSON plus raw array bytes, no pickle
- leftovers.py what a notebook's runner left that a later call could find, checked from outside
              it by the learner's process (inotify, /proc, SysV IPC, keys, limits)
- procs.py    finding processes through /proc; ipc.py  SysV IPC objects left behind
"""
from grader.sandbox.host import (
                                 GraderBug,
                                 LearnerError,
                                 Limits,
                                 Sandbox,
                                 UidLease,
                                 ZygoteServer,
                                 become_subreaper,
                                 default_hide,
                                 end_process,
                                 is_root,
                                 kill_tree,
                                 kill_uid,
)

__all__ = ["GraderBug", "LearnerError", "Limits", "Sandbox", "UidLease", "ZygoteServer",
           "become_subreaper", "default_hide", "end_process", "is_root", "kill_tree", "kill_uid"]
