"""The messages a worker key or a paying wallet signs about bonds: the claim of a transfer as a bond, the
worker's consent to it, and the request to unbond.

Defined once, here, for the coordinator that checks it and for `one worker bond` (or a hardware wallet,
via `--print-claim`) that signs it. Stdlib only, like the rest of the protocol package.
"""

from __future__ import annotations


def bond_claim(worker_id: str, tx_hash: str) -> str:
    """Names the worker and the transfer: the signature stakes this payment for this worker, nothing else."""
    return f"ONE network bond claim\nWorker: {worker_id.lower()}\nTransaction: {tx_hash.lower()}"


def bond_consent(tx_hash: str) -> bytes:
    """What the worker key signs (Ed25519) to agree that this transfer is staked for it: the 32 tx-hash bytes."""
    return bytes.fromhex(tx_hash.lower().removeprefix("0x"))


def unbond_request(worker_id: str) -> bytes:
    """What the worker key signs (Ed25519) to ask for its bond back."""
    return b"unbond" + bytes.fromhex(worker_id)
