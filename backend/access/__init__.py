"""Access: who is calling and how much they may ask for.

- `auth`: Sign-In with Ethereum, hashed API keys, `principal_for(key)`, operators.
- `limits`: rate limits and the caps inside one request, checked before any work starts.
- `clusters`: a Cluster's dedicated nodes (with its consent) and private models.
"""
