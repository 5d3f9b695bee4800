// The ONE network's TypeScript/JavaScript SDK: an OpenAI-compatible client whose every reply carries a receipt you
// can check without trusting the coordinator, and the checks themselves (also importable alone from
// "@one-network/sdk/receipts", which needs nothing but node:crypto).

export { Account, One, Reply, Streamed } from "./client.js";
export * from "./receipts.js";
export { readAnchoredRoot } from "./anchor.js";
export const VERSION = "0.1.0";
