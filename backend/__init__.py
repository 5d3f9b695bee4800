"""ONE coordinator. Kept import-light: Pyodide imports `backend.protocol` from this package."""
