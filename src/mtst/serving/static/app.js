// mtst playground: calls /v1/similarity and /v1/predict of the server that served this page.
// Text from the model is only ever inserted with textContent, never as HTML.
"use strict";

const $ = (id) => document.getElementById(id);
let modelInfo = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("api-key").value.trim();
  if (key) h["Authorization"] = "Bearer " + key;
  return h;
}

async function call(method, path, body) {
  const response = await fetch(path, { method, headers: headers(), body: body ? JSON.stringify(body) : undefined });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (data.error && data.error.message) || response.statusText;
    throw new Error(`${response.status}: ${message}`);
  }
  return data;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function heatColor(value) {
  // -1..1 -> light blue .. white .. strong orange-red
  const v = Math.max(-1, Math.min(1, value));
  if (v >= 0) return `hsl(${30 - 25 * v}, 90%, ${97 - 45 * v}%)`;
  return `hsl(210, 80%, ${97 + 25 * v}%)`;
}

function renderHeatmap(sentences, matrix) {
  const table = el("table", "heat");
  const head = el("tr");
  head.appendChild(el("th", "", ""));
  sentences.forEach((s, j) => { const th = el("th", "", `#${j + 1}`); th.title = s; head.appendChild(th); });
  table.appendChild(head);
  matrix.forEach((row, i) => {
    const tr = el("tr");
    const th = el("th", "rowhead", `#${i + 1} ${sentences[i]}`);
    th.title = sentences[i];
    tr.appendChild(th);
    row.forEach((value) => {
      const td = el("td", "", value.toFixed(2));
      td.style.background = heatColor(value);
      tr.appendChild(td);
    });
    table.appendChild(tr);
  });
  $("heatmap").replaceChildren(table);
}

function highlighted(text, entities) {
  // Entity offsets count Unicode code points (Python str indices); JS strings count UTF-16 units.
  const chars = Array.from(text);
  const container = el("div", "text");
  let at = 0;
  [...entities].sort((a, b) => a.start - b.start).forEach((entity) => {
    if (entity.start < at) return; // overlapping spans cannot be marked twice
    container.appendChild(document.createTextNode(chars.slice(at, entity.start).join("")));
    const mark = el("mark", "entity", chars.slice(entity.start, entity.end).join(""));
    mark.dataset.label = entity.label;
    mark.title = `${entity.label} ${(entity.score * 100).toFixed(0)}%`;
    mark.appendChild(el("span", "tag", entity.label));
    container.appendChild(mark);
    at = entity.end;
  });
  container.appendChild(document.createTextNode(chars.slice(at).join("")));
  return container;
}

function renderPredictions(predictions) {
  const cards = predictions.map((row, i) => {
    const card = el("div", "card prediction");
    let entities = [];
    const labels = el("div", "labels");
    for (const [task, value] of Object.entries(row)) {
      if (task === "text" || task === "embedding") continue;
      if (Array.isArray(value)) { entities = entities.concat(value); continue; }
      const chip = el("span", "chip");
      chip.dataset.task = task;
      chip.appendChild(el("span", "", `${task}: `));
      chip.appendChild(el("b", "label", value.label));
      chip.appendChild(el("span", "", ` ${(value.score * 100).toFixed(1)}%`));
      labels.appendChild(chip);
    }
    const text = highlighted(row.text, entities);
    text.prepend(el("span", "muted", `#${i + 1} `));
    card.appendChild(text);
    card.appendChild(labels);
    return card;
  });
  $("predictions").replaceChildren(...cards);
}

async function analyse(event) {
  event.preventDefault();
  const sentences = $("sentences").value.split("\n").map((s) => s.trim()).filter((s) => s.length > 0);
  if (sentences.length === 0) return;
  $("error").hidden = true;
  $("run").disabled = true;
  $("status").textContent = "running…";
  const started = performance.now();
  try {
    const hasTasks = modelInfo && Object.keys(modelInfo.tasks).length > 0;
    const [sim, pred] = await Promise.all([
      call("POST", "/v1/similarity", { sentences }),
      hasTasks ? call("POST", "/v1/predict", { sentences }) : Promise.resolve({ predictions: sentences.map((text) => ({ text })) }),
    ]);
    renderHeatmap(sentences, sim.similarity);
    renderPredictions(pred.predictions);
    $("status").textContent = `done in ${(performance.now() - started).toFixed(0)} ms`;
    document.body.dataset.state = "done";
  } catch (err) {
    $("error").textContent = err.message;
    $("error").hidden = false;
    $("status").textContent = "";
  } finally {
    $("run").disabled = false;
  }
}

async function loadModel() {
  try {
    modelInfo = await call("GET", "/v1/model");
    const tasks = Object.entries(modelInfo.tasks).map(([name, t]) => `${name} (${t.labels.length} labels)`);
    const trained = modelInfo.trained ? "" : " — heads UNTRAINED (random), embeddings are real";
    $("model-info").textContent =
      `${modelInfo.id}: ${modelInfo.dimension}-d embeddings, tasks: ${tasks.join(", ") || "none"}${trained}`;
  } catch (err) {
    $("model-info").textContent = `model information unavailable (${err.message}); enter the API key and retry`;
  }
}

$("form").addEventListener("submit", analyse);
$("api-key").addEventListener("change", loadModel);
loadModel();
