"""Clusters: dedicated nodes and private models for holders of a package with `nodes: true` (Cluster).

A Cluster is named by its holder's account, lowercased (what `one worker --cluster 0x…` names). A node joins only
after the Cluster consented to its worker key (`add_node`) and while the Cluster's package is live; from then on it
runs that Cluster's jobs only. A private model is a Cluster's own model id (its fine-tune): only that Cluster's keys
may call it and only its nodes may serve it (the coordinator drops it from any other worker's hello).
"""

from __future__ import annotations

import re
import time

from pydantic import ValidationError
from sqlalchemy import func
from sqlmodel import col, select

from backend.catalog import Catalog, CatalogModel, Packages
from backend.db import session
from backend.db.models import ApiKey, ClusterNode, PrivateModel

WORKER_ID = re.compile(r"^[0-9a-fA-F]{64}$")  # any case at the door; stored lowercase
MODEL_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NODES = 64
MAX_PRIVATE_MODELS = 16


class ClusterError(ValueError):
    """A refused Cluster change; the message says why (the API answers it as a 400/403/409)."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.status = status


def cluster_of(packages: Packages, account: str, package_id: str | None) -> str | None:
    """The Cluster a caller's jobs belong to: its account, when its package comes with dedicated nodes."""
    package = packages.get(package_id) if package_id else None
    return account.lower() if package is not None and package.nodes else None


def cluster_live(packages: Packages, cluster: str, now: float | None = None) -> bool:
    """Whether the Cluster's holder still has an unexpired key of a package with dedicated nodes."""
    now = time.time() if now is None else now
    with_nodes = [p.id for p in packages.packages if p.nodes]
    with session() as db:
        expiries = db.exec(select(ApiKey.expires_at).where(func.lower(ApiKey.account) == cluster, ApiKey.lane == "dedicated",
                                                           col(ApiKey.package).in_(with_nodes))).all()  # fmt: skip
    return any(expires is None or expires > now for expires in expiries)


def add_node(cluster: str, worker_id: str) -> None:
    """The Cluster's consent to a worker key as one of its nodes. Per (Cluster, worker): consenting to a key nobody
    else may then consent to would let one Cluster lock every public worker out of all others."""
    worker_id = worker_id.lower()
    if not WORKER_ID.match(worker_id):
        raise ClusterError("worker_id is the worker's Ed25519 public key: 64 hex digits (shown when `one worker` starts)")
    with session() as db:
        if db.get(ClusterNode, (worker_id, cluster)) is not None:
            return
        if db.exec(select(func.count()).select_from(ClusterNode).where(ClusterNode.cluster == cluster)).one() >= MAX_NODES:
            raise ClusterError(f"a Cluster has at most {MAX_NODES} nodes", 403)
        db.add(ClusterNode(worker_id=worker_id, cluster=cluster, added_at=time.time()))
        db.commit()


def remove_node(cluster: str, worker_id: str) -> bool:
    with session() as db:
        node = db.get(ClusterNode, (worker_id.lower(), cluster))
        if node is None:
            return False
        db.delete(node)
        db.commit()
        return True


def nodes_of(cluster: str) -> list[str]:
    with session() as db:
        return list(db.exec(select(ClusterNode.worker_id).where(ClusterNode.cluster == cluster)).all())


def admission_problem(packages: Packages, cluster: str, worker_id: str) -> str | None:
    """Why a hello naming `cluster` is refused, or None: the Cluster consented to this worker and its package is live."""
    with session() as db:
        node = db.get(ClusterNode, (worker_id, cluster))
    if node is None:
        return f"Cluster {cluster} has not consented to this worker; its holder adds it first (one cluster add-node {worker_id})"
    if not cluster_live(packages, cluster):
        return f"Cluster {cluster} has no live Cluster package"
    return None


def register_model(catalog: Catalog, cluster: str, card: dict) -> CatalogModel:
    """A private model: its catalog entry (tasks, context, billing and the rate its nodes earn), on the Dedicated lane."""
    model_id = str(card.get("id", ""))
    if not MODEL_ID.match(model_id):
        raise ClusterError("a private model id is 1-64 characters: lowercase letters, digits, '.', '_' and '-'")
    if catalog.get(model_id) is not None:
        raise ClusterError(f"`{model_id}` is a catalog model; pick another id for your own", 409)
    try:
        model = CatalogModel.model_validate({**card, "lanes": ["dedicated"], "tokenizer": None, "serve": None, "owner": cluster})
    except ValidationError as exc:
        raise ClusterError("; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())) from None
    with session() as db:
        existing = db.get(PrivateModel, model_id)
        if existing is not None and existing.cluster != cluster:
            raise ClusterError(f"`{model_id}` is taken", 409)
        if existing is None and db.exec(select(func.count()).select_from(PrivateModel).where(PrivateModel.cluster == cluster)).one() >= MAX_PRIVATE_MODELS:
            raise ClusterError(f"a Cluster has at most {MAX_PRIVATE_MODELS} private models", 403)
        row = existing or PrivateModel(id=model_id, cluster=cluster, card="", created_at=time.time())
        row.card = model.model_dump_json()
        db.add(row)
        db.commit()
    return model


def private_model(model_id: str, cluster: str | None) -> CatalogModel | None:
    """The Cluster's own model of that id; None for anyone else (no hint that it exists)."""
    if cluster is None:
        return None
    with session() as db:
        row = db.get(PrivateModel, model_id)
    return CatalogModel.model_validate_json(row.card) if row is not None and row.cluster == cluster else None


def private_models_of(cluster: str) -> list[CatalogModel]:
    with session() as db:
        rows = db.exec(select(PrivateModel).where(PrivateModel.cluster == cluster)).all()
    return [CatalogModel.model_validate_json(r.card) for r in rows]


def private_owners(model_ids: list[str]) -> dict[str, str]:
    """model id -> owning Cluster, for the ids among these that are private models (to filter a worker's hello)."""
    with session() as db:
        rows = db.exec(select(PrivateModel.id, PrivateModel.cluster).where(col(PrivateModel.id).in_(model_ids))).all()
    return dict(rows)
