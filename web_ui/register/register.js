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
  // a dialog that asks for a receipt or a package tag takes the scan itself
  const open = document.querySelector("dialog[open]");
  const field = open?.querySelector("[data-scan-target]");
  if (field) {
    field.value = data.trim();
    field.dispatchEvent(new Event("input", { bubbles: true }));
    field.form?.requestSubmit();
    return;
  }
  scanData(data, "wedge");
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

/** A scan from the wedge or the demo panel. A second customer's ID during a sale joins the queue; the
 * hub says so in its answer and the screen asks whether to serve them now instead. */
async function scanData(data, source) {
  let res;
  try {
    res = await send("scan", { data, source });
  } catch {
    return;
  }
  if (res?.queued && ui.state?.customer) askSecondId(res);
}

// ---------------------------------------------------------------- screens & connection

function showScreen(name) {
  for (const s of ["connecting", "pair", "login", "register"]) $(`#screen-${s}`).hidden = s !== name;
  const inRegister = name === "register";
  wedge.enabled = inRegister;
  $("#btn-logout").hidden = !inRegister;
  $("#btn-more").hidden = !inRegister;
  $("#btn-last-receipt").hidden = !inRegister || !ui.state?.last_receipt;
  $("#paybar").hidden = !inRegister;
  $("#drawer-pill").hidden = !inRegister;
  if (inRegister && !ui.browseLoaded && !ui.browsePending) showBrowse();
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
  renderQueue(s);
  renderAllotment(s);
  renderScale(s.scale);
  renderCart(s, before);
  renderCheckout(s);
  renderPaybar(s);
  renderDevices(s);
  renderReadyOrders(s, send);
  // the customer left (sale done or ended): the next customer starts with a clean search
  if (before?.customer && !s.customer) {
    searchInput.value = "";
    showBrowse();
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

function renderQueue(s) {
  const box = $("#queue");
  const q = s.queue || [];
  ui.queueSkew = s.queue_now ? Date.now() - Date.parse(s.queue_now) : 0;
  const idle = !s.customer && !(s.cart?.lines?.length);
  let html = `<h2><span>Waiting <span class="muted" id="queue-count">(${q.length})</span></span>
    <button class="btn small ${idle && q.length ? "primary" : ""}" data-act="take-next" id="btn-take-next" aria-keyshortcuts="F4" ${q.length ? "" : "disabled"}>Next <kbd>F4</kbd></button></h2>`;
  if (!q.length) {
    html += `<p class="muted queue-empty-text">Nobody waiting. An ID scanned during a sale waits here.</p>`;
  } else {
    html += `<ul class="queue-list" id="queue-list">${q
      .map((w) => {
        const left = (w.allotment || []).map((g) => `${esc(g.label)} ${esc(g.remaining_text)}`).join(" · ");
        return `<li data-ticket="${esc(w.ticket)}">
          <span class="ticket" aria-label="Ticket ${esc(w.ticket)}">${esc(w.ticket)}</span>
          <span class="who"><strong>${esc(w.label)}</strong>
            <span class="badge ${w.medical ? "medical" : "adult"}">${w.medical ? "Medical" : "Adult use"}</span>
            <span class="wait" data-since="${esc(w.since)}">${waitText(w.since)}</span>
            ${left ? `<span class="left">Left today: ${left}</span>` : ""}</span>
          <button class="btn small" data-act="serve" data-ticket="${esc(w.ticket)}" aria-label="Serve ticket ${esc(w.ticket)}">Serve</button>
          <button class="btn small ghost" data-act="leave" data-ticket="${esc(w.ticket)}" aria-label="Gone: ticket ${esc(w.ticket)} left">Gone</button>
        </li>`;
      })
      .join("")}</ul>`;
  }
  box.innerHTML = html;
  box.classList.toggle("empty", !q.length); // a small screen shows the queue only when someone waits
}

function waitText(since) {
  const mins = Math.max(0, Math.floor((Date.now() - (ui.queueSkew || 0) - Date.parse(since)) / 60000));
  return mins < 1 ? "just now" : `waiting ${mins} min`;
}
// the waiting times move on by themselves
setInterval(() => {
  for (const el of $$("#queue .wait[data-since]")) {
    el.textContent = waitText(el.dataset.since);
    el.classList.toggle("long", /\d/.test(el.textContent) && Number.parseInt(el.textContent.replace(/\D+/g, ""), 10) >= 15);
  }
}, 20000);

function lineQtyText(l) {
  if (l.sold_by === "weight") return l.weight_mg ? `${esc(l.qty_text || grams(l.weight_mg))} × ${money(l.unit_price_cents)}/g` : `${money(l.unit_price_cents)}/g`;
  return `${esc(l.quantity)} × ${money(l.unit_price_cents)} each`;
}

function renderCart(s, before) {
  const box = $("#cart");
  const cart = s.cart;
  const lines = cart?.lines || [];
  const seen = new Set((before?.cart?.lines || []).map((l) => l.line));
  const fresh = before?.cart ? lines.filter((l) => !seen.has(l.line)).map((l) => l.line) : [];
  let html = `<h2>Cart ${lines.length ? `<span class="muted">(${lines.length})</span>` : ""} ${cart && cart.id ? `<span class="muted mono">${esc(cart.id)}</span>` : ""}</h2>`;
  if (!lines.length) {
    html += `<p class="muted" id="cart-empty">${s.customer ? "Scan a package tag or search for a product." : "Check in a customer to start a sale."}</p>`;
    html += `<ul class="cart-lines" id="cart-lines"></ul>`;
  } else {
    html += `<ul class="cart-lines" id="cart-lines">`;
    for (const l of lines) {
      const byWeight = l.sold_by === "weight";
      const weighed = byWeight && l.weight_mg;
      // one basis throughout the line: quantity × unit price, less its discounts; tax is in the totals
      const base = l.base_cents ?? null;
      const price = l.price_cents ?? l.total_cents;
      html += `<li class="line${fresh.includes(l.line) ? " fresh" : ""}" data-line="${esc(l.line)}" data-tag="${esc(l.tag)}">
        <div class="line-top"><div><div class="name">${esc(l.product)}</div>
          <div class="tag mono">${esc(l.tag)}</div></div>
          <div><div class="total" data-line-total>${byWeight && !weighed ? "—" : money(price)}</div>
          <div class="unit">${lineQtyText(l)}${base !== null && l.discount_cents ? ` = ${money(base)}` : ""}</div></div></div>
        ${l.discount_cents ? `<div class="discount">${l.promotion ? esc(l.promotion) + " · " : ""}Discount −${money(l.discount_cents)}</div>` : ""}
        <div class="line-ctrl">`;
      if (byWeight) {
        html += weighed
          ? `<span class="qty">${esc(l.qty_text || grams(l.weight_mg))}</span><span class="muted" style="font-size:12px">${esc(l.weight_source || "")}</span>`
          : `<span class="weight-missing">Not weighed yet</span>`;
        html += `<button class="btn small primary" data-act="weigh">Weigh</button><button class="btn small" data-act="manual-weight">Manual…</button>`;
      } else {
        html += `<button class="btn small" data-act="qty-minus" aria-label="One less ${esc(l.product)}">−</button>
          <span class="qty">${esc(l.qty_text || l.quantity)}</span>
          <button class="btn small" data-act="qty-plus" aria-label="One more ${esc(l.product)}">+</button>`;
      }
      html += `<span class="spacer"></span><button class="btn small" data-act="exit-label" aria-label="Exit label for ${esc(l.product)}" title="Print the exit label">Label</button>
        <button class="btn small" data-act="line-discount" aria-label="Discount on ${esc(l.product)}">%</button>
        <button class="btn small danger" data-act="remove" aria-label="Remove ${esc(l.product)}">✕</button></div></li>`;
    }
    const taxNote = cart.prices_include_tax ? "Prices include tax." : "Line prices are before tax; tax is added here.";
    html += `</ul><div class="totals" id="totals">
      <div><span>Subtotal</span><span>${money(cart.subtotal_cents)}</span></div>
      ${cart.discount_cents ? `<div><span>Discounts</span><span>−${money(cart.discount_cents)}</span></div>` : ""}
      ${(cart.taxes || []).map((t) => `<div><span>${esc(t.name)}</span><span>${money(t.cents)}</span></div>`).join("")}
      <div class="grand"><span>Total</span><span id="cart-total">${money(cart.total_cents)}</span></div>
      <div class="note">${esc(taxNote)}</div>
      ${cart.rounding_note ? `<div class="note">${esc(cart.rounding_note)}</div>` : ""}</div>`;
  }
  box.innerHTML = html;
  // the newest line: scrolled into view and highlighted (it may be below the fold of a long cart)
  if (fresh.length) {
    const el = box.querySelector(`.line[data-line="${CSS.escape(String(fresh[fresh.length - 1]))}"]`);
    el?.scrollIntoView({ block: "nearest" });
  }
}

function payBlocked(s) {
  const cart = s.cart;
  const lines = cart?.lines?.length || 0;
  const blocked = !s.customer || !s.customer.decision?.allowed || (s.limit_problems || []).length > 0;
  const unweighed = (cart?.lines || []).some((l) => l.sold_by === "weight" && !l.weight_mg);
  return !lines || blocked || unweighed;
}

function renderCheckout(s) {
  const box = $("#checkout");
  const cart = s.cart;
  const lines = cart?.lines?.length || 0;
  const pay = s.terminal || {};
  const drawer = s.drawer || {};
  const parked = s.parked || [];
  let status = "";
  // the drawer's state is shown before the first scan, not discovered in the payment dialog
  if (s.drawer) {
    status += drawer.open
      ? `<div class="drawer-state" id="drawer-open"><span class="pill pill-ok">Drawer open</span></div>`
      : `<div class="status-line warn-text" id="drawer-closed">Cash drawer is not open. <button class="btn small" data-act="open-drawer" id="btn-open-drawer">Open drawer…</button></div>`;
  }
  if (pay.cash_only || pay.up === false) status += `<div class="status-line warn-text" id="cash-only">${esc(pay.message || "Card terminal offline: cash only.")}</div>`;
  else if (pay.message) status += `<div class="status-line muted">${esc(pay.message)}</div>`;
  // the state's track-and-trace system is down: selling goes on, and the rule for this state is shown
  if (s.state_system && !s.state_system.ok) status += `<div class="status-line warn-text" id="state-down">${esc(s.state_system.message)}</div>`;
  box.innerHTML = `${status}
    <div class="checkout-actions">
      <button class="btn" data-act="discount" ${lines ? "" : "disabled"}>Discount</button>
      <button class="btn" data-act="points" ${s.customer ? "" : "disabled"}>Points</button>
      <button class="btn" data-act="park" ${lines ? "" : "disabled"}>Park</button>
      <button class="btn" data-act="recall" id="btn-recall" ${parked.length ? "" : "disabled"}>Recall${parked.length ? ` (${parked.length})` : ""}</button>
      <button class="btn primary big pay" data-act="pay" id="btn-pay" aria-keyshortcuts="F9" ${payBlocked(s) ? "disabled" : ""}>Pay ${lines ? money(cart.total_cents) : ""} <kbd>F9</kbd></button>
    </div>`;
  const pill = $("#drawer-pill");
  if (s.drawer) {
    pill.className = `pill ${drawer.open ? "pill-ok" : "pill-warn"}`;
    pill.textContent = drawer.open ? "Drawer open" : "Drawer closed";
  }
}

function renderPaybar(s) {
  const lines = s.cart?.lines?.length || 0;
  $("#paybar-total").textContent = lines ? `${lines} item${lines === 1 ? "" : "s"} · ${money(s.cart.total_cents)}` : "Cart empty";
  $("#paybar-pay").disabled = payBlocked(s);
}
$("#paybar-cart").addEventListener("click", () => $("#cart").scrollIntoView({ block: "start", behavior: "smooth" }));

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
      return addProduct(btn.dataset.product);
    case "take-next":
      return takeCustomer(null);
    case "serve":
      return takeCustomer(btn.dataset.ticket);
    case "leave":
      return fire("leave_queue", { ticket: btn.dataset.ticket });
    case "exit-label":
      return fire("print_exit_label", { tag });
    case "category":
      return showBrowse(btn.dataset.category === ui.browseCategory ? null : btn.dataset.category);
    default:
      return undefined;
  }
});

