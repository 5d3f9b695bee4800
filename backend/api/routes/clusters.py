"""A Cluster's own resources, for holders of a package with dedicated nodes: its nodes (consent to a worker key)
and its private models. The work is in backend.access.clusters."""

from __future__ import annotations

import asyncio

from backend.access import clusters
from backend.api.deps import PrincipalDep, RuntimeDep
from backend.api.errors import ApiError
from backend.api.replies import model_card
from backend.api.routing import ReplyRouter
from backend.api.schemas.requests import NodeBody, PrivateModelBody
from backend.api.schemas.responses import ClusterReply, ModelCard
from backend.runtime import Runtime

router = ReplyRouter(prefix="/one/cluster", tags=["clusters"])


def _cluster(rt: Runtime, principal) -> str:
    """The caller's Cluster, or 403 for a key of a package without dedicated nodes."""
    cluster = clusters.cluster_of(rt.packages, principal.account, principal.package)
    if cluster is None:
        raise ApiError(403, "Dedicated nodes and private models come with a Cluster package; send its key.", "not_a_cluster",
                       type_="permission_error")  # fmt: skip
    return cluster


async def _reply(rt: Runtime, cluster: str) -> ClusterReply:
    nodes = await asyncio.to_thread(clusters.nodes_of, cluster)
    models = await asyncio.to_thread(clusters.private_models_of, cluster)
    return ClusterReply(
        cluster=cluster,
        nodes=[{"worker_id": n, "online": n in rt.scheduler.workers, **({"busy": len(rt.scheduler.workers[n].jobs)} if n in rt.scheduler.workers else {})}
               for n in nodes],
        models=[model_card(m, rt.scheduler) for m in models],
    )  # fmt: skip


@router.get("", response_model=ClusterReply)
async def show(rt: RuntimeDep, principal: PrincipalDep) -> ClusterReply:
    """The Cluster's nodes (online or not) and private models."""
    return await _reply(rt, _cluster(rt, principal))


@router.post("/nodes", response_model=ClusterReply)
async def add_node(body: NodeBody, rt: RuntimeDep, principal: PrincipalDep) -> ClusterReply:
    """Consent to a worker key as one of the Cluster's nodes: it may then join with `one worker --cluster <account>`."""
    cluster = _cluster(rt, principal)
    try:
        await asyncio.to_thread(clusters.add_node, cluster, body.worker_id)
    except clusters.ClusterError as exc:
        raise ApiError(exc.status, str(exc), "invalid_node", param="worker_id") from None
    return await _reply(rt, cluster)


@router.delete("/nodes/{worker_id}", response_model=ClusterReply)
async def remove_node(worker_id: str, rt: RuntimeDep, principal: PrincipalDep) -> ClusterReply:
    """Withdraw consent: a connected node is hung up on at once (its jobs fail over) and may not join again."""
    cluster = _cluster(rt, principal)
    if not await asyncio.to_thread(clusters.remove_node, cluster, worker_id):
        raise ApiError(404, "That worker is not a node of this Cluster.", "node_not_found", param="worker_id")
    await rt.scheduler.evict(worker_id.lower(), reason="its Cluster removed it")
    return await _reply(rt, cluster)


@router.post("/models", response_model=ModelCard)
async def register_model(body: PrivateModelBody, rt: RuntimeDep, principal: PrincipalDep) -> ModelCard:
    """Register (or update) a private model: callable by this Cluster's keys only, served by its nodes only."""
    cluster = _cluster(rt, principal)
    try:
        model = await asyncio.to_thread(clusters.register_model, rt.catalog, cluster, body.model_dump(exclude_none=True))
    except clusters.ClusterError as exc:
        raise ApiError(exc.status, str(exc), "invalid_model", param="id") from None
    return model_card(model, rt.scheduler)
