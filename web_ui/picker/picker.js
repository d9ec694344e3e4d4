// The handheld picker: pair and log in like a register, then the order queue (by promised time), claim,
// pick by scanning every package tag (keyboard-wedge scanner anywhere on the page, or the serial scanner
// paired to this picker on the hub), weigh bulk lines on the station's scale, short lines with their
// substitutes, ready (the hub prints the bag label), and curbside payment from the handheld.
//
// The hub owns the state: every button sends one command and the screen redraws from the snapshot.
// The DOM is built with h(), never from HTML strings.

import { LiveClient, LiveError } from "../shared/live.js";
import { WedgeScanner } from "../shared/wedge.js";

const $ = (sel) => document.querySelector(sel);
const live = new LiveClient();
const ui = { auth: null, state: null, demo: false, lastTag: "", candidates: null, curbside: "" };

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (v !== null && v !== undefined && v !== false) el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c);
  return el;
}

const money = (c) => (c === null || c === undefined ? "—" : `$${(c / 100).toFixed(2)}`);
const when = (iso) => new Date(iso).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });

function showMessage(text, level = "error") {
  const box = $("#message");
  box.textContent = text;
  box.className = `banner ${level}`;
  box.hidden = !text;
  clearTimeout(ui.msgTimer);
  if (text) ui.msgTimer = setTimeout(() => (box.hidden = true), 8000);
}

async function send(type, fields = {}) {
  try {
    return await live.request(type, fields);
  } catch (err) {
    showMessage(err instanceof LiveError ? err.message : "Something went wrong; try again.");
    throw err;
  }
}
const fire = (type, fields) => send(type, fields).catch(() => {});

// ---------------------------------------------------------------- scanning
const wedge = new WedgeScanner((data) => onScan(data.trim()));
wedge.enabled = false;
window.storehub = { live, ui, wedge };

function holding() {
  return ui.state?.picker?.holding || null;
}

async function onScan(data) {
  if (!data) return;
  const order = holding();
  if (order) {
    ui.lastTag = data;
    await send("pick_scan", { order_id: order.id, data }).catch(() => {});
  } else if (ui.curbside) {
    await send("scan", { data, source: "wedge" }).catch(() => {});
  }
}

$("#tag-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const v = $("#tag-input").value.trim();
  $("#tag-input").value = "";
  onScan(v);
});

// ---------------------------------------------------------------- screens
function showScreen(name) {
  for (const s of ["connecting", "pair", "login", "queue", "pick", "curbside"]) $(`#screen-${s}`).hidden = s !== name;
  wedge.enabled = name === "pick" || name === "curbside";
}

function chooseScreen() {
  if (!ui.auth) return showScreen("connecting");
  if (!ui.auth.paired) return showScreen("pair");
  const staff = ui.state ? ui.state.staff : ui.auth.staff;
  if (!staff) return showScreen("login");
  if (ui.curbside && ui.state?.order_in_cart === ui.curbside) return showScreen("curbside");
  if (holding()) return showScreen("pick");
  showScreen("queue");
}

function render() {
  const s = ui.state;
  if (!s) return;
  $("#picker-name").textContent = s.name || "";
  $("#staff-name").textContent = s.staff ? s.staff.name : "";
  renderQueue(s.picker?.queue || []);
  renderPick(holding(), s.picker?.last_pick);
  renderCurbside(s);
  chooseScreen();
}

