"""money safety: one consumed-transaction record, bond payers, payout failures, usage overclaims

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25 21:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('consumed_tx',
    sa.Column('tx_hash', sqlmodel.sql.sqltypes.AutoString(length=66), nullable=False),
    sa.Column('use', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('payer', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('package', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('key_hash', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('worker', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('tx_hash')
    )
    with op.batch_alter_table('consumed_tx', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consumed_tx_payer'), ['payer'], unique=False)
    with op.batch_alter_table('bond', schema=None) as batch_op:
        batch_op.add_column(sa.Column('payer', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bond_payer', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('overclaims', sa.Integer(), nullable=False, server_default='0'))
    with op.batch_alter_table('payout', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    with op.batch_alter_table('bond_refund', schema=None) as batch_op:
        batch_op.add_column(sa.Column('failure', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True))
    # Transactions already used stay used: bonds and purchases recorded before this migration.
    op.execute("INSERT INTO consumed_tx (tx_hash, use, payer, amount, worker, at) "
               "SELECT b.tx_hash, 'bond', COALESCE(w.payout_address, ''), b.amount, b.worker, b.at FROM bond b LEFT JOIN worker w ON w.id = b.worker")
    op.execute("INSERT INTO consumed_tx (tx_hash, use, payer, amount, at) "
               "SELECT substr(key, 10), 'purchase', account, amount, created_at FROM ledger_entry WHERE key LIKE 'purchase:%' "
               "AND substr(key, 10) NOT IN (SELECT tx_hash FROM consumed_tx)")


def downgrade() -> None:
    with op.batch_alter_table('bond_refund', schema=None) as batch_op:
        batch_op.drop_column('failure')
    with op.batch_alter_table('payout', schema=None) as batch_op:
        batch_op.drop_column('failure')
    with op.batch_alter_table('worker', schema=None) as batch_op:
        batch_op.drop_column('overclaims')
        batch_op.drop_column('bond_payer')
    with op.batch_alter_table('bond', schema=None) as batch_op:
        batch_op.drop_column('payer')
    with op.batch_alter_table('consumed_tx', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consumed_tx_payer'))
    op.drop_table('consumed_tx')
