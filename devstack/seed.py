"""`make seed`: an admin and a demo catalog, through the API; running it again changes nothing.

The admin is made by `make admin`'s tool (the password from ADMIN_PASSWORD or a prompt; an
existing admin with that password is left as it is). The products are created through NGINX
with the admin's token, each with a fixed SKU: one that exists already (409) is left alone.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from typing import Any

from devstack.commands import admin
from devstack.localhttp import LOCAL
from devstack.settings import StackSettings

DEFAULT_ADMIN = "admin@example.com"
# (sku, name, category, price in cents, stock, description)
DEMO_CATALOG = [
    ("DEMO-TEAPOT", "Cast-iron teapot", "kitchen", 4500, 40, "A 0.8 l teapot that keeps tea hot."),
    ("DEMO-MUG", "Stoneware mug", "kitchen", 1200, 200, "350 ml, dishwasher safe."),
    ("DEMO-KETTLE", "Gooseneck kettle", "kitchen", 6900, 25, "For a slow, even pour."),
    ("DEMO-LAMP", "Desk lamp", "home", 3900, 60, "Warm light, adjustable arm."),
    ("DEMO-THROW", "Wool throw", "home", 8900, 15, "Merino, 130 x 170 cm."),
    ("DEMO-NOTEBOOK", "Dotted notebook", "office", 1500, 300, "A5, 160 pages."),
    ("DEMO-PEN", "Fountain pen", "office", 3200, 80, "Steel nib, converter included."),
    ("DEMO-HEADPHONES", "Wireless headphones", "audio", 12900, 30, "30 h battery."),
]


def api(
    config: StackSettings,
    method: str,
    path: str,
    body: dict[str, Any] | None = None,
    token: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """One JSON request to the API through NGINX: (status, body)."""
    request = urllib.request.Request(  # noqa: S310 - the stack's own URL
        f"{config.public_url}{path}",
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    try:
        with LOCAL.open(request, timeout=10) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def seed(config: StackSettings, email: str | None) -> int:
    """Ensure the admin and the demo catalog; non-zero if either failed."""
    email = email or DEFAULT_ADMIN
    if not os.environ.get("ADMIN_PASSWORD") and sys.stdin.isatty():
        os.environ["ADMIN_PASSWORD"] = getpass.getpass(f"Password for {email}: ")
    if admin(config, email, promote=False) != 0:
        return 1
    status, answer = api(
        config,
        "POST",
        "/api/auth/login",
        {"email": email, "password": os.environ.get("ADMIN_PASSWORD", "")},
    )
    if status != 200:
        print(f"logging in as {email} failed: {status} {answer}", file=sys.stderr)
        return 1
    token = answer["access_token"]
    created = 0
    for sku, name, category, price, stock, description in DEMO_CATALOG:
        product = {
            "sku": sku,
            "name": name,
            "category": category,
            "price_cents": price,
            "currency": "EUR",
            "stock": stock,
            "description": description,
        }
        status, answer = api(config, "POST", "/api/products", product, token)
        if status == 201:
            created += 1
        elif status != 409:  # 409: the SKU exists, from an earlier seed
            print(f"creating {sku} failed: {status} {answer}", file=sys.stderr)
            return 1
    print(
        f"seeded: admin {email}; demo catalog of {len(DEMO_CATALOG)} products "
        f"({created} created, {len(DEMO_CATALOG) - created} already there)"
    )
    return 0
