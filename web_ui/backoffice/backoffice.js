// The back office: a browser enrolled like a register (OFFICE) and used by managers.
// Changes go over the live protocol (replies are idempotent by id); pages read REST with the session token.
// Role-checked: anyone below manager sees nothing here (a technician sees only inventory counts).

import { LiveClient, LiveError } from "../shared/live.js";
import { WedgeScanner } from "../shared/wedge.js";
import { barChart, columnChart, divergingChart, money } from "./charts.js";
import { installStatePages } from "./state.js";
import { installOrderPages } from "./orders.js";
import { installCustomerPages } from "./customers.js";

// A storage namespace of its own, so a browser that is also a register keeps the two enrolments apart.
const prefixed = (store, prefix) => ({
  getItem: (k) => store.getItem(prefix + k),
  setItem: (k, v) => store.setItem(prefix + k, v),
  removeItem: (k) => store.removeItem(prefix + k),
});
const live = new LiveClient({
  storage: prefixed(window.localStorage, "backoffice."),
  session: prefixed(window.sessionStorage, "backoffice."),
});

const RANK = { budtender: 1, technician: 2, manager: 3, admin: 4 };
const DENOMS = [
  ["B100", "$100"], ["B50", "$50"], ["B20", "$20"], ["B10", "$10"], ["B5", "$5"], ["B1", "$1"],
  ["C100", "$1 coin"], ["C50", "50¢"], ["C25", "25¢"], ["C10", "10¢"], ["C5", "5¢"], ["C1", "1¢"],
];
const VALUE = { B100: 10000, B50: 5000, B20: 2000, B10: 1000, B5: 500, B2: 200, B1: 100, C100: 100, C50: 50, C25: 25, C10: 10, C5: 5, C1: 1 };
const REASONS = ["Incorrect Quantity", "Scale Variance", "Theft", "Damage", "Entry Error", "Waste (Unusable Product)", "Drying"];

const $ = (sel, root = document) => root.querySelector(sel);

/** h("tag", {attrs}, ...children): DOM with text nodes only (no innerHTML from data). */
function h(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "class") e.className = v;
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

/** A link to a REST page that needs the session. The token travels in the Authorization header, never in
 * an address (browser history, proxy logs, Referer): the page is fetched, then shown or saved from a blob. */
function authLink(path, { id, label, download = "", cls = null }) {
  return h("a", {
    href: path, id, class: cls,
    onclick: async (ev) => {
      ev.preventDefault();
      const w = download ? null : window.open("", "_blank"); // opened at the click: no popup blocker
      try {
        const r = await fetch(path, { headers: { authorization: `Bearer ${live.sessionToken}` }, cache: "no-store" });
        if (!r.ok) throw new Error(`HTTP ${r.status}`);
        const url = URL.createObjectURL(await r.blob());
        if (w) w.location.href = url;
        else { const a = h("a", { href: url, download }); document.body.append(a); a.click(); a.remove(); }
        setTimeout(() => URL.revokeObjectURL(url), 60000);
      } catch (e) {
        if (w) w.close();
        message(`Could not open it: ${e.message}`);
      }
    },
  }, label);
}

function show(id) {
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== id;
}

function message(text, kind = "error") {
  const m = $("#message");
  m.textContent = text;
  m.className = `banner ${kind === "info" ? "info" : ""}`;
  m.hidden = !text;
  if (text && kind === "info") setTimeout(() => { if (m.textContent === text) m.hidden = true; }, 4000);
}

async function api(path, opts = {}) {
  const r = await fetch(path, {
    ...opts,
    headers: { authorization: `Bearer ${live.sessionToken}`, ...(opts.headers || {}) },
    cache: "no-store",
  });
  if (r.status === 401) {
    live.sessionToken = "";
    renderAuth();
    throw new Error("Your session ended: log in again.");
  }
  if (!r.ok) {
    let text = `HTTP ${r.status}`;
    try { text = (await r.json()).message || text; } catch { /* not JSON */ }
    const err = new Error(text);
    err.status = r.status;
    throw err;
  }
  return r.json();
}

