"""Trust: what lets anyone check the network without trusting the coordinator.

- `receipts`: the append-only, hash-linked, signed receipt log (`ReceiptLog`).
- `verify`: OneVerify, checks of receipts, chains, inclusion proofs and outputs from their bytes alone.
- `audits`: re-running sampled jobs on other workers, reliability, slashing bonds (`Auditor`).
"""
