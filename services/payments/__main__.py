"""Run the payments service: `python -m services.payments [serve|check|migrate|permissions|
openapi]`."""

from __future__ import annotations

from chassis.main import Service, main
from services.payments.app import MIGRATIONS, api_document, create_app
from services.payments.roles import BROKER, grant_worker_role
from services.payments.settings import PaymentsSettings

if __name__ == "__main__":
    main(
        Service(
            __doc__ or "",
            PaymentsSettings,
            create_app,
            MIGRATIONS,
            BROKER,
            grant_worker_role,
            document=api_document,
        )
    )