async function command(type, fields) {
  try {
    return await live.request(type, fields);
  } catch (err) {
    message(err instanceof LiveError ? err.message : String(err));
    throw err;
  }
}

function denomInputs(prefix) {
  return h("div", { class: "denoms" }, DENOMS.map(([code, label]) =>
    h("label", {}, `${label} `, h("input", { type: "number", min: "0", step: "1", value: "0", name: code, id: `${prefix}-${code}` }))));
}

function readPieces(form) {
  const pieces = {};
  for (const [code] of DENOMS) {
    const n = parseInt(form.elements[code].value || "0", 10);
    if (n > 0) pieces[code] = n;
  }
  return pieces;
}

const piecesTotal = (p) => Object.entries(p).reduce((s, [c, n]) => s + VALUE[c] * n, 0);

// ------------------------------------------------------------------------------------------ pages

const pages = {};

pages.readiness = async (root) => {
  const r = await api("/api/backoffice/readiness");
  root.append(
    h("h1", {}, "Opening the day"),
    h("p", { id: "ready-verdict", class: r.ready ? "ok" : "bad" }, r.ready ? "Ready to open." : "Not ready: fix the problems below."),
    h("table", { id: "readiness" }, h("tbody", {}, r.checks.map((c) =>
      h("tr", { "data-status": c.status }, h("th", { class: `status-${c.status}` }, c.name), h("td", {}, c.message, c.action ? h("div", { class: "muted" }, `→ ${c.action}`) : null))))),
  );
};

pages.drawers = async (root) => {
  const data = await api("/api/backoffice/drawers"); // the store's business day, in the store's zone
  root.append(h("h1", {}, "Drawers"));
  const byReg = new Map(data.registers.map((r) => [r, []]));
  for (const d of data.drawers) (byReg.get(d.register_id) || byReg.set(d.register_id, []).get(d.register_id)).push(d);
  const grid = h("div", { class: "grid" });
  for (const [reg, sessions] of byReg) grid.append(drawerCard(reg, sessions));
  root.append(grid);
};

function drawerCard(reg, sessions) {
  const open = sessions.find((s) => s.status === "open");
  const card = h("div", { class: "card drawer", "data-register": reg }, h("h2", {}, `Register ${reg}`));
  for (const s of sessions) {
    const sum = s.summary;
    card.append(h("div", { class: "session", "data-session": s.session_id },
      h("p", {}, h("strong", {}, s.status), ` · opened ${new Date(s.opened_at).toLocaleTimeString()} by ${s.opened_by} (witness ${s.witness}) · float ${money(s.float_cents)} · ${s.cash_sales} cash sales`),
      s.events.length ? h("ul", {}, s.events.map((e) => h("li", {}, `${e.kind.replace("_", "-")} ${money(e.amount_cents)} — ${e.reason}${e.bag ? ` (bag ${e.bag})` : ""}${e.manager ? `, approved by ${e.manager}` : ""}`))) : null,
      sum ? summaryTable(sum) : null,
      s.status === "counted" ? signOffForm(s) : null,
      s.status === "closed" && !s.deposit ? depositForm(s) : null,
      s.deposit ? h("p", {}, `Deposit bag ${s.deposit.bag_number}: ${money(s.deposit.amount_cents)}, sealed by ${s.deposit.sealed_by}`) : null,
    ));
  }
  if (open) {
    card.append(countForm(reg), movementForm(reg));
  } else {
    card.append(openForm(reg));
  }
  return card;
}

function summaryTable(s) {
  const cls = s.variance_cents === 0 ? "ok" : "bad";
  return h("table", { class: "summary" }, h("tbody", {},
    h("tr", {}, h("th", {}, "Opening float"), h("td", { class: "n" }, money(s.opening_cents))),
    h("tr", {}, h("th", {}, "Cash sales"), h("td", { class: "n" }, money(s.cash_sales_cents))),
    h("tr", {}, h("th", {}, "Refunds"), h("td", { class: "n" }, money(-s.cash_refunds_cents))),
    h("tr", {}, h("th", {}, "Drops"), h("td", { class: "n" }, money(-s.drops_cents))),
    h("tr", {}, h("th", {}, "Paid-outs / paid-ins"), h("td", { class: "n" }, `${money(-s.paid_outs_cents)} / ${money(s.paid_ins_cents)}`)),
    h("tr", {}, h("th", {}, "Expected"), h("td", { class: "n expected" }, money(s.expected_cents))),
    h("tr", {}, h("th", {}, "Counted"), h("td", { class: "n counted" }, money(s.counted_cents))),
    h("tr", {}, h("th", {}, "Variance"), h("td", { class: `n variance ${cls}`, "data-cents": s.variance_cents }, money(s.variance_cents))),
    s.signed_off_by ? h("tr", {}, h("th", {}, "Signed off"), h("td", {}, `${s.signed_off_by}: ${s.note}`)) : null,
  ));
}

