"""Money: the credit ledger, lanes (Included/Dedicated), package purchases, worker bonds and epoch settlement.

Every amount here is an integer of micro-units; nothing in this package touches floats."""
