"""clusters: dedicated nodes and private models

Revision ID: 0011
Revises: 0010
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('cluster_node',
    sa.Column('worker_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('cluster', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('added_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('worker_id', 'cluster')
    )
    with op.batch_alter_table('cluster_node', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cluster_node_cluster'), ['cluster'], unique=False)
    op.create_table('private_model',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('cluster', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('card', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('created_at', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('private_model', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_private_model_cluster'), ['cluster'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('private_model', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_private_model_cluster'))
    op.drop_table('private_model')
    with op.batch_alter_table('cluster_node', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cluster_node_cluster'))
    op.drop_table('cluster_node')
