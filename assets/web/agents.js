// Agents page: your deployed agents (the key in this browser owns them), their runs and receipt trails.
import { activeKey, api, errorText, fill, h, micro, on, signInPanel } from "./core.js";

export function mountAgents(root) {
  const view = h("div", { class: "one-page" });
  root.replaceChildren(view);

  async function showRuns(name, box) {
    const { data } = await api(`/one/agents/${name}/runs`);
    fill(box, data.runs.length ? data.runs.map((r) => h("div", { class: "one-card", dataset: { run: r.id } },
      h("p", {}, h("b", {}, `run ${r.id}`), ` · ${r.trigger} · `, h("span", { class: r.status === "done" ? "" : "one-error", "data-testid": "run-status" }, r.status),
        ` · ${r.steps} steps · spent ${micro(r.spent)} · tools ${r.tools.join(", ") || "—"}`, r.error ? ` · ${r.error}` : ""),
      h("ol", { class: "one-mono" }, r.receipts.map((hash) => h("li", {}, h("a", { href: `/verify?hash=${hash}`, class: "one-link", "data-testid": "trail-receipt" }, hash))))))
      : h("p", { class: "one-muted" }, "No runs yet."));
  }

  async function render() {
    if (!activeKey()) {
      fill(view, h("h2", {}, "Agents"), signInPanel(render, { title: "Sign in to see your agents" }));
      return;
    }
    try {
      const { data } = await api("/one/agents");
      fill(view, h("h2", {}, "Agents"),
        h("p", { class: "one-muted" }, "Deploy with `one agent deploy agent.yaml`; every step and tool call of a run is a receipt, each the parent of the next."),
        data.agents.length ? data.agents.map((a) => {
          const runs = h("div", { class: "one-page" });
          const card = h("div", { class: "one-card", dataset: { agent: a.name } },
            h("h3", {}, a.name), h("p", { class: "one-muted" }, `${a.status} · ${a.lane}${a.package ? " / " + a.package : ""} · next run ${a.next_run_at ? new Date(a.next_run_at * 1000).toLocaleString() : "manual"}`),
            h("div", { class: "one-row" },
              h("button", { class: "one-button", onclick: async () => { await api(`/one/agents/${a.name}/run`, { method: "POST" }); setTimeout(() => showRuns(a.name, runs), 1500); } }, "Run now"),
              h("button", { class: "one-button one-secondary", onclick: async () => { await api(`/one/agents/${a.name}/${a.status === "paused" ? "resume" : "pause"}`, { method: "POST" }); render(); } }, a.status === "paused" ? "Resume" : "Pause")),
            runs);
          showRuns(a.name, runs).catch((err) => fill(runs, h("p", { class: "one-error" }, errorText(err))));
          return card;
        }) : h("p", { class: "one-muted", id: "no-agents" }, "No agents yet."));
    } catch (err) {
      fill(view, h("p", { class: "one-error" }, errorText(err)));
    }
  }
  const off = on("session", render);
  const timer = setInterval(() => { if (!root.isConnected) { clearInterval(timer); off(); } }, 5000);
  render();
}
