"""Kernels shared by the solvers: hulls, LP and dual bounds, feasibility, fill/repair moves.

Everything here works on the compiled form (:class:`bitalloc.compiled.Compiled`)
and imports only the model layer.
"""

from .bounds import dual_bound, lp_relaxation
from .dual import DualResult, maximize_dual
from .feasibility import cheapest_choice, find_feasible, normalised_cost
from .fill import exchange, fill, repair
from .hull import Hulls, lower_hulls, row_count
from .lagrange import joint_infeasible, lagrangian_eval, lagrangian_value, one_hot_matrices, priced
from .lp import SingleLP, lp_solution, single_lp, weighted_select

__all__ = ["dual_bound", "lp_relaxation", "DualResult", "maximize_dual", "cheapest_choice",
           "find_feasible", "normalised_cost", "exchange", "fill", "repair", "Hulls",
           "lower_hulls", "row_count", "joint_infeasible", "lagrangian_eval", "lagrangian_value",
           "one_hot_matrices", "priced", "SingleLP", "lp_solution", "single_lp",
           "weighted_select"]
