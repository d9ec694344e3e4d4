// The browser register: pairing, PIN login, and the sale screen drawn from the register's snapshot.
//
// The hub owns all state: every button sends one command and the screen redraws from the snapshot that
// follows. Errors are shown as the hub's own sentence (`message`). Fields missing from a snapshot are
// drawn as "not available", never as a crash.

import { LiveClient, LiveError } from "../shared/live.js";
import { WedgeScanner } from "../shared/wedge.js";
import { renderReadyOrders } from "./ready-orders.js";

const $ = (sel, root = document) => root.querySelector(sel);
const $$ = (sel, root = document) => Array.from(root.querySelectorAll(sel));

const live = new LiveClient();
const ui = {
  auth: null, // {paired, staff}
  state: null, // the register snapshot
  demo: false,
  lastReceiptSeen: null,
  searchSeq: 0,
  searchTimer: null,
  messageTimer: null,
};
const wedge = new WedgeScanner((data) => {
  if (!loggedInHere()) return; // nothing to do with a scan before login
  fire("scan", { data, source: "wedge" });
});
// PIN and pairing fields are typed by people: a fast typist must never be taken for a scanner there,
// so the wedge listens only while the sale screen is up (see showScreen)
wedge.enabled = false;
window.storehub = { live, ui, wedge }; // for support staff poking at the console, and for the browser tests

// ---------------------------------------------------------------- formatting

export function money(cents) {
  if (cents === null || cents === undefined || Number.isNaN(cents)) return "—";
  const neg = cents < 0;
  const abs = Math.abs(Math.round(cents));
  const s = `$${Math.floor(abs / 100).toLocaleString("en-US")}.${String(abs % 100).padStart(2, "0")}`;
  return neg ? `−${s}` : s;
}

export function grams(mg) {
  if (mg === null || mg === undefined) return "—";
  return `${(mg / 1000).toFixed(2)} g`;
}

function esc(v) {
  return String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function toCents(text) {
  const v = Number.parseFloat(String(text || "").replace(/[$,\s]/g, ""));
  return Number.isFinite(v) ? Math.round(v * 100) : 0;
}

// ---------------------------------------------------------------- messages

function showMessage(text, level = "error", ms = 10000) {
  const box = $("#message");
  const notice = $("#notice");
  if (!notice.hidden && notice.textContent === text) return; // the hub already says it in its notice
  $("#message-text").textContent = text;
  box.className = `banner ${level}`;
  box.hidden = false;
  clearTimeout(ui.messageTimer);
  if (ms) ui.messageTimer = setTimeout(() => (box.hidden = true), ms);
}
$("#message-close").addEventListener("click", () => ($("#message").hidden = true));

function plain(err) {
  if (err instanceof LiveError) return err.message;
  return "Something went wrong on this screen. Try again, or report a problem.";
}

/** Send a command; on error show the hub's sentence (and return null). */
async function send(type, fields = {}, { quiet = false, errorBox = null } = {}) {
  try {
    return await live.request(type, fields);
  } catch (err) {
    if (errorBox) errorBox.textContent = plain(err);
    else if (!quiet) showMessage(plain(err));
    throw err;
  }
}

function fire(type, fields = {}) {
  send(type, fields).catch(() => {});
}

// ---------------------------------------------------------------- screens & connection

function showScreen(name) {
  for (const s of ["connecting", "pair", "login", "register"]) $(`#screen-${s}`).hidden = s !== name;
  const inRegister = name === "register";
  wedge.enabled = inRegister;
  $("#btn-logout").hidden = !inRegister;
  $("#btn-more").hidden = !inRegister;
  $("#btn-last-receipt").hidden = !inRegister || !ui.state?.last_receipt;
  if (name === "login") setTimeout(() => $("#login-staff").focus(), 0);
  if (name === "pair") setTimeout(() => $("#pair-code").focus(), 0);
}

// This screen is logged in only by a PIN typed on it (or its own resumed session token): someone logged in
// on another screen of the register shows in the snapshot, and opens nothing here.
function loggedInHere() {
  const mine = ui.auth?.paired ? ui.auth.staff : null;
  const current = ui.state ? ui.state.staff : mine;
  return Boolean(mine && current && current.id === mine.id);
}

function chooseScreen() {
  if (!ui.auth) return showScreen("connecting");
  if (!ui.auth.paired) return showScreen("pair");
  if (!loggedInHere()) return showScreen("login");
  showScreen("register");
}

live.addEventListener("info", (e) => {
  const info = e.detail;
  $("#store-name").textContent = info.store || "storehub";
  setDemo(Boolean(info.demo));
});

live.addEventListener("state", (e) => {
  const { state, attempt, delay } = e.detail;
  const pill = $("#conn");
  pill.dataset.state = state;
  document.body.classList.toggle("offline", state === "reconnecting");
  if (state === "open") {
    pill.className = "pill pill-ok";
    pill.textContent = "Connected";
    $("#reconnecting").hidden = true;
  } else if (state === "reconnecting") {
    pill.className = "pill pill-warn";
    pill.textContent = "Reconnecting…";
    $("#reconnecting").hidden = false;
    $("#reconnecting-detail").textContent =
      delay !== undefined ? `(attempt ${attempt}, next try in ${(delay / 1000).toFixed(1)} s)` : "";
  } else {
    pill.className = "pill pill-grey";
    pill.textContent = "Connecting…";
  }
});

live.addEventListener("welcome", (e) => {
  if (e.detail.demo) setDemo(true);
});

live.addEventListener("auth", (e) => {
  ui.auth = e.detail;
  if (!e.detail.paired && e.detail.message) $("#pair-error").textContent = e.detail.message;
  // the register's first snapshot arrives before the answer to pair/hello: take it from the client
  const snap = live.registerId ? live.snapshot(`register:${live.registerId}`) : null;
  if (snap && snap !== ui.state) {
    const before = ui.state;
    ui.state = snap;
    render(snap, before);
  }
  chooseScreen();
});

live.addEventListener("snapshot", (e) => {
  const { topic, state } = e.detail;
  if (!live.registerId || topic !== `register:${live.registerId}`) return;
  const before = ui.state;
  ui.state = state;
  if (state.demo) setDemo(true);
  render(state, before);
  chooseScreen();
});

// ---------------------------------------------------------------- pairing & login

$("#pair-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#pair-error").textContent = "";
  const code = $("#pair-code").value.trim();
  try {
    await live.pair(code, $("#pair-device").value.trim() || navigator.userAgent.slice(0, 60));
    $("#pair-code").value = "";
  } catch (err) {
    $("#pair-error").textContent = plain(err);
  }
});

