"use strict";
// The attention explorer. The page carries each head's scores (query·key / √d for the keys a
// query may see); the pattern is their softmax over the keys, computed here as the model does.
// Text from the corpus reaches the screen only through textContent and canvas fillText.

const NEG_INF = -Infinity;

function decodeScores(base64) {
  const binary = atob(base64);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

// scores[q] holds keys 0..=q; pattern[q] is their softmax, subtracting the row maximum first.
function headRows(base64, t) {
  const flat = decodeScores(base64);
  const scores = [], pattern = [];
  for (let q = 0, at = 0; q < t; at += q + 1, q++) {
    const row = flat.subarray(at, at + q + 1);
    const max = Math.max(...row);
    const exps = Array.from(row, (s) => Math.exp(s - max));
    const total = exps.reduce((a, b) => a + b, 0);
    scores.push(row);
    pattern.push(exps.map((e) => e / total));
  }
  return { scores, pattern };
}

// A perceptual colour scale (viridis), interpolated between five stops.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
function viridis(x) {
  const v = Math.min(1, Math.max(0, x)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(v)), f = v - i;
  const c = VIRIDIS[i].map((a, j) => Math.round(a + (VIRIDIS[i + 1][j] - a) * f));
  return "rgb(" + c.join(",") + ")";
}

function formatValue(view, v) {
  if (v === NEG_INF) return "−∞";
  return view === "pattern" ? v.toFixed(3) : view === "scores" ? v.toFixed(2) : "0";
}

function startExplorer(ex) {
  const t = ex.tokens.length;
  const heads = ex.heads.map((h) => Object.assign({ layer: h.layer, head: h.head }, headRows(h.scores, t)));
  const state = { index: 0, view: "pattern", query: t - 1, pinned: t - 1 };
  readHash();

  // The value a cell shows in the current view; future keys are masked.
  function value(h, q, k) {
    if (k > q) return state.view === "pattern" ? 0 : NEG_INF;
    if (state.view === "pattern") return h.pattern[q][k];
    if (state.view === "scores") return h.scores[q][k];
    return 0;
  }
  // Colour intensity in [0, 1]: the weight (relative to the row's largest when `relative`),
  // or the score relative to its row's range.
  function intensity(h, q, k, relative) {
    if (state.view === "pattern") return h.pattern[q][k] / (relative ? Math.max(...h.pattern[q]) : 1);
    if (state.view === "mask") return 0.15;
    const row = h.scores[q];
    const lo = Math.min(...row), hi = Math.max(...row);
    return hi > lo ? (row[k] - lo) / (hi - lo) : 1;
  }
  const label = (h) => "layer " + h.layer + " head " + h.head;
  const quoted = (i) => "'" + ex.tokens[i] + "' (" + i + ")";

  // Tokens.
  const strip = document.getElementById("tokens");
  const chips = ex.tokens.map((text, i) => {
    const chip = document.createElement("span");
    chip.className = "token";
    chip.dataset.index = String(i);
    chip.append(document.createTextNode(text), document.createElement("small"));
    chip.addEventListener("mouseenter", () => { state.query = i; render(); });
    chip.addEventListener("mouseleave", () => { state.query = state.pinned; render(); });
    chip.addEventListener("click", () => { state.pinned = state.query = i; render(); });
    strip.append(chip);
    return chip;
  });

  // Views.
  const buttons = Array.from(document.querySelectorAll(".views button"));
  for (const b of buttons) b.addEventListener("click", () => { state.view = b.dataset.view; render(); });

  // The layer × head grid of small patterns.
  const layers = [...new Set(heads.map((h) => h.layer))];
  const columns = Math.max(...layers.map((l) => heads.filter((h) => h.layer === l).length));
  const grid = document.getElementById("grid");
  grid.style.gridTemplateColumns = "auto repeat(" + columns + ", auto)";
  const cell = Math.max(1, Math.ceil(72 / t));
  const thumbs = [];
  for (const layer of layers) {
    const name = document.createElement("span");
    name.className = "label";
    name.textContent = "layer " + layer;
    grid.append(name);
    heads.forEach((h, index) => {
      if (h.layer !== layer) return;
      const c = document.createElement("canvas");
      c.className = "thumb";
      c.width = c.height = cell * t;
      c.title = label(h);
      c.dataset.layer = String(h.layer);
      c.dataset.head = String(h.head);
      c.addEventListener("click", () => { state.index = index; render(); });
      drawMatrix(c, h, cell, (q, k) => (k > q ? null : viridis(h.pattern[q][k])));
      grid.append(c);
      thumbs[index] = c;
    });
  }

  // The selected head, large.
  const matrix = document.getElementById("matrix");
  const big = Math.max(4, Math.min(24, Math.floor(480 / t)));
  // Token labels along both axes when the cells are big enough to read them.
  const margin = big >= 12 ? 36 : 0;
  matrix.width = matrix.height = margin + big * t;
  const readout = document.getElementById("readout");
  const cellAt = (e) => {
    const r = matrix.getBoundingClientRect();
    return [Math.floor((e.clientY - r.top - margin) / big), Math.floor((e.clientX - r.left - margin) / big)];
  };
  matrix.addEventListener("mousemove", (e) => {
    const [q, k] = cellAt(e);
    if (q < 0 || q >= t || k < 0 || k >= t) return;
    const h = heads[state.index];
    readout.textContent = "query " + quoted(q) + " · key " + quoted(k) + ": " +
      (k > q ? "masked (future)" : String(value(h, q, k)));
  });
  matrix.addEventListener("click", (e) => {
    const [q] = cellAt(e);
    if (q >= 0 && q < t) { state.pinned = state.query = q; render(); }
  });

  function render() {
    const h = heads[state.index];
    const q = state.query;
    document.getElementById("selected-head").textContent = label(h);
    document.getElementById("view-formula").textContent = {
      scores: "query·key / √" + ex.d_head + ", −∞ for future keys",
      mask: "0 where the query may look, −∞ for future keys",
      pattern: "softmax over keys of (scores + mask)",
    }[state.view];
    for (const b of buttons) b.classList.toggle("on", b.dataset.view === state.view);
    thumbs.forEach((c, i) => c && c.classList.toggle("selected", i === state.index));
    chips.forEach((chip, k) => {
      const v = value(h, q, k);
      const masked = k > q;
      chip.dataset.value = String(v);
      chip.classList.toggle("masked", masked);
      chip.classList.toggle("query", k === q);
      chip.lastChild.textContent = formatValue(state.view, v);
      chip.title = masked ? quoted(k) + ": masked, a future token" : quoted(q) + " → " + quoted(k) + ": " + v;
      const x = masked ? 0 : intensity(h, q, k, true);
      chip.style.background = masked ? "" : "rgba(59, 91, 219, " + x.toFixed(3) + ")";
      chip.style.color = x > 0.55 ? "#fff" : "";
    });
    readout.textContent = "query " + quoted(q) + " in " + label(h) + ": " + state.view;
    drawMatrix(matrix, h, big, (qq, k) => {
      if (k > qq) return null;
      const x = intensity(h, qq, k, false);
      return qq === q ? viridis(x) : shade(viridis(x));
    }, margin);
    if (margin) axisLabels(matrix, ex.tokens, big, margin, q);
    topTable(h);
    writeHash();
  }

  // Rows other than the selected query are drawn slightly faded, so the query's row stands out.
  function shade(rgb) {
    return rgb.replace("rgb(", "rgba(").replace(")", ",0.75)");
  }

  function topTable(h) {
    const table = document.getElementById("top");
    table.replaceChildren();
    const head = table.insertRow();
    for (const text of ["query", "most attended (" + label(h) + ")"]) {
      const th = document.createElement("th");
      th.textContent = text;
      head.append(th);
    }
    for (let q = 0; q < t; q++) {
      const row = table.insertRow();
      row.insertCell().textContent = quoted(q);
      const keys = h.pattern[q].map((w, k) => [w, k]).sort((a, b) => b[0] - a[0] || a[1] - b[1]).slice(0, 3);
      row.insertCell().textContent = keys.map(([w, k]) => quoted(k) + " " + w.toFixed(3)).join("   ");
    }
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.slice(1));
    const found = heads.findIndex((h) => String(h.layer) === p.get("layer") && String(h.head) === p.get("head"));
    if (found >= 0) state.index = found;
    if (["scores", "mask", "pattern"].includes(p.get("view"))) state.view = p.get("view");
    const q = Number(p.get("query"));
    if (p.has("query") && Number.isInteger(q) && q >= 0 && q < t) state.pinned = state.query = q;
  }
  function writeHash() {
    const h = heads[state.index];
    const hash = "#layer=" + h.layer + "&head=" + h.head + "&view=" + state.view + "&query=" + state.pinned;
    if (location.hash !== hash) history.replaceState(null, "", hash);
  }

  render();
}

