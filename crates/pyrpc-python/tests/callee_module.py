"""A module served as a callee (tests/test_security.py)."""

import os  # noqa: F401  (a module attribute: not callable)

LIMIT = 10  # a constant: not callable


def double(x):
    """Return 2 * x."""
    return 2 * x


def _hidden():
    return "hidden"