const pinInput = $("#login-pin");
$("#keypad").addEventListener("click", (ev) => {
  const key = ev.target.closest("[data-key]")?.dataset.key;
  if (!key) return;
  if (key === "clear") pinInput.value = "";
  else if (key === "back") pinInput.value = pinInput.value.slice(0, -1);
  else if (pinInput.value.length < 12) pinInput.value += key;
});
// a physical keyboard works too (digits go to the PIN when the staff field is not focused)
pinInput.addEventListener("keydown", (ev) => {
  if (/^[0-9]$/.test(ev.key) && pinInput.value.length < 12) pinInput.value += ev.key;
  else if (ev.key === "Backspace") pinInput.value = pinInput.value.slice(0, -1);
  else if (ev.key === "Enter") $("#login-form").requestSubmit();
});

$("#login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  $("#login-error").textContent = "";
  const staff = $("#login-staff").value.trim();
  const pin = pinInput.value;
  if (!staff) return void ($("#login-error").textContent = "Type your staff ID.");
  if (pin.length < 4) return void ($("#login-error").textContent = "Your PIN has at least 4 digits.");
  $("#login-submit").disabled = true;
  try {
    await live.login(staff, pin);
    pinInput.value = "";
    $("#login-staff").value = "";
  } catch (err) {
    pinInput.value = "";
    $("#login-error").textContent = plain(err);
  } finally {
    $("#login-submit").disabled = false;
  }
});

$("#btn-unpair").addEventListener("click", () => {
  if (confirm("Forget this register's pairing? A manager will need to pair it again.")) live.forgetDevice();
});

$("#btn-logout").addEventListener("click", async () => {
  try {
    await live.logout();
  } catch (err) {
    showMessage(plain(err));
  }
  chooseScreen();
});

// ---------------------------------------------------------------- wedge scanning


// ---------------------------------------------------------------- render

function render(s, before) {
  $("#register-name").textContent = s.name ? `· ${s.name}` : "";
  $("#staff-name").textContent = s.staff ? `${s.staff.name} (${s.staff.role})` : "";
  $("#btn-last-receipt").hidden = !s.last_receipt || !s.staff;
  renderNotice(s.notice);
  renderCustomer(s);
  renderAllotment(s);
  renderScale(s.scale);
  renderCart(s);
  renderCheckout(s);
  renderDevices(s);
  renderReadyOrders(s, send);
  // the customer left (sale done or ended): the next customer starts with a clean search
  if (before?.customer && !s.customer) {
    searchInput.value = "";
    $("#results").innerHTML = "";
  }
  // a new receipt (this register just sold): show it
  const r = s.last_receipt;
  if (r && before && (!before.last_receipt || before.last_receipt.number !== r.number)) showReceipt(r);
  if ($("#dlg-parked").open) renderParked(s);
  if ($("#dlg-tender").open) renderCardPayment(s);
}

function renderNotice(n) {
  const box = $("#notice");
  if (!n || !n.text) {
    box.hidden = true;
    return;
  }
  box.className = `banner ${n.level || "info"}`;
  box.textContent = n.text;
  box.hidden = false;
  if ($("#message-text").textContent === n.text) $("#message").hidden = true; // said once is enough
}