function openForm(reg) {
  const form = h("form", { class: "open-form" },
    h("h3", {}, "Open drawer: count the float"), denomInputs(`open-${reg}`),
    h("div", { class: "row" },
      h("label", {}, "Witness ", h("input", { name: "witness", required: true, size: 10 })),
      h("label", {}, "Witness PIN ", h("input", { name: "witness_pin", type: "password", required: true, size: 6 })),
      h("button", { class: "btn primary", type: "submit" }, "Open drawer")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await command("office_open_drawer", {
      register_id: reg, counted: readPieces(form), witness: form.elements.witness.value, witness_pin: form.elements.witness_pin.value,
    });
    message(`Drawer of ${reg} opened.`, "info");
    route();
  });
  return form;
}

function countForm(reg) {
  // blind: the expected figure is not on this page until the count is submitted
  const total = h("strong", { class: "count-total" }, money(0));
  const form = h("form", { class: "count-form", id: `count-${reg}` },
    h("h3", {}, "Close: blind count"), h("p", { class: "muted" }, "Count what is in the drawer. The expected amount is shown after you submit."),
    denomInputs(`count-${reg}`),
    h("div", { class: "row" }, h("span", {}, "Counted: ", total),
      h("label", {}, "Witness ", h("input", { name: "witness", size: 10 })),
      h("button", { class: "btn primary", type: "submit" }, "Submit count")));
  form.addEventListener("input", () => { total.textContent = money(piecesTotal(readPieces(form))); });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const r = await command("blind_count", { register_id: reg, counted: readPieces(form), witness: form.elements.witness.value });
    message(r.variance_cents === 0 ? `Drawer ${reg} balances.` : `Drawer ${reg}: variance ${money(r.variance_cents)} — a manager signs it off.`, r.variance_cents === 0 ? "info" : "error");
    route();
  });
  return form;
}

function movementForm(reg) {
  const form = h("form", { class: "movement-form" },
    h("h3", {}, "Drop, paid-out, paid-in, adjustment"),
    h("div", { class: "row" },
      h("select", { name: "kind" }, ["drop", "paid_out", "paid_in", "adjustment"].map((k) => h("option", { value: k }, k.replace("_", "-")))),
      h("label", {}, "Amount $ ", h("input", { name: "amount", type: "number", step: "0.01", required: true, size: 7 })),
      h("label", {}, "Bag ", h("input", { name: "bag", size: 8 }))),
    h("label", {}, "Reason ", h("input", { name: "reason", required: true, minlength: 3, size: 40 })),
    h("div", { class: "row" },
      h("label", {}, "Manager ", h("input", { name: "manager", required: true, size: 10 })),
      h("label", {}, "PIN ", h("input", { name: "pin", type: "password", required: true, size: 6 })),
      h("button", { class: "btn", type: "submit" }, "Record")));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    const reason = f.reason.value;
    await command("drawer_movement", {
      register_id: reg, kind: f.kind.value, amount_cents: Math.round(parseFloat(f.amount.value) * 100), reason,
      bag_number: f.bag.value, approval: { manager: f.manager.value, pin: f.pin.value, reason },
    });
    message("Recorded.", "info");
    route();
  });
  return form;
}

function signOffForm(s) {
  const form = h("form", { class: "signoff-form" },
    h("label", {}, "What happened (note) ", h("input", { name: "note", required: true, minlength: 3, size: 40 })),
    h("button", { class: "btn primary", type: "submit" }, "Sign off variance"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await command("sign_off_drawer", { session_id: s.session_id, note: form.elements.note.value });
    message("Variance signed off.", "info");
    route();
  });
  return form;
}

