#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder's image (the network is
# available here, and only here).  The course's grader is in /autograder/source.
set -euo pipefail

apt-get update -q
apt-get install -y -q --no-install-recommends python3 python3-venv
python3 - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"the grader needs Python 3.11 or newer; this image has {sys.version.split()[0]}: "
             "choose the Ubuntu 24.04 base image in the autograder settings")
PY

# A virtual environment outside /autograder: learner code runs as an unprivileged user that
# must be able to read Python and NumPy, while /autograder is closed to it during grading.
python3 -m venv /opt/dropout-grader
/opt/dropout-grader/bin/pip install --no-cache-dir -q -r /autograder/source/requirements.txt

# Smoke test at build time: the reference solutions must get full marks.
cd /autograder/source
/opt/dropout-grader/bin/python -m grader solutions/ --timeout 20 --json /tmp/smoke.json
/opt/dropout-grader/bin/python - <<'PY'
import json
d = json.load(open("/tmp/smoke.json"))
top = sum(t["max_score"] for t in d["tests"])
assert top > 0 and d["score"] == top, f"the reference solutions got {d['score']}/{top}"
print(f"autograder ready: the reference solutions get {top:g}/{top:g}")
PY
