"""an admin's note on a stop, and which limit set a session's deadline

Revision ID: 0005
Revises: 0004

``sessions.stop_note`` is what an admin wrote when stopping a server (told to its owner
verbatim); ``sessions.max_stop_reason`` is the limit that set ``max_stop_ms`` at admission
(``max_session_hours`` or ``weekly_gpu_hours``), so the stop at that deadline names the
limit the person actually hit. Both are written once and start empty.
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stop_note", sa.String(500), nullable=True))
        batch_op.add_column(sa.Column("max_stop_reason", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sessions", schema=None) as batch_op:
        batch_op.drop_column("max_stop_reason")
        batch_op.drop_column("stop_note")
