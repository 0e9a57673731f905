// Pactum operator console: one ES module, no dependencies, no build step.
// Every value from the API is written with textContent (never parsed as markup), the owner key lives
// only in sessionStorage and the Authorization header, and the page polls once a second while
// it is visible.

const KEY = "pactum.owner_key";
const POLL_MS = 1000;

const state = { config: null, page: null, busy: false, timer: null };

// ---------------------------------------------------------------- start

document.addEventListener("DOMContentLoaded", () => {
  document.getElementById("sign-in-form").addEventListener("submit", signIn);
  document.getElementById("sign-out").addEventListener("click", signOut);
  window.addEventListener("hashchange", route);
  document.addEventListener("visibilitychange", () => { if (!document.hidden) tick(); });
  if (sessionStorage.getItem(KEY)) start(); else showSignIn("");
});

async function signIn(event) {
  event.preventDefault();
  const input = document.getElementById("owner-key");
  const key = input.value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  input.value = "";
  await start();
}

function signOut() {
  sessionStorage.removeItem(KEY);
  state.config = null;
  showSignIn("Signed out.");
}

async function start() {
  try {
    state.config = await api("GET", "/v1/console/config");
  } catch (error) {
    sessionStorage.removeItem(KEY);
    showSignIn(error.status === 401 ? "That key is not an owner credential." : error.message);
    return;
  }
  document.getElementById("sign-in").hidden = true;
  document.getElementById("page").hidden = false;
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  if (!location.hash || location.hash === "#") location.hash = "#/agreements";
  else route();
  if (!state.timer) state.timer = setInterval(tick, POLL_MS);
}

function showSignIn(message) {
  clearInterval(state.timer);
  state.timer = null;
  state.page = null;
  document.getElementById("sign-in").hidden = false;
  document.getElementById("page").hidden = true;
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("sign-in-error").textContent = message;
  document.getElementById("owner-key").focus();
}

// ---------------------------------------------------------------- routing and polling

const PAGES = {
  agreements: agreementsPage,
  approvals: approvalsPage,
  policies: policiesPage,
  agents: agentsPage,
  webhooks: webhooksPage,
  charts: chartsPage,
  relayer: relayerPage,
  "go-no-go": goNoGoPage,
};

function route() {
  if (!state.config) return;
  const name = location.hash.replace(/^#\/?/, "").split("?")[0] || "agreements";
  const make = PAGES[name] || PAGES.agreements;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === "#/" + name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const root = document.getElementById("page");
  root.replaceChildren();
  root.dataset.page = name;
  state.page = make(root);
  tick();
}

async function tick() {
  if (!state.page || !state.page.update || state.busy || document.hidden) return;
  state.busy = true;
  const page = state.page;
  try {
    await page.update();
  } catch (error) {
    if (error.status === 401) { signOut(); return; }
    if (page.error) page.error(error);
  } finally {
    state.busy = false;
  }
}

// ---------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, body) {
    const err = (body && body.error) || {};
    super(err.message || `HTTP ${status}`);
    this.status = status;
    this.code = err.code || "";
    this.details = err.details || null;
  }
}

async function api(method, path, body) {
  const headers = { Authorization: "Bearer " + sessionStorage.getItem(KEY) };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
  });
  const text = await response.text();
  let json = null;
  try { json = text ? JSON.parse(text) : null; } catch { json = null; }
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

// ---------------------------------------------------------------- pages