// Draws a t × t matrix with `size`-pixel cells after a `margin`; colour(q, k) null marks a
// masked cell (striped).
function drawMatrix(canvas, h, size, colour, margin = 0) {
  const ctx = canvas.getContext("2d");
  const t = h.pattern.length;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  for (let q = 0; q < t; q++) {
    for (let k = 0; k < t; k++) {
      const c = colour(q, k);
      ctx.fillStyle = c === null ? ((q + k) % 2 ? "#e4e6ea" : "#f1f2f4") : c;
      ctx.fillRect(margin + k * size, margin + q * size, size, size);
    }
  }
}

// Keys across the top, queries down the left; the selected query's label in orange.
function axisLabels(canvas, tokens, size, margin, query) {
  const ctx = canvas.getContext("2d");
  ctx.font = Math.min(13, size - 2) + "px ui-monospace, monospace";
  ctx.textAlign = "center";
  ctx.textBaseline = "middle";
  tokens.forEach((text, i) => {
    const label = text.length > 3 ? text.slice(0, 3) + "…" : text;
    const middle = margin + i * size + size / 2;
    // Keys run up the top margin, so multi-character tokens do not overlap.
    ctx.save();
    ctx.translate(middle, margin - 3);
    ctx.rotate(-Math.PI / 2);
    ctx.textAlign = "left";
    ctx.fillStyle = "#6b7380";
    ctx.fillText(label, 0, 0);
    ctx.restore();
    ctx.textAlign = "right";
    ctx.fillStyle = i === query ? "#e8590c" : "#6b7380";
    ctx.fillText(label, margin - 3, middle);
  });
}