function openDialog(sel) {
  const d = $(sel);
  const err = d.querySelector("[data-error]");
  if (err) err.textContent = "";
  if (!d.open) {
    // where focus goes back to when the dialog closes (see the "close" listener below)
    const from = document.activeElement;
    d._returnTo = from && from !== document.body && !from.closest("dialog") ? from : null;
    d.showModal();
  }
  return d;
}

// Every dialog: Enter is its primary action (Cancel is never a submit button, so it is never the
// form's default button), Esc cancels (the browser's own), and focus returns where it came from or,
// when that button was redrawn meanwhile, to the search field.
for (const b of $$("dialog form button[value=cancel]")) {
  b.type = "button";
  b.addEventListener("click", () => b.closest("dialog").close("cancel"));
}
for (const d of $$("dialog")) {
  d.addEventListener("close", () => {
    const back = d._returnTo;
    d._returnTo = null;
    if (document.querySelector("dialog[open]")) return;
    if (back && back.isConnected && !back.disabled && back.offsetParent !== null) back.focus();
    else if (!$("#screen-register").hidden) searchInput.focus();
  });
}

async function takeCustomer(ticket, parkCurrent = false) {
  const fields = ticket ? { ticket } : {};
  if (parkCurrent) fields.park_current = true;
  try {
    await send("take_customer", fields);
    searchInput.value = "";
    searchInput.focus();
  } catch {
    /* the hub's sentence is shown */
  }
}