function agreementsPage(root) {
  const filter = select("status-filter", "Status", ["", "proposed", "accepted", "rejected",
    "activating", "active", "closing", "settled", "expired", "cancelled", "failed"]);
  const list = el("div", { id: "agreements", class: "table-wrap" });
  const detail = el("section", { id: "timeline", "aria-live": "polite" });
  const error = el("p", { class: "error", role: "alert" });
  let selected = null;
  filter.select.addEventListener("change", () => { delete list.dataset.sig; tick(); });
  root.append(el("h1", {}, "Agreements"), row(filter.label, filter.select), error, list, detail);
  return {
    error: (e) => { error.textContent = e.message; },
    async update() {
      const status = filter.select.value;
      const page = await api("GET", "/v1/agreements?limit=100" + (status ? "&status=" + encodeURIComponent(status) : ""));
      error.textContent = "";
      renderIfChanged(list, page.agreements, (agreements) => {
        if (!agreements.length) return el("p", { class: "muted" }, "No agreements yet.");
        return table(["Agreement", "Status", "Activation", "Buyer", "Seller", "Total", "Updated"],
          agreements.map((a) => {
            const open = el("button", { type: "button", class: "secondary mono", "data-agreement": a.id }, a.id);
            open.addEventListener("click", () => { selected = a.id; delete detail.dataset.sig; tick(); });
            return el("tr", { "data-agreement-id": a.id },
              el("td", {}, open),
              el("td", { class: "agreement-status" }, badge(a.status)),
              el("td", { class: "activation-status" }, badge(a.activation_status)),
              el("td", { class: "mono" }, a.buyer_agent_id),
              el("td", { class: "mono" }, a.seller_agent_id),
              el("td", {}, a.total_cents == null ? "—" : cents(a.total_cents)),
              el("td", {}, when(a.updated_at)));
          }));
      });
      if (selected) {
        const timeline = await api("GET", `/v1/agreements/${encodeURIComponent(selected)}/timeline`);
        renderIfChanged(detail, timeline, renderTimeline);
      }
    },
  };
}

function renderTimeline(t) {
  const a = t.agreement;
  const events = el("ol", { class: "timeline" }, ...t.events.map((e) =>
    el("li", {}, el("span", { class: "badge" }, e.type), " ", when(e.created_at))));
  const txs = t.transactions.length
    ? table(["Transaction", "Job", "Nonce", "Max fee (gwei)", "Tip (gwei)", "Status", "Block", "Gas used", "Sent"],
      t.transactions.map((x) => el("tr", {},
        el("td", { class: "mono" }, explorerLink("tx", x.tx_hash)),
        el("td", {}, x.job_kind),
        el("td", {}, String(x.nonce)),
        el("td", {}, gwei(x.max_fee_per_gas)),
        el("td", {}, gwei(x.max_priority_fee_per_gas)),
        el("td", {}, badge(x.status)),
        el("td", {}, x.block_number == null ? "—" : String(x.block_number)),
        el("td", {}, x.gas_used == null ? "—" : String(x.gas_used)),
        el("td", {}, when(x.broadcast_at || x.created_at)))))
    : el("p", { class: "muted" }, "No relayer transactions.");
  return el("div", { class: "card" },
    el("h2", {}, "Timeline of ", el("span", { class: "mono" }, a.id)),
    el("p", {}, "Status ", badge(a.status), " activation ", badge(a.activation_status),
      a.activation_tx_hash ? el("span", {}, " — activation ", explorerLink("tx", a.activation_tx_hash)) : ""),
    a.activation_error ? el("p", { class: "error" }, a.activation_error) : "",
    el("h2", {}, "Events"), events,
    el("h2", {}, "Transactions"), el("div", { class: "table-wrap" }, txs));
}

