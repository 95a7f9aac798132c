// tutti's live page: reads /v1/status once a second and /v1/events as they
// come, with the bearer token when the API asks for one.
"use strict";

const HISTORY_SECONDS = 120;
const $ = (id) => document.getElementById(id);
let labels = [];
let columns = [];          // [{seq, scores: {name: score}}], oldest first
let hop = 0.5;
let on = [];               // instruments ON, from /v1/status
let lastScores = null;
let token = localStorage.getItem("tutti-token") || "";

function headers() {
  return token ? { Authorization: "Bearer " + token } : {};
}

function setState(state, text) {
  $("state").dataset.state = state;
  $("state").textContent = text;
}

async function api(path) {
  const r = await fetch(path, { headers: headers(), cache: "no-store" });
  if (r.status === 401) {
    $("login").hidden = false;
    throw new Error("this tutti asks for its API token");
  }
  if (!r.ok) throw new Error((await r.json()).error || r.statusText);
  return r.json();
}

function drawTiles(reported) {
  const ul = $("tiles");
  if (ul.children.length !== labels.length) {
    ul.replaceChildren(...labels.map((name) => {
      const li = document.createElement("li");
      li.dataset.instrument = name;
      li.append(name, document.createElement("small"));
      return li;
    }));
  }
  for (const li of ul.children) {
    const name = li.dataset.instrument;
    li.dataset.on = on.includes(name) ? "true" : "false";
    li.dataset.reported = reported.includes(name) ? "true" : "false";
    const s = lastScores ? lastScores[name] : undefined;
    li.querySelector("small").textContent = typeof s === "number" ? s.toFixed(2) : "";
  }
}

function drawHeatmap() {
  const canvas = $("heatmap");
  const ctx = canvas.getContext("2d");
  const n = Math.max(1, Math.round(HISTORY_SECONDS / hop));
  const labelWidth = 90;
  const w = (canvas.width - labelWidth) / n;
  const h = canvas.height / Math.max(1, labels.length);
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.font = Math.min(14, h - 4) + "px system-ui, sans-serif";
  ctx.textBaseline = "middle";
  labels.forEach((name, row) => {
    ctx.fillStyle = "#ddd";
    ctx.fillText(name, 4, row * h + h / 2);
  });
  const shown = columns.slice(-n);
  shown.forEach((col, i) => {
    const x = labelWidth + (n - shown.length + i) * w;
    labels.forEach((name, row) => {
      const s = Math.max(0, Math.min(1, col.scores[name] || 0));
      ctx.fillStyle = `hsl(${50 - 50 * s}, 100%, ${8 + 55 * s}%)`;
      ctx.fillRect(x, row * h + 1, Math.ceil(w), h - 2);
    });
  });
}

function showStatus(s) {
  $("device").textContent = s.device_id;
  labels = s.model.labels;
  hop = s.hop_s || hop;
  on = s.on || [];
  $("broker").textContent = s.broker_connected === null ? "–" : (s.broker_connected ? "connected" : "unreachable");
  const level = s.level_dbfs;
  $("level").textContent = level === null ? "–" : level.toFixed(1);
  $("meter-bar").style.width = level === null ? "0" : Math.max(0, Math.min(100, (level + 60) / 60 * 100)) + "%";
  drawTiles(columns.length ? columns[columns.length - 1].instruments : []);
}

function onDetection(d) {
  columns.push({ seq: d.seq, scores: d.scores, instruments: d.instruments });
  const keep = Math.round(HISTORY_SECONDS / hop) + 1;
  if (columns.length > keep) columns.splice(0, columns.length - keep);
  lastScores = d.scores;
  $("seq").textContent = d.seq;
  $("tiles").dataset.seq = d.seq;
  drawTiles(d.instruments);
  drawHeatmap();
}

// Server-Sent Events read with fetch, so the token travels in a header.
async function stream() {
  for (;;) {
    try {
      const r = await fetch("/v1/events", { headers: headers(), cache: "no-store" });
      if (r.status === 401) { $("login").hidden = false; return; }
      if (!r.ok) { setState("error", (await r.json()).error); return; }
      setState("live", "live");
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const event = /^event: (.*)$/m.exec(block);
          const data = block.split("\n").filter((l) => l.startsWith("data:")).map((l) => l.slice(5).trimStart()).join("\n");
          if (event && event[1] === "detection" && data) onDetection(JSON.parse(data));
        }
      }
    } catch (e) {
      // fall through to the retry
    }
    setState("connecting", "reconnecting…");
    await new Promise((ok) => setTimeout(ok, 2000));
  }
}

async function poll() {
  for (;;) {
    try {
      showStatus(await api("/v1/status"));
    } catch (e) {
      setState("error", e.message);
    }
    await new Promise((ok) => setTimeout(ok, 1000));
  }
}

$("login").addEventListener("submit", (e) => {
  e.preventDefault();
  token = $("token").value.trim();
  localStorage.setItem("tutti-token", token);
  location.reload();
});

(async () => {
  try {
    const s = await api("/v1/status");
    showStatus(s);
    if (s.input === null) {
      setState("error", "no live input: this tutti only analyses posted clips");
      return;
    }
    // The timeline starts with the last two minutes.
    for (const d of await api("/v1/detections/recent")) onDetection(d);
    poll();
    stream();
  } catch (e) {
    setState("error", e.message);
  }
})();
