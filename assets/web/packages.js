// Dedicated packages bought in USDC: the offer with SLA targets and measurements, and the purchase flow.
import { api, dedicated, emit, errorText, micro, session, store, transferData, wallet } from "./core.js";
import { html, SignInPanel, useLoad, useSession, useState } from "./ui.js";

async function loadPackages() {
  const [packages, sla] = await Promise.all([api("/one/packages", { key: null }), api("/one/sla", { key: null }).catch(() => null)]);
  const measured = {};
  for (const entry of sla ? sla.data.packages : []) measured[entry.package] = entry.periods.find((r) => r.closed) || entry.periods[0] || null;
  return { ...packages.data, measured };
}

export function Packages() {
  useSession(); // the "this browser uses your … key" line follows purchases and sign-outs
  const packages = useLoad(loadPackages, []);
  const [flow, setFlow] = useState(null); // the purchase in progress: { text, error } | { signIn, retry } | { bought, key, tx }

  async function buy(pkg, info) {
    try {
      const s = session();
      if (!s) return setFlow({ signIn: `Sign in to buy ${pkg.name}`, retry: () => buy(pkg, info) });
      const provider = wallet();
      const [from] = await provider.request({ method: "eth_requestAccounts" });
      if (from.toLowerCase() !== s.account.toLowerCase()) throw new Error(`The wallet (${from}) is not the signed-in account (${s.account}); sign in again.`);
      setFlow({ text: `Confirm the payment of ${micro(pkg.price)} USDC in your wallet…` });
      const tx = await provider.request({ method: "eth_sendTransaction", params: [{ from, to: info.usdc, data: transferData(info.treasury, pkg.price) }] });
      for (let attempt = 0; ; attempt++) {
        const { status, data } = await api("/one/packages/purchase", { method: "POST", body: { package: pkg.id, tx_hash: tx }, key: s.api_key });
        if (status === 200) {
          store.set("dedicated", { api_key: data.api_key, package: data.package, account: s.account, in_use: true });
          emit("session");
          return setFlow({ bought: pkg, key: data.api_key, tx });
        }
        setFlow({ text: `Payment pending: ${data.confirmations}/${data.required} confirmations (tx ${tx.slice(0, 12)}…)` });
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 + attempt * 500)));
      }
    } catch (err) {
      if (String(err.message).includes("Connect a wallet")) return setFlow({ signIn: "Connect the wallet you pay from", retry: () => buy(pkg, info) });
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
      <p class="one-muted">Pay once in USDC on chain ${String(info.chain_id)}; get an API key whose requests run ahead of the Included queue on reserved capacity.</p>
      ${d && html`<p class="one-muted" id="dedicated-in-use">${`This browser uses your ${d.package} key.`}</p>`}
      <div class="one-cards">${info.packages.map((p) => html`<${PackageCard} key=${p.id} pkg=${p} measured=${info.measured[p.id]} onBuy=${() => buy(p, info)} />`)}</div>
      <div id="purchase"><${Purchase} flow=${flow} /></div>
    </div>`;
}

function PackageCard({ pkg: p, measured, onBuy }) {
  return html`
    <div class="one-card one-package" data-package=${p.id}>
      <h3>${p.name}</h3>
      <p class="one-big">${`${micro(p.price)} USDC`}</p>
      <ul>
        <li>${`${micro(p.balance)} USDC of usage`}</li>
        ${p.nodes
          ? html`<li data-testid="nodes">dedicated nodes: GPU workers you consent to run your jobs first and no one else's</li>
                 <li>private models: your own fine-tunes, callable by your keys only</li>`
          : html`<li>${`${p.reserved} reserved concurrent job${p.reserved === 1 ? "" : "s"} on every model`}</li>`}
        <li>${`priority ${p.priority} (Included runs at 100)`}</li>
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
      <p class="one-muted">${sla.credit_bps ? `a missed period credits ${micro(credit)} USDC to your balance` : "no credit for a missed period"}</p>
      <p class="one-muted" data-testid="sla-measured">${m
        ? `${m.closed ? "last period" : "this period"}: ${m.jobs} jobs, p50 ${m.ttft_p50_ms ?? "–"} ms, p99 ${m.ttft_p99_ms ?? "–"} ms, `
          + `availability ${m.availability_bps == null ? "–" : percent(m.availability_bps)}${m.breached.length ? ` · missed ${m.breached.join(", ")}` : " · met"}`
        : "not measured yet (no jobs)"}</p>
    </div>`;
}

function Purchase({ flow }) {
  if (!flow) return null;
  if (flow.signIn) return html`<${SignInPanel} title=${flow.signIn} onSignedIn=${flow.retry} />`;
  if (!flow.bought) return html`<p class=${flow.error ? "one-error" : "one-muted"} id="purchase-status">${flow.text}</p>`;
  return html`
    <div class="one-card one-success">
      <h3 id="purchase-status">${`${flow.bought.name} confirmed`}</h3>
      <p>Your API key, shown this once. Chat and Images on this browser now use it; copy it for the API:</p>
      <pre class="one-key" id="api-key">${flow.key}</pre>
      <button class="one-button one-secondary" onClick=${() => navigator.clipboard.writeText(flow.key)}>Copy</button>
      <p class="one-muted one-mono">${`tx ${flow.tx}`}</p>
    </div>`;
}
