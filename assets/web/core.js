// ONE web app core: storage, the API client, wallets and Sign-In with Ethereum.
// Conversations, keys and images live only in this browser (localStorage, or memory in flash mode);
// the server sees requests and keeps digests, never the text.

const PREFIX = "one.";

export const store = {
  get(key, fallback = null) {
    try {
      const raw = localStorage.getItem(PREFIX + key);
      return raw === null ? fallback : JSON.parse(raw);
    } catch {
      return fallback;
    }
  },
  set(key, value) {
    localStorage.setItem(PREFIX + key, JSON.stringify(value));
  },
  remove(key) {
    localStorage.removeItem(PREFIX + key);
  },
};

// ---- keys: the SIWE session key (Included lane) and a bought Dedicated key ----

export function session() {
  const s = store.get("session");
  if (s && s.expires_at && s.expires_at * 1000 < Date.now()) {
    store.remove("session");
    return null;
  }
  return s;
}

export function dedicated() {
  return store.get("dedicated");
}

/** The key requests are sent with: a Dedicated key when one is in use, else the session key, else none (open dev mode). */
export function activeKey() {
  const d = dedicated();
  if (d && d.in_use) return d.api_key;
  const s = session();
  return s ? s.api_key : null;
}

export function signOut() {
  store.remove("session");
  store.remove("dedicated");
  store.remove("wallet");
  chosenWallet = null;
  emit("session");
}

// ---- a tiny event bus so every mounted view follows sign-in changes (ui.js turns it into hooks) ----

const listeners = new Map();
export function on(name, fn) {
  if (!listeners.has(name)) listeners.set(name, new Set());
  listeners.get(name).add(fn);
  return () => listeners.get(name).delete(fn);
}
export function emit(name, detail) {
  for (const fn of listeners.get(name) || []) fn(detail);
}
window.addEventListener("storage", (e) => {
  if (e.key && e.key.startsWith(PREFIX)) emit(e.key.slice(PREFIX.length));
});

// ---- API ----

export class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code;
    this.body = body || {};
  }
}

export async function api(path, { method = "GET", body, key = activeKey(), signal, raw = false } = {}) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (key) headers.authorization = `Bearer ${key}`;
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
  if (raw) return response;
  let data = null;
  try {
    data = await response.json();
  } catch {
    /* not JSON */
  }
  if (!response.ok) throw new ApiError(response.status, data);
  return { status: response.status, data, headers: response.headers };
}

/** Read an OpenAI server-sent-event stream: calls onChunk for each JSON chunk until [DONE]. */
export async function readSSE(response, onChunk) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      for (const line of event.split("\n")) {
        if (!line.startsWith("data:")) continue;
        const payload = line.slice(5).trim();
        if (payload === "[DONE]") return;
        onChunk(JSON.parse(payload));
      }
    }
  }
}

// ---- money: integers in, strings out ----

/** 1234567 micro-units -> "1.234567" (trailing zeros trimmed); never through floats. */
export function micro(amount) {
  const n = BigInt(amount);
  const sign = n < 0n ? "-" : "";
  const abs = n < 0n ? -n : n;
  const whole = abs / 1000000n;
  const frac = (abs % 1000000n).toString().padStart(6, "0").replace(/0+$/, "");
  return sign + whole.toString() + (frac ? "." + frac : "");
}

export function unitName(unit) {
  return unit === "usdc" ? "USDC" : "credits";
}

/** The one way every page writes an amount: integer micro-units and their unit -> "0.002 credits", "5 USDC". */
export function money(amount, unit) {
  return `${micro(amount)} ${unitName(unit)}`;
}

/** The lane a charge unit belongs to, as pages name it: credits are the Included lane, USDC the Dedicated one. */
export function laneName(unit) {
  return unit === "usdc" ? "Dedicated" : "Included";
}

/** The unit this browser's requests are charged in now: USDC while a Dedicated key is in use, else credits. */
export function currentUnit() {
  const d = dedicated();
  return d && d.in_use ? "usdc" : "credit";
}

