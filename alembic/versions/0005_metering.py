"""metering: exact decimal credits, pricing modes, settlements

Every amount of money becomes an integer of 10^-6 credit (BIGINT): balances, ledger
amounts, model fees, request and task costs are multiplied by 10^6, so balance = ledger
sum still holds row for row. Registry entries gain a pricing mode, per-1M-token prices,
a markup and a max_tokens cap; request logs the upstream's USD cost; and requests whose
usage never arrived wait in pending_settlements for the reconciler.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26
"""
from alembic import op
import sqlalchemy as sa

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None

MICRO = 1_000_000
MONEY = [
    ('users', 'balance', False),
    ('credit_ledger', 'amount', False),
    ('credit_ledger', 'balance_after', False),
    ('models', 'credit_cost', False),
    ('request_logs', 'credit_cost', False),
    ('image_tasks', 'credit_cost', False),
]


def upgrade() -> None:
    # SQLite's INTEGER is 64-bit already (and a batch rebuild of `users` would trip its
    # foreign keys): only the other databases change the column type.
    if op.get_bind().dialect.name != 'sqlite':
        for table, column, nullable in MONEY:
            op.alter_column(table, column, existing_type=sa.Integer(), type_=sa.BigInteger(),
                            existing_nullable=nullable)
    # The users' CHECK (balance >= 0) holds throughout: scaling keeps every sign.
    for table, column, _ in MONEY:
        op.execute(f'UPDATE {table} SET {column} = {column} * {MICRO}')
    with op.batch_alter_table('models', schema=None) as batch_op:
        batch_op.add_column(sa.Column('pricing', sa.String(length=20), nullable=False, server_default='per_request'))
        batch_op.add_column(sa.Column('prompt_price', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('completion_price', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('markup', sa.BigInteger(), nullable=False, server_default=str(MICRO)))
        batch_op.add_column(sa.Column('max_output_tokens', sa.Integer(), nullable=False, server_default='16384'))
    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('upstream_cost', sa.BigInteger(), nullable=True))
    op.create_table(
        'pending_settlements',
        sa.Column('ref', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('upstream_id', sa.String(length=200), nullable=True),
        sa.Column('estimate', sa.BigInteger(), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('deadline_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('ref'),
    )
    with op.batch_alter_table('pending_settlements', schema=None) as batch_op:
        batch_op.create_index('ix_pending_settlements_due', ['next_at'], unique=False)


def downgrade() -> None:
    op.drop_table('pending_settlements')
    with op.batch_alter_table('request_logs', schema=None) as batch_op:
        batch_op.drop_column('upstream_cost')
    with op.batch_alter_table('models', schema=None) as batch_op:
        for column in ('max_output_tokens', 'markup', 'completion_price', 'prompt_price', 'pricing'):
            batch_op.drop_column(column)
    # Whole credits again (any fraction rounds toward zero: a downgrade loses precision).
    for table, column, _ in MONEY:
        op.execute(f'UPDATE {table} SET {column} = {column} / {MICRO}')
