// Agents page: your deployed agents (the key in this browser owns them), what each does, its runs and receipt
// trails; and a YAML editor that validates on the coordinator (line by line) and deploys.
import { api, dedicated, errorText, laneName, money } from "./core.js";
import { html, SignInPanel, useLoad, useRef, useSession, useState } from "./ui.js";

const UNIT_WORDS = { s: "second", m: "minute", h: "hour", d: "day" };

/** Agents spend their lane's unit: credits on Included, USDC on Dedicated. */
function unitOf(lane) {
  return lane === "dedicated" ? "usdc" : "credit";
}

/** "every 6h" -> "every 6 hours"; a cron expression -> its words; none -> on demand. */
function scheduleText(schedule) {
  if (!schedule) return "on demand only (Run now)";
  const every = /^every\s+(\d+)\s*([smhd])$/.exec(schedule.trim());
  if (!every) return `on the cron schedule "${schedule}" (UTC)`;
  const n = Number(every[1]);
  return `every ${n === 1 ? "" : n + " "}${UNIT_WORDS[every[2]]}${n === 1 ? "" : "s"}`;
}

function watchText(watch) {
  if (!watch) return "";
  const [kind, text] = watch.when.split(/: (.*)/s);
  const condition = kind === "contains" ? ` and contains "${text}"` : kind === "absent" ? ` and lacks "${text}"` : "";
  return `; reports only when ${watch.tool}'s result changed${condition}`;
}

/** What the file is about, in one line: the goal's first line (the whole goal on hover). */
function goalLine(goal) {
  return goal ? goal.split("\n")[0] : "the default: use each tool, then write a short report";
}

export function Agents() {
  const { key } = useSession();
  if (!key) return html`<div class="one-page"><h2>Agents</h2><${SignInPanel} title="Sign in to see and deploy your agents" /></div>`;
  return html`<${AgentList} apiKey=${key} />`;
}

/** The agents `apiKey` owns (a new key reads them again), then the editor that deploys more. */
function AgentList({ apiKey }) {
  const agents = useLoad(async () => (await api("/one/agents")).data.agents, [apiKey]);
  return html`
    <div class="one-page">
      <h2>Agents</h2>
      <p class="one-muted">An agent runs on its schedule (or on demand): it calls its tools in order, then the model writes a report. Every step and tool call is a receipt, each the parent of the next.</p>
      ${agents.error && html`<p class="one-error">${errorText(agents.error)}</p>`}
      ${agents.data && (agents.data.length
        ? agents.data.map((a) => html`<${AgentCard} key=${a.name} agent=${a} onChanged=${agents.reload} />`)
        : html`<p class="one-muted" id="no-agents">No agents yet: write one below.</p>`)}
      <${AgentEditor} key=${apiKey} onDeployed=${agents.reload} />
    </div>`;
}

