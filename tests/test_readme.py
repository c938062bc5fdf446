"""The README's configuration tables name every variable the code reads."""

from __future__ import annotations

import re
from pathlib import Path

from devstack import StackSettings
from services.ai.settings import AiSettings
from services.core.settings import CoreSettings
from services.payments.settings import PaymentsSettings

ROOT = Path(__file__).resolve().parent.parent


def documented() -> set[str]:
    rows = [
        line for line in (ROOT / "README.md").read_text().splitlines() if line.startswith("| `")
    ]
    return {name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split("|")[1])}


def test_every_service_setting_is_documented():
    names = {*CoreSettings.model_fields, *PaymentsSettings.model_fields, *AiSettings.model_fields}
    missing = {name.upper() for name in names} - documented()
    assert not missing, f"README lacks {sorted(missing)}"


def test_every_stack_variable_is_documented():
    used = {
        (field.validation_alias if isinstance(field.validation_alias, str) else name).upper()
        for name, field in StackSettings.model_fields.items()
    }
    assert len(used) > 10
    missing = used - documented()
    assert not missing, f"README lacks {sorted(missing)}"
