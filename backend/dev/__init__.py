"""Dev tooling behind `make run` and the tests; never on a production coordinator's request path.

- `devnet`: the whole local network `one up` starts (dev chain, coordinator + UI, workers) and its watchdog.
- `demo`: the demo wallet's Dedicated key printed by `make run`.
- `npm_tools`, `web_assets`, `browser_wheel`: pinned npm tools (bun, anvil), the browser files copied into
  assets/, and the browser worker's wheel (browser_worker/ + backend/protocol/ + rfc8785).
"""
