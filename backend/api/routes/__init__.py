"""The coordinator's HTTP routes, one module per concern: where to add a route is where its concern lives.

- `openai`: the OpenAI-compatible /v1 surface
- `receipts`: a receipt, its inclusion proof, the log, OneVerify; `epochs`: settlement epochs and payouts
- `auth`: Sign-In with Ethereum and the signed-in account; `catalog`: models, quotes, packages
- `purchases`: buying a package; `workers`: the worker pool and bonds; `weights`: browser workers' weights
- `agents`: agents of the signed-in account; `dev`: the dev chain's wallet
- `clusters`: a Cluster's dedicated nodes and private models
- `keys`: the signed-in account's package keys, listed and revoked
- `sla`: each Dedicated package's SLA targets and what its jobs measured, per period
"""

from __future__ import annotations

from fastapi import APIRouter

from backend.api.routes import (
    agents,
    auth,
    catalog,
    clusters,
    dev,
    epochs,
    keys,
    openai,
    purchases,
    receipts,
    sla,
    weights,
    workers,
)

ROUTERS: tuple[APIRouter, ...] = (
    openai.router, agents.router, receipts.router, epochs.router, auth.router, catalog.router, purchases.router, keys.router,
    weights.router, workers.router, clusters.router, sla.router, dev.router,
)  # fmt: skip