function depositForm(s) {
  const form = h("form", { class: "deposit-form row" },
    h("label", {}, "Deposit bag ", h("input", { name: "bag", required: true, size: 10 })),
    h("label", {}, "Amount $ ", h("input", { name: "amount", type: "number", step: "0.01", required: true, size: 7 })),
    h("button", { class: "btn", type: "submit" }, "Record deposit"));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    await command("record_deposit", { session_id: s.session_id, bag_number: form.elements.bag.value, amount_cents: Math.round(parseFloat(form.elements.amount.value) * 100) });
    route();
  });
  return form;
}

pages.eod = async (root, params) => {
  const reg = params.get("register") || "";
  const [rep, variance, hubInfo] = await Promise.all([
    api(`/api/reports/eod?date=${params.get("date") || ""}${reg ? `&register=${encodeURIComponent(reg)}` : ""}`),
    api("/api/reports/variance?days=30"),
    fetch("/api/hub").then((r) => r.json()),
  ]);
  const date = rep.business_date; // the store's local date (the default is the store's today)
  const picker = h("form", { class: "row", id: "eod-form" },
    h("label", {}, "Date ", h("input", { type: "date", name: "date", value: date })),
    h("label", {}, "Scope ", h("select", { name: "register" }, h("option", { value: "" }, "Store"),
      hubInfo.registers.filter((r) => !r.id.toUpperCase().startsWith("OFFICE")).map((r) => h("option", { value: r.id, selected: r.id === reg }, r.name)))),
    h("button", { class: "btn", type: "submit" }, "Show"));
  picker.addEventListener("submit", (ev) => {
    ev.preventDefault();
    location.hash = `#eod?date=${picker.elements.date.value}&register=${picker.elements.register.value}`;
  });
  const q = `date=${date}${reg ? `&register=${encodeURIComponent(reg)}` : ""}`;
  const hours = [];
  const byHour = new Map(rep.by_hour.map((x) => [x.hour, x.total_cents]));
  const hs = rep.by_hour.map((x) => x.hour);
  const first = Math.min(9, ...hs), last = Math.max(21, ...hs);
  for (let hr = first; hr <= last; hr++) hours.push({ label: String(hr).padStart(2, "0"), value: byHour.get(hr) || 0 });
  const figures = [
    ["Sales", rep.sales_count], ["Gross", money(rep.gross_cents)], ["Discounts", money(-rep.discounts_cents)],
    ["Net", money(rep.net_cents)], ...rep.taxes.map((t) => [t.name, money(t.amount_cents)]),
    ["Total collected", money(rep.total_cents)], ["Voids", `${rep.voids_count} (${money(rep.voids_cents)})`],
    ["Returns", `${rep.returns_count} (${money(-rep.returns_cents)})`], ["Net after returns", money(rep.net_after_returns_cents)],
    ["Drawer variance", money(rep.drawer_variance_cents)],
  ];
  root.append(
    h("h1", {}, `Z report ${date} — ${rep.scope}`), picker,
    h("p", { id: "tie-out", class: rep.tie_out.ok ? "ok" : "bad" }, rep.tie_out.sentence),
    h("p", { class: rep.all_reported ? "ok" : "bad" }, rep.all_reported ? "Every sale reached the state system." : `Not yet at the state system: ${rep.unreported.join(", ")}`),
    h("p", {}, authLink(`/api/reports/eod?format=html&${q}`, { id: "eod-print", label: "Printable page" }), " · ",
      authLink(`/api/reports/eod?format=csv&${q}`, { id: "eod-csv", label: "CSV", download: `z-report-${date}.csv` }), " · ",
      authLink(`/api/reports/eod?format=json&${q}`, { id: "eod-json", label: "JSON" })),
    h("div", { class: "grid" },
      h("div", { class: "card" }, h("table", { id: "eod-figures" }, h("tbody", {}, figures.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "n" }, v)))))),
      h("div", { class: "card" },
        columnChart("Sales by hour", hours, { id: "chart-hours" }),
        barChart("Tenders", Object.entries(rep.tenders).map(([k, v]) => ({ label: k.replace("_", " "), value: v })), { id: "chart-tenders" }))),
    h("div", { class: "card" }, divergingChart("Drawer variance, last 30 days", variance.days.map((d) => ({ label: d.day.slice(5), value: d.variance_cents })), { id: "chart-variance" })),
    rep.drawers.length ? h("div", { class: "card" }, h("h2", {}, "Drawers"), h("table", { id: "eod-drawers" }, h("tbody", {}, rep.drawers.map((d) =>
      h("tr", {}, h("th", {}, `${d.register_id} · ${d.session_id}`), h("td", {}, d.summary ? `expected ${money(d.summary.expected_cents)}, counted ${money(d.summary.counted_cents)}, variance ${money(d.summary.variance_cents)}${d.summary.signed_off_by ? ` — ${d.summary.signed_off_by}: ${d.summary.note}` : ""}` : "open, not counted")))))) : null,
    rep.overrides.length ? h("div", { class: "card" }, h("h2", {}, "Overrides, voids and returns"), h("table", {}, h("tbody", {}, rep.overrides.map((o) =>
      h("tr", {}, h("th", {}, `${o.kind} #${o.receipt_number}`), h("td", {}, `${o.manager_id}: ${o.reason}`)))))) : null,
  );
};

