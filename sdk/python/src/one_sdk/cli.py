"""`sdk/python/bin/verify FILE`: check a file of receipts (a JSON list, JSON lines, or replies carrying one), each
receipt and the links between consecutive ones; a verdict per receipt; exit 0 when all pass, 1 otherwise (the
contract of the network's `one verify`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from one_sdk.receipts import parse_receipts, verify_chain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify", description="Verify ONE receipts: hashes, signatures, chain links.")
    parser.add_argument("file", help="receipts: a JSON list, one receipt, {'receipts': [...]} or JSON lines ('-' for stdin)")
    parser.add_argument("--coordinator", help="pin the coordinator's public key (hex)")
    args = parser.parse_args(argv)
    text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
    try:
        receipts = parse_receipts(text)
    except ValueError as exc:
        print(f"cannot read receipts: {exc}", file=sys.stderr)
        return 1
    verdicts = verify_chain(receipts, args.coordinator)
    for v in verdicts:
        print(f"seq {v.seq} {v.hash[:16]} {'valid' if v.ok else 'INVALID: ' + '; '.join(v.problems)}")
    ok = bool(verdicts) and all(v.ok for v in verdicts)
    print(f"{len(verdicts)} receipts: {'all checks pass' if ok else 'verification FAILED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
