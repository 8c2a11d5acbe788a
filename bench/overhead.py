"""What Gatehouse adds on the wire: time to first byte, throughput and memory.

Starts `gatehouse sim` and `gatehouse serve` (pointed at it) as child
processes, then measures Claude Code–shaped streaming requests (50–150 KB
bodies) through Gatehouse and directly to the simulator, interleaved in one
run so both see the same machine:

1. one at a time: added time to first byte, p50 / p99;
2. open loop at a steady rate (100 requests/s to each target): added TTFB;
3. closed loop, 16 in flight: streaming requests/s through one process;
4. memory: gateway RSS after 10k and after 100k requests (--soak), and while
   1,000 streams are open at once (--streams; the simulator holds each open).

On a machine with two or more cores the gateway is pinned to its own core and
the load generator and simulator share another, as they would be separate
machines in production; both paths see the same client and upstream
(`--no-pin` to let the scheduler place them).

Run: `python bench/overhead.py` (about 5 minutes), `--quick` for a smoke run.
Prints the figures and their ratios; writes bench/results/overhead.json.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
import psutil
import uvloop

from gatehouse.cli.processes import free_port, wait_for_port
from gatehouse.sim.traffic import claude_code_body, claude_code_headers

REPOSITORY = "github.com/acme/payments-service"

RESULTS = Path(__file__).parent / "results"


@contextlib.contextmanager
def child(
    args: list[str], env: dict[str, str], port: int, cpu: int | None
) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "gatehouse", *args, "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=None if cpu is None else (lambda: os.sched_setaffinity(0, {cpu})),
    )
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def make_bodies(count: int = 24) -> list[tuple[bytes, str]]:
    out = []
    for n in range(count):
        session = str(uuid.UUID(int=n + 1))
        size = 50_000 + (100_000 * n) // max(count - 1, 1)
        turns = 2 + n % 6
        body = claude_code_body(session, turns=turns, size=size, seed=n)
        out.append((orjson.dumps(body), session))
    return out


class Target:
    def __init__(self, name: str, url: str, key: str) -> None:
        self.name = name
        self.url = url + "/v1/messages?beta=true"
        self.key = key


async def one(http: aiohttp.ClientSession, target: Target, body: bytes, session: str) -> float:
    """Send one streaming request; return time to first body byte (s), read to the end."""
    headers = claude_code_headers(session, target.key, repo=REPOSITORY)
    start = time.perf_counter()
    async with http.post(target.url, data=body, headers=headers) as response:
        first = await response.content.readany()
        ttfb = time.perf_counter() - start
        if response.status != 200:
            raise RuntimeError(f"{target.name}: HTTP {response.status}: {first[:200]!r}")
        while await response.content.readany():
            pass
    return ttfb


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summary(direct: list[float], gateway: list[float]) -> dict[str, float]:
    ms = 1000.0
    return {
        "direct_p50_ms": pct(direct, 0.5) * ms,
        "direct_p99_ms": pct(direct, 0.99) * ms,
        "gateway_p50_ms": pct(gateway, 0.5) * ms,
        "gateway_p99_ms": pct(gateway, 0.99) * ms,
        "added_p50_ms": (pct(gateway, 0.5) - pct(direct, 0.5)) * ms,
        "added_p99_ms": (pct(gateway, 0.99) - pct(direct, 0.99)) * ms,
        "samples": float(min(len(direct), len(gateway))),
    }


async def sequential(http, direct, gateway, bodies, n: int) -> dict[str, float]:  # type: ignore[no-untyped-def]
    d: list[float] = []
    g: list[float] = []
    for i in range(n):
        body, session = bodies[i % len(bodies)]
        pair = [(direct, d), (gateway, g)]
        if i % 2:
            pair.reverse()
        for target, sink in pair:
            sink.append(await one(http, target, body, session))
    return summary(d, g)


async def open_loop(http, direct, gateway, bodies, rate: float, seconds: float) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """Send at a fixed schedule, whatever the responses do (no coordinated omission)."""
    d: list[float] = []
    g: list[float] = []
    tasks = []
    interval = 1.0 / (2 * rate)
    start = time.perf_counter()
    total = int(rate * seconds) * 2
    for i in range(total):
        due = start + i * interval
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        body, session = bodies[i % len(bodies)]
        target, sink = (direct, d) if i % 2 == 0 else (gateway, g)

        async def run(target=target, sink=sink, body=body, session=session) -> None:  # type: ignore[no-untyped-def]
            sink.append(await one(http, target, body, session))

        tasks.append(asyncio.ensure_future(run()))
    await asyncio.gather(*tasks)
    return summary(d, g)


async def closed_loop(http, target, bodies, concurrency: int, seconds: float) -> float:  # type: ignore[no-untyped-def]
    done = 0
    stop_at = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = w
        while time.perf_counter() < stop_at:
            body, session = bodies[i % len(bodies)]
            await one(http, target, body, session)
            done += 1
            i += concurrency

    started = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.perf_counter() - started)


async def soak(http, target, bodies, total: int, concurrency: int = 16) -> None:  # type: ignore[no-untyped-def]
    counter = iter(range(total))

    async def worker() -> None:
        for i in counter:
            body, session = bodies[i % len(bodies)]
            await one(http, target, body, session)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def open_streams(http, target, bodies, count: int, proc: psutil.Process) -> float:  # type: ignore[no-untyped-def]
    """Hold ``count`` streams open at once (the simulator stalls after message_start);
    return the gateway's RSS in MB while they are all open."""
    headers = dict(claude_code_headers("streams", target.key, repo=REPOSITORY))
    headers["x-sim-fault"] = "stall,ms=4000"
    opened = 0
    all_open = asyncio.Event()

    async def stream(i: int) -> None:
        nonlocal opened
        body, _ = bodies[i % len(bodies)]
        async with http.post(target.url, data=body, headers=headers) as response:
            await response.content.readany()
            opened += 1
            if opened == count:
                all_open.set()
            while await response.content.readany():
                pass

    tasks = [asyncio.ensure_future(stream(i)) for i in range(count)]
    await asyncio.wait_for(all_open.wait(), 60)
    rss = proc.memory_info().rss / 2**20
    await asyncio.gather(*tasks)
    return rss


