"""The GitHub Actions template: valid YAML that grades a pushed submission and uploads
results.json and JUnit XML.  Its run-steps are run here as GitHub Actions runs them — each
script written to a file and handed to the job's shell, in its working-directory, with the
workflow's env, later steps skipped after a failure unless `if: always()` — with sudo stubbed."""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.grading import ROOT, notebook

yaml = pytest.importorskip("yaml")   # PyYAML comes with Jupyter (and requirements/test.txt)
TEMPLATE = ROOT / "grader" / "templates" / "github-actions" / "grade.yml"
CORRECT = ("def bernoulli_mask(shape, p, rng=None):\n    if not 0 <= p <= 1:\n        raise ValueError('p')\n"
           "    rng = np.random.default_rng() if rng is None else rng\n    return rng.random(shape) >= p\n")
# What Actions uses for `run:` on Linux when neither the step nor `defaults` names a shell.
ACTIONS_DEFAULT_SHELL = "bash -e {0}"


def workflow():
    return yaml.safe_load(TEMPLATE.read_text())


def steps():
    return workflow()["jobs"]["grade"]["steps"]


def shell_of(step):
    wf = workflow()
    job = wf["jobs"]["grade"]
    shell = (step.get("shell") or job.get("defaults", {}).get("run", {}).get("shell")
             or wf.get("defaults", {}).get("run", {}).get("shell") or ACTIONS_DEFAULT_SHELL)
    # Actions' own shorthand: `shell: bash` means this command line
    return {"bash": "bash --noprofile --norc -eo pipefail {0}"}.get(shell, shell)


def is_install(step):
    return "pip install" in step.get("run", "")


def run_job(tmp_path, notebooks):
    """Run every run-step but the install (no network here) as Actions would, in a checkout of
    a class repository (the grader, the data and the learner's notebooks); return
    [(step name, exit status or None if skipped)], the results folder, the summary page and
    the step outputs."""
    workspace = tmp_path / "workspace"
    shutil.copytree(ROOT / "grader", workspace / "grader", ignore=shutil.ignore_patterns("__pycache__", "course"))
    for part in ("solutions", "data"):   # solutions/: this checkout's grader finds its course by them
        if (ROOT / part).exists():
            shutil.copytree(ROOT / part, workspace / part, ignore=shutil.ignore_patterns("__pycache__"))
    (workspace / "notebooks").mkdir(parents=True)
    notebook(workspace / "notebooks" / "01_bernoulli_mask.ipynb", ["import numpy as np", CORRECT])
    bin_dir = tmp_path / "bin"            # sudo that runs its command as the current user
    bin_dir.mkdir()
    (bin_dir / "sudo").write_text('#!/usr/bin/env bash\nwhile [[ "$1" == -* ]]; do shift; done\nexec "$@"\n')
    os.chmod(bin_dir / "sudo", 0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("DROPOUT_COURSE", "PYTHONPATH")}
    env.update({k: str(v) for k, v in workflow().get("env", {}).items()})
    env.update({"NOTEBOOKS": notebooks, "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
                "PATH": f"{bin_dir}:{os.path.dirname(sys.executable)}:{env['PATH']}"})
    results, failed, outputs = [], False, {}
    for i, step in enumerate(steps()):
        if "run" not in step or is_install(step):
            continue
        if failed and "always()" not in str(step.get("if", "")):
            results.append((step.get("name"), None))
            continue
        script = tmp_path / f"step{i}.sh"
        script.write_text(step["run"])
        out = tmp_path / f"output{i}"
        out.write_text("")
        cmd = [part.replace("{0}", str(script)) for part in shlex.split(shell_of(step))]
        proc = subprocess.run(cmd, cwd=workspace / step.get("working-directory", "."),
                              env={**env, "GITHUB_OUTPUT": str(out)}, capture_output=True, text=True, timeout=300)
        results.append((step.get("name"), proc.returncode))
        if step.get("id"):
            outputs[step["id"]] = dict(line.split("=", 1) for line in out.read_text().splitlines() if "=" in line)
        failed = failed or proc.returncode != 0
    run_job.outputs = outputs
    return results, workspace / "results", tmp_path / "summary.md"