function AgentCard({ agent: a, onChanged }) {
  const runs = useLoad(async () => (await api(`/one/agents/${a.name}/runs`)).data.runs, [a.name]);
  const unit = unitOf(a.lane);
  const paused = a.status === "paused";
  const runNow = async () => {
    await api(`/one/agents/${a.name}/run`, { method: "POST" });
    setTimeout(() => { runs.reload(); onChanged(); }, 1500);
  };
  const pauseOrResume = async () => {
    await api(`/one/agents/${a.name}/${paused ? "resume" : "pause"}`, { method: "POST" });
    onChanged();
  };
  const nextRun = a.next_run_at ? new Date(a.next_run_at * 1000).toLocaleString() : "none scheduled";
  const caps = [a.max_spend ? `at most ${money(a.max_spend, unit)} per run` : "no per-run cap (the lane's balance is the limit)",
    a.max_steps && `${a.max_steps} steps at most`];
  const spend = a.recent_runs ? `last ${a.recent_runs} run${a.recent_runs === 1 ? "" : "s"} spent ${money(a.recent_spent, unit)}` : `no runs yet (${money(0, unit)} spent)`;
  return html`
    <div class="one-card" data-agent=${a.name}>
      <h3>${a.name}</h3>
      <p class="one-muted">${`${a.status} · ${laneName(unit)}${a.package ? " / " + a.package : ""} · next run ${nextRun}`}</p>
      <dl class="agent-facts">
        <dt>Goal</dt><dd data-testid="agent-goal" title=${a.goal || ""}>${goalLine(a.goal)}</dd>
        <dt>Model</dt><dd data-testid="agent-model">${a.model || "—"}</dd>
        <dt>Tools</dt><dd data-testid="agent-tools">${a.tools.length ? a.tools.join(" → ") : "none: the model answers alone"}</dd>
        <dt>Schedule</dt><dd data-testid="agent-schedule">${scheduleText(a.schedule) + watchText(a.watch)}${a.webhook_host ? `; results posted to ${a.webhook_host}` : ""}</dd>
        <dt>Budget</dt><dd data-testid="agent-budget">${caps.filter(Boolean).join(" · ")}</dd>
        ${a.wallet_caps && html`<dt>Wallet</dt><dd data-testid="agent-wallet-caps">${`trades at most ${money(a.wallet_caps.max_per_run, "usdc")} per run and ${money(a.wallet_caps.max_per_day, "usdc")} per day`}</dd>`}
        <dt>Spend</dt><dd data-testid="agent-spend">${spend}</dd>
      </dl>
      ${a.wallet && html`<p class="one-muted">its wallet (fund it with ETH for gas and the tokens it trades): <span class="one-mono" data-testid="agent-wallet">${a.wallet}</span></p>`}
      <div class="one-row">
        <button class="one-button" onClick=${runNow}>Run now</button>
        <button class="one-button one-secondary" onClick=${pauseOrResume}>${paused ? "Resume" : "Pause"}</button>
      </div>
      <div class="one-page">
        ${runs.error ? html`<p class="one-error">${errorText(runs.error)}</p>`
          : runs.data && (runs.data.length ? runs.data.map((r) => html`<${AgentRun} key=${r.id} run=${r} unit=${unit} />`) : html`<p class="one-muted">No runs yet.</p>`)}
      </div>
    </div>`;
}

/** One run: its outcome and its receipt trail, each hash a link to the verify page. */
function AgentRun({ run: r, unit }) {
  const summary = ` · ${r.steps} steps · spent ${money(r.spent, unit)} · tools ${r.tools.join(", ") || "—"}${r.error ? ` · ${r.error}` : ""}`;
  return html`
    <div class="one-card" data-run=${r.id}>
      <p><b>${`run ${r.id}`}</b>${` · ${r.trigger} · `}<span class=${r.status === "done" ? "" : "one-error"} data-testid="run-status">${r.status}</span>${summary}</p>
      <ol class="one-mono">
        ${r.receipts.map((hash) => html`<li key=${hash}><a href=${`/verify?hash=${hash}`} class="one-link" data-testid="trail-receipt">${hash}</a></li>`)}
      </ol>
    </div>`;
}

/** A small working file for this browser's key: the budget must be the key's lane (and package). */
function example() {
  const d = dedicated();
  const unit = d && d.in_use ? "usdc" : "credit";
  const budget = unit === "usdc" ? `lane: dedicated, package: ${d.package}, max_spend: 2000` : "lane: included, max_spend: 2000";
  return `# Every 6 hours, tiny-chat summarizes; each run may spend at most ${money(2000, unit)} (max_spend is in micro-units).
agent: daily-summary
model: tiny-chat
trigger: { schedule: "every 6h" }   # "every N s|m|h|d", a cron expression (UTC), or { manual: true }
tools: [ summarize ]
budget: { ${budget} }
goal: Summarize what is new today in three sentences.
`;
}

/** Write a YAML file, check it on the coordinator (the same checks as deploy; problems marked on their lines),
 * deploy it. The webhook secret of a new agent lives only in this view's state: shown once, gone on reload. */
