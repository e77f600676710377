"use strict";
// The run report: summary, interactive curves, the greedy sample and the attention explorer.
// All run text is set with textContent.

const SVG = "http://www.w3.org/2000/svg";

function startReport(data) {
  const r = data.report;
  const text = (id, value) => { document.getElementById(id).textContent = value; };
  const last = r.curves.step.length ? r.curves.step[r.curves.step.length - 1] : 0;
  text("run-name", r.run + " · " + r.state);
  text("subtitle", "step " + last + " · written by tinygpt report" +
    (r.reload_seconds ? " · watching: this page reloads every " + r.reload_seconds + " s" : ""));
  const notes = document.getElementById("notes");
  for (const note of r.notes) {
    const li = document.createElement("li");
    li.textContent = note;
    notes.append(li);
  }
  const summary = document.getElementById("summary");
  for (const [name, value] of r.summary) {
    const row = summary.insertRow();
    const th = document.createElement("th");
    th.textContent = name;
    row.append(th);
    row.insertCell().textContent = value;
  }
  text("config", r.config);
  text("params", r.params);

  const sample = document.getElementById("sample");
  if (r.sample) {
    const prompt = document.createElement("span");
    prompt.className = "prompt";
    prompt.textContent = r.sample.prompt;
    sample.append(prompt, document.createTextNode(r.sample.continuation));
  } else {
    sample.textContent = "(no weights yet)";
  }

  if (data.explorer) {
    startExplorer(data.explorer);
  } else {
    document.getElementById("explorer-slot").hidden = true;
    text("explorer-missing", "No weights yet: the explorer appears with the first checkpoint.");
  }

  curves(r.curves);
  if (r.reload_seconds) setTimeout(() => location.reload(), r.reload_seconds * 1000);
}

function curves(c) {
  const readout = document.getElementById("curve-readout");
  const pick = (ys) => c.step.map((s, i) => [s, ys[i]]).filter((p) => p[1] !== null);
  const loss = chart(document.getElementById("loss-chart"), [
    { id: "series-train", points: pick(c.train_loss), colour: "#3b5bdb", dots: false },
    { id: "series-val", points: pick(c.val_loss), colour: "#e8590c", dots: true },
  ], (v) => v.toFixed(2));
  const lr = chart(document.getElementById("lr-chart"), [
    { id: "series-lr", points: pick(c.lr), colour: "#2b8a3e", dots: false },
  ], (v) => v.toExponential(1));
  for (const [box, id] of [["show-train", "series-train"], ["show-val", "series-val"]]) {
    document.getElementById(box).addEventListener("change", (e) => {
      for (const el of document.querySelectorAll("." + id)) el.style.display = e.target.checked ? "" : "none";
    });
  }
  const fmt = (v, digits) => (v === null || v === undefined ? "–" : v.toFixed(digits));
  const show = (i) => {
    readout.textContent = "step " + c.step[i] +
      " · train " + fmt(c.train_loss[i], 4) +
      " · val " + fmt(c.val_loss[i], 4) + (c.val_bpb[i] !== null ? " (" + fmt(c.val_bpb[i], 3) + " bits/byte)" : "") +
      " · lr " + (c.lr[i] === null ? "–" : c.lr[i].toExponential(2)) +
      " · " + (c.tokens_per_sec[i] === null ? "–" : Math.round(c.tokens_per_sec[i]).toLocaleString("en-US")) + " tok/s";
  };
  for (const ch of [loss, lr]) {
    ch.svg.addEventListener("mousemove", (e) => {
      const i = ch.nearest(e, c.step);
      if (i < 0) return;
      loss.guide(c.step[i]);
      lr.guide(c.step[i]);
      show(i);
    });
  }
}

// A line chart of `series` (each [step, value] points) on shared step and value axes.
function chart(svg, series, tick) {
  const w = svg.width.baseVal.value, h = svg.height.baseVal.value;
  const m = { left: 56, right: 12, top: 10, bottom: 24 };
  const all = series.flatMap((s) => s.points);
  const el = (name, attrs, parent) => {
    const e = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    (parent || svg).append(e);
    return e;
  };
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs, 0), x1 = Math.max(...xs, 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (!all.length) { y0 = 0; y1 = 1; }
  if (y1 - y0 < 1e-12) { y0 -= 0.5 * Math.abs(y0 || 1); y1 += 0.5 * Math.abs(y1 || 1); }
  const X = (x) => m.left + ((x - x0) / (x1 - x0)) * (w - m.left - m.right);
  const Y = (y) => h - m.bottom - ((y - y0) / (y1 - y0)) * (h - m.top - m.bottom);
  el("line", { x1: m.left, y1: h - m.bottom, x2: w - m.right, y2: h - m.bottom, stroke: "#999" });
  el("line", { x1: m.left, y1: m.top, x2: m.left, y2: h - m.bottom, stroke: "#999" });
  for (let i = 0; i <= 4; i++) {
    const y = y0 + ((y1 - y0) * i) / 4, x = x0 + ((x1 - x0) * i) / 4;
    el("text", { x: 4, y: Y(y) + 4 }).textContent = tick(y);
    el("text", { x: X(x) - 10, y: h - 6 }).textContent = String(Math.round(x));
  }
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map((p, i) => (i ? "L" : "M") + X(p[0]).toFixed(1) + " " + Y(p[1]).toFixed(1)).join(" ");
    el("path", { d, fill: "none", stroke: s.colour, "stroke-width": 1.5, id: s.id, class: s.id });
    if (s.dots) {
      const g = el("g", { class: s.id });
      for (const p of s.points) el("circle", { cx: X(p[0]), cy: Y(p[1]), r: 2.5, fill: s.colour }, g);
    }
  }
  const guide = el("line", { y1: m.top, y2: h - m.bottom, stroke: "#888", "stroke-dasharray": "3 3", visibility: "hidden" });
  return {
    svg,
    guide(step) {
      guide.setAttribute("x1", X(step));
      guide.setAttribute("x2", X(step));
      guide.setAttribute("visibility", "visible");
    },
    nearest(e, steps) {
      if (!steps.length) return -1;
      const r = svg.getBoundingClientRect();
      const step = x0 + ((e.clientX - r.left - m.left) / (w - m.left - m.right)) * (x1 - x0);
      let best = 0;
      steps.forEach((s, i) => { if (Math.abs(s - step) < Math.abs(steps[best] - step)) best = i; });
      return best;
    },
  };
}
