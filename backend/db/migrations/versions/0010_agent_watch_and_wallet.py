"""agent watch and wallet: a monitor's last watched digest, what a run's trades were worth, each agent's spend per day

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-26 12:30:00
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.add_column(sa.Column('watch_digest', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True))
    with op.batch_alter_table('agent_run', schema=None) as batch_op:
        batch_op.add_column(sa.Column('traded', sa.BigInteger(), nullable=False, server_default='0'))
    op.create_table('agent_spend',
    sa.Column('agent', sqlmodel.sql.sqltypes.AutoString(length=140), nullable=False),
    sa.Column('day', sa.Integer(), nullable=False),
    sa.Column('spent', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('agent', 'day')
    )


def downgrade() -> None:
    op.drop_table('agent_spend')
    with op.batch_alter_table('agent_run', schema=None) as batch_op:
        batch_op.drop_column('traded')
    with op.batch_alter_table('agent', schema=None) as batch_op:
        batch_op.drop_column('watch_digest')