function approvalsPage(root) {
  const pending = el("div", { id: "pending-approvals", class: "table-wrap" });
  const recent = el("div", { id: "recent-approvals", class: "table-wrap" });
  const error = el("p", { class: "error", role: "alert", id: "approvals-error" });
  root.append(el("h1", {}, "Approvals"), error, el("h2", {}, "Waiting"), pending,
    el("h2", {}, "Decided recently"), recent);
  async function decide(id, decision, reason) {
    try {
      await api("POST", `/approvals/${encodeURIComponent(id)}/decide`, { decision, reason: reason || undefined });
      error.textContent = "";
      announce(`Approval ${id} ${decision}d.`);
      delete pending.dataset.sig;
      tick();
    } catch (e) {
      error.textContent = `${e.message}${e.code ? " (" + e.code + ")" : ""}`;
    }
  }
  return {
    error: (e) => { error.textContent = e.message; },
    async update() {
      const waiting = await api("GET", "/approvals?status=pending&limit=100");
      renderIfChanged(pending, waiting.data, (items) => {
        if (!items.length) return el("p", { class: "muted" }, "Nothing waits for a decision.");
        return table(["Approval", "Agent", "For", "Amount", "Why", "Expires", "Decision"],
          items.map((a) => {
            const reason = el("input", { type: "text", id: "reason-" + a.id, "aria-label": "Reason for " + a.id, placeholder: "Reason" });
            const approve = el("button", { type: "button", class: "approve", "data-approval": a.id }, "Approve");
            const reject = el("button", { type: "button", class: "danger reject", "data-approval": a.id }, "Reject");
            approve.addEventListener("click", () => decide(a.id, "approve", reason.value));
            reject.addEventListener("click", () => decide(a.id, "reject", reason.value));
            return el("tr", { "data-approval-id": a.id },
              el("td", { class: "mono" }, a.id),
              el("td", { class: "mono" }, a.agent_id),
              el("td", { class: "mono" }, a.agreement_id || a.check_id || a.kind),
              el("td", {}, cents(a.amount_cents) + " " + a.currency),
              el("td", {}, el("div", {}, a.reason_code), el("div", { class: "muted" }, a.message)),
              el("td", {}, when(a.expires_at)),
              el("td", {}, el("div", { class: "row" }, reason, approve, reject)));
          }));
      });
      const decided = await api("GET", "/approvals?limit=20");
      renderIfChanged(recent, decided.data.filter((a) => a.status !== "pending"), (items) =>
        items.length ? table(["Approval", "Status", "Amount", "Reason", "Decided"], items.map((a) =>
          el("tr", { "data-approval-id": a.id },
            el("td", { class: "mono" }, a.id), el("td", {}, badge(a.status)),
            el("td", {}, cents(a.amount_cents)), el("td", {}, a.decision_reason || "—"),
            el("td", {}, when(a.decided_at)))))
          : el("p", { class: "muted" }, "No decisions yet."));
    },
  };
}

function policiesPage(root) {
  const picker = agentPicker("policy-agent");
  const editor = el("textarea", { id: "policy-json", "aria-describedby": "policy-error policy-help", spellcheck: "false" });
  const help = el("p", { id: "policy-help", class: "muted" },
    "The policy document: {\"rules\": [{\"id\", \"type\", …, \"description\"}]}. Saving writes a new version.");
  const error = el("p", { id: "policy-error", class: "error", role: "alert" });
  const status = el("p", { id: "policy-status", "aria-live": "polite" });
  const save = el("button", { type: "submit", id: "policy-save" }, "Save new version");
  const form = el("form", { id: "policy-form" },
    el("label", { for: "policy-json" }, "Policy"), help, editor, error, row(save), status);
  root.append(el("h1", {}, "Policies"), row(picker.label, picker.select), form);
  async function load() {
    error.textContent = ""; status.textContent = ""; editor.removeAttribute("aria-invalid");
    const id = picker.select.value;
    if (!id) { editor.value = ""; return; }
    try {
      const policy = await api("GET", `/agents/${encodeURIComponent(id)}/policies`);
      editor.value = JSON.stringify({ rules: policy.rules }, null, 2);
      status.textContent = `Version ${policy.version}, updated ${when(policy.updated_at)}.`;
    } catch (e) {
      if (e.status !== 404) { error.textContent = e.message; return; }
      editor.value = JSON.stringify({ rules: [] }, null, 2);
      status.textContent = "No policy yet.";
    }
  }
  picker.select.addEventListener("change", load);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = ""; status.textContent = "";
    let body;
    try { body = JSON.parse(editor.value); } catch (e) {
      editor.setAttribute("aria-invalid", "true");
      error.textContent = "Not valid JSON: " + e.message;
      return;
    }
    try {
      const policy = await api("PUT", `/agents/${encodeURIComponent(picker.select.value)}/policies`, body);
      editor.removeAttribute("aria-invalid");
      editor.value = JSON.stringify({ rules: policy.rules }, null, 2);
      status.textContent = `Saved: version ${policy.version}.`;
      announce(`Policy saved as version ${policy.version}.`);
    } catch (e) {
      editor.setAttribute("aria-invalid", "true");
      const where = e.details ? Object.entries(e.details).map(([k, v]) => `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`).join(", ") : "";
      error.textContent = `${e.message}${where ? "\n" + where : ""}`;
      editor.focus();
    }
  });
  picker.load().then(load);
  return { error: (e) => { error.textContent = e.message; } };
}

