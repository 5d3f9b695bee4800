// The root an epoch's head must match, read from the EpochAnchor contract over plain JSON-RPC (no Ethereum
// library needed: one eth_call of `roots(uint256) returns (bytes32)`).

const ROOTS_SELECTOR = "c2b40ae4"; // keccak256("roots(uint256)")[:4]

/**
 * `EpochAnchor.roots(epoch)` at `address` on the chain at `rpcUrl`, as 64 hex digits (zeros when not anchored yet).
 * Pass it to verifyProof(proof, {anchoredRoot}).
 * @param {string} rpcUrl @param {string} address @param {number | bigint} epoch
 * @param {{fetch?: typeof fetch}} [options]
 * @returns {Promise<string>}
 */
export async function readAnchoredRoot(rpcUrl, address, epoch, { fetch: doFetch = globalThis.fetch } = {}) {
  const data = "0x" + ROOTS_SELECTOR + BigInt(epoch).toString(16).padStart(64, "0");
  const response = await doFetch(rpcUrl, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method: "eth_call", params: [{ to: address, data }, "latest"] }),
  });
  const reply = await response.json();
  if (reply.error) throw new Error(`eth_call failed: ${reply.error.message ?? JSON.stringify(reply.error)}`);
  const result = String(reply.result ?? "").replace(/^0x/, "");
  if (!/^[0-9a-fA-F]{64}$/.test(result)) throw new Error(`eth_call returned no bytes32: ${reply.result}`);
  return result.toLowerCase();
}
