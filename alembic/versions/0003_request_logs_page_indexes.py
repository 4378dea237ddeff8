"""request logs: indexes for the dashboard's Logs page

The page lists one user's logs newest first, keyset-paged on (created_at, id), and
filters by key, model, status and date range. These indexes let every page, however
deep, and every date range be read as one index range; a model or key filter reads
only that model's or key's rows. See bench/logs_query.py for timings on 1M rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

INDEXES = {
    'ix_request_logs_user_created': ['user_id', 'created_at', 'id'],
    'ix_request_logs_user_model_created': ['user_id', 'model', 'created_at', 'id'],
    'ix_request_logs_user_key_created': ['user_id', 'api_key_id', 'created_at', 'id'],
}


def upgrade() -> None:
    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        for name, columns in INDEXES.items():
            batch_op.create_index(name, columns, unique=False)


def downgrade() -> None:
    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        for name in INDEXES:
            batch_op.drop_index(name)
