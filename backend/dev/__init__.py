"""Dev tooling: the local network `one up` starts (devnet), the demo wallet/key, npm tools and the web assets build."""
