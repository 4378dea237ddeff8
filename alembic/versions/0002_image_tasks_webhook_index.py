"""image tasks: index the webhook queue

Every pipeline worker looks for due webhooks on each pass
(`webhook_status = 'pending' AND webhook_next_at <= now`); without an index that is a
scan of every task ever made.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('image_tasks', schema=None) as batch_op:
        batch_op.create_index('ix_image_tasks_webhook_due', ['webhook_status', 'webhook_next_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('image_tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_image_tasks_webhook_due')
