"""SQL of two-factor sign-in: the account's TOTP secret, its last accepted time step, and its
recovery codes (hashed)."""

from __future__ import annotations

import asyncpg

from chassis.data import Db, execute_counted
from services.core.auth.repository import USER_COLUMNS


async def start_enrolment(db: Db, user_id: str, secret: str) -> bool:
    """Keep a new secret until a first code confirms it; False if two-factor sign-in is on."""
    changed = await execute_counted(
        db,
        "UPDATE users SET totp_secret = $2 WHERE id = $1::uuid AND totp_enabled_at IS NULL",
        user_id,
        secret,
    )
    return changed == 1


async def accept_step(db: Db, user_id: object, step: int) -> bool:
    """Spend the TOTP time step `step`; False if it or a later one was spent (a replay)."""
    changed = await execute_counted(
        db,
        "UPDATE users SET totp_last_step = $2 WHERE id = $1 AND totp_last_step < $2",
        user_id,
        step,
    )
    return changed == 1


async def turn_on(db: Db, user_id: object, code_hashes: list[str]) -> asyncpg.Record | None:
    """Turn two-factor sign-in on with these recovery codes; None if it was on."""
    row = await db.fetchrow(
        f"""UPDATE users SET totp_enabled_at = now()
            WHERE id = $1 AND totp_enabled_at IS NULL AND totp_secret IS NOT NULL
            RETURNING {USER_COLUMNS}""",
        user_id,
    )
    if row is not None:
        await replace_recovery_codes(db, user_id, code_hashes)
    return row


async def turn_off(db: Db, user_id: object) -> None:
    """Forget the secret and the recovery codes."""
    await db.execute(
        "UPDATE users SET totp_secret = NULL, totp_enabled_at = NULL WHERE id = $1", user_id
    )
    await db.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)


async def replace_recovery_codes(db: Db, user_id: object, code_hashes: list[str]) -> None:
    """The account's recovery codes are these, and only these."""
    await db.execute("DELETE FROM recovery_codes WHERE user_id = $1", user_id)
    await db.execute(
        "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, unnest($2::text[])",
        user_id,
        code_hashes,
    )


async def spend_recovery_code(db: Db, user_id: object, code_hash: str) -> bool:
    """Spend an unused recovery code; False if there is none with this hash."""
    changed = await execute_counted(
        db,
        """UPDATE recovery_codes SET used_at = now()
           WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL""",
        user_id,
        code_hash,
    )
    return changed == 1
