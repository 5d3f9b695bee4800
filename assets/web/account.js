// Balance (allotment, refresh countdown, usage by model from receipts) and Dedicated packages bought in USDC.
import { api, dedicated, duration, emit, errorText, fill, h, micro, on, session, signInPanel, signOut, store, transferData, unitName, wallet } from "./core.js";

export function mountBalance(root) {
  let refreshAt = null;
  const view = h("div", { class: "one-page" });
  root.replaceChildren(view);

  async function render() {
    if (!session() && !(dedicated() && dedicated().in_use)) {
      fill(view, h("h2", {}, "Balance"), signInPanel(render, { title: "Sign in to see your balance" }));
      return;
    }
    try {
      const { data } = await api("/one/account");
      refreshAt = data.refresh_in === null ? null : Date.now() + data.refresh_in * 1000;
      const unit = unitName(data.unit);
      const pct = data.allotment > 0 ? Math.min(100, Number((BigInt(data.balance) * 100n) / BigInt(data.allotment))) : 0;
      const exhausted = data.balance <= 0;
      fill(view, 
        h("h2", {}, "Balance"),
        h("div", { class: "one-cards" },
          h("div", { class: "one-card" }, h("p", { class: "one-muted" }, data.lane === "dedicated" ? `Dedicated · ${data.package}` : "Included lane ($ONE holders)"),
            h("p", { class: "one-big", id: "balance-amount" }, `${micro(data.balance)} ${unit}`),
            h("p", { class: "one-muted", id: "balance-allotment" }, `of ${micro(data.allotment)} ${unit}${data.lane === "included" ? " this epoch" : ""}`),
            h("div", { class: "one-bar" }, h("div", { style: `width:${pct}%` }))),
          h("div", { class: "one-card" }, h("p", { class: "one-muted" }, data.lane === "included" ? "Refreshes in" : "Account"),
            data.lane === "included" ? h("p", { class: "one-big", id: "refresh-countdown" }, duration(data.refresh_in)) : h("p", { class: "one-mono" }, data.account),
            h("p", { class: "one-muted one-mono" }, data.account),
            h("button", { class: "one-button one-secondary", id: "sign-out", onclick: () => { signOut(); render(); } }, "Sign out"))),
        exhausted ? h("div", { class: "one-card one-upsell", id: "upsell" }, h("h3", {}, "You've used up this balance"),
          h("p", {}, data.lane === "included" ? `Included credits come back in ${duration(data.refresh_in)}. ` : "", "Need more now? A Dedicated package runs ahead of the queue."),
          h("a", { class: "one-button", href: "/packages" }, "See packages")) : null,
        h("h3", {}, "Usage by model"),
        data.usage.length ? h("table", { class: "one-table", id: "usage-table" },
          h("thead", {}, h("tr", {}, ["model", "requests", "input tokens", "output tokens", "images", "charged"].map((c) => h("th", {}, c)))),
          h("tbody", {}, data.usage.map((u) => h("tr", {}, h("td", {}, u.model), h("td", {}, u.requests), h("td", {}, u.input_tokens), h("td", {}, u.output_tokens), h("td", {}, u.images), h("td", {}, `${micro(u.charged)} ${unitName(u.unit)}`)))))
          : h("p", { class: "one-muted", id: "usage-table" }, "No requests yet."));
    } catch (err) {
      if (err.status === 401) {
        signOut();
        return render();
      }
      fill(view, h("p", { class: "one-error" }, errorText(err)));
    }
  }

  const tick = setInterval(() => {
    if (!root.isConnected) return clearInterval(tick), off();
    const el = view.querySelector("#refresh-countdown");
    if (el && refreshAt) el.textContent = duration((refreshAt - Date.now()) / 1000);
  }, 1000);
  const off = on("session", render);
  render();
}

export function mountPackages(root) {
  const view = h("div", { class: "one-page" });
  const flow = h("div", { id: "purchase" });
  root.replaceChildren(view);

  function step(text, cls = "one-muted") {
    flow.replaceChildren(h("p", { class: cls, id: "purchase-status" }, text));
  }

  async function buy(pkg, info) {
    try {
      let s = session();
      if (!s) {
        flow.replaceChildren(signInPanel(() => buy(pkg, info), { title: `Sign in to buy ${pkg.name}` }));
        return;
      }
      const provider = wallet();
      const [from] = await provider.request({ method: "eth_requestAccounts" });
      if (from.toLowerCase() !== s.account.toLowerCase()) throw new Error(`The wallet (${from}) is not the signed-in account (${s.account}); sign in again.`);
      step(`Confirm the payment of ${micro(pkg.price)} USDC in your wallet…`);
      const tx = await provider.request({ method: "eth_sendTransaction", params: [{ from, to: info.usdc, data: transferData(info.treasury, pkg.price) }] });
      for (let attempt = 0; ; attempt++) {
        const { status, data } = await api("/one/packages/purchase", { method: "POST", body: { package: pkg.id, tx_hash: tx }, key: s.api_key });
        if (status === 200) {
          store.set("dedicated", { api_key: data.api_key, package: data.package, account: s.account, in_use: true });
          emit("session");
          flow.replaceChildren(h("div", { class: "one-card one-success" },
            h("h3", { id: "purchase-status" }, `${pkg.name} confirmed`),
            h("p", {}, "Your API key, shown this once. Chat and Images on this browser now use it; copy it for the API:"),
            h("pre", { class: "one-key", id: "api-key" }, data.api_key),
            h("button", { class: "one-button one-secondary", onclick: () => navigator.clipboard.writeText(data.api_key) }, "Copy"),
            h("p", { class: "one-muted one-mono" }, `tx ${tx}`)));
          return;
        }
        step(`Payment pending: ${data.confirmations}/${data.required} confirmations (tx ${tx.slice(0, 12)}…)`);
        await new Promise((r) => setTimeout(r, Math.min(5000, 500 + attempt * 500)));
      }
    } catch (err) {
      if (String(err.message).includes("Connect a wallet")) {
        flow.replaceChildren(signInPanel(() => buy(pkg, info), { title: "Connect the wallet you pay from" }));
        return;
      }
      step(`Purchase failed: ${errorText(err)}`, "one-error");
    }
  }

  async function render() {
    try {
      const { data: info } = await api("/one/packages", { key: null });
      const d = dedicated();
      fill(view, 
        h("h2", {}, "Dedicated packages"),
        h("p", { class: "one-muted" }, "Pay once in USDC on chain ", String(info.chain_id), "; get an API key whose requests run ahead of the Included queue on reserved capacity."),
        d ? h("p", { class: "one-muted", id: "dedicated-in-use" }, `This browser uses your ${d.package} key.`) : null,
        h("div", { class: "one-cards" }, info.packages.map((p) => h("div", { class: "one-card one-package", dataset: { package: p.id } },
          h("h3", {}, p.name),
          h("p", { class: "one-big" }, `${micro(p.price)} USDC`),
          h("ul", {}, h("li", {}, `${micro(p.balance)} USDC of usage`), h("li", {}, `${p.reserved} reserved concurrent job${p.reserved > 1 ? "s" : ""}`),
            h("li", {}, `priority ${p.priority} (Included runs at 100)`), h("li", {}, `valid ${Math.round(p.duration_s / 86400)} days`)),
          h("button", { class: "one-button", "data-testid": `buy-${p.id}`, onclick: () => buy(p, info) }, `Buy ${p.name}`)))),
        flow);
    } catch (err) {
      fill(view, h("p", { class: "one-error" }, errorText(err)));
    }
  }
  render();
}
