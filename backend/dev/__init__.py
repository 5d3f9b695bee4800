"""Dev tooling behind `make run` and the tests; never on a production coordinator's request path.

- `devnet`: the whole local network `one up` starts (dev chain, coordinator + UI, workers) and its watchdog.
- `demo`: the demo wallet's Dedicated key printed by `make run`.
- `npm_tools`, `web_assets`: pinned npm tools (bun, anvil) and the browser files copied into assets/.
"""
