"""Exceptions raised by bitalloc."""

from __future__ import annotations

__all__ = ["InfeasibleError", "MissingDependencyError"]


class InfeasibleError(ValueError):
    """No allocation satisfies every constraint.

    Attributes:
        constraint: name of the constraint that cannot be met (or a comma-separated
            list when the constraints are only jointly infeasible).
        limit: that constraint's limit (``None`` for joint infeasibility).
        reachable: the smallest value the constraint can reach (``None`` for joint
            infeasibility).

    Example:
        >>> import bitalloc as ba
        >>> p = ba.Problem.from_sensitivities([1.0], [10], bits=(2, 4),
        ...                                   constraints=[ba.AverageBits(1.5)])
        >>> try:
        ...     ba.solve(p)
        ... except ba.InfeasibleError as e:
        ...     print(e.reachable)
        2.0
    """

    def __init__(self, message: str, constraint: str | None = None,
                 limit: float | None = None, reachable: float | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint
        self.limit = limit
        self.reachable = reachable


class MissingDependencyError(ImportError):
    """An optional solver dependency is not installed; the message names the extra."""


def require(module: str, extra: str, what: str):
    """Import an optional dependency or raise an error naming the pip extra.

    Args:
        module: importable module name, e.g. ``"cvxpy"``.
        extra: the bitalloc extra that installs it, e.g. ``"convex"``.
        what: what needs it, for the message (e.g. ``"method='fractional'"``).

    Returns:
        The imported module.

    Raises:
        MissingDependencyError: when the module cannot be imported.
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as e:  # pragma: no cover - exercised via monkeypatch in tests
        raise MissingDependencyError(
            f"{what} needs the optional dependency {module!r}; install it with "
            f"`pip install 'bitalloc[{extra}]'` ({e})"
        ) from e