function renderCustomer(s) {
  const c = s.customer;
  const box = $("#customer");
  if (!c) {
    box.className = "panel customer-empty";
    box.innerHTML = `<h2>Customer</h2>
      <p class="hint">Scan the customer's ID to check in</p>
      <div class="row"><button class="btn" data-act="manual">Enter ID by hand</button></div>`;
    return;
  }
  const d = c.decision || { allowed: false, reasons: [] };
  const reasons = (d.reasons || []).map((r) => `<li>${esc(r)}</li>`).join("");
  const med = c.medical
    ? `<div class="muted">Medical registration ${esc(c.medical.registration)} · expires ${esc(c.medical.expires)}</div>`
    : "";
  box.className = "panel";
  box.innerHTML = `<h2>Customer</h2>
    <div class="customer-label" id="customer-label">${esc(c.label || c.type || "Customer")}</div>
    <div class="muted">${esc(c.type || "")}${c.age !== undefined && c.age !== null ? ` · age ${esc(c.age)}` : ""}</div>
    ${med}
    <div class="decision ${d.allowed ? "allowed" : "refused"}" id="decision">
      ${d.allowed ? "May buy" : "Refused: no sale"}${reasons ? `<ul>${reasons}</ul>` : ""}
    </div>
    <div class="row">
      <button class="btn small" data-act="medical">Medical card…</button>
      <button class="btn small" data-act="manual">Re-enter ID…</button>
      <button class="btn small danger" data-act="end-customer">End customer</button>
    </div>`;
}

function gaugeClass(a) {
  if (!a.limit) return a.used > 0 ? "over" : "";
  const f = a.used / a.limit;
  if (f > 1 || a.remaining < 0) return "over";
  if (f >= 0.8) return "near";
  return "";
}

function renderAllotment(s) {
  const box = $("#allotment");
  const list = s.allotment || [];
  const problems = s.limit_problems || [];
  let html = "<h2>Allowed today</h2>";
  if (!s.customer) html += `<p class="muted">Shows what the customer may still buy once they check in.</p>`;
  else if (!list.length) html += `<p class="muted">No limits reported.</p>`;
  for (const a of list) {
    const pct = a.limit ? Math.min(100, Math.max(0, (a.used / a.limit) * 100)) : a.used > 0 ? 100 : 0;
    html += `<div class="gauge ${gaugeClass(a)}" data-bucket="${esc(a.bucket)}" data-used="${esc(a.used)}">
      <div class="gauge-head"><strong>${esc(a.label || a.bucket)}</strong>
        <span><span class="remaining">${esc(a.remaining_text ?? a.remaining)}</span> left of ${esc(a.limit_text ?? a.limit)}</span></div>
      <div class="gauge-bar" role="meter" aria-valuemin="0" aria-valuemax="${esc(a.limit)}" aria-valuenow="${esc(a.used)}" aria-label="${esc(a.label || a.bucket)}">
        <div class="gauge-fill" style="width:${pct.toFixed(1)}%"></div></div></div>`;
  }
  if (problems.length) html += `<ul class="limit-problems" id="limit-problems">${problems.map((p) => `<li>${esc(p)}</li>`).join("")}</ul>`;
  box.innerHTML = html;
}

function renderScale(sc) {
  const box = $("#scale");
  if (!sc) {
    box.innerHTML = `<h2>Scale</h2><p class="muted">No scale paired with this register.</p>`;
    return;
  }
  const labels = { stable: "Stable", motion: "In motion", overload: "Overload", underload: "Under zero", error: "Error", down: "Offline" };
  const state = sc.up === false ? "down" : sc.state || (sc.stable ? "stable" : "motion");
  const cls = state === "stable" ? "pill-ok" : state === "motion" ? "pill-warn" : "pill-bad";
  box.innerHTML = `<h2>Scale</h2>
    <div class="scale-row"><span class="scale-weight" id="scale-weight">${state === "down" ? "—" : grams(sc.weight_mg)}</span>
      <span class="pill ${cls} scale-state" id="scale-state" data-state="${esc(state)}">${esc(labels[state] || state)}</span></div>
    <div class="row"><button class="btn small" data-act="scale-zero">Zero</button><button class="btn small" data-act="scale-tare">Tare</button>
      <span class="muted" style="font-size:12px">${esc(sc.device || "")}${sc.certificate ? `<br>cert. ${esc(sc.certificate)}` : ""}</span></div>`;
}

