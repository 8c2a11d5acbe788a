"""The budget check on the hot path, against baselines measured in the same run.

Defines 10,000 budgets (developers, teams, repositories; a tenth of the teams
paused) and times, per call:

- baselines: three lookups in an empty dict, and `ModelPolicy.check` (the
  approved-model veto every request already pays);
- `BudgetGuard.check` when nothing is paused (the usual case), when other
  teams are paused, and when the request's own team is paused (the refusal,
  which builds its message);
- `BudgetGuard.charge` of a priced record against three budgets;
- `BudgetGuard.load` of the whole snapshot (what a budget change costs a replica).

Target: check ≤ 20 µs.  Run: `python bench/budget.py [--budgets 10000]`.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable

from gatehouse.ledger.budgets import Budget, BudgetExceeded
from gatehouse.ledger.guard import BudgetGuard
from gatehouse.ledger.usage import UsageRecord
from gatehouse.policy.models import ModelPolicy

USD = 1_000_000


def per_call(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Best-of-``repeat`` seconds per call (the minimum is the least noisy estimate)."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - started) / number)
    return best


def budgets(count: int) -> list[Budget]:
    out = []
    for n in range(count):
        scope = ("developer", "team", "repository")[n % 3]
        name = f"dev{n}@example.com" if scope == "developer" else f"{scope}-{n}"
        out.append(Budget(scope=scope, name=name, monthly_micros=100 * USD))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budgets", type=int, default=10_000)
    parser.add_argument("--number", type=int, default=200_000)
    args = parser.parse_args()
    n = args.number
    defined = budgets(args.budgets)
    now = time.time()

    guard = BudgetGuard()
    started = time.perf_counter()
    guard.load(defined, [], now)
    load_ms = (time.perf_counter() - started) * 1000

    empty: dict[str, object] = {}
    policy = ModelPolicy.parse("claude-sonnet-*,claude-haiku-*,claude-opus-4-*")
    developer, team, repository = "dev0@example.com", "team-1", "repository-2"
    rows = [
        ("3 lookups in an empty dict", lambda: (empty.get("a"), empty.get("b"), empty.get("c"))),
        ("ModelPolicy.check (3 globs)", lambda: policy.check("claude-sonnet-4-5")),
        ("check, nothing paused", lambda: guard.check(developer, team, repository, now)),
    ]
    results = [(label, per_call(fn, n)) for label, fn in rows]

    # Pause a tenth of the teams (not the one the request belongs to).
    teams = [b for b in defined if b.scope == "team" and b.name != team]
    for budget in teams[: len(teams) // 10]:
        guard.charge(UsageRecord(team=budget.name, cost_micros=200 * USD), now=now)
    results.append(
        (
            "check, other teams paused",
            per_call(lambda: guard.check(developer, team, repository, now), n),
        )
    )
    record = UsageRecord(
        developer=developer, team=team, repository=repository, cost_micros=1, ts=now
    )
    results.append(("charge, 3 budgets", per_call(lambda: guard.charge(record, now=now), n)))
    paused_team = teams[0].name

    def refused() -> None:
        with contextlib.suppress(BudgetExceeded):
            guard.check(developer, paused_team, repository, now)

    results.append(("check, own team paused (refusal)", per_call(refused, n // 10)))

    baseline = results[0][1]
    print(f"{args.budgets} budgets; snapshot load {load_ms:.1f} ms")
    print(f"{'':36} {'µs/call':>9} {'× baseline':>11}")
    for label, seconds in results:
        print(f"{label:36} {seconds * 1e6:9.3f} {seconds / baseline:11.1f}")
    check_us = max(
        s for label, s in results if label.startswith("check, ") and "refusal" not in label
    )
    verdict = "ok" if check_us * 1e6 <= 20 else "OVER"
    print(f"hot-path check: {check_us * 1e6:.3f} µs (target ≤ 20 µs): {verdict}")


if __name__ == "__main__":
    main()
