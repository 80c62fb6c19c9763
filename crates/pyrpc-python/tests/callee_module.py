"""A module served as a callee (tests/test_security.py)."""

import os  # noqa: F401  (a module attribute: not callable)
from os import getcwd  # noqa: F401  (imported, not defined here: never served)
from subprocess import run  # noqa: F401  (imported, not defined here: never served)

LIMIT = 10  # a constant: not callable


def double(x):
    """Return 2 * x."""
    return 2 * x


def _hidden():
    return "hidden"
