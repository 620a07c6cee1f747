"""Registers grader/pytest_plugin.py when pytest is pointed at this package
(`python -m pytest --pyargs grader.checks --submission PATH`, or `python -m pytest grader`):
this conftest is read before the command line is parsed, so --submission is known.  Once the
grader is installed, its pytest11 entry point has registered the same plugin already."""
from grader import pytest_plugin


def pytest_addoption(parser, pluginmanager):
    if not pluginmanager.is_registered(pytest_plugin):
        pluginmanager.register(pytest_plugin, pytest_plugin.__name__)