def cli(env: dict[str, str], *args: str) -> bytes:
    return subprocess.run(
        [sys.executable, "-m", "gatehouse", *args],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def enable_every_surface(env: dict[str, str], tmp: str) -> None:
    """Policy in enforce mode with the bench's repository approved under path rules, and a
    budget for the bench's developer: every request is decided, screened and charged."""
    rules = Path(tmp) / "paths.yaml"
    rules.write_text(
        "- {glob: 'secrets/**', action: redact, name: secrets}\n"
        "- {glob: '**/*.pem', action: block, name: private keys}\n"
        "- {glob: '**/.env*', action: redact, name: dotenv}\n"
    )
    cli(env, "repos", "approve", REPOSITORY, "--classification", "internal",
        "--paths-file", str(rules), "--reason", "bench")  # fmt: skip
    cli(env, "budget", "set", "--developer", "bench@example.com", "--monthly", "1000000")


def create_key(env: dict[str, str]) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gatehouse",
            "keys",
            "create",
            "--user",
            "bench@example.com",
            "--json",
        ],
        env=env,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return str(orjson.loads(out)["key"])


async def measure(
    args: argparse.Namespace, sim_url: str, gw_url: str, key: str, gw_proc: psutil.Process
) -> dict[str, object]:
    bodies = make_bodies()
    direct = Target("direct", sim_url, "unused")
    gateway = Target("gateway", gw_url, key)
    connector = aiohttp.TCPConnector(limit=0)
    results: dict[str, object] = {}
    async with aiohttp.ClientSession(
        connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=120)
    ) as http:
        await sequential(http, direct, gateway, bodies, 50)  # warm up both paths
        results["one_at_a_time"] = await sequential(http, direct, gateway, bodies, args.sequential)
        _report("one at a time", results["one_at_a_time"], 1.0, 3.0)
        results["open_loop"] = await open_loop(
            http, direct, gateway, bodies, args.rate, args.open_seconds
        )
        _report(f"open loop, {args.rate:g} req/s each", results["open_loop"], 2.0, 10.0)
        direct_rps = await closed_loop(http, direct, bodies, 16, args.closed_seconds)
        gateway_rps = await closed_loop(http, gateway, bodies, 16, args.closed_seconds)
        results["closed_loop"] = {
            "direct_rps": direct_rps,
            "gateway_rps": gateway_rps,
            "ratio": gateway_rps / direct_rps,
        }
        print(
            f"\nclosed loop, 16 in flight: gateway {gateway_rps:.0f} req/s, "
            f"direct {direct_rps:.0f} req/s (ratio {gateway_rps / direct_rps:.2f}; "
            f"target ≥ 500 req/s through Gatehouse)"
        )
        if args.streams:
            idle = gw_proc.memory_info().rss / 2**20
            small = [(orjson.dumps(claude_code_body("s", size=10_000)), "s")]
            rss = await open_streams(http, gateway, small, args.streams, gw_proc)
            results["concurrent_streams"] = {
                "streams": args.streams,
                "body_bytes": 10_000,
                "rss_idle_mb": idle,
                "rss_open_mb": rss,
            }
            print(
                f"\nmemory: RSS {rss:.1f} MB with {args.streams:,} streams open at once "
                f"(10 KB bodies; {idle:.1f} MB before; target ≤ 150 MB)"
            )
        if args.soak:
            first = args.soak // 10
            await soak(http, gateway, bodies, first)
            rss_10 = gw_proc.memory_info().rss
            await soak(http, gateway, bodies, args.soak - first)
            rss_100 = gw_proc.memory_info().rss
            results["memory"] = {
                "requests_first": first,
                "rss_first_mb": rss_10 / 2**20,
                "requests_total": args.soak,
                "rss_total_mb": rss_100 / 2**20,
                "growth_ratio": rss_100 / rss_10,
            }
            print(
                f"\nmemory: RSS {rss_10 / 2**20:.1f} MB after {first:,} requests, "
                f"{rss_100 / 2**20:.1f} MB after {args.soak:,} "
                f"(ratio {rss_100 / rss_10:.3f}; target ≤ 1.10)"
            )
    return results


