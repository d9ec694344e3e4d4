// The back office's state-system pages: receiving a delivery, reconciliation with the state, the dead-letter
// list with its retry, and the state channel's status. REST under /api/state/ (hub/state_channel/api.py).
//
// Receiving is done with a keyboard-wedge scanner anywhere on the page (a scan marks its manifest line
// received), or by clicking a line; each line is then received, short (with the quantity that arrived),
// missing or damaged, with a reason. Quantities are in the state's unit for the line (Each, Grams, …).

// Metrc's adjustment reasons (GET /packages/v2/adjust/reasons); the hub's REST does not relay that list yet.
// Most of them need a note at the state (ReasonNote), so the page always asks for one.
export const STATE_REASONS = [
  "Incorrect Quantity", "Scale Variance", "Theft", "Damage", "Entry Error", "Waste (Unusable Product)", "Drying",
  "Mandated State Destruction",
];

const UNIT_SHORT = { Each: "", Grams: "g", Milligrams: "mg", Kilograms: "kg", Ounces: "oz", Pounds: "lb" };

export function qty(v, unit) {
  if (v === null || v === undefined) return "—";
  const n = Math.round(v * 1000) / 1000;
  const u = UNIT_SHORT[unit] ?? unit;
  return u ? `${n} ${u}` : String(n);
}

/** "just now", "12 min ago", "5 h ago", "3 days ago". */
export function ago(iso, now = Date.now()) {
  const s = Math.max(0, (now - new Date(iso).getTime()) / 1000);
  return seconds(s, " ago", "just now");
}

export function seconds(s, suffix = "", zero = "0 s") {
  if (s < 1) return zero;
  if (s < 60) return `${Math.round(s)} s${suffix}`;
  if (s < 3600) return `${Math.round(s / 60)} min${suffix}`;
  if (s < 86400 * 2) return `${Math.round(s / 3600)} h${suffix}`;
  return `${Math.round(s / 86400)} days${suffix}`;
}

