"""Typed errors. Each message says what is wrong and how to fix it.

Library code raises these; the boundaries (magics, CLI) show them as one line.
``_render_traceback_`` is IPython's hook: a magic that raises an XPError prints
one clean line instead of a traceback through our internals.
"""

from __future__ import annotations


class XPError(Exception):
    """Base of every error xpmagic raises on purpose."""

    def one_line(self) -> str:
        return f"xpmagic: {self}"

    def _render_traceback_(self) -> list[str]:
        return [self.one_line()]


class UsageError(XPError):
    """Bad arguments to a magic, a CLI command or an ``xp`` call."""


class NotInRun(UsageError):
    """An ``xp`` call that needs a run was made outside ``%%experiment``."""


class RunNotFound(XPError):
    """A run id that the database does not have."""


class DatabaseError(XPError):
    """The database file is missing, damaged or of an unknown kind."""


class DatabaseNotFound(DatabaseError):
    pass


class DatabaseCorrupt(DatabaseError):
    pass


class DatabaseTooNew(DatabaseError):
    pass


class DatabaseLocked(DatabaseError):
    """Another program kept its write lock past the busy timeout."""


class MissingDependency(XPError):
    """An optional package is needed for this feature."""

    def __init__(self, package: str, feature: str, extra: str | None = None):
        hint = f"pip install 'xpmagic[{extra}]'" if extra else f"pip install {package}"
        super().__init__(f"{feature} needs the package {package!r}: {hint}")


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (drivers add pages of context), or its type."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def file_error(exc: OSError) -> UsageError:
    """A file the person named could not be read or written (a missing folder, no permission)."""
    where = f" {exc.filename}" if exc.filename else ""
    return UsageError(f"cannot use the file{where}: {exc.strerror or exc}; check the path and that its folder exists")