function renderCart(s) {
  const box = $("#cart");
  const cart = s.cart;
  const parked = s.parked || [];
  let html = `<h2>Cart ${cart && cart.id ? `<span class="muted mono">${esc(cart.id)}</span>` : ""}</h2>`;
  if (!cart || !cart.lines || !cart.lines.length) {
    html += `<p class="muted" id="cart-empty">${s.customer ? "Scan a package tag or search for a product." : "Check in a customer to start a sale."}</p>`;
    html += `<ul class="cart-lines" id="cart-lines"></ul>`;
  } else {
    html += `<ul class="cart-lines" id="cart-lines">`;
    for (const l of cart.lines) {
      const byWeight = l.sold_by === "weight";
      const weighed = byWeight && l.weight_mg;
      html += `<li class="line" data-line="${esc(l.line)}" data-tag="${esc(l.tag)}">
        <div class="line-top"><div><div class="name">${esc(l.product)}</div>
          <div class="tag mono">${esc(l.tag)}</div>
          <div class="muted" style="font-size:13px">${esc([l.brand, l.category].filter(Boolean).join(" · "))} · ${money(l.unit_price_cents)}${byWeight ? "/g" : " each"}</div></div>
          <div class="total">${money(l.total_cents)}</div></div>
        ${l.discount_cents ? `<div class="discount">Discount −${money(l.discount_cents)}</div>` : ""}
        <div class="line-ctrl">`;
      if (byWeight) {
        html += weighed
          ? `<span class="qty">${esc(l.qty_text || grams(l.weight_mg))}</span><span class="muted" style="font-size:12px">${esc(l.weight_source || "")}</span>`
          : `<span class="weight-missing">Not weighed yet</span>`;
        html += `<button class="btn small primary" data-act="weigh">Weigh</button><button class="btn small" data-act="manual-weight">Manual…</button>`;
      } else {
        html += `<button class="btn small" data-act="qty-minus" aria-label="One less">−</button>
          <span class="qty">${esc(l.qty_text || l.quantity)}</span>
          <button class="btn small" data-act="qty-plus" aria-label="One more">+</button>`;
      }
      html += `<span class="spacer"></span><button class="btn small" data-act="line-discount">%</button>
        <button class="btn small danger" data-act="remove" aria-label="Remove line">✕</button></div></li>`;
    }
    html += `</ul><div class="totals" id="totals">
      <div><span>Subtotal</span><span>${money(cart.subtotal_cents)}</span></div>
      ${cart.discount_cents ? `<div><span>Discounts</span><span>−${money(cart.discount_cents)}</span></div>` : ""}
      ${(cart.taxes || []).map((t) => `<div><span>${esc(t.name)}</span><span>${money(t.cents)}</span></div>`).join("")}
      <div class="grand"><span>Total</span><span id="cart-total">${money(cart.total_cents)}</span></div>
      ${cart.prices_include_tax ? `<div class="note">Prices include tax.</div>` : ""}
      ${cart.rounding_note ? `<div class="note">${esc(cart.rounding_note)}</div>` : ""}</div>`;
  }
  box.innerHTML = html;
}

function renderCheckout(s) {
  const box = $("#checkout");
  const cart = s.cart;
  const lines = cart?.lines?.length || 0;
  const pay = s.terminal || {};
  const drawer = s.drawer || {};
  const parked = s.parked || [];
  const blocked = !s.customer || !s.customer.decision?.allowed || (s.limit_problems || []).length > 0;
  const unweighed = (cart?.lines || []).some((l) => l.sold_by === "weight" && !l.weight_mg);
  let status = "";
  if (pay.cash_only || pay.up === false) status += `<div class="status-line warn-text" id="cash-only">${esc(pay.message || "Card terminal offline: cash only.")}</div>`;
  else if (pay.message) status += `<div class="status-line muted">${esc(pay.message)}</div>`;
  // the state's track-and-trace system is down: selling goes on, and the rule for this state is shown
  if (s.state_system && !s.state_system.ok) status += `<div class="status-line warn-text" id="state-down">${esc(s.state_system.message)}</div>`;
  if (s.drawer && !drawer.open) status += `<div class="status-line warn-text" id="drawer-closed">Cash drawer is not open. <button class="btn small" data-act="open-drawer" id="btn-open-drawer">Open drawer…</button></div>`;
  box.innerHTML = `${status}
    <div class="checkout-actions">
      <button class="btn" data-act="discount" ${lines ? "" : "disabled"}>Discount</button>
      <button class="btn" data-act="points" ${s.customer ? "" : "disabled"}>Points</button>
      <button class="btn" data-act="park" ${lines ? "" : "disabled"}>Park</button>
      <button class="btn" data-act="recall" id="btn-recall" ${parked.length ? "" : "disabled"}>Recall${parked.length ? ` (${parked.length})` : ""}</button>
      <button class="btn primary big pay" data-act="pay" id="btn-pay" ${lines && !blocked && !unweighed ? "" : "disabled"}>Pay ${lines ? money(cart.total_cents) : ""}</button>
    </div>`;
}

function renderDevices(s) {
  const box = $("#devices");
  box.innerHTML = (s.devices || [])
    .map((d) => `<span class="pill ${d.up ? "pill-ok" : "pill-bad"}" title="${esc(d.detail || "")}">${esc(d.kind)} ${esc(d.id)}${d.up ? "" : " · down"}</span>`)
    .join("");
}

// ---------------------------------------------------------------- actions (event delegation)

