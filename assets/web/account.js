// Balance: every lane this browser can spend on (Included credits, a Dedicated package in USDC), when each
// refreshes or ends, usage over time and by model, all from the account's receipts.
import { api, duration, errorText, laneName, money, signOut } from "./core.js";
import { html, SignInPanel, useEffect, useLoad, useNow, useSession } from "./ui.js";

const USAGE_COLUMNS = ["model", "lane", "requests", "input tokens", "output tokens", "images", "charged"];
const PLOT_DAYS = 14;

export function Balance() {
  const { session: s, dedicated: d } = useSession();
  const own = d && (!s || d.account.toLowerCase() === s.account.toLowerCase()) ? d : null; // a package of the signed-in wallet
  if (!s && !own) {
    return html`<div class="one-page"><h2>Balance</h2><${SignInPanel} title="Sign in to see your balance" /></div>`;
  }
  return html`<${Accounts} sessionKey=${s && s.api_key} packageKey=${own && own.api_key} inUse=${own && own.in_use ? "dedicated" : "included"} />`;
}

/** /one/account read with `key`, its refresh and expiry turned into instants. */
async function loadAccount(key) {
  if (!key) return null;
  const { data } = await api("/one/account", { key });
  return { ...data, refreshAt: data.refresh_in === null ? null : Date.now() + data.refresh_in * 1000 };
}

/** The signed-in wallet's Included card and, when it bought one, its package's card; usage from both keys' receipts. */
function Accounts({ sessionKey, packageKey, inUse }) {
  const included = useLoad(() => loadAccount(sessionKey), [sessionKey]);
  const pkg = useLoad(() => loadAccount(packageKey), [packageKey]);
  const now = useNow();
  const expired = included.error && included.error.status === 401;
  useEffect(() => {
    if (expired) signOut(); // the key ran out: back to the sign-in panel
  }, [expired]);
  const error = included.error || pkg.error;
  if (error) return html`<div class="one-page"><h2>Balance</h2><p class="one-error">${errorText(error)}</p></div>`;
  const accounts = [included.data, pkg.data].filter(Boolean);
  if (accounts.length < [sessionKey, packageKey].filter(Boolean).length) return html`<div class="one-page"><h2>Balance</h2></div>`;
  const first = accounts[0];
  const usage = accounts.flatMap((a) => a.usage);
  const byDay = accounts.flatMap((a) => a.usage_by_day);
  const empty = accounts.find((a) => a.lane === (inUse === "dedicated" ? "dedicated" : "included"));
  return html`
    <div class="one-page">
      <h2>Balance</h2>
      <div class="one-row">
        <span class="one-muted">Wallet</span><span class="one-mono" id="balance-account">${first.account}</span>
        <span class="one-spacer" />
        <button class="one-button one-secondary" id="sign-out" onClick=${() => signOut()}>Sign out</button>
      </div>
      <div class="one-cards">
        ${accounts.map((a) => html`<${LaneCard} key=${a.lane} account=${a} now=${now} inUse=${a.lane === inUse} />`)}
      </div>
      ${empty && BigInt(empty.balance) <= 0n && html`
        <div class="one-card one-upsell" id="upsell">
          <h3>You've used up this balance</h3>
          <p>${empty.lane === "included" && empty.refreshAt ? `Included credits come back in ${duration((empty.refreshAt - now) / 1000)}. ` : ""}Need more now? A Dedicated package runs ahead of the queue.</p>
          <a class="one-button" href="/packages">See packages</a>
        </div>`}
      <h3>Usage over time</h3>
      <${UsagePlot} days=${byDay} />
      <h3>Usage by model</h3>
      ${usage.length ? html`<${UsageTable} usage=${usage} />` : html`<p class="one-muted" id="usage-table">No requests yet.</p>`}
    </div>`;
}