function askSecondId(res) {
  const d = $("#dlg-second-id");
  $("[data-text]", d).textContent = `${res.label} is now waiting, ticket ${res.ticket}.`;
  d.dataset.ticket = res.ticket;
  openDialog("#dlg-second-id");
  setTimeout(() => $("#second-id-queue").focus(), 0);
}
$("#second-id-form").addEventListener("submit", () => {
  /* "Keep them in the queue": nothing to do, they are in it */
});
$("#second-id-serve").addEventListener("click", () => {
  const d = $("#dlg-second-id");
  d.close();
  takeCustomer(d.dataset.ticket, true);
});

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
      if (!err.textContent && !(e instanceof LiveError && e.code === "pending")) err.textContent = plain(e);
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
  // an outcome is shown once this dialog has started the payment or seen it start (not a stale one)
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
  ui.cardShown = true; // its outcome is news for this dialog (see the tender form)
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
  ui.cardShown = true; // its outcome is news for this dialog (see the tender form)
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
  const { total, debit, cash } = tenderNumbers();
  const due = Math.max(0, total - debit);
  // "Exact" sets the cash to what is due; a bill adds to what was already counted ($20 + $40 = $60)
  let cents = due;
  if (b.dataset.cash === "clear") cents = 0;
  else if (b.dataset.cash !== "exact") cents = cash + Number(b.dataset.cash) * 100;
  f.cash.value = cents ? (cents / 100).toFixed(2) : "";
  updateChange();
  f.cash.focus();
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
  // this dialog starts a card payment: whatever the terminal says from now is its outcome, even when the
  // "waiting" state and a quick decline reach the screen in one snapshot
  if (debit > 0) ui.cardShown = true;
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
function denomInputs(prefix) {
  return DENOMS.map(
    ([code, , label]) => `<label>${label}<input type="number" min="0" step="1" name="${prefix}${code}" value="0" inputmode="numeric"></label>`,
  ).join("");
}
function countedOf(form, prefix) {
  const counted = {};
  let total = 0;
  for (const [code, cents] of DENOMS) {
    const n = Number.parseInt(form[`${prefix}${code}`]?.value || "0", 10) || 0;
    if (n > 0) counted[code] = n;
    total += n * cents;
  }
  return { counted, total };
}
function openDrawerDialog() {
  $("#drawer-denoms").innerHTML = denomInputs("d");
  drawerTotal();
  openDialog("#dlg-drawer");
  setTimeout(() => $("#drawer-denoms input")?.focus(), 0);
}
function drawerTotal() {
  const { counted, total } = countedOf($("#drawer-form"), "d");
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
  if (!$("#dlg-receipt").open) openDialog("#dlg-receipt");
  setTimeout(() => $("#receipt-close").focus(), 0); // never into the receipt's frame: Enter is Done
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
  const f = $("#reprint-form");
  f.reset();
  if (ui.state?.last_receipt?.number) f.receipt.value = ui.state.last_receipt.number;
  openDialog("#dlg-reprint");
  setTimeout(() => f.receipt.select(), 0);
});
$("#reprint-form [name=receipt]").dataset.scanTarget = "";
bindForm("#reprint-form", async (v) => {
  await live.request("reprint_receipt", { receipt_number: Number(v.receipt) });
  showMessage(`Receipt ${v.receipt} sent to the printer.`, "info", 4000);
});