pages.counts = async (root) => {
  const data = await api("/api/backoffice/counts");
  const start = h("form", { class: "card", id: "count-start" }, h("h2", {}, "Start a count"),
    h("label", {}, "Package tags (one per line) for a spot check ", h("textarea", { name: "tags", rows: 3, cols: 40 })),
    h("div", { class: "row" }, h("label", {}, "or batch ", h("input", { name: "batch", size: 12 })),
      h("label", {}, "Witness ", h("input", { name: "witness", size: 10 })),
      h("button", { class: "btn primary", type: "submit", name: "spot" }, "Spot check"),
      h("button", { class: "btn", type: "button", onclick: async () => { await command("start_count", { kind: "full", witness: start.elements.witness.value }); route(); } }, "Full count")));
  start.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const tags = start.elements.tags.value.split(/\s+/).filter(Boolean);
    await command("start_count", { kind: "spot", tags, batch: start.elements.batch.value, witness: start.elements.witness.value });
    route();
  });
  root.append(h("h1", {}, "Inventory counts"), start);
  for (const c of data.counts) root.append(countCard(c));
};

function countCard(c) {
  const card = h("div", { class: "card count", "data-count": c.count_id },
    h("h2", {}, `${c.kind === "full" ? "Full count" : "Spot check"} ${c.count_id}`),
    h("p", { class: "muted" }, `${c.status} · started by ${c.started_by}${c.witness ? `, witness ${c.witness}` : ""} · ${new Date(c.started_at).toLocaleString()} · ${c.lines.length} packages`));
  if (c.status === "counting") {
    const counted = c.lines.filter((l) => l.counted !== null).length;
    const form = h("form", { class: "row" },
      h("label", {}, "Tag ", h("input", { name: "tag", required: true, size: 26 })),
      h("label", {}, "Found ", h("input", { name: "counted", type: "number", min: "0", required: true, size: 6 })),
      h("button", { class: "btn", type: "submit" }, "Record"),
      h("button", { class: "btn primary", type: "button", onclick: async () => { await command("finish_count", { count_id: c.count_id }); route(); } }, "Finish count"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      await command("count_package", { count_id: c.count_id, tag: form.elements.tag.value.trim(), counted: parseInt(form.elements.counted.value, 10) });
      route();
    });
    card.append(h("p", {}, `${counted} of ${c.lines.length} counted (units, or mg for bulk).`), form,
      h("ul", {}, c.lines.map((l) => h("li", {}, `${l.tag} ${l.counted === null ? "— not counted yet" : `✓ ${l.counted}`}`))));
    return card;
  }
  if (c.unscanned.length) card.append(h("p", { class: "warn" }, `Not scanned (${c.unscanned.length}): ${c.unscanned.slice(0, 20).join(", ")}${c.unscanned.length > 20 ? "…" : ""}`));
  if (c.unknown_scans.length) card.append(h("p", { class: "warn" }, `Scanned but unknown to the hub: ${c.unknown_scans.join(", ")}`));
  if (!c.proposals.length) {
    card.append(h("p", { class: "ok" }, "Every counted package matches the record."));
    return card;
  }
  const form = h("form", {}, h("table", {}, h("thead", {}, h("tr", {}, ["Package", "Record", "Counted", "Change", "State", "Reason", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, c.proposals.map((p) => h("tr", { "data-tag": p.tag },
      h("td", {}, p.tag), h("td", { class: "n" }, p.local), h("td", { class: "n" }, p.counted), h("td", { class: `n ${p.delta < 0 ? "bad" : ""}` }, p.delta > 0 ? `+${p.delta}` : p.delta),
      h("td", { class: "n" }, p.state_quantity ?? "—"),
      h("td", {}, p.approved_by ? p.reason : h("select", { name: `reason-${p.tag}` }, REASONS.map((r) => h("option", { value: r, selected: r === p.reason }, r)))),
      h("td", {}, p.approved_by ? `approved by ${p.approved_by} → outbox #${p.outbox_seq}` : "awaiting approval"))))),
    c.status === "finished" ? h("div", { class: "row" }, h("label", {}, "Note ", h("input", { name: "note", size: 30, maxlength: 200 })), h("button", { class: "btn primary", type: "submit" }, "Approve adjustments")) : null);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const reasons = {};
    for (const p of c.proposals) if (!p.approved_by) reasons[p.tag] = form.elements[`reason-${p.tag}`].value;
    await command("approve_adjustments", { count_id: c.count_id, reasons, note: form.elements.note.value });
    message("Approved: the adjustments are on their way to the state system.", "info");
    route();
  });
  card.append(form);
  return card;
}

