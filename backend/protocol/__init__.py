"""Wire protocol v1 and receipt canonical form: the one source shared by every role.

Stdlib plus `rfc8785` only, so the browser worker can import it inside Pyodide.
"""

from backend.protocol import frames, receipt

__all__ = ["frames", "receipt"]
