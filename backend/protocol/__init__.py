"""What the coordinator and every worker share, and nothing above it: the one source both roles import.

Stdlib plus `rfc8785`, so the browser worker imports it inside Pyodide: `frames` (wire protocol v1), `session`
(a worker's side of it, for every worker), `outputs` (the items delta frames carry), `receipt` (canonical
form, digests, attestation), `jobs` and `body` (reading a job's OpenAI body), `claims` (bond messages),
`merkle`. Node-side only: `signing` (PyNaCl), `safe_fetch` (httpx), `tiny_tokenizer` (tokenizers).
"""

from backend.protocol import frames, receipt

__all__ = ["frames", "receipt"]
