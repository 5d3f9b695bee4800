"""Browser worker (step 5): a Pyodide package speaking protocol v1 from `backend.protocol` in a tab."""
