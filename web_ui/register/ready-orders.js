// Online orders ready for pickup, on the register (issue 14): the list from the register's snapshot and a
// "Recall" button that loads the order's picked packages into the cart. The customer's ID is scanned as
// for any sale; the hub refuses an ID that is not the order's customer.

export function renderReadyOrders(s, send) {
  const box = document.querySelector("#ready-orders");
  if (!box) return;
  const orders = s.ready_orders || [];
  box.hidden = orders.length === 0 && !s.order_in_cart;
  const list = document.createElement("ul");
  list.className = "plain-list";
  for (const o of orders) {
    const li = document.createElement("li");
    li.dataset.order = o.id;
    const label = document.createElement("span");
    label.textContent = `${o.id} · ${o.customer} · ${o.fulfilment}`;
    const btn = document.createElement("button");
    btn.className = "btn small";
    btn.textContent = s.order_in_cart === o.id ? "In the cart" : "Recall";
    btn.disabled = s.order_in_cart === o.id;
    btn.addEventListener("click", () => send("recall_order", { order_id: o.id }).catch(() => {}));
    li.append(label, btn);
    list.append(li);
  }
  const title = document.createElement("h2");
  title.textContent = "Online orders ready";
  box.replaceChildren(title, list);
}