/** One lane's card: what is left of what, and when it refreshes (Included) or ends (a package). */
function LaneCard({ account: a, now, inUse }) {
  const included = a.lane === "included";
  const pct = a.allotment > 0 ? Math.min(100, Number((BigInt(a.balance) * 100n) / BigInt(a.allotment))) : 0;
  const ends = a.expires_at ? new Date(a.expires_at * 1000) : null;
  return html`
    <div class="one-card" data-lane=${a.lane} id=${included ? "included-card" : "dedicated-card"}>
      <p class="one-muted">${included ? "Included lane · $ONE holders, free" : `Dedicated lane · ${a.package} package`}${inUse ? " · in use" : ""}</p>
      <p class="one-big" id=${included ? "balance-amount" : "dedicated-amount"}>${money(a.balance, a.unit)}</p>
      <p class="one-muted" id=${included ? "balance-allotment" : "dedicated-allotment"}>${`left of ${money(a.allotment, a.unit)}${included ? " this epoch" : ""}`}</p>
      <div class="one-bar"><div style=${`width:${pct}%`} /></div>
      ${included
        ? html`<p class="one-muted">Refreshes in <span id="refresh-countdown">${duration((a.refreshAt - now) / 1000)}</span></p>`
        : html`<p class="one-muted" id="dedicated-expiry">${ends ? `Ends ${ends.toLocaleString()} (in ${Math.max(0, Math.ceil((ends - now) / 86400000))} days)` : "Never ends"}</p>`}
    </div>`;
}

/** Charges per day for the last PLOT_DAYS days, one bar series per unit, drawn as SVG from the receipts' sums. */
function UsagePlot({ days }) {
  if (!days.length) return html`<p class="one-muted" id="usage-plot">No usage yet.</p>`;
  const today = new Date();
  const labels = Array.from({ length: PLOT_DAYS }, (_, i) => new Date(today.getTime() - (PLOT_DAYS - 1 - i) * 86400000).toISOString().slice(0, 10));
  const units = [...new Set(days.map((d) => d.unit))];
  return html`
    <div class="one-cards" id="usage-plot">
      ${units.map((unit) => {
        const series = labels.map((day) => days.find((d) => d.day === day && d.unit === unit) || { day, unit, charged: 0, requests: 0 });
        const top = series.reduce((m, d) => (BigInt(d.charged) > m ? BigInt(d.charged) : m), 1n);
        const total = series.reduce((sum, d) => sum + BigInt(d.charged), 0n);
        return html`
          <figure class="one-card one-plot" key=${unit} data-unit=${unit}>
            <figcaption class="one-muted">${`${laneName(unit)}: ${money(total, unit)} over ${PLOT_DAYS} days`}</figcaption>
            <svg viewBox=${`0 0 ${PLOT_DAYS * 10} 60`} preserveAspectRatio="none" role="img" aria-label=${`charges per day in ${unit}`}>
              ${series.map((d, i) => {
                const h = Number((BigInt(d.charged) * 56n) / top);
                return html`<rect key=${d.day} x=${i * 10 + 1} y=${60 - h} width="8" height=${h} data-day=${d.day} data-charged=${String(d.charged)}>
                  <title>${`${d.day}: ${money(d.charged, unit)}, ${d.requests} requests`}</title></rect>`;
              })}
            </svg>
            <div class="one-row one-muted"><span>${labels[0]}</span><span class="one-spacer" /><span>${labels[PLOT_DAYS - 1]}</span></div>
          </figure>`;
      })}
    </div>`;
}

function UsageTable({ usage }) {
  return html`
    <table class="one-table" id="usage-table">
      <thead><tr>${USAGE_COLUMNS.map((c) => html`<th key=${c}>${c}</th>`)}</tr></thead>
      <tbody>
        ${usage.map((u) => html`
          <tr key=${u.model + u.unit}>
            <td>${u.model}</td><td>${laneName(u.unit)}</td><td>${u.requests}</td><td>${u.input_tokens}</td><td>${u.output_tokens}</td><td>${u.images}</td>
            <td>${money(u.charged, u.unit)}</td>
          </tr>`)}
      </tbody>
    </table>`;
}
