// Balance: allotment, refresh countdown, usage by model from receipts.
import { api, duration, errorText, micro, signOut, unitName } from "./core.js";
import { html, SignInPanel, useEffect, useLoad, useNow, useSession } from "./ui.js";

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
