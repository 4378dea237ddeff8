"""bounds: context lengths, flat-price prompt ceilings, cached-prompt prices, durable holds

Registry entries gain `context_length` (the bound of what the platform cannot measure),
`max_prompt_tokens` (the largest prompt a flat price covers) and the cached-prompt prices;
users a ceiling on the rate limit they may give their own keys; open holds a table of their
own, so that a hold whose process died is found and settled or refunded; and pending
settlements a flag for such interrupted calls.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""
from alembic import op
import sqlalchemy as sa

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('context_length', sa.Integer(), nullable=False, server_default='128000'))
        batch_op.add_column(sa.Column('max_prompt_tokens', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('cache_read_price', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('cache_write_price', sa.BigInteger(), nullable=True))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('max_key_rpm', sa.Integer(), nullable=True))
    with op.batch_alter_table('pending_settlements', schema=None) as batch_op:
        batch_op.add_column(sa.Column('interrupted', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'holds',
        sa.Column('ref', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('api_key_id', sa.Integer(), nullable=True),
        sa.Column('key_prefix', sa.String(length=12), nullable=True),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('endpoint', sa.String(length=200), nullable=False),
        sa.Column('stream', sa.Boolean(), nullable=False),
        sa.Column('amount', sa.BigInteger(), nullable=False),
        sa.Column('owner', sa.String(length=32), nullable=False),
        sa.Column('upstream_id', sa.String(length=200), nullable=True),
        sa.Column('lease_until', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('ref'),
    )
    with op.batch_alter_table('holds', schema=None) as batch_op:
        batch_op.create_index('ix_holds_lease', ['lease_until'], unique=False)


def downgrade() -> None:
    op.drop_table('holds')
    with op.batch_alter_table('pending_settlements', schema=None) as batch_op:
        batch_op.drop_column('interrupted')
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('max_key_rpm')
    with op.batch_alter_table('models', schema=None) as batch_op:
        for column in ('cache_write_price', 'cache_read_price', 'max_prompt_tokens', 'context_length'):
            batch_op.drop_column(column)
