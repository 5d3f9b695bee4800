"""Trust: the signed, hash-linked receipt log, receipt/epoch verification (OneVerify) and audit re-runs."""
