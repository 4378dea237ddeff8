"""resolution prices: an image model's flat price per resolution tier

Registry entries gain `resolution_prices` (JSON, `{"2K": micro-credits, "4K": …}`): the
price of one image at a larger resolution than 1K, whose price is `credit_cost`.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('resolution_prices', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.drop_column('resolution_prices')
