"""GPU reservations and the queue for scarce GPUs (issue 16)

Revision ID: 0006
Revises: 0005

``reservations`` keeps GPUs of a type for a project over a window, once or weekly;
``queue_entries`` records each wait for a GPU server from joining to its end (admitted,
left or expired). At most one open entry per user and server name. ``observed_capacity``
holds each GPU type's capacity as last read from the cluster's nodes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

Int64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "reservations",
        sa.Column("id", Int64, nullable=False),
        sa.Column("project_id", Int64, nullable=False),
        sa.Column("gpu_type", sa.String(64), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("starts_ms", Int64, nullable=False),
        sa.Column("ends_ms", Int64, nullable=False),
        sa.Column("weeks", sa.Integer(), nullable=False),
        sa.Column("note", sa.String(200), nullable=False),
        sa.Column("created_by", sa.String(255), nullable=False),
        sa.Column("created_ms", Int64, nullable=False),
        sa.Column("cancelled_ms", Int64, nullable=True),
        sa.Column("cancelled_by", sa.String(255), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_reservations_project_id_projects")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reservations")),
    )
    op.create_index("ix_reservations_type", "reservations", ["gpu_type", "cancelled_ms"])
    op.create_table(
        "queue_entries",
        sa.Column("id", Int64, nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("server_name", sa.String(255), nullable=False),
        sa.Column("project_id", Int64, nullable=False),
        sa.Column("profile_slug", sa.String(64), nullable=False),
        sa.Column("gpu_type", sa.String(64), nullable=False),
        sa.Column("gpu_count", sa.Integer(), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("joined_ms", Int64, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("offered_ms", Int64, nullable=True),
        sa.Column("offer_expires_ms", Int64, nullable=True),
        sa.Column("ended_ms", Int64, nullable=True),
        sa.Column("session_id", Int64, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_queue_entries_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_queue_entries_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_entries")),
    )
    op.create_index(
        "uq_queue_entries_waiting_server",
        "queue_entries",
        ["username", "server_name"],
        unique=True,
        sqlite_where=sa.text("ended_ms IS NULL"),
        postgresql_where=sa.text("ended_ms IS NULL"),
    )
    op.create_index("ix_queue_entries_type", "queue_entries", ["gpu_type", "ended_ms"])
    op.create_table(
        "observed_capacity",
        sa.Column("gpu_type", sa.String(64), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("observed_ms", Int64, nullable=False),
        sa.PrimaryKeyConstraint("gpu_type", name=op.f("pk_observed_capacity")),
    )


def downgrade() -> None:
    op.drop_table("observed_capacity")
    op.drop_table("queue_entries")
    op.drop_table("reservations")
