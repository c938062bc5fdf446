"""Run one core instance: `python -m services.core [serve|check|migrate|permissions|openapi]`."""

from __future__ import annotations

from chassis.main import Service, main
from services.core.app import MIGRATIONS, api_document, create_app
from services.core.roles import BROKER, grant_catalog_reader
from services.core.settings import CoreSettings

if __name__ == "__main__":
    main(
        Service(
            __doc__ or "",
            CoreSettings,
            create_app,
            MIGRATIONS,
            BROKER,
            grant_catalog_reader,
            document=api_document,
        )
    )
