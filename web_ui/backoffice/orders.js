// Online orders in the back office (issue 14): the open orders as the pickers see them, and every customer
// notice the hub sent or holds (in the demo the notices go to this local sink instead of e-mail and SMS).

export function installOrderPages(pages, ui) {
  const { h, api } = ui;

  pages.orders = async (root) => {
    const [queue, notices] = await Promise.all([api("/api/orders"), api("/api/orders/notices")]);
    root.append(h("h1", {}, "Online orders"),
      h("table", { id: "orders" },
        h("thead", {}, h("tr", {}, ["Order", "State", "Customer", "Fulfilment", "Promised", "Picker", "Flags"].map((t) => h("th", {}, t)))),
        h("tbody", {}, queue.orders.length
          ? queue.orders.map((o) => h("tr", { "data-order": o.id },
            h("td", {}, o.id), h("td", {}, o.state), h("td", {}, o.customer), h("td", {}, o.fulfilment),
            h("td", { class: o.late ? "bad" : "" }, new Date(o.promised_at).toLocaleString()),
            h("td", {}, o.picker || ""), h("td", { class: o.flags.length ? "bad" : "" }, o.flags.join(", ").replace(/_/g, " "))))
          : h("tr", {}, h("td", { colspan: 7 }, "No open orders.")))),
      h("h2", {}, "Customer notices"),
      h("table", { id: "notices" },
        h("thead", {}, h("tr", {}, ["When", "Order", "Kind", "To", "Message", "State"].map((t) => h("th", {}, t)))),
        h("tbody", {}, notices.notices.length
          ? notices.notices.map((n) => h("tr", { "data-notice": n.seq },
            h("td", {}, new Date(n.created_at).toLocaleString()), h("td", {}, n.order_id), h("td", {}, n.kind),
            h("td", {}, `${n.route}: ${n.to}`), h("td", {}, n.text),
            h("td", { class: n.state === "dead" ? "bad" : "" }, n.state + (n.last_error ? ` (${n.last_error})` : ""))))
          : h("tr", {}, h("td", { colspan: 6 }, "No notices yet.")))));
  };
}