$("#more-label").addEventListener("click", () => {
  $("#dlg-more").close();
  $("#label-form").reset();
  openDialog("#dlg-label");
  setTimeout(() => $("#label-form [name=tag]").focus(), 0);
});
$("#label-form [name=tag]").dataset.scanTarget = "";
bindForm("#label-form", async (v) => {
  await live.request("print_exit_label", { tag: v.tag.trim(), copies: Number(v.copies) || 1 });
  showMessage(`Exit label for ${v.tag.trim()} sent to the printer.`, "info", 4000);
});

$("#more-parked").addEventListener("click", () => {
  $("#dlg-more").close();
  renderParked(ui.state);
  openDialog("#dlg-parked");
});

// ---- drawer hand-over (shift change): a blind count, the incoming person's PIN
$("#more-handover").addEventListener("click", () => {
  $("#dlg-more").close();
  $("#handover-denoms").innerHTML = denomInputs("h");
  $("#handover-total").textContent = money(0);
  openDialog("#dlg-handover");
  setTimeout(() => $("#handover-denoms input")?.focus(), 0);
});
$("#handover-form").addEventListener("input", () => ($("#handover-total").textContent = money(countedOf($("#handover-form"), "h").total)));
bindForm("#handover-form", async (v) => {
  await live.request("hand_over_drawer", {
    counted: countedOf($("#handover-form"), "h").counted,
    incoming: v.incoming.trim(),
    incoming_pin: v.incoming_pin,
  });
  showMessage(`Drawer handed over to ${v.incoming.trim()}.`, "info", 5000);
});