pages.flags = async (root) => {
  const { flags } = await api("/api/backoffice/cash-flags");
  root.append(h("h1", {}, "Cash compliance flags"),
    h("p", { class: "muted" }, "Cash per customer over 24 hours (Form 8300 above $10,000, due within 15 days) and patterns just under a threshold. Flags never block a sale; review each and keep the note."));
  if (!flags.length) root.append(h("p", { class: "ok" }, "No flags."));
  for (const f of flags) {
    const form = h("form", { class: "row" },
      h("select", { name: "decision" }, [["file_8300", "Form 8300 to file"], ["filed_8300", "Form 8300 filed"], ["no_action", "No action"], ["escalated", "Escalated"]].map(([v, t]) => h("option", { value: v }, t))),
      h("input", { name: "note", required: true, minlength: 3, size: 40, placeholder: "Note" }),
      h("button", { class: "btn primary", type: "submit" }, "Record review"));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      await command("review_cash_flag", { flag_id: f.flag_id, decision: form.elements.decision.value, note: form.elements.note.value });
      route();
    });
    root.append(h("div", { class: "card flag", "data-flag": f.flag_id },
      h("h2", { class: f.open ? "bad" : "" }, `${f.kind === "form_8300" ? "Form 8300" : "Structuring"} · customer ${f.customer_id}`),
      h("p", {}, f.sentence), h("p", { class: "muted" }, `Receipts ${f.receipts.join(", ")} · ${new Date(f.window_start).toLocaleString()} – ${new Date(f.window_end).toLocaleString()}`),
      f.reviews.length ? h("ul", {}, f.reviews.map((r) => h("li", {}, `${r.reviewed_by} ${new Date(r.at).toLocaleString()}: ${r.decision} — ${r.note}`))) : null,
      form));
  }
};

pages.incidents = async (root) => {
  const { incidents } = await api("/api/backoffice/incidents");
  root.append(h("h1", {}, "Incident log"),
    h("p", {}, authLink("/api/backoffice/incidents?format=csv", { id: "incidents-csv", label: "Export CSV", download: "incidents.csv" })),
    h("table", { id: "incidents" }, h("thead", {}, h("tr", {}, ["#", "When", "Register", "Staff", "Category", "What happened"].map((t) => h("th", {}, t)))),
      h("tbody", {}, incidents.map((i) => h("tr", {}, h("td", {}, i.seq), h("td", {}, new Date(i.at).toLocaleString()), h("td", {}, i.register), h("td", {}, i.staff), h("td", {}, i.category), h("td", {}, i.description))))));
};