document.addEventListener("click", (ev) => {
  const btn = ev.target.closest("[data-act]");
  if (!btn || btn.disabled) return;
  const lineEl = btn.closest("[data-line]");
  const line = lineEl ? Number(lineEl.dataset.line) : null;
  const tag = lineEl ? lineEl.dataset.tag : null;
  const cartLine = line !== null ? (ui.state?.cart?.lines || []).find((l) => l.line === line) : null;
  switch (btn.dataset.act) {
    case "manual":
      return openManual();
    case "medical":
      return openDialog("#dlg-medical");
    case "end-customer":
      return fire("end_customer");
    case "scale-zero":
      return fire("scale_zero");
    case "scale-tare":
      return fire("scale_tare");
    case "qty-plus":
      return fire("set_quantity", { line, quantity: (cartLine?.quantity || 1) + 1 });
    case "qty-minus":
      if ((cartLine?.quantity || 1) <= 1) return fire("remove_line", { line });
      return fire("set_quantity", { line, quantity: cartLine.quantity - 1 });
    case "remove":
      return fire("remove_line", { line });
    case "weigh":
      return fire("weigh_line", { tag, line });
    case "manual-weight":
      return askApproval({ title: "Type a weight", text: "A typed weight needs a manager (the scale cannot be used). It is logged.", weight: true }, (a) =>
        send("manual_weight", { tag, line, weight_mg: Math.round(Number(a.weight) * 1000), approval: a.approval }, { errorBox: a.errorBox }),
      );
    case "line-discount":
      return openDiscount(line);
    case "discount":
      return openDiscount(null);
    case "points":
      return openDialog("#dlg-points");
    case "park":
      return fire("park_cart");
    case "recall":
      renderParked(ui.state);
      return openDialog("#dlg-parked");
    case "recall-one":
      $("#dlg-parked").close();
      return fire("recall_cart", { cart_id: btn.dataset.cart });
    case "pay":
      return openTender();
    case "open-drawer":
      return openDrawerDialog();
    case "add-product":
      return fire("add_product", { product_id: btn.dataset.product });
    default:
      return undefined;
  }
});

function openDialog(sel) {
  const d = $(sel);
  const err = d.querySelector("[data-error]");
  if (err) err.textContent = "";
  if (!d.open) d.showModal();
  return d;
}

/** A form dialog whose "ok" runs `action(values)`; it stays open (with the hub's message) on error. */
function bindForm(formSel, action) {
  const form = $(formSel);
  form.addEventListener("submit", async (ev) => {
    if (ev.submitter && ev.submitter.value === "cancel") return;
    ev.preventDefault();
    const dlg = form.closest("dialog");
    const err = form.querySelector("[data-error]");
    err.textContent = "";
    const values = Object.fromEntries(new FormData(form).entries());
    try {
      await action(values, err);
      dlg.close();
      form.reset();
    } catch (e) {
      if (!err.textContent) err.textContent = plain(e);
    }
  });
}

function openManual() {
  const f = $("#manual-form");
  if (!f.id_jurisdiction.value) f.id_jurisdiction.value = live.info?.jurisdiction || "";
  openDialog("#dlg-manual");
}
bindForm("#manual-form", (v) =>
  live.request("check_in_manual", {
    birth_date: v.birth_date,
    id_expiry: v.id_expiry,
    id_jurisdiction: v.id_jurisdiction.toUpperCase(),
    id_number: v.id_number.trim(),
    reason: v.reason.trim(),
  }),
);

bindForm("#medical-form", (v) =>
  live.request("set_customer_type", {
    customer_type: v.customer_type,
    registration_number: v.registration_number.trim(),
    registration_expiry: v.registration_expiry || null,
  }),
);

bindForm("#points-form", (v) => live.request("redeem_points", { points: Number(v.points) }));

bindForm("#incident-form", (v) => live.request("report_incident", { category: v.category, description: v.description.trim() }));

// ---- discounts (with the manager prompt when the hub asks for it)

function needsApproval(err) {
  return (
    err instanceof LiveError &&
    (["approval_required", "needs_approval", "manager_required"].includes(err.code) || err.field === "approval" || err.code === "forbidden")
  );
}

function openDiscount(line) {
  const f = $("#discount-form");
  const lines = ui.state?.cart?.lines || [];
  f.line.innerHTML =
    `<option value="">Whole cart</option>` +
    lines.map((l) => `<option value="${esc(l.line)}" ${l.line === line ? "selected" : ""}>${esc(l.product)}</option>`).join("");
  $("[data-approval]", f).hidden = true;
  openDialog("#dlg-discount");
}

bindForm("#discount-form", async (v, errBox) => {
  const kind = v.kind;
  const value = kind === "percent" ? Math.round(Number(v.value)) : toCents(v.value);
  const fields = { kind, value, reason: v.reason.trim(), line: v.line === "" ? null : Number(v.line) };
  const approvalBox = $("#discount-form [data-approval]");
  if (!approvalBox.hidden) fields.approval = { manager: v.manager.trim(), pin: v.pin, reason: v.reason.trim() };
  try {
    await live.request("apply_discount", fields);
  } catch (err) {
    if (approvalBox.hidden && needsApproval(err)) {
      approvalBox.hidden = false;
      errBox.textContent = `${err.message} A manager can approve below.`;
      $("#discount-form [name=manager]").focus();
    }
    throw err;
  }
});

// ---- manager approval prompt (manual weight, void, reprint)

