// Inline SVG charts built with the DOM (text nodes only, so nothing from data becomes markup).
// No library and no CDN: the back office works on a LAN without internet and prints as it shows.

const SVG = "http://www.w3.org/2000/svg";

function el(name, attrs = {}, text = null) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== null) e.textContent = text;
  return e;
}

export function money(cents) {
  const sign = cents < 0 ? "-" : "";
  const a = Math.abs(cents);
  return `${sign}$${Math.floor(a / 100).toLocaleString("en-US")}.${String(a % 100).padStart(2, "0")}`;
}

function figure(title, svg, id) {
  const f = document.createElement("figure");
  if (id) f.id = id;
  const c = document.createElement("figcaption");
  c.textContent = title;
  f.append(c, svg);
  return f;
}

/** Vertical bars, one per label (e.g. sales by hour). */
export function columnChart(title, items, { id = "", format = money, width = 560, height = 200 } = {}) {
  const pad = { l: 8, r: 8, t: 18, b: 24 };
  const svg = el("svg", { role: "img", "aria-label": title, width, height, viewBox: `0 0 ${width} ${height}` });
  const top = Math.max(1, ...items.map((i) => i.value));
  const slot = (width - pad.l - pad.r) / Math.max(items.length, 1);
  const plotH = height - pad.t - pad.b;
  items.forEach((item, i) => {
    const h = Math.round((plotH * Math.max(item.value, 0)) / top);
    const x = pad.l + i * slot;
    const bar = el("rect", { x: x + slot * 0.15, y: pad.t + plotH - h, width: slot * 0.7, height: h, fill: "#2e7d32" });
    bar.append(el("title", {}, `${item.label}: ${format(item.value)}`));
    svg.append(bar);
    svg.append(el("text", { x: x + slot / 2, y: height - 8, "font-size": 11, "text-anchor": "middle" }, item.label));
    if (item.value) {
      svg.append(el("text", { x: x + slot / 2, y: pad.t + plotH - h - 4, "font-size": 10, "text-anchor": "middle" }, format(item.value)));
    }
  });
  if (!items.length) svg.append(el("text", { x: width / 2, y: height / 2, "text-anchor": "middle" }, "No data"));
  return figure(title, svg, id);
}

/** Horizontal bars (e.g. tenders by kind). */
export function barChart(title, items, { id = "", format = money, width = 520 } = {}) {
  const row = 26;
  const labelW = 120;
  const barW = width - labelW - 110;
  const height = Math.max(row * items.length + 6, 30);
  const svg = el("svg", { role: "img", "aria-label": title, width, height, viewBox: `0 0 ${width} ${height}` });
  const top = Math.max(1, ...items.map((i) => Math.abs(i.value)));
  items.forEach((item, i) => {
    const y = i * row + 3;
    const w = Math.round((barW * Math.abs(item.value)) / top);
    svg.append(el("text", { x: 0, y: y + 16, "font-size": 13 }, item.label));
    const bar = el("rect", { x: labelW, y, width: w, height: row - 8, fill: item.value < 0 ? "#b71c1c" : "#2e7d32" });
    bar.append(el("title", {}, `${item.label}: ${format(item.value)}`));
    svg.append(bar);
    svg.append(el("text", { x: labelW + w + 6, y: y + 16, "font-size": 13 }, format(item.value)));
  });
  if (!items.length) svg.append(el("text", { x: 4, y: 20 }, "No data"));
  return figure(title, svg, id);
}

/** Bars above and below a zero line (drawer variance per day: over is green, short is red). */
export function divergingChart(title, items, { id = "", format = money, width = 640, height = 200 } = {}) {
  const pad = { l: 8, r: 8, t: 14, b: 28 };
  const svg = el("svg", { role: "img", "aria-label": title, width, height, viewBox: `0 0 ${width} ${height}` });
  const top = Math.max(100, ...items.map((i) => Math.abs(i.value)));
  const slot = (width - pad.l - pad.r) / Math.max(items.length, 1);
  const mid = pad.t + (height - pad.t - pad.b) / 2;
  const half = (height - pad.t - pad.b) / 2;
  svg.append(el("line", { x1: pad.l, x2: width - pad.r, y1: mid, y2: mid, stroke: "#888" }));
  items.forEach((item, i) => {
    const h = Math.round((half * Math.abs(item.value)) / top);
    const x = pad.l + i * slot + slot * 0.15;
    const bar = el("rect", {
      x,
      y: item.value >= 0 ? mid - h : mid,
      width: Math.max(slot * 0.7, 1),
      height: Math.max(h, item.value ? 1 : 0),
      fill: item.value < 0 ? "#b71c1c" : "#2e7d32",
      "data-value": item.value,
    });
    bar.append(el("title", {}, `${item.label}: ${format(item.value)}`));
    svg.append(bar);
    if (i % 5 === 0 || i === items.length - 1) {
      svg.append(el("text", { x: x + slot * 0.35, y: height - 10, "font-size": 10, "text-anchor": "middle" }, item.label));
    }
  });
  return figure(title, svg, id);
}
