"""Alembic environment for the archive index."""

from alembic import context

from pacsflow.archive.db import make_engine
from pacsflow.archive.models import Base

url = context.config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url is set by pacsflow.archive.db.alembic_config"

if context.is_offline_mode():
    context.configure(url=url, target_metadata=Base.metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(
            connection=connection, target_metadata=Base.metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()
