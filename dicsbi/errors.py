"""Exceptions raised for mistakes a user can make.

Every error a user can cause (bad file, bad column, unknown model, impossible conductances) is a
:class:`DicsbiError` or one of its few subclasses, with a message that names what was wrong and what was
expected.  The command line prints the message on one line and exits with status 2.
"""

from __future__ import annotations


class DicsbiError(Exception):
    """Base class of every user-facing dicsbi error."""


class ModelError(DicsbiError):
    """Unknown model name or an inconsistent model definition."""


class ConductanceError(DicsbiError):
    """Conductances of the wrong shape, negative, non-finite or otherwise unusable."""


class InputError(DicsbiError):
    """A malformed input file or argument (names the file, the row and the field)."""
