// Agents page: your deployed agents (the key in this browser owns them), their runs and receipt trails.
import { api, errorText, micro } from "./core.js";
import { html, SignInPanel, useLoad, useSession } from "./ui.js";

export function Agents() {
  const { key } = useSession();
  if (!key) return html`<div class="one-page"><h2>Agents</h2><${SignInPanel} title="Sign in to see your agents" /></div>`;
  return html`<${AgentList} apiKey=${key} />`;
}

/** The agents `apiKey` owns (a new key reads them again). */
function AgentList({ apiKey }) {
  const agents = useLoad(async () => (await api("/one/agents")).data.agents, [apiKey]);
  if (agents.error) return html`<div class="one-page"><p class="one-error">${errorText(agents.error)}</p></div>`;
  return html`
    <div class="one-page">
      <h2>Agents</h2>
      <p class="one-muted">Deploy with \`one agent deploy agent.yaml\`; every step and tool call of a run is a receipt, each the parent of the next.</p>
      ${agents.data && (agents.data.length
        ? agents.data.map((a) => html`<${AgentCard} key=${a.name} agent=${a} onChanged=${agents.reload} />`)
        : html`<p class="one-muted" id="no-agents">No agents yet.</p>`)}
    </div>`;
}

function AgentCard({ agent: a, onChanged }) {
  const runs = useLoad(async () => (await api(`/one/agents/${a.name}/runs`)).data.runs, [a.name]);
  const paused = a.status === "paused";
  const runNow = async () => {
    await api(`/one/agents/${a.name}/run`, { method: "POST" });
    setTimeout(runs.reload, 1500);
  };
  const pauseOrResume = async () => {
    await api(`/one/agents/${a.name}/${paused ? "resume" : "pause"}`, { method: "POST" });
    onChanged();
  };
  const nextRun = a.next_run_at ? new Date(a.next_run_at * 1000).toLocaleString() : "manual";
  return html`
    <div class="one-card" data-agent=${a.name}>
      <h3>${a.name}</h3>
      <p class="one-muted">${`${a.status} · ${a.lane}${a.package ? " / " + a.package : ""} · next run ${nextRun}`}</p>
      ${a.wallet && html`<p class="one-muted">its wallet (fund it with ETH for gas and the tokens it trades): <span class="one-mono" data-testid="agent-wallet">${a.wallet}</span></p>`}
      <div class="one-row">
        <button class="one-button" onClick=${runNow}>Run now</button>
        <button class="one-button one-secondary" onClick=${pauseOrResume}>${paused ? "Resume" : "Pause"}</button>
      </div>
      <div class="one-page">
        ${runs.error ? html`<p class="one-error">${errorText(runs.error)}</p>`
          : runs.data && (runs.data.length ? runs.data.map((r) => html`<${AgentRun} key=${r.id} run=${r} />`) : html`<p class="one-muted">No runs yet.</p>`)}
      </div>
    </div>`;
}

/** One run: its outcome and its receipt trail, each hash a link to the verify page. */
function AgentRun({ run: r }) {
  const summary = ` · ${r.steps} steps · spent ${micro(r.spent)} · tools ${r.tools.join(", ") || "—"}${r.error ? ` · ${r.error}` : ""}`;
  return html`
    <div class="one-card" data-run=${r.id}>
      <p><b>${`run ${r.id}`}</b>${` · ${r.trigger} · `}<span class=${r.status === "done" ? "" : "one-error"} data-testid="run-status">${r.status}</span>${summary}</p>
      <ol class="one-mono">
        ${r.receipts.map((hash) => html`<li key=${hash}><a href=${`/verify?hash=${hash}`} class="one-link" data-testid="trail-receipt">${hash}</a></li>`)}
      </ol>
    </div>`;
}
