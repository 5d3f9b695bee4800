// Dedicated packages bought in USDC: the offer with SLA targets and measurements, the purchase flow (a
// confirm step naming amount, wallet, recipient and chain before anything is sent) and the account's keys.
import { api, dedicated, emit, errorText, money, session, store, transferData, wallet } from "./core.js";
import { html, SignInPanel, useEffect, useLoad, useRef, useSession, useState } from "./ui.js";

const CHAINS = { 1: "Ethereum", 10: "Optimism", 8453: "Base", 84532: "Base Sepolia", 42161: "Arbitrum One", 31337: "local dev chain" };

/** "Base (id 8453)", "local dev chain (id 31337)", or "chain 5" for one this page does not know. */
export function chainName(id) {
  return CHAINS[id] ? `${CHAINS[id]} (id ${id})` : `chain ${id}`;
}

/** The key's id as GET /one/keys names it: the SHA-256 of the secret, hex (the server stores nothing else). */
async function keyId(secret) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret));
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function loadPackages() {
  const [packages, sla] = await Promise.all([api("/one/packages", { key: null }), api("/one/sla", { key: null }).catch(() => null)]);
  const measured = {};
  for (const entry of sla ? sla.data.packages : []) measured[entry.package] = entry.periods.find((r) => r.closed) || entry.periods[0] || null;
  return { ...packages.data, measured };
}

export function Packages() {
  const { session: signedIn } = useSession(); // the "this browser uses your … key" line follows purchases and sign-outs
  const packages = useLoad(loadPackages, []);
  const keys = useLoad(() => (signedIn ? api("/one/keys", { key: signedIn.api_key }).then((r) => r.data) : Promise.resolve(null)), [signedIn && signedIn.api_key]);
  const [flow, setFlow] = useState(null); // the purchase in progress: { text, error } | { signIn, retry } | { bought, key, tx }

  /** Buy: first a confirm step naming what will be sent; only its Confirm sends the transaction. */
  async function buy(pkg, info) {
    try {
      const s = session();
      if (!s) return setFlow({ signIn: `Sign in to buy ${pkg.name}`, retry: () => buy(pkg, info) });
      const provider = wallet();
      const [from] = await provider.request({ method: "eth_requestAccounts" });
      if (from.toLowerCase() !== s.account.toLowerCase()) throw new Error(`The wallet (${from}) is not the signed-in account (${s.account}); sign in again.`);
      setFlow({ confirm: { pkg, from, info }, pay: () => pay(pkg, info, provider, from, s) });
    } catch (err) {
      if (String(err.message).includes("Connect a wallet")) return setFlow({ signIn: "Connect the wallet you pay from", retry: () => buy(pkg, info) });
      setFlow({ text: `Purchase failed: ${errorText(err)}`, error: true });
    }
  }

  async function pay(pkg, info, provider, from, s) {
    try {
      setFlow({ text: `Confirm the payment of ${money(pkg.price, "usdc")} in your wallet…` });
      const tx = await provider.request({ method: "eth_sendTransaction", params: [{ from, to: info.usdc, data: transferData(info.treasury, pkg.price) }] });
      for (let attempt = 0; ; attempt++) {
        const { status, data } = await api("/one/packages/purchase", { method: "POST", body: { package: pkg.id, tx_hash: tx }, key: s.api_key });
        if (status === 200) {
          store.set("dedicated", { api_key: data.api_key, package: data.package, account: s.account, in_use: true });
          emit("session");
          keys.reload();
          return setFlow({ bought: pkg, key: data.api_key, tx });
        }
        setFlow({ text: `Payment pending: ${data.confirmations}/${data.required} confirmations (tx ${tx.slice(0, 12)}…)` });
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 + attempt * 500)));
      }
    } catch (err) {
      setFlow({ text: `Purchase failed: ${errorText(err)}`, error: true });
    }
  }

  if (packages.error) return html`<div class="one-page"><p class="one-error">${errorText(packages.error)}</p></div>`;
  const info = packages.data;
  if (!info) return html`<div class="one-page" />`;
  const d = dedicated();
  return html`
    <div class="one-page">
      <h2>Dedicated packages</h2>
      <p class="one-muted" id="packages-intro">${`Pay once in USDC on ${chainName(info.chain_id)}; get an API key whose requests run ahead of the Included queue on reserved capacity.`}</p>
      ${d && html`<p class="one-muted" id="dedicated-in-use">${`This browser uses your ${d.package} key.`}</p>`}
      <div class="one-cards">${info.packages.map((p) => html`<${PackageCard} key=${p.id} pkg=${p} measured=${info.measured[p.id]} onBuy=${() => buy(p, info)} />`)}</div>
      <div id="purchase"><${Purchase} flow=${flow} onCancel=${() => setFlow({ text: "Purchase cancelled: nothing was sent." })} /></div>
      ${signedIn && html`<${YourKeys} keys=${keys} session=${signedIn} />`}
    </div>`;
}

