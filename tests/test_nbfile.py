"""The notebook reader (grader.nbfile): any file gives its code cells or one clear line —
never a traceback — in time linear in its size and memory within documented bounds (14.9)."""
import csv
import json
import subprocess
import sys

import pytest

from grader import nbfile
from tests.grading import ROOT, run_grader

NB = {"nbformat": 4, "nbformat_minor": 5, "metadata": {},
      "cells": [{"cell_type": "code", "source": ["x = 1\n", "y = 2"], "metadata": {}, "outputs": []},
                {"cell_type": "markdown", "source": "text", "metadata": {}}]}


def _write(tmp_path, raw, name="01_bernoulli_mask.ipynb"):
    path = tmp_path / name
    path.write_bytes(raw if isinstance(raw, bytes) else raw.encode())
    return path


def test_a_notebook_is_read():
    assert nbfile.code_cells(ROOT / "solutions" / "01_bernoulli_mask.ipynb")


def test_cells(tmp_path):
    assert nbfile.code_cells(_write(tmp_path, json.dumps(NB))) == ["x = 1\ny = 2", ""]
    assert nbfile.code_cells(_write(tmp_path, b"\xef\xbb\xbf" + json.dumps(NB).encode())) == ["x = 1\ny = 2", ""]


BIG_INT = json.dumps(NB)[:-1] + ', "x": ' + "9" * 5001 + "}"


@pytest.mark.parametrize("raw, words", [
    (BIG_INT, "a number of 5001 digits"),                               # was a traceback, exit 1
    (json.dumps({**NB, "x": [1e999999]}), None),                         # inf: fine
    ("[" * 200000 + "]" * 200000, "nested too deeply"),
    ('{"cells": ' + "[" * 200000, None),
    (json.dumps({"nbformat": 3, "nbformat_minor": 0, "worksheets": [{"cells": []}], "metadata": {}}),
     "format 3"),                                                        # 19.9: was "no list of cells"
    (json.dumps({"nbformat": 3, "cells": []}), "format 3"),
    (json.dumps({"nbformat": [4] * 50, "cells": []}), "format 'unknown'"),
    (json.dumps({"metadata": {}}), "no list of cells"),
    (json.dumps({**NB, "cells": "abc"}), "no list of cells"),
    (json.dumps([1, 2]), "no list of cells"),
    (json.dumps({**NB, "cells": [1]}), "cell 1 is not a cell object"),
    (json.dumps({**NB, "cells": [{"cell_type": "code", "source": [1]}]}), "source that is not text"),
    (b"\xff\xfe\x00", "not UTF-8"),
    ('{"cells": [', "not valid notebook JSON"),
    ("", "not valid notebook JSON"),
    ("\ud800".encode("utf-8", "surrogatepass"), "not UTF-8"),
])
def test_every_malformed_file_is_one_line(tmp_path, raw, words):
    try:
        cells = nbfile.code_cells(_write(tmp_path, raw))
    except nbfile.BadInput as e:
        msg = str(e)
        assert "\n" not in msg and len(msg) < 400, msg
        assert words is None or words in msg, msg
    else:
        assert words is None and isinstance(cells, list)


def test_sizes_are_checked_before_reading(tmp_path, monkeypatch):
    monkeypatch.setattr(nbfile, "MAX_BYTES", 1000)
    with pytest.raises(nbfile.BadInput, match="larger than"):
        nbfile.code_cells(_write(tmp_path, json.dumps({**NB, "x": "a" * 2000})))
    monkeypatch.setattr(nbfile, "MAX_ITEMS", 100)
    with pytest.raises(nbfile.BadInput, match="more than 100 JSON values"):
        nbfile.code_cells(_write(tmp_path, "[" + "[]," * 200 + "[]]"))


AMPLIFY = r'''
import json, resource, sys, time
from grader import nbfile
path = sys.argv[1]
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.process_time()
try:
    nbfile.code_cells(path)
except nbfile.BadInput as e:
    print(e, file=sys.stderr)
print(json.dumps({"grew": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024,
                  "cpu": time.process_time() - t0}))
'''


@pytest.mark.parametrize("kind", ["empty lists", "numbers"])
def test_a_hostile_notebook_costs_a_bounded_amount(tmp_path, kind):
    """60 MB of `[],` once made some 1.4 GB of Python lists: the values are counted first."""
    body = "[]," if kind == "empty lists" else "1,"
    path = _write(tmp_path, '{"nbformat": 4, "cells": [], "x": [' + body * (60_000_000 // len(body)) + "1]}")
    proc = subprocess.run([sys.executable, "-c", AMPLIFY, str(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    out = json.loads(proc.stdout)
    size = path.stat().st_size
    assert "more than" in proc.stderr, proc.stderr
    assert out["grew"] <= size + (16 << 20) and out["cpu"] < 10, out


def test_the_command_line_and_a_batch_say_it_in_one_line(tmp_path):
    """14.9, by outcome: `python -m grader` exits 2 with one line; a batch reports the
    notebook as unreadable (the learner's problem), not a grader error."""
    nb = _write(tmp_path, BIG_INT)
    proc = run_grader([nb])
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "5001 digits" in err[0] and "Traceback" not in proc.stdout + proc.stderr
    learner = tmp_path / "class" / "ada"
    learner.mkdir(parents=True)
    nb.rename(learner / nb.name)
    proc = run_grader([tmp_path / "class", "--out", tmp_path / "out", "--only", "01"])
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    rows = list(csv.DictReader((tmp_path / "out" / "summary.csv").open()))
    assert len(rows) == 1 and "5001 digits" in rows[0]["problems"], rows
    assert "grader error" not in rows[0]["problems"], rows
