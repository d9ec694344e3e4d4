// The back office's customer and catalogue pages (issue 16): customers (enrol from a licence scan with
// consent, find by phone, name or licence, profile with history and points, merge, retention purge),
// promotions (edit with a preview of what a cart would get), the catalogue (product edits, scheduled
// prices, lab results, shelf labels, imports with a dry run and a progress bar) and Form 8300 worksheets.
// REST under /api/customers, /api/catalogue, /api/labels, /api/labs (hub/customers, hub/catalogue).
// Every change asks for a reason: it goes into the audit log with the manager's name.

const KINDS = {
  category_percent: "Percent off a category",
  amount_off: "Amount off each unit",
  bundle: "Bundle price (N for $X)",
  buy_n_get_one: "Buy N, get one (BOGO)",
};
const CATEGORIES = ["flower", "pre-roll", "infused-pre-roll", "concentrate", "vape", "edible", "beverage", "tincture",
  "capsule", "topical", "suppository", "plant", "seed", "clone", "accessory"];
const DAYS = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

const money = (c) => `$${(c / 100).toFixed(2)}`;
const cents = (v) => Math.round(parseFloat(v || "0") * 100);
const pct = (bp) => (bp / 100).toFixed(2);

/** Add the pages to `pages`; `ui` is the shell's { h, api, message, live, route, onScan }. */
export function installCustomerPages(pages, ui) {
  const { h, api, message, onScan } = ui;
  const post = (path, body) => api(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });

  // ------------------------------------------------------------------------------------- customers

  pages.customers = async (root, params) => {
    const id = params.get("id");
    if (id) return customerProfile(root, id);
    const texts = await api("/api/customers/consent-texts");
    root.append(h("h1", {}, "Customers"));
    const results = h("div", { id: "customer-results" });
    const find = h("form", { id: "customer-find", class: "card row" },
      h("label", {}, "Phone ", h("input", { name: "phone", id: "find-phone", size: 14 })),
      h("label", {}, "or name ", h("input", { name: "name", id: "find-name", size: 18 })),
      h("button", { class: "btn primary", type: "submit" }, "Find"),
      h("span", { class: "muted" }, "…or scan the customer's licence anywhere on this page."));
    const showFound = (rows) => results.replaceChildren(rows.length
      ? h("table", { id: "found" }, h("tbody", {}, rows.map((c) => h("tr", { "data-customer": c.id },
        h("td", {}, h("a", { href: `#customers?id=${encodeURIComponent(c.id)}` }, c.name || c.id)),
        h("td", {}, `born ${c.birth_date}`), h("td", { class: "n" }, `${c.points} points`),
        h("td", { class: "muted" }, c.last_visit_at ? `last visit ${new Date(c.last_visit_at).toLocaleDateString()}` : "no visit yet")))))
      : h("p", { class: "muted", id: "none-found" }, "No customer found."));
    find.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = find.elements;
      const body = f.phone.value.trim() ? { phone: f.phone.value } : { name: f.name.value };
      try { showFound((await post("/api/customers/find", body)).customers); } catch (err) { message(err.message); }
    });
    const enrol = enrolForm(texts, async (licence) => (await post("/api/customers/find", { licence })).customers);
    onScan(async (data) => {
      // a licence scanned on this page: fill the enrolment and look the customer up
      enrol.prefill(data);
      try { showFound((await post("/api/customers/find", { licence: data })).customers); } catch (err) { message(err.message); }
    }, root);
    const purge = h("button", { class: "btn", id: "run-purge" }, "Run the retention purge now");
    purge.addEventListener("click", async () => {
      const r = await post("/api/customers/purge", {});
      message(`Purge: ${r.removed.length} record(s) past ${r.retention_days} days removed (${r.jurisdiction}).`, "info");
    });
    const merge = h("form", { class: "card row", id: "merge-form" },
      h("h3", {}, "Merge duplicates"),
      h("label", {}, "Keep ", h("input", { name: "keep", required: true, size: 26 })),
      h("label", {}, "Duplicate ", h("input", { name: "duplicate", required: true, size: 26 })),
      h("label", {}, "Why ", h("input", { name: "reason", required: true, minlength: 3, size: 24 })),
      h("button", { class: "btn", type: "submit" }, "Merge"));
    merge.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = merge.elements;
      try {
        const r = await post("/api/customers/merge", { keep: f.keep.value.trim(), duplicate: f.duplicate.value.trim(), reason: f.reason.value });
        message(`Merged into ${r.customer.name}.`, "info");
      } catch (err) { message(err.message); }
    });
    root.append(find, results, enrol.el, merge, h("p", {}, purge), crmCard(await api("/api/crm/status")));
  };

  function enrolForm(texts, lookup) {
    const out = h("div", { class: "muted", id: "enrol-prefill" }, "Scan or paste the licence.");
    const form = h("form", { class: "card", id: "enrol-form" },
      h("h2", {}, "Enrol a customer"),
      h("label", {}, "Licence scan ", h("textarea", { name: "licence", id: "enrol-licence", rows: 2, cols: 60, required: true })),
      out,
      h("div", { class: "row" },
        h("label", {}, "Phone ", h("input", { name: "phone", id: "enrol-phone", size: 16 })),
        h("label", {}, "E-mail ", h("input", { name: "email", id: "enrol-email", type: "email", size: 24 })),
        h("label", {}, "Type ", h("select", { name: "customer_type" }, h("option", { value: "adult" }, "adult"), h("option", { value: "medical" }, "medical")))),
      ...["profile", "marketing", "sms"].map((k) => h("label", { class: "consent" },
        h("input", { type: "checkbox", name: `consent_${k}`, id: `consent-${k}` }), " ", h("strong", {}, k), ": ", h("span", { class: "muted" }, texts.texts[k]))),
      h("div", { class: "row" },
        h("label", {}, "Groups ", h("select", { name: "groups", multiple: true, size: 2 }, texts.groups.map((g) => h("option", { value: g }, g)))),
        h("label", {}, "Note ", h("input", { name: "note", size: 30 })),
        h("button", { class: "btn primary", type: "submit", id: "enrol-submit" }, "Enrol")));
    const prefill = async (raw) => {
      form.elements.licence.value = raw;
      try {
        const p = await post("/api/customers/licence", { licence: raw });
        out.textContent = `${p.given_name} ${p.family_name}, born ${p.birth_date}, ID ${p.jurisdiction} until ${p.expires_on}` +
          (p.known ? ` — already enrolled (${p.known.points} points)` : " — new customer");
      } catch (err) { out.textContent = err.message; }
    };
    form.elements.licence.addEventListener("change", () => prefill(form.elements.licence.value));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      try {
        const r = await post("/api/customers/enrol", {
          licence: f.licence.value, phone: f.phone.value, email: f.email.value, customer_type: f.customer_type.value,
          consent_profile: f.consent_profile.checked, consent_marketing: f.consent_marketing.checked, consent_sms: f.consent_sms.checked,
          groups: [...f.groups.selectedOptions].map((o) => o.value), note: f.note.value,
        });
        message(`Enrolled ${r.customer.name}.`, "info");
        location.hash = `#customers?id=${encodeURIComponent(r.customer.id)}`;
      } catch (err) { message(err.message); }
    });
    return { el: form, prefill, lookup };
  }

  function crmCard(s) {
    if (!s.configured) return h("p", { class: "muted", id: "crm-status" }, "No CRM is configured ([crm] in store.toml).");
    return h("div", { class: "card", id: "crm-status" }, h("h3", {}, `CRM bridge (${s.style})`),
      h("p", {}, s.status ? `${s.status.backlog} waiting, ${s.status.dead} need a person${s.status.last_error ? ` — ${s.status.last_error}` : ""}` : "starting"),
      h("table", {}, h("tbody", {}, s.recent.slice(0, 10).map((e) => h("tr", {}, h("td", {}, e.event), h("td", { class: e.state === "sent" ? "ok" : "warn" }, e.state), h("td", { class: "muted" }, e.last_error))))));
  }

  async function customerProfile(root, id) {
    const { customer: c } = await api(`/api/customers/${encodeURIComponent(id)}`);
    const consent = (k) => h("span", { class: c.consents[k] ? "ok" : "muted", "data-consent": k }, `${k}: ${c.consents[k] ? "yes" : "no"}`);
    const edit = h("form", { class: "card", id: "profile-form" },
      h("h3", {}, "Change"),
      h("div", { class: "row" },
        h("label", {}, "Phone ", h("input", { name: "phone", value: c.phone, size: 16 })),
        h("label", {}, "E-mail ", h("input", { name: "email", value: c.email, size: 24 }))),
      h("div", { class: "row" }, ["profile", "marketing", "sms"].map((k) => h("label", {}, h("input", { type: "checkbox", name: k, checked: c.consents[k] }), ` ${k}`))),
      h("div", { class: "row" }, h("label", {}, "Note ", h("input", { name: "note", size: 40 })),
        h("label", {}, "Why ", h("input", { name: "reason", size: 20, value: "customer asked" })),
        h("button", { class: "btn primary", type: "submit" }, "Save")));
    edit.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = edit.elements;
      const body = { consents: { profile: f.profile.checked, marketing: f.marketing.checked, sms: f.sms.checked }, note: f.note.value, reason: f.reason.value };
      if (f.phone.value !== c.phone) body.phone = f.phone.value;
      if (f.email.value !== c.email) body.email = f.email.value;
      try { await post(`/api/customers/${encodeURIComponent(id)}`, body); message("Saved.", "info"); ui.route(); } catch (err) { message(err.message); }
    });
    const sms = h("form", { class: "row", id: "sms-form" }, h("input", { name: "text", size: 40, placeholder: "Text message" }),
      h("button", { class: "btn", type: "submit", disabled: !c.may_text }, c.may_text ? "Send SMS" : "No SMS consent"));
    sms.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { await post(`/api/customers/${encodeURIComponent(id)}/sms`, { text: sms.elements.text.value }); message("Queued for the CRM.", "info"); } catch (err) { message(err.message); }
    });
    root.append(...[
      h("p", {}, h("a", { href: "#customers" }, "← Customers")),
      h("h1", { id: "profile-name" }, c.name || c.id),
      h("p", {}, `Born ${c.birth_date} · ${c.customer_type} · ID ${c.residency} · `, h("strong", { id: "profile-points" }, `${c.points} points`), ` (${c.lifetime_points} lifetime)`),
      h("p", {}, "Consents: ", consent("profile"), " · ", consent("marketing"), " · ", consent("sms")),
      c.medical_registration ? h("p", {}, `Medical registration ${c.medical_registration}`) : null,
      h("p", { class: "muted" }, `Enrolled ${c.enrolled_at ? new Date(c.enrolled_at).toLocaleString() : "—"} by ${c.enrolled_by || "—"} · id ${c.id}`),
      sms,
      h("h2", {}, c.customer_type === "medical" ? "Dispensing history" : "Purchase history"),
      h("table", { id: "history" }, h("thead", {}, h("tr", {}, ["Receipt", "When", "Register", "Items", "Total"].map((t) => h("th", {}, t)))),
        h("tbody", {}, (c.history || []).map((s) => h("tr", { "data-receipt": s.receipt_number, class: s.voided ? "muted" : "" },
          h("td", {}, s.receipt_number), h("td", {}, new Date(s.sold_at).toLocaleString()), h("td", {}, s.register_id),
          h("td", {}, (s.lines || []).map((l) => `${l.product} (${l.package_tag})`).join("; ")),
          h("td", { class: "n" }, money(s.total_cents) + (s.voided ? " void" : "")))))),
      h("h2", {}, "Points"),
      h("table", { id: "ledger" }, h("tbody", {}, (c.loyalty_ledger || []).map((e) => h("tr", {}, h("td", {}, new Date(e.at).toLocaleString()), h("td", {}, e.reason), h("td", { class: "n" }, e.delta), h("td", { class: "n" }, e.balance))))),
      h("h2", {}, "Notes"), h("ul", {}, c.notes.map((n) => h("li", {}, `${n.text} — ${n.staff}, ${new Date(n.at).toLocaleDateString()}`))),
      h("details", {}, h("summary", {}, "Consent history"), h("ul", {}, c.consent_history.map((x) => h("li", {}, `${x.kind}: ${x.granted ? "yes" : "no"} — ${new Date(x.at).toLocaleString()} by ${x.staff} at ${x.where}: “${x.text}”`)))),
      edit].filter(Boolean));
  }

  // ------------------------------------------------------------------------------------- promotions

  pages.promotions = async (root, params) => {
    const { promotions } = await api("/api/catalogue/promotions");
    const editing = params.get("id");
    root.append(h("h1", {}, "Promotions"),
      h("p", { class: "muted" }, "The first promotion in the list that fits a line applies to it (they do not stack). Changes apply to the next scan at every register."),
      h("table", { id: "promotions" }, h("thead", {}, h("tr", {}, ["#", "Promotion", "Kind", "When", "Code / groups", "Active", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, promotions.map((s) => {
          const p = s.promotion;
          return h("tr", { "data-promotion": p.id },
            h("td", {}, s.position), h("td", {}, p.name), h("td", {}, KINDS[p.kind] || p.kind), h("td", {}, windowText(p.window)),
            h("td", {}, [p.code ? `code ${p.code}` : "", (p.customer_groups || []).join(", ")].filter(Boolean).join(" · ") || "everyone"),
            h("td", { class: s.active ? "ok" : "muted" }, s.active ? "yes" : "no"),
            h("td", {}, h("a", { href: `#promotions?id=${encodeURIComponent(p.id)}`, class: "edit-promotion" }, "Edit")));
        }))),
      h("p", {}, h("a", { href: "#promotions?id=", id: "new-promotion", class: "btn" }, "New promotion")));
    if (editing !== null) {
      const s = promotions.find((x) => x.promotion.id === editing);
      root.append(promotionForm(s));
    }
  };

  function windowText(w) {
    if (!w) return "always";
    const parts = [];
    if (w.starts_on || w.ends_on) parts.push(`${w.starts_on || "…"} – ${w.ends_on || "…"}`);
    if (w.weekdays && w.weekdays.length) parts.push(w.weekdays.map((d) => DAYS[d]).join(" "));
    if (w.from_minute || w.to_minute !== 1440) parts.push(`${hm(w.from_minute)}–${hm(w.to_minute)}`);
    return parts.join(", ") || "always";
  }
  const hm = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
  const minutes = (t) => { const [a, b] = (t || "00:00").split(":").map(Number); return a * 60 + b; };

  function promotionForm(s) {
    const p = s ? s.promotion : { kind: "category_percent", id: "", name: "" };
    const w = p.window || {};
    const cats = [p.category, ...(p.categories || [])].filter(Boolean);
    const form = h("form", { class: "card", id: "promotion-form" },
      h("h2", {}, s ? `Edit ${p.name}` : "New promotion"),
      h("div", { class: "row" },
        h("label", {}, "Id ", h("input", { name: "id", value: p.id, required: true, size: 14, readonly: !!s })),
        h("label", {}, "Name ", h("input", { name: "name", value: p.name, required: true, size: 28 })),
        h("label", {}, "Kind ", h("select", { name: "kind" }, Object.entries(KINDS).map(([k, t]) => h("option", { value: k, selected: k === p.kind }, t))))),
      h("div", { class: "row" },
        h("label", {}, "Percent off ", h("input", { name: "percent", type: "number", step: "0.01", value: p.percent_bp ? pct(p.percent_bp) : "", size: 6 })),
        h("label", {}, "Amount off $ ", h("input", { name: "amount", type: "number", step: "0.01", value: p.amount_cents ? (p.amount_cents / 100).toFixed(2) : "", size: 6 })),
        h("label", {}, "Bundle: units ", h("input", { name: "quantity", type: "number", value: p.quantity || "", size: 3 })),
        h("label", {}, "for $ ", h("input", { name: "price", type: "number", step: "0.01", value: p.price_cents ? (p.price_cents / 100).toFixed(2) : "", size: 6 })),
        h("label", {}, "BOGO: buy ", h("input", { name: "buy", type: "number", value: p.buy || "", size: 3 })),
        h("label", {}, "next one % off ", h("input", { name: "get", type: "number", step: "0.01", value: p.get_percent_bp ? pct(p.get_percent_bp) : "100", size: 6 }))),
      h("div", { class: "row" },
        h("label", {}, "Categories ", h("select", { name: "categories", multiple: true, size: 4 }, CATEGORIES.map((c) => h("option", { value: c, selected: cats.includes(c) }, c)))),
        h("label", {}, "Brand ", h("input", { name: "brand", value: p.brand || "", size: 14 })),
        h("label", {}, "Products (SKUs) ", h("input", { name: "products", value: (p.product_ids || []).join(" "), size: 18 }))),
      h("div", { class: "row" },
        h("label", {}, "From ", h("input", { name: "starts_on", type: "date", value: w.starts_on || "" })),
        h("label", {}, "to ", h("input", { name: "ends_on", type: "date", value: w.ends_on || "" })),
        h("label", {}, "Hours ", h("input", { name: "from", type: "time", value: hm(w.from_minute || 0) })),
        h("label", {}, "– ", h("input", { name: "to", type: "time", value: w.to_minute && w.to_minute < 1440 ? hm(w.to_minute) : "" })),
        h("span", { class: "days" }, "Days ", DAYS.map((d, i) => h("label", {}, h("input", { type: "checkbox", name: `day${i}`, checked: (w.weekdays || []).includes(i) }), d)))),
      h("div", { class: "row" },
        h("label", {}, "Promo code ", h("input", { name: "code", value: p.code || "", size: 12 })),
        h("label", {}, "Customer groups ", h("input", { name: "groups", value: (p.customer_groups || []).join(" "), size: 18, placeholder: "medical veteran Gold" })),
        h("label", {}, h("input", { type: "checkbox", name: "active", checked: s ? s.active : true }), " active"),
        h("label", {}, "Priority ", h("input", { name: "position", type: "number", value: s ? s.position : "", size: 4 }))),
      h("div", { class: "row" },
        h("label", {}, "Why (for the audit log) ", h("input", { name: "reason", required: true, minlength: 3, size: 30, id: "promotion-reason" })),
        h("button", { class: "btn primary", type: "submit", id: "promotion-save" }, "Save"),
        s ? h("button", { class: "btn", type: "button", id: "promotion-delete" }, "Delete") : null));
    const preview = h("div", { class: "card", id: "preview" },
      h("h3", {}, "Preview: what would this cart get?"),
      h("div", { class: "row" },
        h("label", {}, "Cart (SKU×qty) ", h("input", { name: "cart", id: "preview-cart", size: 30, value: "PRE-001×3 EDI-001" })),
        h("label", {}, "Codes ", h("input", { name: "codes", id: "preview-codes", size: 10 })),
        h("button", { class: "btn", type: "button", id: "preview-run" }, "Preview")),
      h("div", { id: "preview-result" }));
    const build = () => {
      const f = form.elements;
      const kind = f.kind.value;
      const chosen = [...f.categories.selectedOptions].map((o) => o.value);
      const weekdays = DAYS.map((_, i) => i).filter((i) => f[`day${i}`].checked);
      const window = (f.starts_on.value || f.ends_on.value || weekdays.length || f.to.value || minutes(f.from.value))
        ? { starts_on: f.starts_on.value || null, ends_on: f.ends_on.value || null, weekdays, from_minute: minutes(f.from.value), to_minute: f.to.value ? minutes(f.to.value) : 1440 }
        : null;
      const promo = { kind, id: f.id.value.trim(), name: f.name.value.trim(), window, code: f.code.value.trim(),
        customer_groups: f.groups.value.split(/\s+/).filter(Boolean), brand: f.brand.value.trim() };
      const products = f.products.value.split(/[\s,]+/).filter(Boolean);
      if (kind === "category_percent") Object.assign(promo, { category: chosen[0] || "", categories: chosen.slice(1), percent_bp: Math.round(parseFloat(f.percent.value || "0") * 100) });
      if (kind === "amount_off") Object.assign(promo, { categories: chosen, product_ids: products, amount_cents: cents(f.amount.value) });
      if (kind === "bundle") Object.assign(promo, { categories: chosen, product_ids: products, quantity: parseInt(f.quantity.value || "0", 10), price_cents: cents(f.price.value) });
      if (kind === "buy_n_get_one") Object.assign(promo, { category: chosen[0] || "", categories: chosen.slice(1), product_ids: products, buy: parseInt(f.buy.value || "0", 10), get_percent_bp: Math.round(parseFloat(f.get.value || "100") * 100) });
      if (kind !== "buy_n_get_one" && kind !== "category_percent" && !promo.brand) delete promo.brand;
      return promo;
    };
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      try {
        await post("/api/catalogue/promotions", { promotion: build(), active: f.active.checked, position: f.position.value ? parseInt(f.position.value, 10) : null, reason: f.reason.value });
        message("Promotion saved: it applies from the next scan.", "info");
        location.hash = "#promotions";
      } catch (err) { message(err.message); }
    });
    form.querySelector("#promotion-delete")?.addEventListener("click", async () => {
      const reason = form.elements.reason.value;
      try { await post(`/api/catalogue/promotions/${encodeURIComponent(p.id)}/delete`, { reason }); location.hash = "#promotions"; } catch (err) { message(err.message); }
    });
    preview.querySelector("#preview-run").addEventListener("click", async () => {
      const lines = preview.querySelector("#preview-cart").value.split(/\s+/).filter(Boolean).map((t) => {
        const [sku, q] = t.split(/[×x*]/);
        return { product_id: sku, quantity: parseInt(q || "1", 10) };
      });
      try {
        const r = await post("/api/catalogue/promotions/preview", { promotion: build(), lines, codes: preview.querySelector("#preview-codes").value.split(/\s+/).filter(Boolean) });
        preview.querySelector("#preview-result").replaceChildren(h("table", { id: "preview-lines" }, h("tbody", {},
          r.lines.map((l) => h("tr", {}, h("td", {}, `${l.name} ×${l.quantity}`), h("td", {}, l.promotion || "—"), h("td", { class: "n" }, l.promotion_cents ? `−${money(l.promotion_cents)}` : ""), h("td", { class: "n" }, money(l.total_cents)))),
          h("tr", {}, h("th", {}, "Total"), h("td", {}, ""), h("td", { class: "n", id: "preview-saving" }, `−${money(r.promotion_cents)}`), h("td", { class: "n" }, money(r.total_cents))))));
      } catch (err) { message(err.message); }
    });
    return h("div", {}, form, preview);
  }

  // ------------------------------------------------------------------------------------- catalogue

  pages.catalogue = async (root, params) => {
    const id = params.get("id");
    if (id) return productPage(root, id);
    const q = params.get("q") || "";
    const { products } = await api(`/api/catalogue/products?q=${encodeURIComponent(q)}`);
    const search = h("form", { class: "row" }, h("input", { name: "q", value: q, size: 30, placeholder: "Search products" }), h("button", { class: "btn", type: "submit" }, "Search"));
    search.addEventListener("submit", (ev) => { ev.preventDefault(); location.hash = `#catalogue?q=${encodeURIComponent(search.elements.q.value)}`; });
    root.append(h("h1", {}, "Catalogue"), search,
      h("table", { id: "products" }, h("thead", {}, h("tr", {}, ["SKU", "Product", "Category", "Price", "THC", "Shelf", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, products.map((p) => h("tr", { "data-product": p.id }, h("td", {}, p.id), h("td", {}, `${p.brand} ${p.name}`), h("td", {}, p.category),
          h("td", { class: "n" }, money(p.price_cents) + (p.sold_by === "weight" ? "/g" : "")), h("td", {}, p.thc_bp ? `${pct(p.thc_bp)} %` : p.thc_mg_per_unit ? `${p.thc_mg_per_unit} mg` : ""),
          h("td", {}, p.shelf_location), h("td", {}, h("a", { href: `#catalogue?id=${encodeURIComponent(p.id)}` }, "Edit")))))),
      importCard());
  };

  async function productPage(root, id) {
    const d = await api(`/api/catalogue/products/${encodeURIComponent(id)}`);
    const p = d.product;
    const field = (name, label, value, attrs = {}) => h("label", {}, `${label} `, h("input", { name, value: value ?? "", ...attrs }));
    const form = h("form", { class: "card", id: "product-form" },
      h("div", { class: "row" }, field("name", "Name", p.name, { size: 30 }), field("brand", "Brand", p.brand),
        h("label", {}, "Category ", h("select", { name: "category" }, CATEGORIES.map((c) => h("option", { value: c, selected: c === p.category }, c))))),
      h("div", { class: "row" }, field("price", "Price $", (p.price_cents / 100).toFixed(2), { type: "number", step: "0.01", size: 7 }), field("tax_class", "Tax class", p.tax_class, { size: 10 }),
        field("thc", "THC %", p.thc_bp ? pct(p.thc_bp) : "", { type: "number", step: "0.01", size: 6 }), field("cbd", "CBD %", p.cbd_bp ? pct(p.cbd_bp) : "", { type: "number", step: "0.01", size: 6 })),
      h("div", { class: "row" }, field("image_url", "Image URL", p.image_url, { size: 30 }), field("shelf_location", "Shelf", p.shelf_location, { size: 6 }), field("coa_ref", "COA (URL)", p.coa_ref, { size: 30 })),
      h("div", { class: "row" }, field("reason", "Why (for the audit log)", "", { required: true, minlength: 3, size: 30 }), h("button", { class: "btn primary", type: "submit" }, "Save")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      const changes = { name: f.name.value, brand: f.brand.value, category: f.category.value, price_cents: cents(f.price.value), tax_class: f.tax_class.value,
        thc_bp: Math.round(parseFloat(f.thc.value || "0") * 100), cbd_bp: Math.round(parseFloat(f.cbd.value || "0") * 100),
        image_url: f.image_url.value, shelf_location: f.shelf_location.value, coa_ref: f.coa_ref.value };
      for (const k of Object.keys(changes)) if (changes[k] === p[k]) delete changes[k];
      try { await post(`/api/catalogue/products/${encodeURIComponent(id)}`, { changes, reason: f.reason.value }); message("Saved: the next scan has it.", "info"); ui.route(); } catch (err) { message(err.message); }
    });
    const price = h("form", { class: "card row", id: "price-form" }, h("h3", {}, "Change the price at a time"),
      field("price", "New price $", "", { type: "number", step: "0.01", required: true, size: 7 }),
      field("at", "From (store time)", "", { type: "datetime-local", required: true }),
      field("reason", "Why", "", { required: true, minlength: 3, size: 24 }), h("button", { class: "btn", type: "submit" }, "Schedule"));
    price.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = price.elements;
      try { await post("/api/catalogue/price-changes", { product_id: id, price_cents: cents(f.price.value), effective_at: f.at.value, reason: f.reason.value }); message("Price change scheduled.", "info"); ui.route(); } catch (err) { message(err.message); }
    });
    root.append(...[h("p", {}, h("a", { href: "#catalogue" }, "← Catalogue")), h("h1", {}, `${p.brand} ${p.name}`),
      p.image_url ? h("img", { src: p.image_url, alt: p.name, class: "product-image", width: 120 }) : null,
      form, price,
      d.price_changes.length ? h("ul", { id: "pending-prices" }, d.price_changes.map((c) => h("li", {}, `${money(c.price_cents)} from ${new Date(c.effective_at).toLocaleString()} — ${c.reason} (${c.created_by})`))) : null,
      h("h2", {}, "Packages, lab results and labels"),
      h("label", {}, "Print on the label printer of ", h("select", { id: "label-register" },
        (await fetch("/api/hub").then((r) => r.json())).registers.filter((r) => !r.id.toUpperCase().startsWith("OFFICE")).map((r) => h("option", { value: r.id }, r.name)))),
      h("table", { id: "packages" }, h("tbody", {}, d.packages.map((k) => packageRow(k))))].filter(Boolean));
  }

  function packageRow(k) {
    const lab = k.lab;
    const labCell = h("td", { class: "lab" }, lab ? labText(lab) : "no lab result yet");
    const pull = h("button", { class: "btn small" }, "Lab result");
    pull.addEventListener("click", async () => {
      try { const r = await api(`/api/labs/${encodeURIComponent(k.tag)}`, { method: "POST" }); labCell.replaceChildren(r.lab ? labText(r.lab) : "the state has no result"); } catch (err) { message(err.message); }
    });
    // shelf and exit labels print on the label printer of the register chosen above the table
    const print = (kind) => async () => {
      const register = document.getElementById("label-register")?.value || "";
      try {
        const r = await post("/api/labels/print", { tag: k.tag, kind, register_id: register });
        message(`${kind === "shelf" ? "Shelf" : "Exit"} label sent to ${r.printer}${r.missing.length ? ` (no data for: ${r.missing.join(", ")})` : ""}.`, "info");
      } catch (err) { message(err.message); }
    };
    const shelf = h("button", { class: "btn small", "data-print": "shelf" }, "Shelf label");
    shelf.addEventListener("click", print("shelf"));
    const exit = h("button", { class: "btn small", "data-print": "exit" }, "Exit label");
    exit.addEventListener("click", print("exit"));
    return h("tr", { "data-tag": k.tag }, h("td", {}, k.tag), h("td", {}, k.status), h("td", {}, k.lab_testing), labCell, h("td", {}, pull, " ", shelf, " ", exit));
  }

  function labText(lab) {
    const bits = [lab.thc_bp != null ? `THC ${pct(lab.thc_bp)} %` : "", lab.cbd_bp != null ? `CBD ${pct(lab.cbd_bp)} %` : "",
      ...(lab.contaminants || []).map((c) => `${c.name} ${c.passed === false ? "FAILED" : "passed"}`)].filter(Boolean);
    return h("span", {}, `${lab.lab || "lab"} ${lab.tested_on || ""}: ${bits.join(", ")} `, lab.coa_url ? h("a", { href: lab.coa_url, target: "_blank" }, "COA") : "");
  }

  function importCard() {
    const result = h("div", { id: "import-result" });
    const bar = h("progress", { id: "import-progress", max: 1, value: 0, hidden: true });
    const form = h("form", { class: "card", id: "import-form" }, h("h2", {}, "Import products and packages (CSV, UTF-8)"),
      h("div", { class: "row" },
        h("label", {}, "Products ", h("input", { type: "file", name: "products", accept: ".csv,text/csv" })),
        h("label", {}, "Packages ", h("input", { type: "file", name: "packages", accept: ".csv,text/csv" }))),
      h("div", { class: "row" }, h("label", {}, "Why ", h("input", { name: "reason", size: 30, placeholder: "weekly delivery" })),
        h("button", { class: "btn", type: "submit" }, "Dry run")), bar, result);
    let last = null;
    const read = async (input) => (input.files[0] ? input.files[0].text() : "");
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const f = form.elements;
      last = { products_csv: await read(f.products), packages_csv: await read(f.packages), reason: f.reason.value };
      try {
        const r = await post("/api/catalogue/import", last);
        const apply = h("button", { class: "btn primary", type: "button", id: "import-apply" }, r.changes.length ? `Apply, changing ${r.changes.length} existing record(s)` : "Apply");
        apply.addEventListener("click", async () => {
          try {
            const job = await post("/api/catalogue/import", { ...last, apply: true, confirm_changes: true });
            bar.hidden = false;
            for (;;) {
              const s = await api(`/api/catalogue/import/${job.job}`);
              bar.max = Math.max(1, s.total); bar.value = s.done;
              if (s.state !== "running") { message(s.state === "done" ? `Imported ${s.done} records.` : `Import failed: ${s.error}`, s.state === "done" ? "info" : "error"); break; }
              await new Promise((res) => setTimeout(res, 300));
            }
          } catch (err) { message(err.message); }
        });
        result.replaceChildren(h("p", {}, `New: ${r.new_products} products, ${r.new_packages} packages. Changes to what the store holds: ${r.changes.length}.`),
          r.changes.length ? h("ul", { id: "import-diff" }, r.changes.slice(0, 200).map((c) => h("li", {}, c))) : null, apply);
      } catch (err) { message(err.message); }
    });
    return form;
  }

  // ------------------------------------------------------------------------------------- Form 8300

  pages.form8300 = async (root) => {
    const { flags } = await api("/api/backoffice/cash-flags-8300");
    root.append(h("h1", {}, "Form 8300 worksheets"),
      h("p", { class: "muted" }, "Cash over $10,000 from one customer in 24 hours is reported to the IRS within 15 days. Review a flag on the Cash flags page: \"filed\" closes it, \"no action\" dismisses it with your reason."),
      flags.length ? h("table", { id: "flags-8300" }, h("thead", {}, h("tr", {}, ["Flag", "Customer", "Cash", "Status", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, flags.map((f) => h("tr", { "data-flag": f.flag_id }, h("td", {}, f.sentence), h("td", {}, f.customer_id), h("td", { class: "n" }, money(f.total_cents)),
          h("td", { class: f.status === "open" ? "warn" : "ok" }, f.status + (f.status_reason ? `: ${f.status_reason}` : "")),
          h("td", {}, ui.authLink(`/api/backoffice/form8300/${encodeURIComponent(f.flag_id)}`, { label: "Worksheet" }))))))
        : h("p", { class: "ok" }, "No cash flags."));
  };
}