// ---- returns by receipt scan: find the sale, choose what comes back, a manager approves
const returnForm = $("#return-form");
returnForm.receipt.dataset.scanTarget = "";
ui.returnSale = null;
$("#more-return").addEventListener("click", () => {
  $("#dlg-more").close();
  returnForm.reset();
  ui.returnSale = null;
  $("#return-lines").innerHTML = "";
  $("[data-return-approval]", returnForm).hidden = true;
  $("#return-submit").textContent = "Find receipt";
  openDialog("#dlg-return");
  setTimeout(() => returnForm.receipt.focus(), 0);
});
returnForm.receipt.addEventListener("input", () => {
  if (ui.returnSale && String(ui.returnSale.receipt_number) !== returnForm.receipt.value) {
    ui.returnSale = null;
    $("#return-lines").innerHTML = "";
    $("[data-return-approval]", returnForm).hidden = true;
    $("#return-submit").textContent = "Find receipt";
  }
});
$("#return-find").addEventListener("click", () => findReturnSale($("[data-error]", returnForm)).catch(() => {}));
async function findReturnSale(errBox) {
  const n = Number(returnForm.receipt.value);
  if (!n) throw new LiveError("bad_request", "Scan the receipt or type its number.");
  const sale = await live.request("look_up_receipt", { receipt_number: n });
  ui.returnSale = sale;
  errBox.textContent = sale.voided ? `Sale ${n} was voided: nothing to return.` : "";
  $("#return-lines").innerHTML = `<p class="muted">Sale ${esc(sale.receipt_number)} · ${esc(sale.sold_at)} · ${money(sale.total_cents)}</p>
    <table><thead><tr><th scope="col">Product</th><th scope="col">Sold</th><th scope="col">Return</th></tr></thead><tbody>${sale.lines
      .map((l) => {
        const left = l.sold_by === "weight" ? (l.returned ? 0 : 1) : l.quantity - l.returned;
        const sold = l.sold_by === "weight" ? grams(l.weight_mg) : `${l.quantity}${l.returned ? ` (${l.returned} back)` : ""}`;
        return `<tr><td>${esc(l.product)}<br><span class="mono muted">${esc(l.tag)}</span></td><td>${esc(sold)}</td>
          <td><input type="number" min="0" max="${left}" value="0" data-return-line="${esc(l.line)}" aria-label="Return how many ${esc(l.product)}" ${left ? "" : "disabled"}></td></tr>`;
      })
      .join("")}</tbody></table>`;
  $("[data-return-approval]", returnForm).hidden = sale.voided;
  $("#return-submit").textContent = "Refund in cash";
  $("#return-lines input:not([disabled])")?.focus();
}
bindForm("#return-form", async (v, errBox) => {
  if (!ui.returnSale || String(ui.returnSale.receipt_number) !== v.receipt) {
    await findReturnSale(errBox);
    throw new LiveError("pending", ""); // keep the dialog open: now choose the lines
  }
  const lines = {};
  for (const input of $$("#return-lines [data-return-line]")) {
    const n = Number.parseInt(input.value || "0", 10);
    if (n > 0) lines[input.dataset.returnLine] = n;
  }
  if (!Object.keys(lines).length) throw new LiveError("bad_request", "Choose how many of which line come back.");
  const res = await live.request("return_items", {
    receipt_number: ui.returnSale.receipt_number,
    lines,
    approval: { manager: v.manager.trim(), pin: v.pin, reason: v.reason.trim() },
  });
  showMessage(`Return done: refund ${money(res?.refund_cents ?? 0)} in cash.`, "info", 8000);
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
    showBrowse(ui.browseCategory);
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
  $("#tiles").innerHTML = "";
  renderResults(res?.products || []);
}

/** Nothing typed: the category tiles and what is in stock (of the chosen category). */
async function showBrowse(category = null) {
  const seq = ++ui.searchSeq;
  ui.browseCategory = category;
  let res;
  ui.browsePending = true;
  try {
    res = await live.request("browse", category ? { category } : {});
  } catch {
    return; // not logged in yet, or offline: the search still works once typed
  } finally {
    ui.browsePending = false;
  }
  if (seq !== ui.searchSeq || searchInput.value.trim()) return;
  ui.browseLoaded = true;
  $("#tiles").innerHTML = (res.categories || [])
    .map(
      (c) => `<button type="button" class="btn tile" data-act="category" data-category="${esc(c.category)}" aria-pressed="${c.category === category}">
        ${esc(c.label)}<span class="count">${esc(c.count)} in stock</span></button>`,
    )
    .join("");
  renderResults(res.products || [], res.more ? `${res.more} more: type to search.` : "");
}

// keyboard in the search field: ↓/↑ choose a product, Enter adds it, Esc clears
searchInput.addEventListener("keydown", (ev) => {
  const items = $$("#results .result");
  const at = items.findIndex((li) => li.classList.contains("active"));
  if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
    if (!items.length) return;
    ev.preventDefault();
    const next = ev.key === "ArrowDown" ? Math.min(items.length - 1, at + 1) : Math.max(0, at - 1);
    setActiveResult(items, next);
  } else if (ev.key === "Enter") {
    ev.preventDefault();
    if (wedge.buf) return; // a scanner is typing (its Enter is data, not "add this product")
    clearTimeout(ui.searchTimer);
    const pick = items[at >= 0 ? at : 0];
    if (pick && searchInput.value.trim()) addProduct(pick.dataset.product);
    else if (searchInput.value.trim()) runSearch();
  } else if (ev.key === "Escape" && searchInput.value) {
    ev.preventDefault();
    searchInput.value = "";
    showBrowse(ui.browseCategory);
  }
});

