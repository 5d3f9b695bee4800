"""The ONE network's Python SDK: an OpenAI-compatible client whose every reply carries a receipt you can check
without trusting the coordinator, and the checks themselves (`one_sdk.receipts`)."""

from one_sdk.client import Account, One, Reply, Streamed
from one_sdk.receipts import ReceiptError, Verdict, parse_receipts, read_anchored_root, verify_chain, verify_proof, verify_receipt

__all__ = ["Account", "One", "ReceiptError", "Reply", "Streamed", "Verdict", "parse_receipts", "read_anchored_root", "verify_chain", "verify_proof", "verify_receipt"]
__version__ = "0.1.0"
