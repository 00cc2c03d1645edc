"""Alembic environment: runs on the connection handed over by ``openseg.store.db.migrate``."""

from alembic import context
from sqlalchemy import create_engine

from openseg.store.models import Base

config = context.config
connection = config.attributes.get("connection")

if connection is None:  # `alembic` CLI use (autogenerate during development)
    url = config.get_main_option("sqlalchemy.url")
    with create_engine(url).connect() as conn:
        context.configure(connection=conn, target_metadata=Base.metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