function agentsPage(root) {
  const name = el("input", { id: "agent-name", type: "text", required: "" });
  const create = el("button", { type: "submit", id: "agent-create" }, "Create agent");
  const shown = el("div", { id: "agent-key", "aria-live": "polite" });
  const error = el("p", { class: "error", role: "alert", id: "agents-error" });
  const form = el("form", { id: "agent-form" }, el("label", { for: "agent-name" }, "New agent's name"), row(name, create));
  const list = el("div", { id: "agents", class: "table-wrap" });
  root.append(el("h1", {}, "Agents"), form, shown, error, list);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const agent = await api("POST", "/v1/agents", { name: name.value.trim(), capabilities: ["usage"] });
      name.value = "";
      const copy = el("button", { type: "button", class: "secondary" }, "Hide key");
      const box = el("div", { class: "notice" },
        el("p", {}, "API key of ", el("span", { class: "mono" }, agent.id), " — shown once; copy it now:"),
        el("p", { class: "secret", id: "new-api-key" }, agent.api_key), copy);
      copy.addEventListener("click", () => shown.replaceChildren());
      shown.replaceChildren(box);
      delete list.dataset.sig;
      tick();
    } catch (e) { error.textContent = e.message; }
  });
  async function act(method, path, body, done) {
    try { await api(method, path, body); error.textContent = ""; announce(done); delete list.dataset.sig; tick(); }
    catch (e) { error.textContent = e.message; }
  }
  return {
    error: (e) => { error.textContent = e.message; },
    async update() {
      const agents = await api("GET", "/v1/agents?limit=100");
      renderIfChanged(list, agents.data, (items) => table(
        ["Agent", "Name", "Status", "Key", "Created", "Actions"],
        items.map((a) => {
          const path = `/agents/${encodeURIComponent(a.id)}/circuit-break`;
          const actions = el("div", { class: "row" });
          if (a.status !== "revoked") {
            const halt = el("button", { type: "button", class: "secondary" }, a.halted ? "Resume" : "Halt");
            halt.addEventListener("click", () => act("POST", path,
              { halted: !a.halted, reason: a.halted ? "resumed from the console" : "halted from the console" },
              `${a.id} ${a.halted ? "resumed" : "halted"}.`));
            const revoke = el("button", { type: "button", class: "danger" }, "Revoke");
            revoke.addEventListener("click", () => {
              if (revoke.dataset.armed) act("DELETE", `/v1/agents/${encodeURIComponent(a.id)}`, undefined, `${a.id} revoked.`);
              else { revoke.dataset.armed = "1"; revoke.textContent = "Confirm revoke"; }
            });
            actions.append(halt, revoke);
          }
          return el("tr", { "data-agent-id": a.id },
            el("td", { class: "mono" }, a.id), el("td", {}, a.name),
            el("td", {}, badge(a.status), a.halted ? badge("halted") : ""),
            el("td", { class: "mono" }, a.api_key_hint), el("td", {}, when(a.created_at)),
            el("td", {}, actions));
        })));
    },
  };
}