export function duration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return `${h}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

/** The model to preselect: the first a worker serves right now (the catalog also lists offline ones). */
export function firstOnline(models) {
  return models.find((m) => m.available) || models[0];
}

/** A model's price in `unit` (rates are micro-units of the caller's lane): "0.002 credits / 1k output tokens". */
export function rateText(model, unit = currentUnit()) {
  if (model.billing === "per_image_plus_output_tokens") return `${money(model.image_rate, unit)} / image read + ${money(model.rate, unit)} / 1k output tokens`;
  const per = { per_1k_output_tokens: "1k output tokens", per_1k_input_tokens: "1k input tokens", per_image: "image" }[model.billing] || model.billing;
  return `${money(model.rate, unit)} / ${per}`;
}

// ---- wallets (EIP-1193) ----

/** The web app's dev wallet on the local dev chain: anvil holds the demo wallets' keys; /one/dev/rpc forwards. */
export function devWallet(address) {
  let id = 0;
  return {
    isOneDevWallet: true,
    async request({ method, params = [] }) {
      if (method === "eth_requestAccounts" || method === "eth_accounts") return [address];
      const response = await fetch("/one/dev/rpc", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ jsonrpc: "2.0", id: ++id, method, params }),
      });
      const reply = await response.json();
      if (reply.error) throw new Error(reply.error.message || JSON.stringify(reply.error));
      return reply.result;
    },
  };
}

let chosenWallet = null;

/** The wallets this page can use: the browser's (window.ethereum) and, on the dev chain, the dev wallets. */
export async function walletChoices() {
  const choices = [];
  if (window.ethereum) choices.push({ label: "Browser wallet", provider: () => window.ethereum });
  const { data } = await api("/one/packages", { key: null });
  const operators = new Set(data.dev_operators || []);
  for (const address of data.dev_wallets || []) {
    const operator = operators.has(address);
    choices.push({ label: `Dev wallet ${address.slice(0, 6)}…${address.slice(-4)}${operator ? " (operator)" : ""}`, provider: () => devWallet(address), dev: true, operator });
  }
  return choices;
}

/** The wallet signed in with, remembered (by kind, never keys) so later pages can pay with it. */
export function wallet() {
  if (!chosenWallet) {
    const saved = store.get("wallet");
    if (saved && saved.kind === "browser" && window.ethereum) chosenWallet = window.ethereum;
    else if (saved && saved.kind === "dev") chosenWallet = devWallet(saved.address);
  }
  if (!chosenWallet) throw new Error("Connect a wallet first.");
  return chosenWallet;
}

function utf8Hex(text) {
  return "0x" + Array.from(new TextEncoder().encode(text), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Sign-In with Ethereum: the server writes the EIP-4361 message, the wallet signs it, we keep the session key. */
export async function signIn(provider = wallet()) {
  const [address] = await provider.request({ method: "eth_requestAccounts" });
  const { data: challenge } = await api(`/one/auth/nonce?address=${address}&uri=${encodeURIComponent(location.origin)}`, { key: null });
  const signature = await provider.request({ method: "personal_sign", params: [utf8Hex(challenge.message), address] });
  const { data } = await api("/one/auth/siwe", { method: "POST", body: { message: challenge.message, signature }, key: null });
  const s = { account: data.account, api_key: data.api_key, lane: data.lane, expires_at: Math.floor(Date.now() / 1000) + data.expires_in };
  store.set("session", s);
  const d = dedicated();
  if (d && d.in_use && d.account.toLowerCase() !== s.account.toLowerCase()) store.set("dedicated", { ...d, in_use: false }); // another wallet's package
  store.set("wallet", provider.isOneDevWallet ? { kind: "dev", address } : { kind: "browser" });
  chosenWallet = provider;
  emit("session");
  return s;
}

/** ERC-20 transfer(to, amount) calldata. */
export function transferData(to, amount) {
  const addr = to.toLowerCase().replace(/^0x/, "").padStart(64, "0");
  const value = BigInt(amount).toString(16).padStart(64, "0");
  return "0xa9059cbb" + addr + value;
}

export function errorText(err) {
  return err instanceof ApiError ? `${err.message}${err.code ? ` (${err.code})` : ""}` : String(err.message || err);
}