function setActiveResult(items, i) {
  items.forEach((li, j) => li.classList.toggle("active", i === j));
  items[i]?.scrollIntoView({ block: "nearest" });
}

async function addProduct(productId) {
  try {
    await send("add_product", { product_id: productId });
  } catch {
    return;
  }
  // ready for the next product: the search is cleared and keeps the focus
  if (searchInput.value) {
    searchInput.value = "";
    showBrowse(ui.browseCategory);
  }
}

// ---------------------------------------------------------------- keys (the wedge takes scanner bursts first)

document.addEventListener("keydown", (ev) => {
  if ($("#screen-register").hidden || ev.defaultPrevented || ev.altKey || ev.ctrlKey || ev.metaKey) return;
  const el = document.activeElement;
  const typing = el && (el.tagName === "INPUT" || el.tagName === "TEXTAREA" || el.tagName === "SELECT");
  const inDialog = Boolean(document.querySelector("dialog[open]"));
  if (ev.key === "F2" || (ev.key === "/" && !typing && !inDialog)) {
    if (inDialog) return;
    ev.preventDefault();
    searchInput.focus();
    searchInput.select();
  } else if (ev.key === "F9" && !inDialog) {
    ev.preventDefault();
    const pay = $("#btn-pay");
    if (pay && !pay.disabled) openTender();
    else showMessage("Nothing to pay yet: check in a customer and add products.", "warn", 4000);
  } else if (ev.key === "F4" && !inDialog) {
    ev.preventDefault();
    if ((ui.state?.queue || []).length) takeCustomer(null);
  } else if (ev.key === "F10" && !inDialog) {
    ev.preventDefault();
    $("#btn-more").click();
  }
});