let approvalAction = null;
function askApproval({ title, text, weight = false, receipt = false }, action) {
  const d = $("#dlg-approval");
  $("[data-title]", d).textContent = title;
  $("[data-text]", d).textContent = text;
  $("[data-extra]", d).hidden = !weight;
  $("[data-extra-receipt]", d).hidden = !receipt;
  d.querySelector("[name=weight]").required = weight;
  d.querySelector("[name=receipt]").required = receipt;
  approvalAction = action;
  openDialog("#dlg-approval");
}
bindForm("#approval-form", (v, errBox) =>
  approvalAction({
    approval: { manager: v.manager.trim(), pin: v.pin, reason: v.reason.trim() },
    weight: v.weight,
    receipt: v.receipt,
    errorBox: errBox,
  }),
);

// ---- tender

function openTender() {
  const s = ui.state;
  const total = s?.cart?.total_cents ?? 0;
  $("#tender-total").textContent = money(total);
  const f = $("#tender-form");
  f.reset();
  f.cash.value = "";
  f.debit.value = "";
  const cashOnly = Boolean(s?.terminal?.cash_only || s?.terminal?.up === false);
  $("#tender-cash-only").hidden = !cashOnly;
  $("#tender-cash-only").textContent = s?.terminal?.message || "Card terminal offline: cash only.";
  f.debit.disabled = cashOnly;
  $("#tender-debit-all").disabled = cashOnly;
  const atm = s?.terminal?.cashless_atm;
  $("#tender-atm").hidden = !atm;
  $("#tender-atm").disabled = cashOnly;
  if (atm) $("#tender-atm").textContent = `Cashless ATM (rounds up to ${money(atm.increment_cents)}, ${money(atm.fee_cents)} fee)`;
  $("#tender-bank-row").hidden = !s?.terminal?.pay_by_bank;
  $("#tender-phone").value = "";
  ui.cardShown = false; // a finished payment of an earlier try is not news for this one
  renderCardPayment(s);
  updateChange();
  openDialog("#dlg-tender");
  setTimeout(() => f.cash.focus(), 0);
}

function tenderNumbers() {
  const f = $("#tender-form");
  const total = ui.state?.cart?.total_cents ?? 0;
  const cash = toCents(f.cash.value);
  const debit = f.debit.disabled ? 0 : toCents(f.debit.value);
  return { total, cash, debit, change: cash + debit - total };
}

function updateChange() {
  const { change, debit, total } = tenderNumbers();
  $("#tender-change").textContent = money(Math.max(0, change));
  const short = change < 0;
  $("#tender-error").textContent = short ? `${money(-change)} still to pay.` : debit > total ? "Debit cannot be more than the total." : "";
  $("#tender-submit").disabled = short || debit > total || cardBusy(ui.state);
}

// ---- card payment states (the snapshot's `payment`, see hub/sale/card.py)
const CARD_TITLES = {
  waiting: "Waiting for the card…",
  recovering: "Checking with the terminal…",
  approved: "Approved",
  declined: "Not approved",
  timed_out: "The terminal timed out",
  cancelled: "Cancelled",
};
const BANK_TITLES = { waiting: "Waiting for the customer's approval in the app…" };
function cardBusy(s) {
  const st = s?.payment?.state;
  return st === "waiting" || st === "recovering";
}
function renderCardPayment(s) {
  const box = $("#card-status");
  if (!box) return;
  const p = s?.payment;
  // an outcome is shown once this dialog has seen the payment start (not a stale one from before)
  if (p && cardBusy(s)) ui.cardShown = true;
  if (!p || !ui.cardShown) {
    box.hidden = true;
    return;
  }
  box.hidden = false;
  box.dataset.state = p.state;
  const title = (p.tender === "pay_by_bank" && BANK_TITLES[p.state]) || CARD_TITLES[p.state] || p.state;
  $("#card-status-title").textContent = `${title} — ${money(p.amount_cents)}`;
  $("#card-status-text").textContent = p.message;
  $("#card-cancel").hidden = !cardBusy(s);
  $("#card-cancel").textContent = p.tender === "pay_by_bank" ? "Cancel the request" : "Cancel at the terminal";
  $("#tender-submit").disabled = cardBusy(s) || $("#tender-submit").disabled;
  if (!cardBusy(s)) updateChangeOnly();
}
function updateChangeOnly() {
  const { change, debit, total } = tenderNumbers();
  $("#tender-submit").disabled = change < 0 || debit > total;
}
$("#card-cancel").addEventListener("click", async () => {
  $("#card-cancel").disabled = true;
  try {
    await live.request("cancel_payment", {});
  } catch (e) {
    $("#card-status-text").textContent = plain(e);
  } finally {
    $("#card-cancel").disabled = false;
  }
});
$("#tender-bank").addEventListener("click", async () => {
  const total = ui.state?.cart?.total_cents ?? 0;
  const phone = $("#tender-phone").value.trim();
  const err = $("#tender-error");
  err.textContent = "";
  if (!phone) {
    err.textContent = "Type the customer's phone number first.";
    return;
  }
  $("#tender-bank").disabled = true;
  try {
    await live.request("pay", { tenders: [{ kind: "pay_by_bank", amount_cents: total, phone }] });
    $("#dlg-tender").close();
  } catch (e) {
    err.textContent = plain(e);
  } finally {
    $("#tender-bank").disabled = false;
  }
});
$("#tender-atm").addEventListener("click", async () => {
  const total = ui.state?.cart?.total_cents ?? 0;
  const err = $("#tender-error");
  err.textContent = "";
  try {
    await live.request("pay", { tenders: [{ kind: "cashless_atm", amount_cents: total }] });
    $("#dlg-tender").close();
  } catch (e) {
    err.textContent = plain(e);
  }
});
$("#tender-form").addEventListener("input", updateChange);
$("#tender-quick").addEventListener("click", (ev) => {
  const b = ev.target.closest("[data-cash]");
  if (!b) return;
  const f = $("#tender-form");
  const { total, debit } = tenderNumbers();
  const due = Math.max(0, total - debit);
  let cents = due;
  if (b.dataset.cash === "next5") cents = Math.ceil(due / 500) * 500;
  else if (b.dataset.cash !== "exact") cents = Number(b.dataset.cash) * 100;
  f.cash.value = (cents / 100).toFixed(2);
  updateChange();
});
$("#tender-debit-all").addEventListener("click", () => {
  const f = $("#tender-form");
  f.debit.value = ((ui.state?.cart?.total_cents ?? 0) / 100).toFixed(2);
  f.cash.value = "";
  updateChange();
});
bindForm("#tender-form", async () => {
  const { total, cash, debit } = tenderNumbers();
  const tenders = [];
  if (debit > 0) tenders.push({ kind: "debit", amount_cents: debit });
  if (cash > 0 || !tenders.length) tenders.push({ kind: "cash", amount_cents: cash });
  if (cash + debit < total) throw new LiveError("short", "Not enough tendered.");
  try {
    await live.request("pay", { tenders });
  } catch (e) {
    // a card that did not go through: the payment status above says why and what to do next
    if (/^(card|bank)_/.test(e?.code || "") && ui.cardShown) $("#tender-error").textContent = "The card was not charged for this sale.";
    throw e;
  }
});

