"""sla: Dedicated jobs' timings and outcomes per period, and the credits breached periods gave

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 12:00:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('sla_job',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('package', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('submitted_at', sa.Float(), nullable=False),
    sa.Column('ended_at', sa.Float(), nullable=False),
    sa.Column('ttft_ms', sa.Integer(), nullable=True),
    sa.Column('served', sa.Boolean(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('own_node', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('sla_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_job_period'), ['period'], unique=False)
        batch_op.create_index(batch_op.f('ix_sla_job_package'), ['package'], unique=False)
        batch_op.create_index(batch_op.f('ix_sla_job_account'), ['account'], unique=False)
    op.create_table('sla_credit',
    sa.Column('period', sa.Integer(), nullable=False),
    sa.Column('account', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('package', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('breached', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('jobs', sa.Integer(), nullable=False),
    sa.Column('amount', sa.BigInteger(), nullable=False),
    sa.Column('at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('period', 'account')
    )
    with op.batch_alter_table('sla_credit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sla_credit_package'), ['package'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('sla_credit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sla_credit_package'))
    op.drop_table('sla_credit')
    with op.batch_alter_table('sla_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sla_job_account'))
        batch_op.drop_index(batch_op.f('ix_sla_job_package'))
        batch_op.drop_index(batch_op.f('ix_sla_job_period'))
    op.drop_table('sla_job')
