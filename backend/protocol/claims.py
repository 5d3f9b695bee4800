"""The text a paying wallet signs (EIP-191 personal_sign) to claim its USDC transfer as a worker's bond.

Defined once, here, for the coordinator that checks it and for `one worker bond` (or a hardware wallet,
via `--print-claim`) that signs it. Stdlib only, like the rest of the protocol package.
"""

from __future__ import annotations


def bond_claim(worker_id: str, tx_hash: str) -> str:
    """Names the worker and the transfer: the signature stakes this payment for this worker, nothing else."""
    return f"ONE network bond claim\nWorker: {worker_id.lower()}\nTransaction: {tx_hash.lower()}"
