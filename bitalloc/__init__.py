"""bitalloc: mixed-precision bitwidth allocation with proven bounds.

Minimise the total quantization error of a network's groups (layers, channels,
blocks) subject to hard budgets (average bits, memory, BOPs, any linear cost),
following QBitOpt (Peters et al., 2023). Every answer is feasible and carries a
proven lower bound on the optimum.

Example:
    >>> import bitalloc as ba
    >>> p = ba.Problem.from_sensitivities([4.0, 0.5, 1.0], [1000, 4000, 2000],
    ...                                   constraints=[ba.AverageBits(4.0)])
    >>> res = ba.solve(p, method="greedy")
    >>> res.usage["average_bits"][0] <= 4.0
    True
"""

from .constraints import AverageBits, BOPsBudget, Constraint, LinearBudget, MemoryBudget
from .errors import InfeasibleError, MissingDependencyError
from .noise import phi
from .pareto import Frontier, pareto
from .problem import Problem
from .result import Result
from .solve import solve
from .solvers import SOLVERS

__version__ = "0.1.0"

__all__ = [
    "Problem", "solve", "Result", "Constraint", "AverageBits", "MemoryBudget", "BOPsBudget",
    "LinearBudget", "InfeasibleError", "MissingDependencyError", "phi", "SOLVERS", "pareto",
    "Frontier",
]