function webhooksPage(root) {
  const picker = agentPicker("webhook-agent");
  const endpoints = el("div", { id: "webhook-endpoints", class: "table-wrap" });
  const deliveries = el("div", { id: "webhook-deliveries", class: "table-wrap" });
  const error = el("p", { class: "error", role: "alert", id: "webhooks-error" });
  root.append(el("h1", {}, "Webhooks"), row(picker.label, picker.select), error,
    el("h2", {}, "Endpoints"), endpoints, el("h2", {}, "Deliveries"), deliveries);
  picker.select.addEventListener("change", () => { delete endpoints.dataset.sig; delete deliveries.dataset.sig; tick(); });
  picker.load();
  return {
    error: (e) => { error.textContent = e.message; },
    async update() {
      const id = picker.select.value;
      if (!id) return;
      const base = `/agents/${encodeURIComponent(id)}/webhooks`;
      const hooks = await api("GET", base);
      renderIfChanged(endpoints, hooks.data, (items) => items.length
        ? table(["Endpoint", "URL", "Status", "Events"], items.map((w) => el("tr", {},
          el("td", { class: "mono" }, w.id), el("td", { class: "mono" }, w.url),
          el("td", {}, badge(w.status), w.status_reason ? el("div", { class: "muted" }, w.status_reason) : ""),
          el("td", {}, w.event_types.length ? w.event_types.join(", ") : "every event"))))
        : el("p", { class: "muted" }, "No endpoints."));
      const list = await api("GET", base + "/deliveries?limit=50");
      renderIfChanged(deliveries, list.data, (items) => items.length
        ? table(["Delivery", "Event", "Status", "Attempts", "Last answer", "Updated", ""], items.map((d) => {
          const cell = el("td", {});
          if (d.status === "failed") {
            const replay = el("button", { type: "button", class: "replay", "data-delivery": d.id }, "Replay");
            replay.addEventListener("click", async () => {
              try {
                await api("POST", `${base}/deliveries/${encodeURIComponent(d.id)}/replay`);
                announce(`Delivery ${d.id} replayed.`);
                delete deliveries.dataset.sig;
                tick();
              } catch (e) { error.textContent = e.message; }
            });
            cell.append(replay);
          }
          return el("tr", { "data-delivery-id": d.id },
            el("td", { class: "mono" }, d.id), el("td", {}, d.event_type),
            el("td", { class: "delivery-status" }, badge(d.status)), el("td", {}, String(d.attempt_count)),
            el("td", {}, d.last_status_code != null ? "HTTP " + d.last_status_code : (d.last_error || "—")),
            el("td", {}, when(d.updated_at)), cell);
        }))
        : el("p", { class: "muted" }, "No deliveries."));
    },
  };
}

function chartsPage(root) {
  const area = el("div", { id: "charts", class: "cards" });
  const error = el("p", { class: "error", role: "alert" });
  root.append(el("h1", {}, "Charts"), error, area);
  return {
    error: (e) => { error.textContent = e.message; },
    async update() {
      const stats = await api("GET", "/v1/stats");
      renderIfChanged(area, stats, (s) => {
        const hours = s.hourly.map((h) => h.hour.slice(11, 13));
        const days = s.gas_per_day.map((d) => d.day.slice(5, 10));
        const gasGwei = s.gas_per_day.map((d) => Number(BigInt(d.gas_wei) / 1000000000n));
        return [
          el("div", { class: "card" }, el("h2", {}, "Approvals waiting"),
            el("p", { class: "big", id: "approvals-waiting" }, String(s.approvals_waiting)),
            el("a", { href: "#/approvals" }, "Decide them")),
          el("div", { class: "card" }, el("h2", {}, "Activations and settlements per hour (24 h)"),
            barChart("Activations and settlements per hour", hours,
              [{ name: "Activations", color: "#0b5cad", values: s.hourly.map((h) => h.activations) },
                { name: "Settlements", color: "#1a7f37", values: s.hourly.map((h) => h.settlements) }])),
          el("div", { class: "card" }, el("h2", {}, `Relayer gas spent per day (gwei, ${s.scope})`),
            barChart("Relayer gas spent per day", days,
              [{ name: "Gas (gwei)", color: "#9a6700", values: gasGwei }])),
        ];
      });
    },
  };
}