function AgentEditor({ onDeployed }) {
  const [text, setText] = useState(example);
  const [check, setCheck] = useState(null); // {ok, problems, warnings} of the last Validate or Deploy
  const [deployed, setDeployed] = useState(null);
  const [error, setError] = useState("");
  const [busy, setBusy] = useState(false);
  const area = useRef(null);
  const lines = text.split("\n");
  const problems = (check && check.problems) || [];
  const byLine = new Map();
  for (const p of problems) byLine.set(p.line, [...(byLine.get(p.line) || []), p.message]);

  async function submit(path, done) {
    setBusy(true);
    setError("");
    try {
      done((await api(path, { method: "POST", body: { yaml: text } })).data);
    } catch (err) {
      if (err.body && err.body.problems) setCheck({ ok: false, problems: err.body.problems, warnings: [] });
      else setError(errorText(err));
    } finally {
      setBusy(false);
    }
  }
  const validate = () => submit("/one/agents/validate", setCheck);
  const deploy = () => submit("/one/agents", (agent) => {
    setCheck({ ok: true, problems: [], warnings: agent.warnings });
    setDeployed(agent);
    onDeployed();
  });

  /** Put the caret on a problem's line. */
  function jump(line) {
    const start = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
    area.current.focus();
    area.current.setSelectionRange(start, start + (lines[line - 1] || "").length);
  }

  return html`
    <div class="one-card" id="agent-editor">
      <h3>New agent</h3>
      <p class="one-muted">Write its file (YAML) and Validate: every problem is named with its line. Deploying the name of an agent you have replaces it.</p>
      <div class="agent-yaml">
        <ol class="agent-gutter" aria-hidden="true">
          ${lines.map((_, i) => html`<li key=${i} data-line=${i + 1} class=${byLine.has(i + 1) ? "agent-bad" : ""} title=${(byLine.get(i + 1) || []).join("; ")}>${byLine.has(i + 1) ? "⚠ " : ""}${i + 1}</li>`)}
        </ol>
        <textarea id="agent-yaml" aria-label="Agent file (YAML)" spellcheck="false" wrap="off" rows=${lines.length + 1}
          aria-invalid=${problems.length > 0} aria-describedby=${problems.length > 0 ? "agent-problems" : undefined}
          value=${text} onInput=${(e) => setText(e.currentTarget.value)} />
      </div>
      ${problems.length > 0 && html`
        <ul id="agent-problems" class="one-error">
          ${problems.map((p, i) => html`<li key=${i} data-line=${p.line}>
            <button class="agent-line one-link" onClick=${() => jump(p.line)}>${`line ${p.line}`}</button>${` · ${p.field || "the file"}: ${p.message}`}</li>`)}
        </ul>`}
      ${check && check.ok && !deployed && html`<p id="agent-valid">✓ The file is valid: deploy it when ready.</p>`}
      ${check && check.warnings.length > 0 && html`<ul id="agent-warnings" class="agent-warnings">${check.warnings.map((w) => html`<li key=${w}>${w}</li>`)}</ul>`}
      ${error && html`<p class="one-error" id="agent-error">${error}</p>`}
      <div class="one-row">
        <button class="one-button one-secondary" id="validate-agent" disabled=${busy} onClick=${validate}>Validate</button>
        <button class="one-button" id="deploy-agent" disabled=${busy} onClick=${deploy}>Deploy</button>
      </div>
      ${deployed && html`<${Deployed} agent=${deployed} />`}
    </div>`;
}

/** The deployed agent, and its webhook secret the one time the coordinator gives it out (on create). */
function Deployed({ agent }) {
  const [copied, setCopied] = useState("");
  const secret = useRef(null);
  async function copy() {
    try {
      await navigator.clipboard.writeText(agent.webhook_secret);
      setCopied("Copied ✓");
    } catch {
      window.getSelection().selectAllChildren(secret.current); // no clipboard permission: selected, for Ctrl+C
      setCopied("Selected: press Ctrl+C (⌘C) to copy");
    }
  }
  return html`
    <div id="agent-deployed">
      <p>${`✓ Deployed ${agent.name}: ${scheduleText(agent.schedule)}.`}</p>
      ${agent.webhook_secret && html`
        <div class="one-card one-upsell" id="webhook-secret">
          <p><b>Webhook secret: shown this once.</b>${` It signs every post to ${agent.webhook_host ? `your webhook at ${agent.webhook_host}` : "an output webhook, should you add one later (output: { webhook: URL })"}: header x-one-signature, sha256=HMAC of the body. Copy it now; it cannot be shown again.`}</p>
          <div class="one-row">
            <code class="one-mono" ref=${secret} data-testid="webhook-secret">${agent.webhook_secret}</code>
            <button class="one-button one-secondary" id="copy-secret" onClick=${copy}>Copy</button>
            <span role="status" id="copy-status">${copied}</span>
          </div>
        </div>`}
    </div>`;
}