// ---- drawer

// denomination codes of hub/domain/drawer.py: bills and coins are counted apart ($1 bill vs $1 coin)
const DENOMS = [
  ["B100", 10000, "$100"], ["B50", 5000, "$50"], ["B20", 2000, "$20"], ["B10", 1000, "$10"], ["B5", 500, "$5"],
  ["B2", 200, "$2"], ["B1", 100, "$1 bill"], ["C100", 100, "$1 coin"], ["C50", 50, "50¢"], ["C25", 25, "25¢"],
  ["C10", 10, "10¢"], ["C5", 5, "5¢"], ["C1", 1, "1¢"],
];
function openDrawerDialog() {
  $("#drawer-denoms").innerHTML = DENOMS.map(
    ([code, , label]) => `<label>${label}<input type="number" min="0" step="1" name="d${code}" value="0" inputmode="numeric"></label>`,
  ).join("");
  drawerTotal();
  openDialog("#dlg-drawer");
}
function drawerTotal() {
  const f = $("#drawer-form");
  const counted = {};
  let total = 0;
  for (const [code, cents] of DENOMS) {
    const n = Number.parseInt(f[`d${code}`]?.value || "0", 10) || 0;
    if (n > 0) counted[code] = n;
    total += n * cents;
  }
  $("#drawer-total").textContent = money(total);
  return counted;
}
$("#drawer-form").addEventListener("input", drawerTotal);
bindForm("#drawer-form", (v) => {
  const fields = { counted: drawerTotal() };
  if (v.witness) {
    fields.witness = v.witness.trim();
    fields.witness_pin = v.witness_pin;
  }
  return live.request("open_drawer", fields);
});

// ---- parked carts

function renderParked(s) {
  const list = s?.parked || [];
  $("#parked-list").innerHTML = list.length
    ? list
        .map(
          (p) => `<li><span>${esc(new Date(p.parked_at).toLocaleTimeString())} · ${esc(p.lines)} items · ${money(p.total_cents)}</span>
          <button type="button" class="btn small primary" data-act="recall-one" data-cart="${esc(p.cart_id)}">Recall</button></li>`,
        )
        .join("")
    : `<li class="muted">No parked carts.</li>`;
}

// ---- receipt

function showReceipt(r) {
  $("#receipt-number").textContent = r.number ? `#${r.number}` : "";
  $("#receipt-change").textContent = money(r.change_cents || 0);
  // the receipt is hub-rendered HTML: shown in a sandboxed frame with no scripts and no same-origin access
  $("#receipt-frame").srcdoc = r.html || "<p>No receipt text.</p>";
  $("#dlg-receipt").dataset.number = r.number ?? "";
  if (!$("#dlg-receipt").open) $("#dlg-receipt").showModal();
}
$("#receipt-close").addEventListener("click", () => $("#dlg-receipt").close());
$("#receipt-reprint").addEventListener("click", () => {
  const n = Number($("#dlg-receipt").dataset.number);
  if (n) fire("reprint_receipt", { receipt_number: n });
});
$("#btn-last-receipt").addEventListener("click", () => ui.state?.last_receipt && showReceipt(ui.state.last_receipt));

// ---- more menu