function PackageCard({ pkg: p, measured, onBuy }) {
  return html`
    <div class="one-card one-package" data-package=${p.id}>
      <h3>${p.name}</h3>
      <p class="one-big">${money(p.price, "usdc")}</p>
      <ul>
        <li>${`${money(p.balance, "usdc")} of usage`}</li>
        ${p.nodes
          ? html`<li data-testid="nodes">dedicated nodes: GPU workers you consent to run your jobs first and no one else's</li>
                 <li>private models: your own fine-tunes, callable by your keys only</li>`
          : html`<li>${`${p.reserved} reserved concurrent job${p.reserved === 1 ? "" : "s"} on every model`}</li>`}
        <li data-testid="priority">${`queue priority ${p.priority}: ${p.priority < 100 ? "runs ahead of" : "queues with"} Included (100); lower runs sooner`}</li>
        <li>${`valid ${Math.round(p.duration_s / 86400)} days`}</li>
      </ul>
      ${p.sla && html`<${SlaTargets} sla=${p.sla} price=${p.price} measured=${measured} />`}
      <button class="one-button" data-testid=${`buy-${p.id}`} onClick=${onBuy}>${`Buy ${p.name}`}</button>
    </div>`;
}

const percent = (bps) => `${(bps / 100).toFixed(2)}%`;

/** A package's SLA: its targets, and what the last period with jobs measured (closed if there is one) from /one/sla. */
function SlaTargets({ sla, price, measured: m }) {
  const targets = [
    sla.ttft_p50_ms && `first token p50 ≤ ${sla.ttft_p50_ms} ms`,
    sla.ttft_p99_ms && `p99 ≤ ${sla.ttft_p99_ms} ms`,
    sla.availability_bps != null && `availability ≥ ${percent(sla.availability_bps)}`,
  ].filter(Boolean);
  const credit = (BigInt(price) * BigInt(sla.credit_bps)) / 10000n;
  return html`
    <div class="one-sla" data-testid="sla">
      <p class="one-muted">${`SLA: ${targets.join(", ")}`}</p>
      <p class="one-muted">${sla.credit_bps ? `a missed period credits ${money(credit, "usdc")} to your balance` : "no credit for a missed period"}</p>
      <p class="one-muted" data-testid="sla-measured">${m
        ? `${m.closed ? "last period" : "this period"}: ${m.jobs} jobs, p50 ${m.ttft_p50_ms ?? "–"} ms, p99 ${m.ttft_p99_ms ?? "–"} ms, `
          + `availability ${m.availability_bps == null ? "–" : percent(m.availability_bps)}${m.breached.length ? ` · missed ${m.breached.join(", ")}` : " · met"}`
        : "not measured yet (no jobs)"}</p>
    </div>`;
}

function Purchase({ flow, onCancel }) {
  if (!flow) return null;
  if (flow.signIn) return html`<${SignInPanel} title=${flow.signIn} onSignedIn=${flow.retry} />`;
  if (flow.confirm) return html`<${ConfirmPurchase} ...${flow.confirm} onConfirm=${flow.pay} onCancel=${onCancel} />`;
  if (!flow.bought) return html`<p class=${flow.error ? "one-error" : "one-muted"} id="purchase-status">${flow.text}</p>`;
  return html`
    <div class="one-card one-success">
      <h3 id="purchase-status">${`${flow.bought.name} confirmed`}</h3>
      <${NewKey} secret=${flow.key} />
      <p class="one-muted one-mono">${`tx ${flow.tx}`}</p>
    </div>`;
}

/** A key shown this once, with Copy (`id` names its parts: #api-key, #key-callout, #copy-key, #copy-status). */
function NewKey({ secret, id = "api-key", prefix = "" }) {
  return html`
    <div class="one-callout" role="alert" id=${`${prefix}key-callout`}>
      <p><strong>Copy it now: it is shown only this once.</strong> Chat and Images on this browser now use it; for the API, keep it somewhere safe.</p>
      <pre class="one-key" id=${id}>${secret}</pre>
      <${CopyButton} text=${secret} prefix=${prefix} />
    </div>`;
}

/** The step before any transaction: what is paid, from which wallet, to whom, on which chain. Enter confirms, Escape cancels. */
function ConfirmPurchase({ pkg, from, info, onConfirm, onCancel }) {
  const confirm = useRef(null);
  useEffect(() => confirm.current && confirm.current.focus(), []);
  const onKeyDown = (e) => e.key === "Escape" && (e.preventDefault(), onCancel());
  return html`
    <div class="one-card one-confirm" role="dialog" aria-modal="false" aria-labelledby="confirm-title" id="purchase-confirm" onKeyDown=${onKeyDown}>
      <h3 id="confirm-title">${`Buy ${pkg.name}?`}</h3>
      <dl class="one-facts">
        <dt>Amount</dt><dd data-testid="confirm-amount">${money(pkg.price, "usdc")}</dd>
        <dt>From your wallet</dt><dd class="one-mono" data-testid="confirm-wallet">${from}</dd>
        <dt>To the treasury</dt><dd class="one-mono" data-testid="confirm-recipient">${info.treasury}</dd>
        <dt>Chain</dt><dd data-testid="confirm-chain">${chainName(info.chain_id)}</dd>
      </dl>
      <p class="one-muted">Your wallet then asks you to sign one USDC transfer; nothing is sent before you confirm here.</p>
      <div class="one-row">
        <button class="one-button" ref=${confirm} id="confirm-purchase" onClick=${onConfirm}>${`Confirm: pay ${money(pkg.price, "usdc")}`}</button>
        <button class="one-button one-secondary" id="cancel-purchase" onClick=${onCancel}>Cancel</button>
      </div>
    </div>`;
}

