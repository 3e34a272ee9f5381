"""applications for grants, their events, and burn plans (issue 18)

Revision ID: 0008
Revises: 0007

``applications`` holds each application for a new project, a top-up or an extension, from
draft to decision, with the decision's figures and the allocation it made; ``application_events``
is its history (comments, changes of state) as the applicant reads it; ``grant_plans`` is an
allocation's planned spending per UTC month (none: even over its window).
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

Int64 = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "applications",
        sa.Column("id", Int64, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("applicant", sa.String(255), nullable=False),
        sa.Column("email", sa.String(320), nullable=True),
        sa.Column("project_id", Int64, nullable=True),
        sa.Column("slug", sa.String(64), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("abstract", sa.Text(), nullable=False),
        sa.Column("amount_micro", Int64, nullable=False),
        sa.Column("gpu_hours", sa.JSON(), nullable=False),
        sa.Column("starts_ms", Int64, nullable=False),
        sa.Column("ends_ms", Int64, nullable=False),
        sa.Column("team", sa.JSON(), nullable=False),
        sa.Column("plan", sa.JSON(), nullable=False),
        sa.Column("created_ms", Int64, nullable=False),
        sa.Column("updated_ms", Int64, nullable=False),
        sa.Column("submitted_ms", Int64, nullable=True),
        sa.Column("decided_ms", Int64, nullable=True),
        sa.Column("decided_by", sa.String(255), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("rate_bp", sa.Integer(), nullable=True),
        sa.Column("approved_micro", Int64, nullable=True),
        sa.Column("allocation_id", Int64, nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_applications_project_id_projects")
        ),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_applications_allocation_id_allocations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_applications")),
    )
    op.create_index("ix_applications_state", "applications", ["state", "submitted_ms"])
    op.create_index("ix_applications_applicant", "applications", ["applicant"])
    op.create_table(
        "application_events",
        sa.Column("id", Int64, nullable=False),
        sa.Column("application_id", Int64, nullable=False),
        sa.Column("at_ms", Int64, nullable=False),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["application_id"],
            ["applications.id"],
            name=op.f("fk_application_events_application_id_applications"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_application_events")),
    )
    op.create_index(
        "ix_application_events_application", "application_events", ["application_id", "id"]
    )
    op.create_table(
        "grant_plans",
        sa.Column("allocation_id", Int64, nullable=False),
        sa.Column("month", sa.String(7), nullable=False),
        sa.Column("amount_micro", Int64, nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_grant_plans_allocation_id_allocations"),
        ),
        sa.PrimaryKeyConstraint("allocation_id", "month", name=op.f("pk_grant_plans")),
    )


def downgrade() -> None:
    op.drop_table("grant_plans")
    op.drop_index("ix_application_events_application", table_name="application_events")
    op.drop_table("application_events")
    op.drop_index("ix_applications_applicant", table_name="applications")
    op.drop_index("ix_applications_state", table_name="applications")
    op.drop_table("applications")