def test_is_a_workflow_triggered_by_push_that_uploads_the_results():
    wf = workflow()
    assert "push" in wf[True] or "push" in wf.get("on", {})   # YAML 1.1 reads `on` as True
    uses = [s.get("uses", "") for s in steps()]
    assert any(u.startswith("actions/checkout@") for u in uses)
    upload = next(s for s in steps() if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["with"]["path"] == "results/" and upload["if"] == "always()"
    grade = next(s for s in steps() if s.get("name") == "Grade")["run"]
    assert "--json results/results.json" in grade and "--junitxml results/junit.xml" in grade


def test_every_action_is_pinned_by_commit_and_permissions_are_least():
    """Tags can be moved: every `uses:` names a full commit SHA.  The workflow grants nothing by
    default and the job only reads; no token of the instructor's repository is ever used."""
    wf = workflow()
    for step in steps():
        if "uses" in step:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", step["uses"]), step["uses"]
    assert wf["permissions"] == {} and wf["jobs"]["grade"]["permissions"] == {"contents": "read"}
    text = TEMPLATE.read_text()
    assert "secrets." not in text and "COURSE_TOKEN" not in text and "repository:" not in text


def test_github_classroom_gets_the_points(tmp_path):
    """The reporter (classroom-resources/autograding-grading-reporter) reads the step's output
    `result` from <RUNNER>_RESULTS: base64 JSON whose scores sum to the learner's points."""
    import base64
    reporter = next(s for s in steps() if "autograding-grading-reporter" in s.get("uses", ""))
    runner = reporter["with"]["runners"]
    assert re.fullmatch(r"[a-zA-Z0-9]+", runner)
    assert reporter["env"] == {f"{runner.upper()}_RESULTS": f"${{{{ steps.{runner}.outputs.result }}}}"}
    ran, results, _ = run_job(tmp_path, "notebooks")
    assert all(status == 0 for _, status in ran), ran
    data = json.loads(base64.b64decode(run_job.outputs[runner]["result"]))
    res = json.loads((results / "results.json").read_text())
    assert data["max_score"] == sum(t["max_score"] for t in res["tests"]) > 0
    assert sum(t["score"] for t in data["tests"]) == res["score"] > 0   # 01 only: the others are missing
    assert data["status"] == "fail" and [t["status"] for t in data["tests"]] == [
        "pass" if t["status"] == "passed" else "fail" for t in res["tests"]]
    assert {"name", "status", "score", "message"} <= set(data["tests"][0])


def test_every_run_step_fails_loudly():
    """-e, -u and pipefail in every run-step's shell: a failing command anywhere, also left of a
    pipe (grader | tee), fails the step."""
    for step in steps():
        if "run" in step:
            shell = shell_of(step)
            assert "pipefail" in shell and re.search(r"-\w*e", shell) and re.search(r"-\w*u", shell), \
                (step.get("name"), shell)


def test_what_it_installs_is_pinned_to_exact_versions():
    installs = [s["run"] for s in steps() if is_install(s)]
    assert installs, "the workflow installs the grader's requirements"
    for run in installs:
        packages = [w for w in run.split("pip install", 1)[1].split() if not w.startswith("-")]
        assert {p.split("==")[0] for p in packages} >= {"numpy", "pytest"}, run
        assert all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[0-9][0-9A-Za-z.]*", p) for p in packages), run


def test_the_job_grades_and_publishes_the_results(tmp_path):
    ran, results, summary = run_job(tmp_path, "notebooks")
    assert ran and all(status == 0 for _, status in ran), ran
    res = json.loads((results / "results.json").read_text())
    assert res["score"] > 0 and res["tests"]
    assert ET.parse(results / "junit.xml").getroot() is not None
    assert "total:" in (results / "report.txt").read_text()
    assert "total:" in summary.read_text()


def test_a_wrong_notebooks_path_fails_the_job(tmp_path):
    """The grader exits 2 on a missing path; without pipefail, `| tee` would hide it and the
    run would be green with an empty report."""
    ran, results, summary = run_job(tmp_path, "no-such-folder")
    status = dict(ran)
    assert status["Grade"] not in (0, None), ran
    assert status["Show the score table on the run's summary page"] == 0, "the summary step runs always()"
    assert "No report" in summary.read_text()
    assert not (results / "results.json").exists()
