"""Shared hypothesis strategies and instance builders for the core tests."""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st
from scipy.optimize import linprog

import bitalloc as ba
from bitalloc.kernels.lagrange import one_hot_matrices

MAX_COMBOS = 60_000


def layer_problem(n: int, seed: int, kinds=("avg",), bits=(2, 3, 4, 6, 8)) -> ba.Problem:
    rng = np.random.default_rng(seed)
    sizes = np.rint(rng.uniform(1e3, 2e5, n))
    macs = sizes * rng.integers(10, 3000, n)
    trace = rng.lognormal(0.0, 1.5, n)
    cons = {"avg": ba.AverageBits(4.0), "bops": ba.BOPsBudget(float(4.0 * 8 * macs.sum())),
            "mem": ba.MemoryBudget(float(4.2 * sizes.sum() / 8))}
    return ba.Problem.from_sensitivities(trace * sizes, sizes, bits=bits, noise="exp", macs=macs,
                                         constraints=[cons[k] for k in kinds])


def hlp_value(cp) -> float:
    """The one-hot LP relaxation's optimum from HiGHS (the reference)."""
    _, _, c, a_eq, a_ub = one_hot_matrices(cp)
    res = linprog(c, A_ub=a_ub, b_ub=cp.limits + cp.tol, A_eq=a_eq, b_eq=np.ones(cp.n),
                  bounds=(0, 1), method="highs")
    assert res.status == 0
    return float(res.fun)


@st.composite
def tables(draw):
    """Random (errors, costs) tables with disallowed options, ties in cost, collinear points."""
    m, k = draw(st.integers(1, 30)), draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "convex", "integers"]))
    if kind == "convex":
        cost = np.cumsum(rng.uniform(0.1, 2, (m, k)), axis=1)
        err = np.cumsum(rng.uniform(0, 1, (m, k))[:, ::-1], axis=1)[:, ::-1] ** 2
    elif kind == "integers":  # many exact ties and collinear points
        cost = rng.integers(0, 4, (m, k)).astype(float)
        err = rng.integers(0, 4, (m, k)).astype(float)
    else:
        cost = rng.normal(0, 1, (m, k))
        err = rng.random((m, k))
    allowed = rng.random((m, k)) < 0.8
    allowed[np.arange(m), rng.integers(0, k, m)] = True
    return np.where(allowed, err, np.inf), cost


@st.composite
def small_problems(draw):
    n, k = draw(st.integers(1, 6)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bits = sorted(rng.choice(np.arange(2, 9), k, replace=False).tolist())
    sizes = rng.integers(1, 50, n).astype(float)
    macs = rng.integers(1, 100, n).astype(float)
    if draw(st.booleans()):
        errors = np.outer(rng.lognormal(0, 2, n), ba.phi(bits, "exp"))
    else:
        errors = rng.random((n, k))
    allowed = {i: sorted(rng.choice(bits, rng.integers(1, k + 1), replace=False).tolist())
               for i in range(n) if rng.random() < 0.2}
    ties = [[0, n - 1]] if n > 2 and rng.random() < 0.3 else None
    if ties and not set(allowed.get(0, bits)) & set(allowed.get(n - 1, bits)):
        allowed[n - 1] = allowed.get(0, bits)  # tied groups need a common allowed bitwidth
    frac = draw(st.sampled_from([0.2, 0.5, 0.8]))
    cons = [ba.AverageBits(bits[0] + frac * (bits[-1] - bits[0]))]
    if draw(st.booleans()):
        cons.append(ba.BOPsBudget(float(macs.sum() * 8 * (bits[0] + 0.6 * (bits[-1] - bits[0])))))
    return ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, allowed=allowed,
                      ties=ties, constraints=cons)


@st.composite
def instances(draw) -> ba.Problem:
    k = draw(st.integers(2, 5))
    n_max = min(8, int(np.log(MAX_COMBOS) / np.log(k)))
    n = draw(st.sampled_from(sorted({1, 2, 3, 4, 5, 6, 7, 8, n_max - 1, n_max} & set(
        range(1, n_max + 1)))))
    bits = sorted(draw(st.lists(st.integers(1, 8), min_size=k, max_size=k, unique=True)))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 1000, n).astype(float)
    macs = rng.integers(0, 10**6, n).astype(float)
    act_bits = rng.choice([4, 8, 16], n).astype(float)
    if draw(st.booleans()):
        sens = rng.lognormal(0, 2, n) * (rng.random(n) > 0.1)  # some zero sensitivities
        errors = np.outer(sens, ba.phi(bits, draw(st.sampled_from(["uniform", "exp"]))))
    else:  # measured tables: arbitrary, not necessarily monotone in bits
        errors = rng.random((n, k)) * rng.choice([0.0, 1.0, 10.0], (n, 1))
    allowed = {}
    for i in range(n):
        if rng.random() < 0.2:
            allowed[i] = sorted(rng.choice(bits, rng.integers(1, k + 1), replace=False).tolist())
    ties = []
    if n >= 2 and rng.random() < 0.4:
        for _ in range(rng.integers(1, 3)):
            ties.append(rng.choice(n, rng.integers(2, min(n, 3) + 1), replace=False).tolist())
    kinds = draw(st.lists(st.sampled_from(["avg", "mem", "bops", "lin"]), min_size=1,
                          max_size=3, unique=True))
    if len(kinds) > 1 and "lin" in kinds and rng.random() < 0.5:
        kinds.remove("lin")  # random linear tables make joint infeasibility common
    base = ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, act_bits=act_bits,
                      allowed=allowed)
    cons = [limit_constraint(kind, base, rng, draw) for kind in kinds]
    return ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, act_bits=act_bits,
                      allowed=allowed, ties=ties, names=[f"layer{i}" for i in range(n)],
                      constraints=cons)