def _report(title: str, s: object, p50_target: float, p99_target: float) -> None:
    assert isinstance(s, dict)
    print(f"\n{title} ({int(s['samples'])} requests each way)")
    print(f"  direct : p50 {s['direct_p50_ms']:7.2f} ms   p99 {s['direct_p99_ms']:7.2f} ms")
    print(f"  gateway: p50 {s['gateway_p50_ms']:7.2f} ms   p99 {s['gateway_p99_ms']:7.2f} ms")
    print(
        f"  added  : p50 {s['added_p50_ms']:+7.2f} ms   p99 {s['added_p99_ms']:+7.2f} ms"
        f"   (target p50 ≤ {p50_target:g}, p99 ≤ {p99_target:g};"
        f" ratio p50 {s['gateway_p50_ms'] / s['direct_p50_ms']:.2f}×)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts, for a smoke run")
    parser.add_argument("--sequential", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--open-seconds", type=float, default=20.0)
    parser.add_argument("--closed-seconds", type=float, default=15.0)
    parser.add_argument("--soak", type=int, default=100_000, help="0 to skip the memory soak")
    parser.add_argument("--streams", type=int, default=1000, help="0 to skip open streams")
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    args = parser.parse_args()
    pin = not args.no_pin and len(os.sched_getaffinity(0)) >= 2
    client_cpu, gateway_cpu = (0, 1) if pin else (None, None)
    if client_cpu is not None:
        os.sched_setaffinity(0, {client_cpu})
    if args.quick:
        args.sequential, args.open_seconds, args.closed_seconds, args.soak = 100, 3.0, 3.0, 2000
        args.streams = 200

    with tempfile.TemporaryDirectory(prefix="gatehouse-bench-") as tmp:
        env = {**os.environ, "GATEHOUSE_DATA_DIR": tmp, "GATEHOUSE_SECRET_KEY": "bench"}
        sim_port, gw_port = free_port(), free_port()
        sim_url = f"http://127.0.0.1:{sim_port}"
        env["GATEHOUSE_UPSTREAM_URL"] = sim_url
        env["GATEHOUSE_POLICY_MODE"] = "enforce"
        key = create_key(env)
        enable_every_surface(env, tmp)
        with (
            child(["sim"], env, sim_port, client_cpu),
            child(["serve"], env, gw_port, gateway_cpu) as gw,
        ):
            results = uvloop.run(
                measure(args, sim_url, f"http://127.0.0.1:{gw_port}", key, psutil.Process(gw.pid))
            )
    results["machine"] = {
        "cpus": os.cpu_count(),
        "python": sys.version.split()[0],
        "pinned": pin,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "overhead.json").write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2))


if __name__ == "__main__":
    main()