/** Add the pages to `pages`; `ui` is the shell's { h, api, message, live, authLink, route, onScan }. */
export function installStatePages(pages, ui) {
  const { h, api, message, live, authLink, route } = ui;

  // ------------------------------------------------------------------------------------- receiving

  pages.receiving = async (root, params) => {
    const number = params.get("manifest");
    if (number) return receivingManifest(root, number);
    const list = await api("/api/state/manifests");
    root.append(h("h1", {}, "Receiving"),
      h("p", { class: "muted" }, "Incoming transfers from the state system. Open one when the delivery arrives, scan every package, then submit."));
    if (!list.length) {
      root.append(h("p", { class: "ok" }, "No incoming manifests."));
      return;
    }
    root.append(h("table", { id: "manifests" },
      h("thead", {}, h("tr", {}, ["Manifest", "From", "Expected", "Packages", "Status", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.map((m) => h("tr", { "data-manifest": m.manifest },
        h("td", {}, m.manifest), h("td", {}, `${m.shipper_name} (${m.shipper_license})`),
        h("td", {}, m.estimated_arrival ? new Date(m.estimated_arrival).toLocaleString() : "—"),
        h("td", { class: "n" }, m.lines.length),
        h("td", {}, manifestStatus(m)),
        h("td", {}, h("a", { class: "btn small", href: `#receiving?manifest=${encodeURIComponent(m.manifest)}` }, m.report ? "Report" : "Receive")))))));
  };

  function manifestStatus(m) {
    if (!m.report) return h("span", { class: "warn" }, "to receive");
    const here = `received ${new Date(m.report.received_at).toLocaleString()} by ${m.report.by}, ${m.report.discrepancies} discrepanc${m.report.discrepancies === 1 ? "y" : "ies"}`;
    if (m.state_agrees === true) return h("span", { class: "ok" }, `${here} · the state agrees`);
    if (m.state_agrees === false) return h("span", { class: "bad" }, `${here} · the state's figures differ`);
    return h("span", {}, `${here} · `, h("span", { class: "warn" }, "not yet received at the state"));
  }

  async function receivingManifest(root, number) {
    const m = await api(`/api/state/manifests/${encodeURIComponent(number)}`);
    root.append(h("p", { class: "noprint" }, h("a", { href: "#receiving" }, "← All manifests")),
      h("h1", {}, `Manifest ${m.manifest}`),
      h("p", { class: "muted" }, `From ${m.shipper_name} (${m.shipper_license}) · ${m.lines.length} packages`));
    if (m.report) {
      root.append(reportView(m));
      return;
    }
    const products = await productChoices(m.lines);
    const rows = new Map(); // label -> {tr, status, qty, reason, product}
    const progress = h("p", { id: "receive-progress" });
    const tbody = h("tbody");
    for (const line of m.lines) {
      const status = h("select", { name: "status" }, [["pending", "not scanned"], ["received", "received"], ["short", "short"], ["missing", "missing"], ["damaged", "damaged"]]
        .map(([v, t]) => h("option", { value: v }, t)));
      const amount = h("input", { name: "qty", type: "number", min: "0", step: "any", disabled: true, "aria-label": `Quantity received of ${line.label}` });
      const reason = h("input", { name: "reason", size: 18, maxlength: 200, disabled: true, placeholder: "Reason", "aria-label": `Reason for ${line.label}` });
      const choices = products.get(line.label) || [];
      const product = h("select", { name: "product", "aria-label": `Product for ${line.label}` },
        h("option", { value: "" }, choices.length ? "— choose the product —" : "— no product matches: add it to the catalogue —"),
        choices.map((p) => h("option", { value: p.id, selected: choices.length === 1 || p.name === line.item_name }, `${p.name} (${p.id})`)));
      const tag = h("button", { type: "button", class: "tag", title: "Mark received (or scan the tag)" }, line.label);
      const tr = h("tr", { "data-label": line.label, "data-status": "pending" },
        h("td", {}, tag), h("td", {}, line.item_name, h("div", { class: "muted" }, line.category)),
        h("td", { class: "n" }, qty(line.shipped, line.unit)), h("td", {}, product), h("td", {}, status),
        h("td", { class: "nowrap" }, amount, " ", h("span", { class: "muted" }, UNIT_SHORT[line.unit] ?? line.unit)), h("td", {}, reason));
      const row = { line, tr, status, amount, reason, product };
      rows.set(line.label, row);
      const sync = () => {
        const st = status.value;
        tr.dataset.status = st;
        amount.disabled = st !== "short" && st !== "damaged";
        reason.disabled = st === "pending" || st === "received";
        reason.required = st === "short" || st === "damaged";
        amount.required = st === "short";
        if (st === "short" && amount.value === "") amount.focus();
        else if ((st === "damaged" || st === "missing") && !reason.value) reason.focus();
        count();
      };
      status.addEventListener("change", sync);
      row.mark = (st) => { status.value = st; sync(); };
      tag.addEventListener("click", () => { if (status.value === "pending") row.mark("received"); });
      tbody.append(tr);
    }
    const count = () => {
      const done = [...rows.values()].filter((r) => r.status.value !== "pending").length;
      progress.textContent = `${done} of ${rows.size} lines checked.${done < rows.size ? " Lines not scanned are reported missing." : ""}`;
    };
    count();

    ui.onScan((data) => {
      const label = data.trim().toUpperCase();
      const row = rows.get(label);
      if (!row) {
        message(`Package ${label} is not on manifest ${m.manifest}: set it aside and call the shipper.`);
        return;
      }
      row.tr.scrollIntoView({ block: "nearest" });
      row.tr.classList.remove("flash");
      void row.tr.offsetWidth; // restart the highlight
      row.tr.classList.add("flash");
      if (row.status.value === "pending") {
        row.mark("received");
        message(`${label}: ${row.line.item_name} received.`, "info");
      } else {
        message(`${label} was already checked (${row.status.value}).`, "info");
      }
    }, root);

    const form = h("form", { id: "receive-form" },
      h("p", { class: "muted" }, "Scan each package tag (anywhere on this page) or click a tag. Then set short, missing or damaged lines with the quantity that arrived and a reason."),
      h("table", { id: "receive-lines" },
        h("thead", {}, h("tr", {}, ["Package tag", "Item", "Shipped", "Product", "Status", "Arrived", "Reason"].map((t) => h("th", {}, t)))), tbody),
      progress,
      h("div", { class: "row" }, h("button", { class: "btn primary", type: "submit", id: "receive-submit" }, "Submit receiving report")));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const lines = [];
      for (const r of rows.values()) {
        const st = r.status.value;
        if (st === "pending") continue; // not scanned: the hub records it missing
        const out = { label: r.line.label, status: st, reason: r.reason.value.trim() };
        if (st === "short" || st === "damaged") {
          if (r.amount.value !== "") out.received_quantity = parseFloat(r.amount.value);
        }
        if ((st === "received" || st === "short") && !r.product.value) {
          message(`${r.line.label}: choose which product it is before it goes on the shelf.`);
          r.product.focus();
          return;
        }
        if (r.product.value) out.product_id = r.product.value;
        lines.push(out);
      }
      const submit = form.querySelector("#receive-submit");
      submit.disabled = true;
      try {
        await api(`/api/state/manifests/${encodeURIComponent(m.manifest)}/receive`, {
          method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ lines }),
        });
      } catch (err) {
        submit.disabled = false;
        message(String(err.message || err));
        return;
      }
      message(`Manifest ${m.manifest} received.`, "info");
      route();
    });
    root.append(form);
  }

  async function productChoices(lines) {
    // the manifest names the state's item; the store sells it as one of its products: offer the likely ones
    const out = new Map();
    const ask = async (query) => {
      try {
        return (await live.request("search", { query, limit: 12 })).products || [];
      } catch {
        return [];
      }
    };
    await Promise.all(lines.map(async (line) => {
      let found = await ask(line.item_name);
      if (!found.length) {
        const words = line.item_name.split(/\s+/).filter((w) => w.length > 2).sort((a, b) => b.length - a.length);
        const seen = new Map();
        for (const w of words) for (const p of await ask(w)) seen.set(p.id, p);
        found = [...seen.values()];
      }
      const weighed = line.unit !== "Each";
      out.set(line.label, found.filter((p) => (p.sold_by === "weight") === weighed));
    }));
    return out;
  }

  function reportView(m) {
    const r = m.report;
    return h("div", { class: "card", id: "receiving-report" },
      h("h2", {}, `Receiving report · manifest ${m.manifest}`),
      h("p", {}, `From ${m.shipper_name} (${m.shipper_license}) · received ${new Date(r.received_at).toLocaleString()} by ${r.by}`),
      h("table", {}, h("thead", {}, h("tr", {}, ["Package tag", "Status", "Shipped", "Received", "Reason"].map((t) => h("th", {}, t)))),
        h("tbody", {}, r.lines.map((ln) => h("tr", { "data-label": ln.label, "data-status": ln.status },
          h("td", {}, ln.label), h("td", { class: ln.status === "received" ? "ok" : "bad" }, ln.status),
          h("td", { class: "n" }, qty(ln.shipped, ln.unit)), h("td", { class: "n" }, qty(ln.received, ln.unit)), h("td", {}, ln.reason))))),
      h("p", { id: "discrepancy-count", class: r.discrepancies ? "bad" : "ok" },
        r.discrepancies ? `Discrepancies: ${r.discrepancies}` : "No discrepancies: everything shipped arrived."),
      m.state_agrees === null ? h("p", { class: "warn" }, "Not yet received at the state system.")
        : h("p", { class: m.state_agrees ? "ok" : "bad" }, m.state_agrees ? "The state system's records agree." : "The state system's figures differ from this report: check them."),
      r.state_steps.length ? h("div", { id: "state-steps" }, h("h3", {}, "What to do in the state system"), stepList(r.state_steps)) : null,
      h("div", { class: "row" },
        h("button", { class: "btn primary", type: "button", id: "report-print", onclick: () => window.print() }, "Print report"),
        authLink(`/api/state/manifests/${encodeURIComponent(m.manifest)}/report`, { cls: "btn", id: "report-text", label: "Plain-text report" })));
  }

  function stepList(steps) {
    // the API indents the per-package steps under the step they belong to
    const ol = h("ol");
    let last = null;
    for (const step of steps.filter((x) => x.trim())) {
      if (step.startsWith(" ") && last) {
        let sub = last.querySelector("ul");
        if (!sub) last.append(sub = h("ul"));
        sub.append(h("li", {}, step.trim()));
      } else {
        ol.append(last = h("li", {}, step.trim()));
      }
    }
    return ol;
  }

  // ------------------------------------------------------------------------------------- reconciliation

  pages.reconcile = async (root, params) => {
    const runs = await api("/api/state/reconciliations");
    const chosen = params.get("id");
    const rec = chosen ? runs.find((r) => String(r.id) === chosen) : runs[0];
    const run = h("button", { class: "btn primary", id: "reconcile-run", type: "button" }, "Reconcile now");
    const working = h("span", { class: "muted", id: "reconcile-working" });
    run.addEventListener("click", async () => {
      run.disabled = true;
      working.textContent = "Comparing every package with the state system…";
      try {
        const r = await api("/api/state/reconciliations", { method: "POST" });
        message(`Reconciliation ${r.id}: ${r.compared} packages compared, ${r.discrepancies.length} discrepancies.`, "info");
        location.hash = `#reconcile?id=${r.id}`;
        route();
      } catch (err) {
        run.disabled = false;
        working.textContent = "";
        message(String(err.message || err));
      }
    });
    root.append(h("h1", {}, "Reconciliation with the state"),
      h("p", { class: "muted" }, "Compares every package's quantity here with the state's. A manager turns a discrepancy into a state adjustment with a reason; it goes out through the outbox."),
      h("div", { class: "row" }, run, working));
    if (runs.length) {
      const age = (Date.now() - new Date(runs[0].at).getTime()) / 1000;
      root.append(h("p", { id: "reconcile-age", class: age > 86400 * 1.5 ? "bad" : "muted" }, `Last reconciled ${ago(runs[0].at)}.`));
    } else {
      root.append(h("p", { id: "reconcile-age", class: "warn" }, "Never reconciled with the state."));
    }
    if (rec) root.append(reconciliationCard(rec));
    if (runs.length) {
      root.append(h("h2", {}, "Past runs"), h("table", { id: "reconciliations" },
        h("thead", {}, h("tr", {}, ["#", "When", "Age", "Trigger", "By", "Compared", "Discrepancies", "Open"].map((t) => h("th", {}, t)))),
        h("tbody", {}, runs.map((r) => {
          const open = r.discrepancies.filter((d) => d.kind === "quantity" && !d.adjusted_by).length;
          return h("tr", { "data-id": r.id, class: rec && r.id === rec.id ? "current" : "" },
            h("td", {}, h("a", { href: `#reconcile?id=${r.id}` }, r.id)), h("td", {}, new Date(r.at).toLocaleString()), h("td", {}, ago(r.at)),
            h("td", {}, r.trigger), h("td", {}, r.by || "schedule"), h("td", { class: "n" }, r.compared),
            h("td", { class: "n" }, r.discrepancies.length), h("td", { class: `n ${open ? "bad" : ""}` }, open));
        }))));
    }
  };

  const KIND_TEXT = {
    quantity: "quantity differs",
    missing_at_state: "the state does not list it",
    missing_locally: "only the state lists it",
  };

  function reconciliationCard(rec) {
    const order = { quantity: 0, missing_at_state: 1, missing_locally: 2 };
    const list = [...rec.discrepancies].sort((a, b) => order[a.kind] - order[b.kind] || a.label.localeCompare(b.label));
    const card = h("div", { class: "card", id: "reconciliation", "data-id": rec.id },
      h("h2", {}, `Reconciliation ${rec.id}`),
      h("p", { class: "muted" }, `${new Date(rec.at).toLocaleString()} (${ago(rec.at)}) · ${rec.trigger}${rec.by ? ` by ${rec.by}` : ""} · ${rec.compared} packages compared · facility ${rec.facility}`));
    if (!list.length) {
      card.append(h("p", { class: "ok" }, "Every package agrees with the state."));
      return card;
    }
    card.append(h("table", { id: "discrepancies" },
      h("thead", {}, h("tr", {}, ["Package tag", "What", "Here", "State", "Difference", "Adjustment"].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.map((d) => h("tr", { "data-label": d.label, "data-kind": d.kind },
        h("td", {}, d.label, d.product_id ? h("div", { class: "muted" }, d.product_id) : null),
        h("td", {}, KIND_TEXT[d.kind] || d.kind),
        h("td", { class: "n local" }, qty(d.local, d.unit)), h("td", { class: "n state" }, qty(d.state, d.unit)),
        h("td", { class: "n" }, d.local !== null && d.state !== null ? qty(d.local - d.state, d.unit) : "—"),
        h("td", {}, adjustCell(rec, d)))))));
    return card;
  }

  function adjustCell(rec, d) {
    if (d.adjusted_by) return h("span", { class: "ok adjusted" }, `adjusted (${d.reason}) → outbox #${d.adjusted_by}`);
    if (d.kind !== "quantity") return h("span", { class: "muted" }, d.kind === "missing_locally" ? "receive or transfer it; not an adjustment" : "check the package at the state; not an adjustment");
    const form = h("form", { class: "adjust-form row" },
      h("select", { name: "reason", required: true, "aria-label": "State reason code" },
        h("option", { value: "" }, "— reason —"), STATE_REASONS.map((r) => h("option", { value: r }, r))),
      h("input", { name: "note", required: true, minlength: 3, maxlength: 200, size: 22, placeholder: "Note for the state", "aria-label": "Note" }),
      h("button", { class: "btn primary", type: "submit" }, `Adjust state to ${qty(d.local, d.unit)}`));
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      const button = form.querySelector("button");
      button.disabled = true;
      try {
        const r = await api(`/api/state/reconciliations/${rec.id}/adjust`, {
          method: "POST", headers: { "content-type": "application/json" },
          body: JSON.stringify({ label: d.label, reason: form.elements.reason.value, note: form.elements.note.value.trim() }),
        });
        message(`${d.label}: adjustment of ${qty(r.delta, r.unit)} queued for the state (outbox #${r.outbox_seq}).`, "info");
        route();
      } catch (err) {
        button.disabled = false;
        message(String(err.message || err));
      }
    });
    return form;
  }

  // ------------------------------------------------------------------------------------- dead letters

  pages.deadletter = async (root) => {
    root.append(h("h1", {}, "Dead letters"),
      h("p", { class: "muted" }, "Entries the state system refused for a reason a person must fix. Fix the cause (in the state system or here), then retry: the entry goes out again, in order."));
    const rows = await api("/api/state/dead-letter");
    if (!rows.length) {
      root.append(h("p", { class: "ok", id: "dead-letters-none" }, "None: everything the state refused has been dealt with."));
      return;
    }
    root.append(h("table", { id: "dead-letters" },
      h("thead", {}, h("tr", {}, ["#", "Kind", "Packages", "Created", "Attempts", "The state said", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows.map((e) => {
        const retry = h("button", { class: "btn primary retry", type: "button" }, "Retry");
        retry.addEventListener("click", async () => {
          retry.disabled = true;
          try {
            await api(`/api/state/dead-letter/${e.seq}/retry`, { method: "POST" });
            message(`Entry ${e.seq} will be sent again.`, "info");
            route();
          } catch (err) {
            retry.disabled = false;
            message(String(err.message || err));
          }
        });
        return h("tr", { "data-seq": e.seq },
          h("td", {}, e.seq), h("td", {}, e.kind), h("td", {}, e.packages.join(", ")),
          h("td", {}, `${new Date(e.created_at).toLocaleString()} (${ago(e.created_at)})`), h("td", { class: "n" }, e.attempts),
          h("td", { class: "state-message" }, e.error || "—", e.error_code ? h("div", { class: "muted" }, e.error_code) : null),
          h("td", {}, retry));
      }))));
  };

  // ------------------------------------------------------------------------------------- status

  pages.state = async (root) => {
    const s = await api("/api/state/status");
    const a = s.actor || {};
    const paused = a.paused_until && new Date(a.paused_until) > new Date();
    const rows = [
      ["system", "State system", `${s.system} · facility ${s.facility} · licence ${s.licence}`, ""],
      ["backlog", "Waiting to be sent", String(s.unsent), s.unsent ? "warn" : "ok"],
      ["oldest", "Oldest unsent", s.unsent ? seconds(a.oldest_unsent_seconds ?? 0) : "—", s.overdue ? "bad" : ""],
      ["overdue", "Past the state's deadline", String(s.overdue), s.overdue ? "bad" : "ok"],
      ["dead", "Dead letters", String(s.dead_letters), s.dead_letters ? "bad" : "ok"],
      ["last-sent", "Last sent", a.last_sent_at ? `${new Date(a.last_sent_at).toLocaleString()} (${ago(a.last_sent_at)})` : "nothing sent yet", ""],
      ["last-error", "Last error", a.last_error || "none", a.last_error ? "bad" : "ok"],
      ["paused", "Paused until", paused ? `${new Date(a.paused_until).toLocaleTimeString()} (the state asked to wait or is down)` : "not paused", paused ? "warn" : "ok"],
      ["pull-error", "Last pull error", s.last_pull_error || "none", s.last_pull_error ? "bad" : "ok"],
      ["reporting", "Reporting", `${s.reporting.mode}, within ${seconds(s.reporting.deadline_seconds)}`, ""],
    ];
    root.append(h("h1", {}, "State channel"),
      h("table", { id: "state-status" }, h("tbody", {}, rows.map(([key, k, v, cls]) =>
        h("tr", { "data-key": key }, h("th", {}, k), h("td", { class: cls }, v))))),
      h("h2", {}, "While the state system is down"),
      h("table", {}, h("tbody", {}, Object.entries(s.reporting.sell_while_down || {}).map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v))))),
      h("p", { class: "muted" }, `Source: ${s.reporting.source}`),
      s.dead_letters ? h("p", {}, h("a", { href: "#deadletter" }, `${s.dead_letters} dead letter(s) need a person →`)) : "");
    // the status moves on its own: refresh while the page is shown
    setTimeout(() => { if (location.hash.startsWith("#state") && root.isConnected) route(); }, 5000);
  };
}
