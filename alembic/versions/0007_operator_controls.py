"""operator controls: key budgets, allow-lists, invites, redemption codes, payments, alerts

API keys gain a budget per period (with what was spent in it and the alert level sent)
and a model allow-list; ledger charges name the key and the budget period they counted
in; users a low-balance threshold. New tables: single-use invites and redemption codes
(stored as HMACs), Stripe payments and the events already handled, and the operator's
alert queue.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-10
"""
from alembic import op
import sqlalchemy as sa

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('budget', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('budget_period', sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column('budget_spent', sa.BigInteger(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('budget_period_start', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('budget_alert_level', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('allowed_models', sa.Text(), nullable=True))
    with op.batch_alter_table('credit_ledger', schema=None) as batch_op:
        batch_op.add_column(sa.Column('api_key_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('key_period_start', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.add_column(sa.Column('low_balance_threshold', sa.BigInteger(), nullable=True))
        # a constant default: SQLite adds the column in place (an expression would rebuild `users`,
        # which its foreign keys refuse); PostgreSQL reads '0' as false.
        batch_op.add_column(sa.Column('low_balance_alerted', sa.Boolean(), nullable=False, server_default='0'))
    op.create_table(
        'invites',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('credits', sa.BigInteger(), nullable=False),
        sa.Column('created_by_user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('used_by_user_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('token_hash'),
    )
    op.create_table(
        'redemption_codes',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('code_hash', sa.String(length=64), nullable=False),
        sa.Column('credits', sa.BigInteger(), nullable=False),
        sa.Column('created_by_user_id', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('redeemed_by_user_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('code_hash'),
    )
    op.create_table(
        'payments',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('session_id', sa.String(length=255), nullable=False),
        sa.Column('payment_intent', sa.String(length=255), nullable=True),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('pack_id', sa.String(length=40), nullable=False),
        sa.Column('credits', sa.BigInteger(), nullable=False),
        sa.Column('amount', sa.Integer(), nullable=False),
        sa.Column('currency', sa.String(length=3), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('amount_refunded', sa.Integer(), nullable=False),
        sa.Column('amount_disputed', sa.Integer(), nullable=False),
        sa.Column('credits_reversed', sa.BigInteger(), nullable=False),
        sa.Column('shortfall', sa.BigInteger(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('paid_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('session_id'),
    )
    with op.batch_alter_table('payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payments_payment_intent'), ['payment_intent'], unique=False)
        batch_op.create_index(batch_op.f('ix_payments_user_id'), ['user_id'], unique=False)
    op.create_table(
        'payment_events',
        sa.Column('event_id', sa.String(length=255), nullable=False),
        sa.Column('type', sa.String(length=100), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('event_id'),
    )
    op.create_table(
        'alerts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=30), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    with op.batch_alter_table('alerts', schema=None) as batch_op:
        batch_op.create_index('ix_alerts_due', ['status', 'next_at'], unique=False)


def downgrade() -> None:
    for table in ('alerts', 'payment_events', 'payments', 'redemption_codes', 'invites'):
        op.drop_table(table)
    with op.batch_alter_table('users', schema=None) as batch_op:
        batch_op.drop_column('low_balance_alerted')
        batch_op.drop_column('low_balance_threshold')
    with op.batch_alter_table('credit_ledger', schema=None) as batch_op:
        batch_op.drop_column('key_period_start')
        batch_op.drop_column('api_key_id')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        for column in ('allowed_models', 'budget_alert_level', 'budget_period_start', 'budget_spent',
                       'budget_period', 'budget'):
            batch_op.drop_column(column)
