"""Money: every amount is an integer of micro-units (micro-credits, micro-USDC); nothing here touches floats.

- `ledger`: idempotent credit/debit entries per account (hold -> settle/release), balances.
- `lanes`: who pays for a request (Included allotment or a Dedicated package), the quote, the hold.
- `purchases`: a Dedicated package bought by a proven USDC transfer to the treasury.
- `bonds`: a worker's staked USDC (claimed with the same payment proof), unbonding.
- `settlement`: epochs of receipts -> Merkle roots anchored on chain -> payouts net of tau.
"""
