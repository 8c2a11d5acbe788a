"""`decide()` on the hot path: p50 and p99 per call, against baselines in the same run.

Builds a policy with 10,000 approved repositories carrying 1,000 path rules
between them, 20 approved model globs and kill switches for other teams, and
times single calls (so p99 is a real tail, not an average):

- baselines: `ModelPolicy.check` (the approved-model veto every request paid
  before the policy existed) and one dict lookup;
- `decide` for an approved repository (the usual case), an unknown one (the
  refusal builds its message), observe mode, and a thrown kill switch;
- `PolicySnapshot(...)`: what a policy change costs each replica.

Target: decide ≤ 20 µs p99.  Run: `python bench/decide.py [--repositories 10000]`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from gatehouse.identity.principal import Principal
from gatehouse.policy.decide import Allow, Deny, Observe, PolicySnapshot, RequestFacts, decide
from gatehouse.policy.document import KillSwitch, ModelList, PathRule, Policy, RepoRule
from gatehouse.policy.models import ModelPolicy

MODELS = (*(f"claude-family{n}-*" for n in range(19)), "claude-sonnet-*")


def timings(fn: Callable[[], object], number: int) -> tuple[float, float]:
    """p50 and p99 in microseconds over ``number`` single calls (after a warm-up)."""
    for _ in range(1000):
        fn()
    clock = time.perf_counter_ns
    samples = []
    for _ in range(number):
        started = clock()
        fn()
        samples.append(clock() - started)
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def policy(repositories: int, path_rules: int) -> Policy:
    rules_each = max(1, path_rules // max(1, repositories // 10))
    repos = {}
    for n in range(repositories):
        paths = (
            tuple(PathRule(f"secrets-{n}-{i}/**", "redact") for i in range(rules_each))
            if n % 10 == 0 and len(repos) * rules_each < path_rules * 10
            else ()
        )
        repos[f"github.com/acme/repo-{n}"] = RepoRule("internal", paths, "sec@acme.com")
    switches = tuple(KillSwitch(f"team:other-{n}", "drill") for n in range(20))
    return Policy(repositories=repos, models=ModelList(MODELS), killswitches=switches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repositories", type=int, default=10_000)
    parser.add_argument("--path-rules", type=int, default=1_000)
    parser.add_argument("--number", type=int, default=100_000)
    args = parser.parse_args()
    n = args.number
    doc = policy(args.repositories, args.path_rules)
    rules = sum(len(r.paths) for r in doc.repositories.values())
    started = time.perf_counter()
    snapshot = PolicySnapshot(doc, env_models=("claude-*",))
    build_ms = (time.perf_counter() - started) * 1000
    observe = PolicySnapshot(doc, force_observe=True)
    stopped = PolicySnapshot(doc.replace(killswitches=(KillSwitch("team:payments", "leak"),)))
    ada = Principal("ada@acme.com", team="payments")
    allowed = RequestFacts(
        "ada@acme.com", "payments", "github.com/acme/repo-4242", "header", ("claude-sonnet-4-6",)
    )
    unknown = RequestFacts(
        "ada@acme.com", "payments", "github.com/acme/elsewhere", "header", ("claude-sonnet-4-6",)
    )
    assert isinstance(decide(ada, allowed, snapshot), Allow)
    assert isinstance(decide(ada, unknown, snapshot), Deny)
    assert isinstance(decide(ada, unknown, observe), Observe)
    assert isinstance(decide(ada, allowed, stopped), Deny)
    models = ModelPolicy(MODELS)
    lookup = {f"github.com/acme/repo-{i}": i for i in range(args.repositories)}

    rows = [
        (
            "baseline: ModelPolicy.check (20 globs)",
            timings(lambda: models.check("claude-sonnet-4-6"), n),
        ),
        ("baseline: one dict lookup", timings(lambda: lookup.get("github.com/acme/repo-4242"), n)),
        ("decide: approved repository", timings(lambda: decide(ada, allowed, snapshot), n)),
        ("decide: unknown repository (deny)", timings(lambda: decide(ada, unknown, snapshot), n)),
        ("decide: observe mode (would deny)", timings(lambda: decide(ada, unknown, observe), n)),
        ("decide: team kill switch", timings(lambda: decide(ada, allowed, stopped), n)),
    ]
    print(
        f"{args.repositories:,} repositories, {rules:,} path rules, {len(MODELS)} model globs, "
        f"{len(doc.killswitches)} kill switches; snapshot built in {build_ms:.1f} ms"
    )
    base = rows[0][1][0]
    print(f"{'':40} {'p50 µs':>8} {'p99 µs':>8} {'p50 ×base':>10}")
    for name, (p50, p99) in rows:
        print(f"{name:40} {p50:8.2f} {p99:8.2f} {p50 / base:10.2f}")
    worst = max(p99 for name, (_, p99) in rows if name.startswith("decide"))
    print(
        f"decide p99 worst case {worst:.2f} µs (target ≤ 20 µs): {'ok' if worst <= 20 else 'OVER'}"
    )


if __name__ == "__main__":
    main()
