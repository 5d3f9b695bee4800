"""Access: who is calling (API keys, SIWE sessions) and how much they may ask for (rate limits, request caps)."""