function relayerPage(root) {
  const area = el("div", { id: "relayer", class: "table-wrap" });
  const error = el("p", { class: "error", role: "alert" });
  root.append(el("h1", {}, "Relayer"), error, area);
  return {
    error: (e) => {
      error.textContent = e.status === 404 ? "Only the operator (the owner of PACTUM_OWNER_KEY) sees the relayer." : e.message;
    },
    async update() {
      const r = await api("GET", "/v1/relayer");
      renderIfChanged(area, r, (r) => [
        el("p", {}, `Jobs held back by the fee cap: ${r.jobs_waiting_for_fees}. A broadcast transaction counts as stuck after ${r.stuck_after_secs} s without a block.`),
        table(["Key", "Balance (ETH)", "Chain nonce", "Next nonce", "In flight", "Stuck", "Fee cap hits"],
          r.signers.map((s) => el("tr", { "data-signer": s.address },
            el("td", { class: "mono" }, explorerLink("address", s.address)),
            el("td", {}, s.balance_wei == null ? el("span", { class: "error" }, s.chain_error || "unknown") : eth(s.balance_wei)),
            el("td", {}, s.chain_nonce == null ? "—" : String(s.chain_nonce)),
            el("td", {}, s.next_nonce == null ? "—" : String(s.next_nonce)),
            el("td", {}, String(s.in_flight)),
            el("td", {}, s.stuck ? badge("stuck " + s.stuck) : "0"),
            el("td", {}, String(s.fee_cap_hits))))),
      ]);
    },
  };
}

function goNoGoPage(root) {
  const run = el("button", { type: "button", id: "go-no-go-run" }, "Run the go/no-go checks");
  const area = el("div", { id: "go-no-go" });
  const error = el("p", { class: "error", role: "alert", id: "go-no-go-error" });
  root.append(el("h1", {}, "Go/no-go"), row(run), error, area);
  const unavailable = "This server has no go/no-go packet (404): it is not built in, or only the operator may run it.";
  run.addEventListener("click", async () => {
    try { await api("POST", "/v1/go-no-go"); error.textContent = ""; announce("Go/no-go run started."); tick(); }
    catch (e) { error.textContent = e.status === 404 && e.message === "route not found" ? unavailable : e.message; }
  });
  return {
    error: (e) => {
      if (e.status !== 404) { error.textContent = e.message; return; }
      const text = e.message === "route not found" ? unavailable : "No run yet: start one.";
      renderIfChanged(area, text, (t) => el("p", { class: "notice", id: "go-no-go-missing" }, t));
    },
    async update() {
      const latest = await api("GET", "/v1/go-no-go");
      renderIfChanged(area, latest, (g) => {
        const sections = ((g.packet && g.packet.sections) || []).map((s) => el("div", { class: "card" },
          el("h2", {}, s.section, " ", badge(s.verdict)),
          el("p", {}, s.summary || ""),
          s.evidence ? el("pre", { class: "mono" }, typeof s.evidence === "string" ? s.evidence : JSON.stringify(s.evidence, null, 2)) : ""));
        return [
          el("p", {}, "Status ", badge(g.status), g.verdict ? el("span", {}, " verdict ", badge(g.verdict)) : ""),
          el("div", { class: "cards" }, ...sections),
        ];
      });
    },
  };
}

// ---------------------------------------------------------------- shared pieces

function agentPicker(id) {
  const label = el("label", { for: id }, "Agent");
  const sel = el("select", { id });
  return {
    label,
    select: sel,
    async load() {
      const agents = await api("GET", "/v1/agents?limit=100");
      sel.replaceChildren(...agents.data.filter((a) => a.status !== "revoked")
        .map((a) => el("option", { value: a.id }, `${a.name} (${a.id})`)));
      tick();
    },
  };
}

