"""The one input-validation helper set for :class:`bitalloc.Problem` (and the io layer).

Every check raises ``ValueError`` whose message starts with the argument name.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np

DEFAULT_BITS = (2, 3, 4, 5, 6, 7, 8)


def float_array(value, arg: str, ndim: int, *, nonneg: bool = True,
                positive: bool = False) -> np.ndarray:
    """Convert to a finite float64 array of the given rank, checking sign."""
    return float_array_sum(value, arg, ndim, nonneg=nonneg, positive=positive)[0]


def float_array_sum(value, arg: str, ndim: int, *, nonneg: bool = True, positive: bool = False,
                    copy: bool = True) -> tuple[np.ndarray, float]:
    """:func:`float_array` and the sum of the entries (``inf`` when that overflows).

    One copy (a new C-ordered float64 array, never a view of ``value``; with
    ``copy=False`` none when ``value`` already is one) and two cheap whole-array
    reductions (``min``, ``sum``: a NaN or inf shows in one of them); the
    entry-by-entry checks that name the bad index run only when those fail.
    """
    try:
        arr = np.array(value, dtype=np.float64, order="C", copy=True if copy else None)
    except (TypeError, ValueError):
        raise ValueError(f"{arg}: must be numeric, got {type(value).__name__}") from None
    if arr.ndim != ndim:
        raise ValueError(f"{arg}: must be {ndim}-D, got shape {arr.shape}")
    if arr.size == 0:
        raise ValueError(f"{arg}: must not be empty")
    with np.errstate(over="ignore", invalid="ignore"):
        low, total = arr.min(), float(arr.sum())
    if math.isfinite(total) and (low > 0 if positive else (low >= 0 or not nonneg)):
        return arr, total
    if np.isnan(arr).any():
        raise ValueError(f"{arg}: contains NaN at index {_first(np.isnan(arr))}")
    if np.isinf(arr).any():
        raise ValueError(f"{arg}: contains inf at index {_first(np.isinf(arr))}")
    if positive and (arr <= 0).any():
        raise ValueError(f"{arg}: must be > 0, got {arr[arr <= 0].flat[0]} at index "
                         f"{_first(arr <= 0)}")
    if nonneg and (arr < 0).any():
        raise ValueError(f"{arg}: must be >= 0, got {arr[arr < 0].flat[0]} at index "
                         f"{_first(arr < 0)}")
    return arr, total  # every entry is fine; only their sum overflows


def _first(mask: np.ndarray):
    idx = np.argwhere(mask)[0]
    return int(idx[0]) if len(idx) == 1 else tuple(int(i) for i in idx)


def bits_array(bits) -> np.ndarray:
    """Candidate bitwidths: non-empty, positive integers, strictly increasing."""
    if isinstance(bits, (str, bytes)) or not isinstance(bits, Iterable):
        raise ValueError(f"bits: must be a sequence of integers, got {bits!r}")
    raw = list(bits)
    if not raw:
        raise ValueError("bits: must not be empty")
    for b in raw:
        if isinstance(b, bool) or not isinstance(b, (int, np.integer)):
            if not (isinstance(b, (float, np.floating)) and float(b).is_integer()):
                raise ValueError(f"bits: must be integers, got {b!r}")
    arr = np.array([int(b) for b in raw], dtype=np.int64)
    if (arr < 1).any() or (arr > 64).any():
        raise ValueError(f"bits: must be between 1 and 64, got {arr.tolist()}")
    if len(np.unique(arr)) != len(arr):
        raise ValueError(f"bits: contains duplicates: {arr.tolist()}")
    if (np.diff(arr) <= 0).any():
        raise ValueError(f"bits: must be sorted ascending, got {arr.tolist()}")
    return arr


class DefaultNames(Sequence):
    """The default group names ``g0, g1, ..., g{n-1}``, made on demand (immutable).

    A sequence like the tuple it stands for (indexing, slicing, iteration, ``in``,
    ``index``, equality with tuples and lists), without building a million strings
    when nobody asks for them.
    """

    __slots__ = ("_n",)

    def __init__(self, n: int) -> None:
        object.__setattr__(self, "_n", int(n))

    def __setattr__(self, key, value) -> None:
        raise AttributeError("DefaultNames is immutable")

    def __reduce__(self):
        return DefaultNames, (self._n,)

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return tuple(f"g{j}" for j in range(*i.indices(self._n)))
        j = int(i)
        if j < 0:
            j += self._n
        if not 0 <= j < self._n:
            raise IndexError("group index out of range")
        return f"g{j}"

    def __iter__(self):
        return (f"g{j}" for j in range(self._n))

    def position(self, name) -> int | None:
        """Index of ``name`` (``"g<i>"``), or None."""
        if isinstance(name, str) and name[:1] == "g" and name[1:].isdigit() and (
                name[1:] == "0" or name[1] != "0"):
            j = int(name[1:])
            return j if j < self._n else None
        return None

    def __contains__(self, name) -> bool:
        return self.position(name) is not None

    def index(self, name, *args) -> int:
        j = self.position(name)
        if j is None:
            raise ValueError(f"{name!r} is not in names")
        return j

    def count(self, name) -> int:
        return int(self.position(name) is not None)

    def __eq__(self, other) -> bool:
        if isinstance(other, DefaultNames):
            return self._n == other._n
        if isinstance(other, (tuple, list)):
            return len(other) == self._n and all(a == b for a, b in zip(self, other))
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __add__(self, other):
        return tuple(self) + tuple(other)

    def __radd__(self, other):
        return tuple(other) + tuple(self)

    def __repr__(self) -> str:
        if self._n <= 6:
            return repr(tuple(self))
        return f"DefaultNames({self._n}: 'g0' ... 'g{self._n - 1}')"


def names_tuple(names, n: int) -> Sequence[str]:
    """Group names: ``n`` unique strings (default ``g0, g1, ...``, a :class:`DefaultNames`)."""
    if names is None:
        return DefaultNames(n)
    if isinstance(names, str):
        raise ValueError("names: must be a sequence of strings, got a single string")
    out = tuple(names)
    if len(out) != n:
        raise ValueError(f"names: has {len(out)} entries but there are {n} groups")
    for nm in out:
        if not isinstance(nm, str) or not nm:
            raise ValueError(f"names: every name must be a non-empty string, got {nm!r}")
    if len(set(out)) != n:
        dup = next(x for x in out if out.count(x) > 1)
        raise ValueError(f"names: duplicate group name {dup!r}")
    return out


def resolve_group(key, index: dict[str, int], n: int, arg: str) -> int:
    """Map a group name or integer index to its position."""
    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not 0 <= int(key) < n:
            raise ValueError(f"{arg}: group index {int(key)} out of range for {n} groups")
        return int(key)
    if isinstance(key, str):
        if key not in index:
            raise ValueError(f"{arg}: unknown group {key!r}")
        return index[key]
    raise ValueError(f"{arg}: a group is a name or an integer index, got {key!r}")


def _bit_value(c, arg: str) -> int:
    if isinstance(c, (bool, np.bool_)):
        raise ValueError(f"{arg}: a bitwidth must be an integer, got {c!r}")
    if isinstance(c, (int, np.integer)):
        return int(c)
    if isinstance(c, (float, np.floating)) and float(c).is_integer():
        return int(c)
    raise ValueError(f"{arg}: a bitwidth must be an integer, got {c!r}")


def allowed_mask(allowed, bits: np.ndarray, names: tuple[str, ...],
                 index: Mapping[str, int] | None = None) -> np.ndarray:
    """Boolean (N, K) mask of allowed options."""
    n = len(names)
    if allowed is None:  # every option: a read-only broadcast, no (N, K) array
        return np.broadcast_to(np.True_, (n, len(bits)))
    mask = np.ones((n, len(bits)), dtype=bool)
    if not isinstance(allowed, Mapping):
        raise ValueError("allowed: must map a group (name or index) to its allowed bitwidths")
    index = {nm: i for i, nm in enumerate(names)} if index is None else index
    seen: dict[int, object] = {}
    for key, choices in allowed.items():
        i = resolve_group(key, index, n, "allowed")
        if i in seen:
            raise ValueError(f"allowed: group {names[i]!r} is given twice "
                             f"(as {seen[i]!r} and {key!r})")
        seen[i] = key
        if isinstance(choices, (int, np.integer)) and not isinstance(choices, bool):
            choices = [choices]
        if isinstance(choices, (str, bytes, Mapping)) or not isinstance(choices, Iterable):
            raise ValueError(f"allowed[{key!r}]: must be a list of bitwidths, got {choices!r}")
        chosen = [_bit_value(c, f"allowed[{key!r}]") for c in choices]
        if not chosen:
            raise ValueError(f"allowed[{key!r}]: must list at least one bitwidth")
        unknown = sorted(set(chosen) - set(bits.tolist()))
        if unknown:
            raise ValueError(f"allowed[{key!r}]: bitwidths {unknown} are not among bits "
                             f"{bits.tolist()}")
        mask[i] = np.isin(bits, chosen)
    return mask


def tie_groups(ties, names: tuple[str, ...],
               index: Mapping[str, int] | None = None) -> tuple[tuple[int, ...], ...]:
    """Validated ties as tuples of group positions."""
    if ties is None:
        return ()
    if isinstance(ties, (str, Mapping)) or not isinstance(ties, Iterable):
        raise ValueError("ties: must be a list of lists of groups")
    index = {nm: i for i, nm in enumerate(names)} if index is None else index
    out = []
    for t, tie in enumerate(ties):
        if isinstance(tie, (str, Mapping)) or not isinstance(tie, Iterable):
            raise ValueError(f"ties[{t}]: must be a list of groups, got {tie!r}")
        out.append(tuple(resolve_group(g, index, len(names), f"ties[{t}]") for g in tie))
    return tuple(out)
