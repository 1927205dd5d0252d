"""Alembic environment for the lineage database.

At runtime ``LineageDB.upgrade`` hands over an open connection (inside the
transaction that holds the migration lock) through ``config.attributes``. From
the command line (``alembic -c storage/alembic.ini ...``, for developers writing
a new revision) the URL comes from ``sqlalchemy.url`` or ``CODEIO_DATABASE_URL``.

Logging is left alone on purpose: ``logging.config.fileConfig`` would disable
the loggers of the process that runs the migration (Prefect's among them).
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy.engine import Connection

from codeio.settings import DEFAULT_DATABASE_URL
from storage.lineage import create_lineage_engine
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or os.environ.get("CODEIO_DATABASE_URL") or DEFAULT_DATABASE_URL


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite ALTERs go through table copies
        compare_type=True,
    )


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_lineage_engine(_url())
    try:
        with engine.begin() as connection:
            _configure(connection)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
