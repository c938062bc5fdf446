"""The rooms hold: import contracts, one shape per service, one vocabulary of statuses."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from contracts import ORDER_STATUSES, PAYMENT_STATUSES, REFUND_STATUSES

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "chassis",
    "contracts",
    "devstack",
    "gateway",
    "loadtests",
    "services",
    "scripts",
    "tests",
)


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )


def copy_tree(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(
            ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    return tmp_path


def test_the_import_contracts_hold():
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"Contracts: \d+ kept, 0 broken", result.stdout)


@pytest.mark.parametrize(
    ("module", "forbidden", "contract"),
    [
        ("chassis/tasks.py", "import services.core.app", "The chassis knows no service"),
        ("chassis/http/_routes.py", "import contracts", "The chassis knows no service"),
        ("contracts/_money.py", "import chassis.errors", "Contracts import nothing of ours"),
        ("services/core/app.py", "import services.payments.app", "never import each other"),
        ("gateway/app.py", "import services.core.app", "never import each other"),
        ("loadtests/journeys.py", "import chassis.http", "import nothing of ours"),
        ("devstack/commands.py", "import services.core.app", "start services as processes"),
        ("services/core/app.py", "import chassis.http._routes", "package roots"),
        ("chassis/telemetry/_logs.py", "import chassis.http", "chassis' packages are layered"),
    ],
)
def test_a_forbidden_import_breaks_the_build(tmp_path, module, forbidden, contract):
    root = copy_tree(tmp_path)
    path = root / module
    text = path.read_text()
    # After the module's docstring and `from __future__` (the import must parse there).
    anchor = "from __future__ import annotations\n"
    path.write_text(
        text.replace(anchor, anchor + forbidden + "  # noqa\n", 1)
        if anchor in text
        else forbidden + "\n" + text
    )
    result = lint_imports(root)
    assert result.returncode != 0
    # The report's "Broken contracts" section names the contract the import breaks.
    assert "Broken contracts" in result.stdout, result.stdout
    broken = " ".join(result.stdout.split("Broken contracts", 1)[1].split())
    assert contract in broken, result.stdout


def test_every_service_has_the_same_four_files_at_its_top():
    services = [path for path in (ROOT / "services").iterdir() if (path / "__init__.py").exists()]
    assert {path.name for path in services} >= {"core", "payments", "ai"}
    services.append(ROOT / "gateway")  # the realtime edge has the same shape
    for service in services:
        for name in ("__main__.py", "app.py", "settings.py", "handlers.py"):
            assert (service / name).is_file(), f"{service.name} lacks {name}"


async def check_values(database_url: str, schema: str, table: str) -> set[str]:
    conn = await asyncpg.connect(database_url)
    try:
        definition = await conn.fetchval(
            """SELECT pg_get_constraintdef(c.oid) FROM pg_constraint c
               JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace
               WHERE n.nspname = $1 AND t.relname = $2 AND c.contype = 'c'
                 AND pg_get_constraintdef(c.oid) LIKE '%status%'""",
            schema,
            table,
        )
    finally:
        await conn.close()
    return set(re.findall(r"'([a-z_]+)'::text", definition))


@pytest.mark.parametrize(
    ("schema", "table", "statuses"),
    [
        ("core", "orders", ORDER_STATUSES),
        ("core", "payments", PAYMENT_STATUSES),
        ("core", "refunds", REFUND_STATUSES),
        ("payments", "payments", PAYMENT_STATUSES),
        ("payments", "refunds", REFUND_STATUSES),
    ],
)
async def test_the_tables_allow_exactly_the_statuses_of_the_contracts(
    database_url, schema, table, statuses
):
    assert await check_values(database_url, schema, table) == set(statuses)
