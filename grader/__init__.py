"""The dropout course's grader.

- Shell:    python -m grader notebooks/            (see grader/cli.py)
- Python:   grader.grade("notebooks/")             -> results.json as a dict
- Notebook: from grader import check; check("bernoulli_mask")
"""

__version__ = "0.1.0"   # the one place: pyproject.toml, --version, the Gradescope zip and releases read it


def check(exercise, **kwargs):
    """Run the grader's checks for one exercise on the cells run so far in this kernel."""
    from grader.inline import check as _check
    return _check(exercise, **kwargs)


def grade(*paths, **kwargs):
    """Grade notebooks in a separate process; return Gradescope's results.json as a dict."""
    from grader.inline import grade as _grade
    return _grade(*paths, **kwargs)
