"""`make profile`: flame graphs of the stack's hot paths, recorded with py-spy under load.

Starts the benchmark's throwaway stack (tracing off, as `make bench` measures it), then:

- the cached product read: wrk through NGINX, py-spy recording both core instances;
- the same read straight at one core instance, and the bare aiohttp hello of `make bench` straight
  at one of its instances: what the read costs beyond aiohttp's own request cycle;
- the paid checkout: the benchmark's customers (order, then pay with `Prefer: wait`) through
  NGINX, py-spy recording both core instances and the payments worker, and the CPU that
  PostgreSQL, RabbitMQ, NGINX and the load generator spend per checkout beside them.

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
    hello_stack,
    start_hello,
    throwaway_stack,
    wait_for,
    wrk,
)
from scripts.checkouts import seed_products

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


def profiled(
    path: str,
    pids: dict[str, int],
    load: Callable[[], object],
    beside: dict[str, list[int]] | None = None,
) -> dict[str, float]:
    """Run `load()` while py-spy records `pids`; CPU seconds each process spent meanwhile, and
    each group of processes `beside` (those of a group that ran throughout)."""

    def recorded() -> None:
        recorders = record(path, pids, SECONDS)
        time.sleep(1)  # py-spy attaches
        load()
        for recorder in recorders:
            recorder.wait(timeout=SECONDS + 30)

    return cpu_spent({name: [pid] for name, pid in pids.items()} | (beside or {}), recorded)


# The programs beside the services, by their process names: every process of each (PostgreSQL's
# backends and workers, RabbitMQ's Erlang VM, NGINX's master and workers).
NEIGHBOURS = {"PostgreSQL": ("postgres",), "RabbitMQ": ("beam.smp",), "NGINX": ("nginx",)}


def processes_named(names: tuple[str, ...]) -> list[int]:
    """The ids of the running processes whose name is one of `names`."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() in names:
                found.append(int(stat.parent.name))
        except OSError:  # gone meanwhile
            continue
    return found


def neighbours() -> dict[str, list[int]]:
    """The processes of PostgreSQL, RabbitMQ and NGINX, and this one (the load generator)."""
    found = {name: processes_named(names) for name, names in NEIGHBOURS.items()}
    return found | {"the load generator": [os.getpid()]}


def cpu_by_process(pids: list[int]) -> dict[int, float]:
    """CPU seconds of each process still running."""
    spent = {}
    for pid in pids:
        try:
            spent[pid] = cpu_seconds([pid])
        except OSError:
            continue
    return spent


def cpu_spent(groups: dict[str, list[int]], run: Callable[[], object]) -> dict[str, float]:
    """Call `run()`; CPU seconds each group of processes spent meanwhile (those that ran
    throughout)."""
    before = {name: cpu_by_process(pids) for name, pids in groups.items()}
    run()
    spent = {}
    for name, pids in groups.items():
        after = cpu_by_process(pids)
        spent[name] = sum(after[pid] - before[name][pid] for pid in after if pid in before[name])
    return spent


def direct_reads(name: str, pid: int, url: str) -> tuple[float, float]:
    """wrk straight at one process (no NGINX) while py-spy records it: (reads/s, µs of its CPU
    per read)."""
    reads: list[float] = []
    spent = profiled(
        "read-direct", {name: pid}, lambda: reads.append(wrk(name, url, SECONDS - 2).rps)
    )
    return reads[0], spent[name] / (reads[0] * (SECONDS - 2)) * 1e6


def main() -> None:
    """Profile the read and the checkout, and write the flame graphs and their README."""
    OUT.mkdir(parents=True, exist_ok=True)
    run = uuid.uuid4().hex[:8]
    core = throwaway_stack(run, ROOT / "var" / "profile", ai_instances=0, gateway_instances=0)
    hello = hello_stack(ROOT / "var" / "profile" / "hello")
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
        start_hello(hello, core)
        hello_url = f"http://127.0.0.1:{hello.core_base_port}/api/hello"
        wrk("warm-up", hello_url, seconds=2)
        direct_url = f"http://127.0.0.1:{core.core_base_port}/api/products/{products[0]}"
        core_rate, core_cpu = direct_reads("core-1", cores["core-1"], direct_url)
        hello_pid = program_pids(hello)["hello-1"]
        hello_rate, hello_cpu = direct_reads("hello-1", hello_pid, hello_url)
        down(hello)
        lines += [
            "## The read against bare aiohttp, without NGINX",
            "",
            f"`wrk -t{THREADS} -c{CONNECTIONS} -d{SECONDS - 2}s` straight at one process: "
            f"the cached product read on core-1 {core_rate:.0f} reads/s, {core_cpu:.0f} µs of "
            f"its CPU per read; the bare hello (`scripts/hello.py`) {hello_rate:.0f} "
            f"requests/s, {hello_cpu:.0f} µs per request. What the read does beyond aiohttp's "
            f"own request cycle costs {core_cpu - hello_cpu:.0f} µs.",
            "",
            "- [core-1](read-direct-core-1.svg)",
            "- [hello-1](read-direct-hello-1.svg)",
            "",
        ]
        base = f"http://127.0.0.1:{core.nginx_port}"
        asyncio.run(checkouts(base, core.database_url, products, 2, CHECKOUT_CONCURRENCY))
        paid = []
        spent = profiled(
            "checkout",
            {name: pids[name] for name in ("core-1", "payments-1", "core-2")},
            lambda: paid.append(
                asyncio.run(
                    checkouts(base, core.database_url, products, SECONDS - 2, CHECKOUT_CONCURRENCY)
                )
            ),
            beside=neighbours(),
        )
        count = paid[0].rps * (SECONDS - 2)
        lines += [
            "## Paid checkout",
            "",
            f"{CHECKOUT_CONCURRENCY} customers ordering and paying with `Prefer: wait=30` through "
            f"NGINX for {SECONDS - 2} s: {paid[0].rps:.0f} paid checkouts/s; CPU per checkout: "
            + ", ".join(f"{name} {seconds / count * 1e3:.1f} ms" for name, seconds in spent.items())
            + f"; {sum(spent.values()) / count * 1e3:.1f} ms in all (py-spy's sampling adds a "
            "little to the profiled processes).",
            "",
            *(f"- [{name}](checkout-{name}.svg)" for name in pids if name in spent),
            "",
        ]
    finally:
        down(hello)
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
