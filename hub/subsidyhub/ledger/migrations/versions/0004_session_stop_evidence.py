"""when the hub last ran a session's server, and the stop time it reported

Revision ID: 0004
Revises: 0003

``sessions.seen_ms`` is the last instant reconciliation saw the hub run the server, where a
stop the hub never reported is placed; ``sessions.reported_stop_ms`` is the stop instant the
hub reported (its stop notice), which the ledger records and never moves again. Both start
empty: an open session without ``seen_ms`` counts as seen at its start.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

MS = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("seen_ms", MS, nullable=True))
        batch_op.add_column(sa.Column("reported_stop_ms", MS, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("reported_stop_ms")
        batch_op.drop_column("seen_ms")
