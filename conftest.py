"""The grader's pytest plugin for runs in this folder (`python -m pytest --pyargs grader.checks
--submission PATH`); inert without --submission.  See grader/checks/conftest.py."""
from grader.checks.conftest import pytest_addoption  # noqa: F401 - registers grader.pytest_plugin