/** Copy with feedback: "Copied ✓" for 2 s, or why the clipboard refused. */
function CopyButton({ text, prefix = "" }) {
  const [note, setNote] = useState("");
  const timer = useRef(null);
  useEffect(() => () => clearTimeout(timer.current), []);
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setNote("Copied ✓");
    } catch (err) {
      setNote(`Copy failed (${err.message || "clipboard refused"}): select the key and copy it by hand`);
    }
    clearTimeout(timer.current);
    timer.current = setTimeout(() => setNote(""), 2000);
  }
  return html`
    <div class="one-row">
      <button class="one-button one-secondary" id=${`${prefix}copy-key`} onClick=${copy}>Copy</button>
      <span class="one-muted" role="status" id=${`${prefix}copy-status`}>${note}</span>
    </div>`;
}

const day = (ts) => (ts ? new Date(ts * 1000).toLocaleString() : "never");

/** The signed-in account's package keys with Revoke or Replace (after a confirm). Revoking this browser's key
 * drops it here too; replacing it puts the new key in its place. */
function YourKeys({ keys, session: s }) {
  const [asking, setAsking] = useState(null); // the id whose revoke waits for confirmation
  const [status, setStatus] = useState("");
  const [fresh, setFresh] = useState(null); // a replacement key, shown once

  async function revoke(id, replace) {
    setAsking(null);
    try {
      const { data } = await api(`/one/keys/${id}/${replace ? "replace" : "revoke"}`, { method: "POST", key: s.api_key });
      const mine = dedicated();
      if (mine && (await keyId(mine.api_key)) === id) {
        if (replace) store.set("dedicated", { ...mine, api_key: data.api_key });
        else store.remove("dedicated");
        emit("session");
      }
      setFresh(replace ? data.api_key : null);
      setStatus(`Key ${id.slice(0, 12)}… revoked: requests with it are refused from now on.${replace ? " Its package goes on with the new key below." : ""}`);
      keys.reload();
    } catch (err) {
      setStatus(`Revoke failed: ${errorText(err)}`);
    }
  }

  const list = keys.data;
  return html`
    <section class="one-card" id="your-keys" aria-labelledby="your-keys-title">
      <h3 id="your-keys-title">Your keys</h3>
      ${keys.error && html`<p class="one-error">${errorText(keys.error)}</p>`}
      ${list && html`<p class="one-muted" id="keys-balance">${`${money(list.balance, "usdc")} left on your packages (shared by their keys)`}</p>`}
      ${list && !list.data.length && html`<p class="one-muted">No package keys yet.</p>`}
      ${list && list.data.length > 0 && html`
        <div class="one-scroll"><table class="one-table" id="keys-table">
          <thead><tr><th>Key</th><th>Package</th><th>Created</th><th>Expires</th><th /></tr></thead>
          <tbody>${list.data.map((k) => html`
            <tr key=${k.id} data-key-id=${k.id}>
              <td class="one-mono" title=${`SHA-256 of the key: ${k.id}`}>${`${k.id.slice(0, 12)}…`}</td>
              <td>${k.package}</td>
              <td>${day(k.created_at)}</td>
              <td>${k.expired ? `expired ${day(k.expires_at)}` : day(k.expires_at)}</td>
              <td>${asking === k.id
                ? html`<span class="one-row"><span>Revoke? Requests with it get 401.</span>
                    <button class="one-button" data-testid="confirm-replace" onClick=${() => revoke(k.id, true)}
                      title="A new key for the same package and end date; the package's balance carries on">Replace with a new key</button>
                    <button class="one-button one-danger" data-testid="confirm-revoke" onClick=${() => revoke(k.id, false)}>Revoke</button>
                    <button class="one-button one-secondary" data-testid="cancel-revoke" onClick=${() => setAsking(null)}>Keep</button></span>`
                : html`<button class="one-button one-secondary" data-testid="revoke" onClick=${() => setAsking(k.id)}>Revoke…</button>`}</td>
            </tr>`)}</tbody>
        </table></div>`}
      <p class="one-muted" role="status" id="keys-status">${status}</p>
      ${fresh && html`<${NewKey} secret=${fresh} id="replacement-key" prefix="replacement-" />`}
    </section>`;
}
