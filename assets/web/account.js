// Balance (allotment, refresh countdown, usage by model from receipts) and Dedicated packages bought in USDC.
import { api, dedicated, duration, emit, errorText, micro, session, signOut, store, transferData, unitName, wallet } from "./core.js";
import { html, SignInPanel, useEffect, useLoad, useNow, useSession, useState } from "./ui.js";

const USAGE_COLUMNS = ["model", "requests", "input tokens", "output tokens", "images", "charged"];

export function Balance() {
  const { session: s, dedicated: d, key } = useSession();
  if (!s && !(d && d.in_use)) {
    return html`<div class="one-page"><h2>Balance</h2><${SignInPanel} title="Sign in to see your balance" /></div>`;
  }
  return html`<${Account} apiKey=${key} />`;
}

async function loadAccount() {
  const { data } = await api("/one/account");
  return { ...data, refreshAt: data.refresh_in === null ? null : Date.now() + data.refresh_in * 1000 };
}

/** The signed-in account (`apiKey` is the key it was read with; a new key reads it again). */
function Account({ apiKey }) {
  const account = useLoad(loadAccount, [apiKey]);
  const now = useNow();
  const expired = account.error && account.error.status === 401;
  useEffect(() => {
    if (expired) signOut(); // the key ran out: back to the sign-in panel
  }, [expired]);
  if (account.error) return html`<div class="one-page"><p class="one-error">${errorText(account.error)}</p></div>`;
  const data = account.data;
  if (!data) return html`<div class="one-page"><h2>Balance</h2></div>`;
  const unit = unitName(data.unit);
  const included = data.lane === "included";
  const refreshIn = data.refreshAt === null ? null : duration((data.refreshAt - now) / 1000);
  const pct = data.allotment > 0 ? Math.min(100, Number((BigInt(data.balance) * 100n) / BigInt(data.allotment))) : 0;
  return html`
    <div class="one-page">
      <h2>Balance</h2>
      <div class="one-cards">
        <div class="one-card">
          <p class="one-muted">${included ? "Included lane ($ONE holders)" : `Dedicated · ${data.package}`}</p>
          <p class="one-big" id="balance-amount">${`${micro(data.balance)} ${unit}`}</p>
          <p class="one-muted" id="balance-allotment">${`of ${micro(data.allotment)} ${unit}${included ? " this epoch" : ""}`}</p>
          <div class="one-bar"><div style=${`width:${pct}%`} /></div>
        </div>
        <div class="one-card">
          <p class="one-muted">${included ? "Refreshes in" : "Account"}</p>
          ${included ? html`<p class="one-big" id="refresh-countdown">${refreshIn}</p>` : html`<p class="one-mono">${data.account}</p>`}
          <p class="one-muted one-mono">${data.account}</p>
          <button class="one-button one-secondary" id="sign-out" onClick=${() => signOut()}>Sign out</button>
        </div>
      </div>
      ${data.balance <= 0 && html`
        <div class="one-card one-upsell" id="upsell">
          <h3>You've used up this balance</h3>
          <p>${included ? `Included credits come back in ${refreshIn}. ` : ""}Need more now? A Dedicated package runs ahead of the queue.</p>
          <a class="one-button" href="/packages">See packages</a>
        </div>`}
      <h3>Usage by model</h3>
      ${data.usage.length ? html`<${UsageTable} usage=${data.usage} />` : html`<p class="one-muted" id="usage-table">No requests yet.</p>`}
    </div>`;
}

function UsageTable({ usage }) {
  return html`
    <table class="one-table" id="usage-table">
      <thead><tr>${USAGE_COLUMNS.map((c) => html`<th key=${c}>${c}</th>`)}</tr></thead>
      <tbody>
        ${usage.map((u) => html`
          <tr key=${u.model + u.unit}>
            <td>${u.model}</td><td>${u.requests}</td><td>${u.input_tokens}</td><td>${u.output_tokens}</td><td>${u.images}</td>
            <td>${`${micro(u.charged)} ${unitName(u.unit)}`}</td>
          </tr>`)}
      </tbody>
    </table>`;
}

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