function labBadge(state) {
  const s = String(state || "unknown");
  const cls = /pass/.test(s) ? "passed" : /fail/.test(s) ? "failed" : "pending";
  return `<span class="badge ${cls}">lab: ${esc(s.replace(/_/g, " "))}</span>`;
}

function renderResults(products, note = "") {
  $("#results").innerHTML = (products.length
    ? products
        .map(
          (p, i) => `<li class="result" id="result-${i}" data-product="${esc(p.id)}">
        <div><div class="name">${esc(p.name)}</div>
          <div class="meta">${esc([p.brand, p.category, p.strain].filter(Boolean).join(" · "))}</div>
          <div class="meta">${p.thc_text ? `<span class="badge">THC ${esc(p.thc_text)}</span>` : ""}${p.cbd_text ? `<span class="badge">CBD ${esc(p.cbd_text)}</span>` : ""}${labBadge(p.lab_testing)}
            ${p.coa_ref ? `<span class="mono">${esc(p.coa_ref)}</span>` : ""}</div>
          <div class="meta">In stock: ${esc(p.stock_text ?? "—")}</div></div>
        <div><div class="price">${money(p.price_cents)}${p.sold_by === "weight" ? "/g" : ""}</div>
          <button class="btn primary add" data-act="add-product" data-product="${esc(p.id)}" aria-label="Add ${esc(p.name)}">Add</button></div></li>`,
        )
        .join("")
    : `<li class="muted">No products match.</li>`) + (note ? `<li class="muted note">${esc(note)}</li>` : "");
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
      if (b) scanData(scans[Number(b.dataset.demoScan)].data, "demo");
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
