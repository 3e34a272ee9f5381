"""GPU utilisation per server, and idle GPU time (issue 17)

Revision ID: 0007
Revises: 0006

``sessions`` learns where its GPUs are read (``gpu_devices``: the host GPU ids, local and
Docker; ``pod_name``: Kubernetes), its idle GPU time so far (``idle_gpu_ms``, what statements
report as waste), since when it has been idle (``idle_since_ms``), when its owner chose to keep
it (``idle_kept_ms``, once) and its last sample (``gpu_sampled_ms``). ``gpu_samples`` holds the
recent samples of each server: the lab's plot, and the evidence for ``idle_gpu_ms``;
``idle_gpu_days`` splits each session's idle time by UTC day, which statements and reports sum
over their month or period (the samples themselves are kept only for the plot's window).
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

Int64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("gpu_devices", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("pod_name", sa.String(253), nullable=True))
        batch_op.add_column(
            sa.Column("idle_gpu_ms", Int64, nullable=False, server_default=sa.text("0"))
        )
        batch_op.add_column(sa.Column("idle_since_ms", Int64, nullable=True))
        batch_op.add_column(sa.Column("idle_kept_ms", Int64, nullable=True))
        batch_op.add_column(sa.Column("gpu_sampled_ms", Int64, nullable=True))
    op.create_table(
        "gpu_samples",
        sa.Column("id", Int64, nullable=False),
        sa.Column("session_id", Int64, nullable=False),
        sa.Column("at_ms", Int64, nullable=False),
        sa.Column("utilisation_pct", sa.Integer(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.Column("idle_ms", Int64, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_gpu_samples_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gpu_samples")),
    )
    op.create_index("ix_gpu_samples_session", "gpu_samples", ["session_id", "at_ms"])
    op.create_table(
        "idle_gpu_days",
        sa.Column("session_id", Int64, nullable=False),
        sa.Column("day_ms", Int64, nullable=False),
        sa.Column("idle_ms", Int64, nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_idle_gpu_days_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("session_id", "day_ms", name=op.f("pk_idle_gpu_days")),
    )
    op.create_index("ix_idle_gpu_days_day", "idle_gpu_days", ["day_ms"])


def downgrade() -> None:
    op.drop_index("ix_idle_gpu_days_day", table_name="idle_gpu_days")
    op.drop_table("idle_gpu_days")
    op.drop_index("ix_gpu_samples_session", table_name="gpu_samples")
    op.drop_table("gpu_samples")
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        for column in (
            "gpu_sampled_ms",
            "idle_kept_ms",
            "idle_since_ms",
            "idle_gpu_ms",
            "pod_name",
            "gpu_devices",
        ):
            batch_op.drop_column(column)
