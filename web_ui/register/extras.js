// Register additions of issue 16, kept apart from register.js: "Customer" (enrol the customer whose
// licence was just scanned, with their consent, or find one by phone or name), "Labels" (print the exit
// label of a cart line on this register's label printer) and "Promo code". They use the register's own
// live connection (window.storehub.live, set by register.js) for commands and REST with its session token.

const live = window.storehub?.live; // register.js exposes its connection

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

async function rest(path, body) {
  const r = await fetch(path, {
    method: body === undefined ? "GET" : "POST",
    headers: { authorization: `Bearer ${live.sessionToken}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
    cache: "no-store",
  });
  let data = null;
  try { data = await r.json(); } catch { /* not JSON */ }
  if (!r.ok) throw new Error((data && data.message) || `HTTP ${r.status}`);
  return data;
}

function dialog(id, title, ...content) {
  document.getElementById(id)?.remove();
  const status = h("p", { class: "error-text", role: "alert", id: `${id}-status` });
  const close = h("button", { class: "btn", type: "button", id: `${id}-close` }, "Close");
  const dlg = h("dialog", { id, class: "extras-dialog" }, h("h2", {}, title), ...content, status, h("div", { class: "row end" }, close));
  close.addEventListener("click", () => dlg.close());
  dlg.addEventListener("close", () => dlg.remove());
  document.body.append(dlg);
  dlg.showModal();
  return { dlg, say: (text, ok = false) => { status.textContent = text; status.className = ok ? "ok-text" : "error-text"; } };
}

// ------------------------------------------------------------------------------------------- customer

async function customerDialog() {
  const texts = await rest("/api/customers/consent-texts");
  const prefill = h("p", { id: "enrol-who", class: "muted" }, "Scan the customer's licence (or paste it below).");
  const form = h("form", { id: "reg-enrol-form" },
    h("label", {}, "Licence (optional when just scanned) ", h("textarea", { name: "licence", rows: 2, cols: 48, id: "reg-enrol-licence" })),
    h("div", { class: "row" },
      h("label", {}, "Phone ", h("input", { name: "phone", id: "reg-enrol-phone", size: 14 })),
      h("label", {}, "E-mail ", h("input", { name: "email", id: "reg-enrol-email", type: "email", size: 22 }))),
    ...["profile", "marketing", "sms"].map((k) => h("label", { class: "consent" },
      h("input", { type: "checkbox", name: k, id: `reg-consent-${k}` }), h("strong", {}, k), h("small", {}, texts.texts[k]))),
    h("div", { class: "row end" }, h("button", { class: "btn primary", type: "submit", id: "reg-enrol-submit" }, "Enrol with consent")));
  const results = h("div", { id: "reg-find-results" });
  const find = h("form", { id: "reg-find-form", class: "row" },
    h("input", { name: "q", id: "reg-find-q", placeholder: "Phone or name", size: 22 }),
    h("button", { class: "btn", type: "submit" }, "Find"));
  const { say } = dialog("customer-dialog", "Customer", prefill, form, h("hr"), find, results);
  const showPrefill = async (licence) => {
    try {
      const p = await rest("/api/customers/licence", licence ? { licence } : {});
      prefill.textContent = `${p.given_name} ${p.family_name}, born ${p.birth_date}` + (p.known ? ` — already enrolled, ${p.known.points} points` : " — not enrolled yet");
    } catch (err) { prefill.textContent = err.message; }
  };
  showPrefill("");
  form.elements.licence.addEventListener("change", () => showPrefill(form.elements.licence.value));
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const f = form.elements;
    try {
      const r = await rest("/api/customers/enrol", {
        licence: f.licence.value, phone: f.phone.value, email: f.email.value,
        consent_profile: f.profile.checked, consent_marketing: f.marketing.checked, consent_sms: f.sms.checked,
      });
      say(`Enrolled ${r.customer.name}: ${r.customer.points} points.`, true);
    } catch (err) { say(err.message); }
  });
  find.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const q = find.elements.q.value.trim();
    const body = /^[+\d][\d\s().-]{6,}$/.test(q) ? { phone: q } : { name: q };
    try {
      const r = await rest("/api/customers/find", body);
      results.replaceChildren(r.customers.length
        ? h("ul", { id: "reg-found" }, r.customers.map((c) => h("li", { "data-customer": c.id }, `${c.name} — born ${c.birth_date}, ${c.points} points`)))
        : h("p", { class: "muted", id: "reg-none" }, "No customer found."));
    } catch (err) { say(err.message); }
  });
}

// ------------------------------------------------------------------------------------------- labels

async function labelsDialog() {
  const cart = await rest("/api/register/cart");
  const list = h("ul", { id: "label-lines" });
  const { say } = dialog("labels-dialog", "Exit labels", list);
  if (!cart.lines.length) list.append(h("li", { class: "muted" }, "The cart is empty: add the packages first."));
  for (const ln of cart.lines) {
    const btn = h("button", { class: "btn small", type: "button", "data-tag": ln.tag }, "Print label");
    btn.addEventListener("click", async () => {
      try {
        const r = await rest("/api/labels/print", { tag: ln.tag, kind: "exit" });
        say(`Label for ${ln.name} sent to the label printer${r.missing.length ? ` (no data for: ${r.missing.join(", ")})` : ""}.`, true);
      } catch (err) { say(err.message); }
    });
    list.append(h("li", {}, `${ln.name} — ${ln.tag} `, btn));
  }
}

// ------------------------------------------------------------------------------------------- promo code

function promoDialog() {
  const form = h("form", { id: "promo-form", class: "row" },
    h("input", { name: "code", id: "promo-code", size: 14, required: true, autocapitalize: "characters" }),
    h("button", { class: "btn primary", type: "submit" }, "Apply"));
  const { dlg, say } = dialog("promo-dialog", "Promo code", form);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try {
      await live.request("apply_promo_code", { code: form.elements.code.value.trim() });
      dlg.close();
    } catch (err) { say(err.message); }
  });
}

// ------------------------------------------------------------------------------------------- wiring

const STYLE = `
.extras-dialog label.consent { display: grid; grid-template-columns: auto auto 1fr; gap: .4rem; align-items: start; margin: .4rem 0; }
.extras-dialog label.consent input { width: 1.3rem; height: 1.3rem; }
.extras-dialog label.consent small { grid-column: 3; color: #555; }
.extras-dialog .ok-text { color: #1b5e20; }
.extras-dialog ul { padding-left: 1.2rem; }
`;

function install() {
  document.head.append(h("style", {}, STYLE));
  const bar = document.getElementById("topbar");
  const before = document.getElementById("btn-last-receipt");
  if (!bar || !live) return;
  const buttons = [
    h("button", { id: "btn-customer", class: "btn small", hidden: true }, "Customer"),
    h("button", { id: "btn-labels", class: "btn small", hidden: true }, "Labels"),
    h("button", { id: "btn-promo", class: "btn small", hidden: true }, "Promo code"),
  ];
  buttons[0].addEventListener("click", () => customerDialog().catch((e) => alert(e.message)));
  buttons[1].addEventListener("click", () => labelsDialog().catch((e) => alert(e.message)));
  buttons[2].addEventListener("click", promoDialog);
  for (const b of buttons) bar.insertBefore(b, before);
  // shown only while someone is logged in at this register
  const sync = () => { for (const b of buttons) b.hidden = !live.staff; };
  live.addEventListener("auth", sync);
  sync();
}

install();