function renderQueue(queue) {
  const list = $("#queue");
  list.replaceChildren();
  $("#queue-empty").hidden = queue.length > 0;
  for (const o of queue) {
    const actions = [];
    if (o.state === "received") actions.push(h("button", { class: "btn primary", type: "button", onclick: () => fire("accept_order", { order_id: o.id }) }, "Accept"));
    if (o.state === "accepted") actions.push(h("button", { class: "btn primary", type: "button", "data-claim": o.id, onclick: () => fire("claim_order", { order_id: o.id }) }, "Claim"));
    if (o.state === "ready" && o.fulfilment === "curbside") actions.push(h("button", { class: "btn", type: "button", onclick: () => startCurbside(o.id) }, "Curbside: hand over"));
    list.append(
      h("li", { "data-order": o.id },
        h("div", { class: "line1" }, h("span", {}, o.id), h("span", {}, when(o.promised_at))),
        h("div", {}, `${o.customer} · ${o.fulfilment} · ${o.lines} line${o.lines === 1 ? "" : "s"}`),
        h("div", {},
          h("span", { class: `badge ${o.state}` }, o.state),
          o.late ? h("span", { class: "badge late" }, "late") : null,
          o.picker ? h("span", { class: "badge" }, `on ${o.picker}`) : null,
          ...o.flags.map((f) => h("span", { class: `badge ${f}` }, f.replace(/_/g, " ")))),
        ...actions));
  }
}

function renderPick(order, lastPick) {
  if (!order) return;
  $("#pick-title").textContent = `Order ${order.id}`;
  $("#pick-customer").textContent = `${order.customer} · ${order.fulfilment} · promised ${when(order.promised_at)}` + (order.notes ? ` · “${order.notes}”` : "");
  const status = $("#scan-status");
  if (lastPick) {
    status.textContent = lastPick.message;
    status.className = `scan-status ${lastPick.ok ? "ok" : "error"}`;
  }
  const list = $("#pick-list");
  list.replaceChildren();
  let group = null;
  for (const row of order.pick_list) {
    if (row.category !== group) {
      group = row.category;
      list.append(h("li", { class: "group" }, group || "other"));
    }
    const cls = row.short ? "short" : row.complete ? "complete" : "";
    const buttons = [];
    if (!row.complete) {
      if (row.sold_by === "weight") buttons.push(h("button", { class: "btn small", type: "button", "data-weigh": row.line, onclick: () => weigh() }, "Weigh"));
      buttons.push(h("button", { class: "btn small ghost", type: "button", "data-short": row.line, onclick: () => shortLine(order.id, row.line) }, "Short"));
    }
    list.append(
      h("li", { class: `item ${cls}`, "data-line": row.line },
        h("div", { class: "line1" }, h("span", {}, row.name), h("span", {}, `${row.done} / ${row.wanted}`)),
        h("div", { class: "muted" }, row.shelf ? `Shelf ${row.shelf}` : "", row.short ? " · short" : "", row.substitute_for ? ` · substitute for line ${row.substitute_for}` : ""),
        h("div", { class: "tags" }, row.tags.join(" ")),
        ...buttons));
  }
  renderCandidates(order);
}

function renderCandidates(order) {
  const box = $("#candidates");
  const c = ui.candidates;
  if (!c || c.order !== order.id) return void (box.hidden = true);
  const row = order.pick_list.find((r) => r.line === c.line);
  if (!row || row.substituted_by) return void (box.hidden = true);
  box.hidden = false;
  $("#candidates-title").textContent = c.list.length ? `Substitutes for ${row.name}` : `No substitute in stock for ${row.name}`;
  $("#candidate-list").replaceChildren(
    ...c.list.map((p) => h("li", {},
      h("div", { class: "line1" }, h("span", {}, p.name), h("span", {}, money(p.price_cents))),
      h("div", { class: "muted" }, `${p.brand} · THC ${(p.thc_bp / 100).toFixed(1)}%`),
      h("button", { class: "btn", type: "button", "data-substitute": p.id, onclick: () => substitute(order.id, c.line, p.id) }, "Customer agreed: use this"))));
}

async function weigh() {
  const order = holding();
  if (!order || !ui.lastTag) return showMessage("Scan the bulk package's tag with it on the scale.");
  await send("pick_scan", { order_id: order.id, data: ui.lastTag }).catch(() => {});
}

async function shortLine(orderId, line) {
  const r = await send("short_line", { order_id: orderId, line }).catch(() => null);
  if (!r) return;
  ui.candidates = { order: orderId, line, list: r.candidates };
  if (r.substituted) showMessage(`Substituted by the customer's preference (${r.substituted}); pick it now.`, "info");
  render();
}