// receiving, reconciliation, dead letters and the state channel's status (state.js)
installStatePages(pages, {
  h, api, message, live, authLink, route: () => route(),
  onScan: (fn, root) => { scanHandler = { fn, root }; wedge.enabled = true; },
});

installOrderPages(pages, { h, api }); // online orders and the customer notices (orders.js)

// customers, promotions, the catalogue and Form 8300 worksheets (customers.js)
installCustomerPages(pages, {
  h, api, message, live, authLink, route: () => route(),
  onScan: (fn, root) => { scanHandler = { fn, root }; wedge.enabled = true; },
});

pages.devices = async (root) => {
  const d = await api("/api/backoffice/devices");
  root.append(h("h1", {}, "Device health"),
    h("table", { id: "devices" }, h("thead", {}, h("tr", {}, ["Device", "Kind", "Register", "State", "Detail", "Errors"].map((t) => h("th", {}, t)))),
      h("tbody", {}, d.devices.length ? d.devices.map((x) => h("tr", {}, h("td", {}, x.id), h("td", {}, x.kind), h("td", {}, x.register || ""), h("td", { class: x.up ? "ok" : "bad" }, x.up ? "up" : "down"), h("td", {}, x.detail || ""), h("td", { class: "n" }, x.errors ?? 0)))
        : h("tr", {}, h("td", { colspan: 6 }, "No devices are configured.")))),
    h("h2", {}, "Registers"),
    h("table", {}, h("tbody", {}, d.registers.map((r) => h("tr", {}, h("th", {}, r.name), h("td", { class: r.connected ? "ok" : "muted" }, r.connected ? "connected" : "not connected"), h("td", {}, r.staff ? `logged in: ${r.staff}` : ""))))),
    h("h2", {}, "Actors"),
    h("table", {}, h("tbody", {}, d.actors.map((a) => h("tr", {}, h("th", {}, a.name), h("td", { class: a.running ? "ok" : "bad" }, a.running ? "running" : "stopped"))))));
};

pages.staff = async (root) => {
  const d = await api("/api/backoffice/staff");
  const codes = h("div", { id: "pairing-codes" });
  root.append(h("h1", {}, "Staff and registers"),
    h("table", { id: "staff" }, h("thead", {}, h("tr", {}, ["ID", "Name", "Role", "Status"].map((t) => h("th", {}, t)))),
      h("tbody", {}, d.staff.map((s) => h("tr", {}, h("td", {}, s.id), h("td", {}, s.name), h("td", {}, s.role), h("td", {}, !s.active ? "inactive" : s.locked_until ? `locked until ${new Date(s.locked_until).toLocaleTimeString()}` : "active"))))),
    h("h2", {}, "Pair a register"), h("p", { class: "muted" }, "A code enrols one browser, once, within 15 minutes."),
    h("div", { class: "row" }, d.registers.map((r) => h("button", { class: "btn", onclick: async () => {
      const pc = await command("create_pairing_code", { register_id: r.id });
      codes.replaceChildren(h("p", { class: "variance" }, `${r.name}: `, h("strong", {}, pc.code), h("span", { class: "muted" }, ` (until ${new Date(pc.expires_at).toLocaleTimeString()})`)));
    } }, `Code for ${r.name}`))), codes);
};

pages.audit = async (root, params) => {
  const before = params.get("before");
  const { entries } = await api(`/api/backoffice/audit?limit=100${before ? `&before=${before}` : ""}`);
  const result = h("p", { id: "verify-result" });
  root.append(h("h1", {}, "Audit log"),
    h("div", { class: "row" }, h("button", { class: "btn primary", id: "verify-chain", onclick: async () => {
      result.textContent = "Verifying…";
      const r = await api("/api/backoffice/audit/verify", { method: "POST" });
      result.textContent = r.sentence;
      result.className = r.ok ? "ok" : "bad";
    } }, "Verify chain"), result),
    h("table", { id: "audit" }, h("thead", {}, h("tr", {}, ["#", "When", "Action", "Staff", "Register", "Detail"].map((t) => h("th", {}, t)))),
      h("tbody", {}, entries.map((e) => h("tr", {}, h("td", {}, e.seq), h("td", {}, new Date(e.at).toLocaleString()), h("td", {}, e.action), h("td", {}, e.staff), h("td", {}, e.register), h("td", { class: "muted" }, JSON.stringify(e.detail)))))),
    entries.length === 100 ? h("p", {}, h("a", { href: `#audit?before=${entries[entries.length - 1].seq}` }, "Older entries")) : null);
};

