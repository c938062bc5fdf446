"""`make profile`: flame graphs of the stack's hot paths, recorded with py-spy under load.

Starts the benchmark's throwaway stack (tracing off, as `make bench` measures it), then:

- the cached product read: wrk through NGINX, py-spy recording both core instances;
- the paid checkout: the benchmark's customers (order, then pay with `Prefer: wait`) through
  NGINX, py-spy recording a core instance and the payments worker.

Writes one SVG per process and path, and a README with the commands and what each process
spent, to docs/perf/ (PROFILE_OUT elsewhere), then tears everything down.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from devstack import ROOT, down, program_pids, up
from devstack.scratch import remove_scratch
from scripts.bench import (
    CHECKOUT_CONCURRENCY,
    CONNECTIONS,
    THREADS,
    checkouts,
    cpu_seconds,
    seed_products,
    throwaway_stack,
    wait_for,
    wrk,
)

SECONDS = int(os.environ.get("PROFILE_SECONDS", "20"))
RATE = int(os.environ.get("PROFILE_RATE", "250"))
OUT = Path(os.environ.get("PROFILE_OUT", ROOT / "docs" / "perf"))


def py_spy() -> str:
    """The py-spy binary of this environment (a dev dependency)."""
    found = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if found is None:
        raise SystemExit("py-spy is not installed: `make deps` installs it")
    return found


def record(path: str, pids: dict[str, int], seconds: int) -> list[subprocess.Popen[bytes]]:
    """py-spy recording each process for `seconds`, into OUT/<path>-<process>.svg."""
    return [
        subprocess.Popen(
            [
                py_spy(),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(RATE),
                "--duration",
                str(seconds),
                "--format",
                "flamegraph",
                "--output",
                str(OUT / f"{path}-{name}.svg"),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]


def profiled(path: str, pids: dict[str, int], load: Callable[[], object]) -> dict[str, float]:
    """Run `load()` while py-spy records `pids`; CPU seconds each process spent meanwhile."""
    before = {name: cpu_seconds([pid]) for name, pid in pids.items()}
    recorders = record(path, pids, SECONDS)
    time.sleep(1)  # py-spy attaches
    load()
    for recorder in recorders:
        recorder.wait(timeout=SECONDS + 30)
    return {name: cpu_seconds([pid]) - before[name] for name, pid in pids.items()}


def main() -> None:
    """Profile the read and the checkout, and write the flame graphs and their README."""
    OUT.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    core = throwaway_stack(run, ROOT / "var" / "profile", ai_instances=0, gateway_instances=0)
    lines: list[str] = []
    try:
        up(core)
        products = asyncio.run(seed_products(core, CHECKOUT_CONCURRENCY))
        product_url = f"http://127.0.0.1:{core.nginx_port}/api/products/{products[0]}"
        wait_for(product_url)
        wrk("warm-up", product_url, seconds=2)
        pids = program_pids(core)
        cores = {name: pid for name, pid in pids.items() if name.startswith("core")}
        reads: list[float] = []
        spent = profiled(
            "read",
            cores,
            lambda: reads.append(wrk("read", product_url, seconds=SECONDS - 2).rps),
        )
        per_read = sum(spent.values()) / (reads[0] * (SECONDS - 2)) * 1e6
        lines += [
            "## Cached product read",
            "",
            f"`wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS - 2}s {product_url}` through NGINX: "
            f"{reads[0]:.0f} reads/s, {per_read:.0f} µs of core CPU per read (both instances).",
            "",
            *(f"- [{name}](read-{name}.svg)" for name in cores),
            "",
        ]
        base = f"http://127.0.0.1:{core.nginx_port}"
        asyncio.run(checkouts(base, products, 2, CHECKOUT_CONCURRENCY))  # warm-up
        paid = []
        spent = profiled(
            "checkout",
            {name: pids[name] for name in ("core-1", "payments-1", "core-2")},
            lambda: paid.append(
                asyncio.run(checkouts(base, products, SECONDS - 2, CHECKOUT_CONCURRENCY))
            ),
        )
        count = paid[0].rps * (SECONDS - 2)
        lines += [
            "## Paid checkout",
            "",
            f"{CHECKOUT_CONCURRENCY} customers ordering and paying with `Prefer: wait=30` through "
            f"NGINX for {SECONDS - 2} s: {paid[0].rps:.0f} paid checkouts/s; CPU per checkout: "
            + ", ".join(f"{name} {seconds / count * 1e3:.1f} ms" for name, seconds in spent.items())
            + ".",
            "",
            *(f"- [{name}](checkout-{name}.svg)" for name in spent),
            "",
        ]
    finally:
        down(core)
        remove_scratch(core)
    header = [
        "# Flame graphs",
        "",
        f"Made by `make profile` (`python -m scripts.profile`): py-spy {RATE} samples/s "
        f"(`py-spy record --pid PID --rate {RATE} --nonblocking --format flamegraph`) "
        f"on the benchmark's stack, tracing off, {os.cpu_count()} cores, load generator "
        "beside it. Open an SVG in a browser to zoom.",
        "",
    ]
    (OUT / "README.md").write_text("\n".join(header + lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