$("#btn-more").addEventListener("click", () => openDialog("#dlg-more"));
$("#more-drawer").addEventListener("click", () => {
  $("#dlg-more").close();
  openDrawerDialog();
});
$("#more-incident").addEventListener("click", () => {
  $("#dlg-more").close();
  openDialog("#dlg-incident");
});
$("#more-void").addEventListener("click", () => {
  $("#dlg-more").close();
  askApproval({ title: "Void a sale", text: "Same-day sales only. Inventory and allotment are restored; the state system is told.", receipt: true }, (a) =>
    send("void_sale", { receipt_number: Number(a.receipt), approval: a.approval }, { errorBox: a.errorBox }),
  );
});
$("#more-reprint").addEventListener("click", () => {
  $("#dlg-more").close();
  const n = prompt("Receipt number to print again:");
  if (n && Number(n) > 0) fire("reprint_receipt", { receipt_number: Number(n) });
});

// ---------------------------------------------------------------- product search (as you type)

const searchInput = $("#search");
searchInput.addEventListener("input", () => {
  clearTimeout(ui.searchTimer);
  ui.searchTimer = setTimeout(runSearch, 150);
});

async function runSearch() {
  const q = searchInput.value.trim();
  const seq = ++ui.searchSeq;
  if (!q) {
    $("#results").innerHTML = "";
    return;
  }
  let res;
  try {
    res = await live.request("search", { query: q, limit: 20 });
  } catch (err) {
    if (seq === ui.searchSeq) showMessage(plain(err));
    return;
  }
  if (seq !== ui.searchSeq) return; // an older answer arriving late: the budtender typed on
  renderResults(res?.products || []);
}

function labBadge(state) {
  const s = String(state || "unknown");
  const cls = /pass/.test(s) ? "passed" : /fail/.test(s) ? "failed" : "pending";
  return `<span class="badge ${cls}">lab: ${esc(s.replace(/_/g, " "))}</span>`;
}

function renderResults(products) {
  $("#results").innerHTML = products.length
    ? products
        .map(
          (p) => `<li class="result" data-product="${esc(p.id)}">
        <div><div class="name">${esc(p.name)}</div>
          <div class="meta">${esc([p.brand, p.category, p.strain].filter(Boolean).join(" · "))}</div>
          <div class="meta">${p.thc_text ? `<span class="badge">THC ${esc(p.thc_text)}</span>` : ""}${p.cbd_text ? `<span class="badge">CBD ${esc(p.cbd_text)}</span>` : ""}${labBadge(p.lab_testing)}
            ${p.coa_ref ? `<span class="mono">${esc(p.coa_ref)}</span>` : ""}</div>
          <div class="meta">In stock: ${esc(p.stock_text ?? "—")}</div></div>
        <div><div class="price">${money(p.price_cents)}${p.sold_by === "weight" ? "/g" : ""}</div>
          <button class="btn primary add" data-act="add-product" data-product="${esc(p.id)}">Add</button></div></li>`,
        )
        .join("")
    : `<li class="muted">No products match.</li>`;
}

// ---------------------------------------------------------------- demo panel

function setDemo(on) {
  if (ui.demo === on) return;
  ui.demo = on;
  $("#btn-demo").hidden = !on;
  if (!on) $("#demo-panel").hidden = true;
}

$("#btn-demo").addEventListener("click", async () => {
  const panel = $("#demo-panel");
  panel.hidden = !panel.hidden;
  if (!panel.hidden) await loadDemoScans();
});
$("#demo-close").addEventListener("click", () => ($("#demo-panel").hidden = true));

async function loadDemoScans() {
  const box = $("#demo-scans");
  try {
    const r = await fetch("/api/demo/scans", { cache: "no-store" });
    if (!r.ok) throw new Error(String(r.status));
    const scans = await r.json();
    box.innerHTML = scans.length
      ? scans
          .map((s, i) => `<button class="btn small" data-demo-scan="${i}" title="${esc(s.kind)}">${esc(s.label)}</button>`)
          .join("")
      : `<p class="muted">No demo scans.</p>`;
    box.onclick = (ev) => {
      const b = ev.target.closest("[data-demo-scan]");
      if (b) fire("scan", { data: scans[Number(b.dataset.demoScan)].data, source: "demo" });
    };
  } catch {
    box.innerHTML = `<p class="muted">The hub offers no demo scans.</p>`;
  }
}

$("#demo-panel").addEventListener("click", (ev) => {
  const w = ev.target.closest("[data-demo-weight]");
  if (w) $("#demo-weight").value = Number(w.dataset.demoWeight).toFixed(2);
  const t = ev.target.closest("[data-demo-terminal]");
  if (t) {
    const f = { mode: t.dataset.demoTerminal };
    if (t.dataset.timeout) f.timeout_seconds = Number(t.dataset.timeout);
    fire("demo_terminal", f);
  }
});
$("#demo-scale-set").addEventListener("click", () =>
  fire("demo_scale", { weight_mg: Math.round(Number($("#demo-weight").value || 0) * 1000), motion: $("#demo-motion").checked }),
);

// ---------------------------------------------------------------- start

document.body.classList.remove("booting");
live.start();