// ------------------------------------------------------------------------------------------ shell

const TECHNICIAN_TABS = new Set(["counts", "receiving"]);

// A keyboard-wedge scanner types anywhere on the page. Only a page that asks for scans (receiving) gets
// them; elsewhere the wedge is off, so a scanner types into the focused field as before (counts).
let scanHandler = null;
const wedge = new WedgeScanner((data) => { if (scanHandler?.root.isConnected) scanHandler.fn(data); });
wedge.enabled = false;

function allowedTab(tab) {
  const rank = RANK[live.staff?.role] || 0;
  return rank >= RANK.manager || (rank >= RANK.technician && TECHNICIAN_TABS.has(tab));
}

let routing = 0;
async function route() {
  if (!live.staff) return;
  const [tab0, query] = (location.hash.slice(1) || "").split("?");
  const rank = RANK[live.staff.role] || 0;
  const tab = tab0 || (rank >= RANK.manager ? "readiness" : "counts");
  if (!allowedTab(tab)) {
    location.hash = "#counts";
    return;
  }
  for (const b of document.querySelectorAll("#tabs button")) {
    b.hidden = !allowedTab(b.dataset.tab);
    b.toggleAttribute("aria-current", b.dataset.tab === tab);
    if (b.dataset.tab === tab) b.setAttribute("aria-current", "page");
  }
  const mine = ++routing;
  scanHandler = null;
  wedge.enabled = false;
  const root = h("div", { "data-page": tab });
  try {
    await pages[tab](root, new URLSearchParams(query || ""));
  } catch (err) {
    root.append(h("p", { class: "bad" }, String(err.message || err)));
  }
  if (mine === routing) $("#page").replaceChildren(root);
}

function renderAuth() {
  const staff = live.staff;
  $("#staff-name").textContent = staff ? `${staff.name} (${staff.role})` : "";
  $("#btn-logout").hidden = !staff;
  if (!live.deviceToken) return show("screen-pair");
  if (!staff) return show("screen-login");
  if ((RANK[staff.role] || 0) < RANK.technician) {
    // a budtender sees none of the back office
    $("#page").replaceChildren();
    return show("screen-denied");
  }
  show("screen-office");
  route();
}

live.addEventListener("state", (ev) => {
  const c = $("#conn");
  c.dataset.state = ev.detail.state;
  c.textContent = { open: "Connected", reconnecting: "Reconnecting…", connecting: "Connecting…" }[ev.detail.state] || ev.detail.state;
});
live.addEventListener("info", (ev) => { $("#store-name").textContent = `· ${ev.detail.store}`; });
live.addEventListener("auth", () => renderAuth());
live.addEventListener("snapshot", (ev) => {
  const n = ev.detail.state?.office?.open_cash_flags || 0;
  const badge = $("#flag-badge");
  badge.textContent = String(n);
  badge.hidden = !n;
});

$("#pair-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#pair-error").textContent = "";
  try {
    await live.pair($("#pair-code").value.trim(), "Back office");
  } catch (err) {
    $("#pair-error").textContent = err.message;
  }
});
$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  try {
    await live.login($("#login-staff").value.trim(), $("#login-pin").value);
    $("#login-pin").value = "";
  } catch (err) {
    $("#login-error").textContent = err.message;
  }
});
for (const b of [$("#btn-logout"), $("#denied-logout")]) b.addEventListener("click", () => live.logout().catch(() => {}));
$("#tabs").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-tab]");
  if (b) location.hash = `#${b.dataset.tab}`;
});
window.addEventListener("hashchange", route);
live.start();