async function substitute(orderId, line, productId) {
  await send("substitute", { order_id: orderId, line, product_id: productId }).catch(() => {});
  ui.candidates = null;
  render();
}

$("#btn-ready").addEventListener("click", async () => {
  const order = holding();
  if (!order) return;
  const r = await send("order_ready", { order_id: order.id }).catch(() => null);
  if (r) showMessage(`Order ${r.order_id} is ready.` + (r.label.printer ? ` Bag label on ${r.label.printer}.` : " No label printer here."), "info");
});
$("#btn-release").addEventListener("click", () => {
  const order = holding();
  if (order) fire("release_order", { order_id: order.id });
});

// ---------------------------------------------------------------- curbside
async function startCurbside(orderId) {
  ui.curbside = orderId;
  const r = await send("recall_order", { order_id: orderId }).catch(() => null);
  if (!r) ui.curbside = "";
  render();
}

function renderCurbside(s) {
  if (!ui.curbside) return;
  $("#curb-title").textContent = `Curbside ${ui.curbside}`;
  $("#curb-customer").textContent = s.customer ? `ID: ${s.customer.label}` : "Scan the customer's ID.";
  $("#curb-total").textContent = money(s.cart?.total_cents);
}

async function pay(kind) {
  const total = ui.state?.cart?.total_cents;
  if (!total) return;
  const r = await send("pay", { tenders: [{ kind, amount_cents: total }] }).catch(() => null);
  if (r) {
    showMessage(`Paid: receipt ${r.receipt_number}.`, "info");
    ui.curbside = "";
    render();
  }
}
$("#btn-pay-cash").addEventListener("click", () => pay("cash"));
$("#btn-pay-card").addEventListener("click", () => pay("debit"));
$("#btn-curb-cancel").addEventListener("click", async () => {
  ui.curbside = "";
  await send("end_customer").catch(() => {});
  render();
});

// ---------------------------------------------------------------- pairing, login, connection
$("#pair-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#pair-error").textContent = "";
  try {
    await live.pair($("#pair-code").value.trim(), "handheld");
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
$("#btn-logout").addEventListener("click", () => live.logout().catch(() => {}));

live.addEventListener("info", (e) => {
  $("#store-name").textContent = e.detail.store || "storehub";
  ui.demo = Boolean(e.detail.demo);
  $("#demo").hidden = !ui.demo;
});
live.addEventListener("state", (e) => {
  const pill = $("#conn");
  const st = e.detail.state;
  pill.className = `pill ${st === "open" ? "pill-ok" : st === "reconnecting" ? "pill-warn" : "pill-grey"}`;
  pill.textContent = st === "open" ? "Connected" : st === "reconnecting" ? "Reconnecting…" : "Connecting…";
});
live.addEventListener("auth", (e) => {
  ui.auth = e.detail;
  const snap = live.registerId ? live.snapshot(`register:${live.registerId}`) : null;
  if (snap) ui.state = snap;
  render();
  chooseScreen();
});
live.addEventListener("snapshot", (e) => {
  if (!live.registerId || e.detail.topic !== `register:${live.registerId}`) return;
  ui.state = e.detail.state;
  render();
});

// ---------------------------------------------------------------- demo panel
$("#demo-order").addEventListener("click", async () => {
  const r = await fetch("/api/demo/orders", { method: "POST" });
  const body = await r.json();
  showMessage(r.ok ? `Web order ${body.order_id} received (signed by the demo channel).` : body.message, r.ok ? "info" : "error");
});
function demoScale(motion) {
  const g = Number.parseFloat($("#demo-weight").value || "0");
  fire("demo_scale", { weight_mg: Math.round(g * 1000), motion });
}
$("#demo-stable").addEventListener("click", () => demoScale(false));
$("#demo-motion").addEventListener("click", () => demoScale(true));
$("#demo-scan-go").addEventListener("click", () => onScan($("#demo-scan").value.trim()));

live.start();