def limit_constraint(kind: str, base: ba.Problem, rng, draw) -> ba.Constraint:
    """A constraint whose limit lies from below its minimum to above its maximum."""
    frac = draw(st.sampled_from([0.0, 0.1, 0.3, 0.5, 0.5, 0.7, 1.0, 1.2, -0.2]))
    if kind == "lin":
        costs = rng.normal(1.0, 1.0, base.errors.shape) * rng.choice([1.0, 100.0])
        probe = ba.LinearBudget(costs, 1.0, name="latency")
    else:
        probe = {"avg": ba.AverageBits(1.0), "mem": ba.MemoryBudget(1.0),
                 "bops": ba.BOPsBudget(1.0)}[kind]
    table = np.where(base.allowed, probe.cost_table(base), np.nan)
    lo, hi = np.nanmin(table, axis=1).sum(), np.nanmax(table, axis=1).sum()
    limit = lo + frac * (hi - lo) + abs(rng.normal(0, 0.01)) * (hi - lo)
    if kind == "lin":
        return ba.LinearBudget(costs, limit, name="latency")
    limit = max(limit, 1e-3)
    return {"avg": ba.AverageBits, "mem": ba.MemoryBudget, "bops": ba.BOPsBudget}[kind](limit)


@st.composite
def scaled_instances(draw) -> ba.Problem:
    """Small instances whose errors and LinearBudget costs are scaled log-uniformly
    between 1e-9 and 1e12 (natural units: seconds, joules, ...), often with AverageBits."""
    n, k = draw(st.integers(1, 6)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bits = sorted(rng.choice(np.arange(2, 9), k, replace=False).tolist())
    sizes = rng.integers(1, 1000, n).astype(float)
    e_unit = 10.0 ** draw(st.floats(-9, 12))
    c_unit = 10.0 ** draw(st.floats(-9, 12))
    if draw(st.booleans()):
        errors = np.outer(rng.lognormal(0, 2, n), ba.phi(bits)) * e_unit
    else:
        errors = rng.random((n, k)) * e_unit
    if draw(st.booleans()):  # latency-like: grows with bits
        costs = np.outer(sizes, bits) * rng.uniform(0.5, 1.5, (n, 1)) * c_unit
    else:
        costs = rng.random((n, k)) * c_unit
    frac = draw(st.sampled_from([-0.1, 0.0, 0.3, 0.6, 1.0]))
    lo, hi = costs.min(axis=1).sum(), costs.max(axis=1).sum()
    cons = [ba.LinearBudget(costs, float(lo + frac * (hi - lo)), name="latency")]
    if draw(st.booleans()):
        cons.append(ba.AverageBits(bits[0] + draw(st.sampled_from([0.3, 0.7])) *
                                   (bits[-1] - bits[0])))
    return ba.Problem(errors=errors, sizes=sizes, bits=bits, constraints=cons)


@st.composite
def rank_one_instances(draw) -> ba.Problem:
    """Small instances with only rank-one budgets (AverageBits, MemoryBudget, BOPsBudget),
    often scoped with ``groups=``, sizes, MACs and errors each in a unit drawn
    log-uniformly between 1e-9 and 1e12; sometimes ``allowed`` and ties."""
    n, k = draw(st.integers(1, 7)), draw(st.integers(2, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    bits = sorted(rng.choice(np.arange(1, 9), k, replace=False).tolist())
    sizes = rng.integers(1, 1000, n) * 10.0 ** draw(st.floats(-9, 12))
    macs = rng.integers(0, 1000, n) * 10.0 ** draw(st.floats(-9, 12))
    act_bits = rng.choice([4.0, 8.0], n)
    e_unit = 10.0 ** draw(st.floats(-9, 12))
    if draw(st.booleans()):
        errors = np.outer(rng.lognormal(0, 2, n), ba.phi(bits)) * e_unit
    else:
        errors = rng.random((n, k)) * e_unit
    allowed = {i: sorted(rng.choice(bits, rng.integers(1, k + 1), replace=False).tolist())
               for i in range(n) if rng.random() < 0.15}
    ties = [[0, n - 1]] if n > 2 and rng.random() < 0.25 else None
    base = ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, act_bits=act_bits,
                      allowed=allowed)
    cons = []
    kinds = draw(st.lists(st.sampled_from(["avg", "mem", "bops"]), min_size=1, max_size=3,
                          unique=True))
    for kind in kinds:
        groups = None
        if n > 1 and draw(st.booleans()):
            groups = sorted(rng.choice(n, rng.integers(1, n + 1), replace=False).tolist())
        cls = {"avg": ba.AverageBits, "mem": ba.MemoryBudget, "bops": ba.BOPsBudget}[kind]
        probe = cls(1.0, groups=groups)
        table = np.where(base.allowed, probe.cost_table(base), np.nan)
        scope = np.zeros(n, dtype=bool)
        scope[probe.scope(base) if groups is not None else slice(None)] = True
        lo = np.nanmin(table, axis=1)[scope].sum()
        hi = np.nanmax(table, axis=1)[scope].sum()
        frac = draw(st.sampled_from([0.1, 0.4, 0.7, 1.1]))
        limit = max(lo + frac * (hi - lo) + rng.uniform(0, 0.01) * (hi - lo), 1e-300)
        cons.append(cls(float(limit), groups=groups))
    return ba.Problem(errors=errors, sizes=sizes, bits=bits, macs=macs, act_bits=act_bits,
                      allowed=allowed, ties=ties, constraints=cons)
