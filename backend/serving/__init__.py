"""Serving: one inference request from quote to receipt.

- `inference`: `InferenceService.run` (limits, lane hold, scheduler, relay, claim check, receipt, charge).
- `usage`: what the coordinator counts itself from what it relayed, so a receipt never bills more.
"""
