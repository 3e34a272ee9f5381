"""quotas and limits in one JSON column per project and member

Revision ID: 0003
Revises: 0002

Each limit was a column of its own under a name of its own (``projects.max_gpus``,
``members.max_gpus`` meaning another thing, ``gpu_ms_per_week`` …). They now live in
``limits``, keyed by the names declared in ``subsidyhub.limits``, in their stored units (GPUs,
milliseconds, sorted lists of names); an absent key is no limit. A new kind of limit then needs
no migration. Values are copied; the old columns are dropped.
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Old column → limit name, per table.
PROJECT_COLUMNS = {
    "max_gpus": "project_max_gpus",
    "member_max_gpus": "member_max_gpus",
    "gpu_ms_per_week": "gpu_hours_per_week",
    "max_session_ms": "max_session_hours",
    "allowed_profiles": "profiles",
    "allowed_gpu_types": "gpu_types",
}
MEMBER_COLUMNS = {
    "max_gpus": "member_max_gpus",
    "gpu_ms_per_week": "gpu_hours_per_week",
    "max_session_ms": "max_session_hours",
}


def _decoded(value: object) -> object:
    # JSON columns read back as text through a plain select on some drivers.
    return json.loads(value) if isinstance(value, str) else value


def _copy(table: str, columns: dict[str, str]) -> None:
    connection = op.get_bind()
    rows = connection.execute(sa.text(f"SELECT id, {', '.join(columns)} FROM {table}"))
    target = sa.table(table, sa.column("id", sa.Integer), sa.column("limits", sa.JSON))
    for row in rows.mappings().all():
        limits = {
            name: _decoded(row[column])
            for column, name in columns.items()
            if row[column] is not None
        }
        connection.execute(target.update().where(target.c.id == row["id"]).values(limits=limits))


def upgrade() -> None:
    for table, columns in (("projects", PROJECT_COLUMNS), ("members", MEMBER_COLUMNS)):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("limits", sa.JSON(), server_default=sa.text("'{}'"), nullable=False)
            )
        _copy(table, columns)
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in columns:
                batch_op.drop_column(column)


def downgrade() -> None:
    raise NotImplementedError("0003 is not reversible: restore the backup taken before upgrading")
