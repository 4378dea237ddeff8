"""request logs: index an exact-status filter of the Logs page

Filtering one user's logs by an exact code (say 503) that matched nothing read every
one of that user's rows in time order (~0.5 s warm, seconds cold, at 900k rows). With
this index it is one short index range, matches or not. Status classes (2xx, errors)
deliberately stay on the time-ordered index: see `store.usage`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        batch_op.create_index('ix_request_logs_user_status_created', ['user_id', 'status', 'created_at', 'id'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        batch_op.drop_index('ix_request_logs_user_status_created')
