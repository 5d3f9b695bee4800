// What every view is built from: Preact + hooks + htm (one vendored module, no build step), hooks over
// core.js's event bus and timers, and the pieces several pages share (sign-in panel, wallet buttons, badges).
import { html, render, useEffect, useErrorBoundary, useMemo, useReducer, useRef, useState } from "/vendor/htm-preact.mjs";
import { activeKey, dedicated, laneName, money, on, session, signIn, walletChoices } from "./core.js";

export { html, render, useEffect, useMemo, useReducer, useRef, useState };

/** Calls fn (always its latest version) whenever the bus announces `name`, for as long as the view is mounted. */
export function useEvent(name, fn) {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => on(name, (detail) => latest.current(detail)), [name]);
}

/** Who is signed in; re-renders on every sign-in change (this tab or another). */
export function useSession() {
  const [, changed] = useReducer((n) => n + 1, 0);
  useEvent("session", changed);
  return { session: session(), dedicated: dedicated(), key: activeKey() };
}

/** Calls fn (always its latest version) every `ms` while mounted. */
export function useInterval(fn, ms) {
  const latest = useRef(fn);
  latest.current = fn;
  useEffect(() => {
    const timer = setInterval(() => latest.current(), ms);
    return () => clearInterval(timer);
  }, [ms]);
}

/** The clock, ticking every `ms`: what countdowns render from. */
export function useNow(ms = 1000) {
  const [now, setNow] = useState(Date.now);
  useInterval(() => setNow(Date.now()), ms);
  return now;
}

/** Runs `load` when `deps` change (or on reload()); {data, error, reload}. A slower, older load never overwrites a newer one. */
export function useLoad(load, deps) {
  const [state, setState] = useState({ data: null, error: null });
  const [round, reload] = useReducer((n) => n + 1, 0);
  useEffect(() => {
    let current = true;
    load().then(
      (data) => current && setState({ data, error: null }),
      (error) => current && setState({ data: null, error }),
    );
    return () => (current = false);
  }, [...deps, round]);
  return { ...state, reload };
}

/** Shows why a view failed instead of an empty box. */
export function ViewBoundary({ children }) {
  const [error] = useErrorBoundary();
  return error ? html`<p class="one-error">This view failed: ${error.message}</p>` : children;
}

/** A link to the verify page for one signed receipt, the same on every page: "✓ receipt 1a2b3c4d… · 0.002 credits · Included".
 * `answer` (what the caller got, kept in this browser) rides along in sessionStorage so Verify can check the output too. */
export function ReceiptBadge({ receipt, answer }) {
  const { hash, charge } = receipt;
  const remember = () => {
    if (answer !== undefined && answer !== null) sessionStorage.setItem(`one.answer.${hash}`, answer);
  };
  const text = `✓ receipt ${hash.slice(0, 8)}…` + (charge ? ` · ${money(charge.amount, charge.unit)} · ${laneName(charge.unit)}` : "");
  return html`<a class="one-badge" href=${`/verify?hash=${hash}`} title="Signed receipt: open to verify" data-testid="receipt-badge"
    data-hash=${hash} onClick=${remember}>${text}</a>`;
}

/** One button per wallet this page can use (walletChoices), dev wallets in the secondary style. */
export function WalletButtons({ choices, onPick, secondary = false }) {
  return (choices || []).map((choice) => html`
    <button key=${choice.label} class=${"one-button" + (secondary || choice.dev ? " one-secondary" : "")}
      data-testid=${choice.dev ? "dev-wallet" : "browser-wallet"} onClick=${() => onPick(choice)}>${choice.label}</button>`);
}

/** A wallet picker and Sign-In with Ethereum; onSignedIn(session) after a successful sign-in; `only` filters the wallets. */
export function SignInPanel({ title = "Sign in with Ethereum", onSignedIn, only = null }) {
  const wallets = useLoad(async () => (await walletChoices()).filter(only || (() => true)), []);
  const [status, setStatus] = useState("");

  async function signInWith(choice) {
    setStatus("Waiting for your wallet's signature…");
    try {
      const s = await signIn(choice.provider());
      setStatus(`Signed in as ${s.account}`);
      if (onSignedIn) onSignedIn(s);
    } catch (err) {
      setStatus(`Sign-in failed: ${err.message}`);
    }
  }

  const note = status
    || (wallets.error && `Cannot reach the coordinator: ${wallets.error.message}`)
    || (wallets.data && !wallets.data.length && "No wallet found: install a browser wallet (EIP-1193) to sign in.")
    || "";
  return html`
    <div class="one-card" id="sign-in-panel">
      <h3>${title}</h3>
      <p class="one-muted">Your wallet signs a one-time message; no transaction, no gas.</p>
      <div class="one-row"><${WalletButtons} choices=${wallets.data} onPick=${signInWith} /></div>
      <p class="one-muted" data-testid="sign-in-status">${note}</p>
    </div>`;
}
