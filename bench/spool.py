"""How long a usage record waits for its group fsync in the durable spool.

Appends records from concurrent coroutines at a steady rate and prints the
wait percentiles for each ``sync_interval``: 0 (the default: fsync as soon as
the previous one finishes) against a 2 ms gathering window, in the same run.
Run: `python bench/spool.py [--rate 2000] [--count 4000]`.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from gatehouse.store.spool import Spool


async def run(directory: Path, sync_interval: float, rate: float, count: int) -> list[float]:
    spool = Spool(directory, sync_interval=sync_interval)
    await spool.open()
    waits: list[float] = []
    pad = "x" * 600  # about the size of a usage record

    async def append(n: int) -> None:
        started = time.perf_counter()
        await spool.append({"kind": "bench", "n": n, "pad": pad})
        waits.append(time.perf_counter() - started)

    tasks = []
    started = time.perf_counter()
    for n in range(count):
        tasks.append(asyncio.create_task(append(n)))
        await asyncio.sleep(max(0.0, started + n / rate - time.perf_counter()))
    await asyncio.gather(*tasks)
    await spool.close()
    return sorted(waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--count", type=int, default=4000)
    args = parser.parse_args()
    for interval in (0.0, 0.002):
        with tempfile.TemporaryDirectory() as tmp:
            waits = asyncio.run(run(Path(tmp), interval, args.rate, args.count))
        p50, p99 = waits[len(waits) // 2], waits[int(len(waits) * 0.99)]
        print(
            f"sync_interval {interval * 1000:.0f} ms: {args.count} appends at {args.rate:.0f}/s, "
            f"wait p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
        )


if __name__ == "__main__":
    main()