function barChart(title, labels, series) {
  const NS = "http://www.w3.org/2000/svg";
  const svg = (tag, attrs, text) => {
    const node = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, String(v));
    if (text !== undefined) node.textContent = text;
    return node;
  };
  const W = 480, H = 200, left = 44, bottom = 22, top = 8;
  const max = Math.max(1, ...series.flatMap((s) => s.values));
  const chart = svg("svg", { viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img", "aria-label": title });
  chart.append(svg("title", {}, title));
  const plotH = H - bottom - top, plotW = W - left - 4;
  const group = plotW / labels.length;
  const bar = Math.max(1, (group - 2) / series.length);
  chart.append(svg("line", { x1: left, y1: top + plotH, x2: W, y2: top + plotH, stroke: "#d0d7de" }));
  chart.append(svg("text", { x: left - 4, y: top + 10, "text-anchor": "end" }, compact(max)));
  chart.append(svg("text", { x: left - 4, y: top + plotH, "text-anchor": "end" }, "0"));
  labels.forEach((label, i) => {
    series.forEach((s, j) => {
      const h = (s.values[i] / max) * plotH;
      const rect = svg("rect", { x: left + i * group + 1 + j * bar, y: top + plotH - h, width: bar, height: h, fill: s.color });
      rect.append(svg("title", {}, `${label}: ${s.name} ${s.values[i]}`));
      chart.append(rect);
    });
    if (labels.length <= 8 || i % 3 === 0) {
      chart.append(svg("text", { x: left + i * group + group / 2, y: H - 6, "text-anchor": "middle" }, label));
    }
  });
  const legend = el("div", { class: "legend" }, ...series.map((s) =>
    el("span", {}, el("span", { class: "swatch" }), s.name)));
  legend.querySelectorAll(".swatch").forEach((sw, i) => { sw.style.background = series[i].color; });
  return el("div", {}, chart, legend);
}

// Rebuilds `container` from `data` only when the data changed, so a poll that finds nothing
// new leaves focus, typed text and scroll position alone.
function renderIfChanged(container, data, render) {
  const sig = JSON.stringify(data);
  if (container.dataset.sig === sig) return;
  container.dataset.sig = sig;
  const out = render(data);
  container.replaceChildren(...(Array.isArray(out) ? out : [out]));
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const child of children) {
    if (child === null || child === undefined || child === "") continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

function table(headings, rows) {
  return el("table", {}, el("thead", {}, el("tr", {}, ...headings.map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, ...rows));
}

function row(...children) { return el("div", { class: "row" }, ...children); }

function select(id, label, options) {
  const sel = el("select", { id }, ...options.map((o) => el("option", { value: o }, o || "any")));
  return { label: el("label", { for: id }, label), select: sel };
}

function badge(text) {
  const good = ["confirmed", "active", "settled", "succeeded", "approved", "go", "complete"];
  const bad = ["failed", "rejected", "no_go", "revoked", "halted", "expired", "cancelled", "disabled"];
  const cls = good.includes(text) ? "good" : bad.includes(text) || String(text).startsWith("stuck") ? "bad" : "wait";
  return el("span", { class: "badge " + cls }, String(text));
}

function explorerLink(kind, value) {
  const base = state.config && state.config.explorer_url;
  if (!base) return el("span", {}, value);
  return el("a", { href: `${base}/${kind}/${value}`, target: "_blank", rel: "noopener noreferrer" }, value);
}

function announce(text) { document.getElementById("live").textContent = text; }
function when(iso) { return iso ? iso.replace("T", " ").replace(/(\.\d+)?Z$/, " UTC") : "—"; }
function compact(n) {
  if (n >= 1e9) return (n / 1e9).toFixed(1) + "G";
  if (n >= 1e6) return (n / 1e6).toFixed(1) + "M";
  if (n >= 1e4) return (n / 1e3).toFixed(0) + "k";
  return String(n);
}
function cents(n) { return "$" + (Number(n) / 100).toFixed(2); }
function gwei(wei) { return (Number(BigInt(wei) / 1000000n) / 1000).toString(); }
function eth(wei) {
  const w = BigInt(wei);
  const whole = w / 1000000000000000000n;
  const frac = (w % 1000000000000000000n).toString().padStart(18, "0").slice(0, 6);
  return `${whole}.${frac}`;
}
