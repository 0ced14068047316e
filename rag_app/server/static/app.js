// The chat page: streams /v1/query answers (Server-Sent Events over fetch), shows [n]
// citations that open the cited chunk with the quoted sentences highlighted, and lists,
// uploads and deletes documents. No framework, no build step, nothing from the network.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = sessionStorage.getItem("rag-api-key") || "";
keyInput.addEventListener("change", () => {
  sessionStorage.setItem("rag-api-key", keyInput.value);
  refresh();
});

function headers(extra = {}) {
  const key = keyInput.value.trim();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function failure(response) {
  try {
    const body = await response.json();
    return body.error ? body.error.message : JSON.stringify(body);
  } catch {
    return `HTTP ${response.status}`;
  }
}

async function health() {
  const response = await fetch("/v1/health");
  if (!response.ok) {
    $("status").textContent = `store unavailable: ${await failure(response)}`;
    return;
  }
  const h = await response.json();
  $("status").textContent =
    `${h.store} · ${h.collection} · ${h.documents} documents · ` +
    `embeddings ${h.embed_model} · answers ${h.answer_mode} · ${h.retriever} retrieval`;
}

async function listDocuments() {
  const response = await fetch("/v1/documents", { headers: headers() });
  const list = $("documents");
  list.replaceChildren();
  if (!response.ok) {
    $("upload-result").textContent = await failure(response);
    return;
  }
  for (const doc of await response.json()) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = `${doc.doc_id} (${doc.chunks})`;
    const remove = document.createElement("button");
    remove.textContent = "delete";
    remove.title = `delete ${doc.doc_id}`;
    remove.addEventListener("click", () => deleteDocument(doc.doc_id));
    item.append(name, remove);
    list.append(item);
  }
}

async function deleteDocument(docId) {
  if (!confirm(`Delete ${docId}?`)) return;
  const path = docId.split("/").map(encodeURIComponent).join("/");
  const response = await fetch(`/v1/documents/${path}`, { method: "DELETE", headers: headers() });
  $("upload-result").textContent = response.ok ? `deleted ${docId}` : await failure(response);
  refresh();
}

$("upload").addEventListener("submit", async (event) => {
  event.preventDefault();
  const files = $("files").files;
  if (!files.length) return;
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  $("upload-result").textContent = "uploading…";
  const response = await fetch("/v1/documents", { method: "POST", headers: headers(), body: form });
  if (!response.ok) {
    $("upload-result").textContent = await failure(response);
    return;
  }
  const r = await response.json();
  const skipped = r.skipped.map((s) => `${s.path}: ${s.reason}`).join("; ");
  $("upload-result").textContent =
    `${r.added.length} added, ${r.replaced.length} replaced, ${r.unchanged.length} unchanged` +
    (skipped ? `; skipped ${skipped}` : "");
  $("files").value = "";
  refresh();
});

function escapeRegExp(text) {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

// The answer's sentences citing this source (`sentence [n]`), as found in the chunk text
// (line breaks there may be spaces in the answer).
function quotedRanges(answer, number, text) {
  const ranges = [];
  for (const match of answer.matchAll(/([^\[\]]+?)\s*\[(\d+)\]/g)) {
    const sentence = match[1].trim();
    if (Number(match[2]) !== number || sentence.length < 4) continue;
    const pattern = escapeRegExp(sentence).replace(/\s+/g, "\\s+");
    const found = new RegExp(pattern).exec(text);
    if (found) ranges.push([found.index, found.index + found[0].length]);
  }
  return ranges.sort((a, b) => a[0] - b[0]);
}

function showChunk(source, answer) {
  $("chunk").hidden = false;
  $("chunk-title").textContent = `[${source.number}] ${source.doc_id}`;
  const relevance = source.relevance == null ? "" : `, relevance ${source.relevance.toFixed(2)}`;
  $("chunk-range").textContent =
    `characters ${source.start_char}–${source.end_char}, score ${source.score.toFixed(3)}${relevance}`;
  const box = $("chunk-text");
  box.replaceChildren();
  let at = 0;
  for (const [start, end] of quotedRanges(answer.text, source.number, source.text)) {
    if (start < at) continue;
    box.append(source.text.slice(at, start));
    const mark = document.createElement("mark");
    mark.textContent = source.text.slice(start, end);
    box.append(mark);
    at = end;
  }
  box.append(source.text.slice(at));
  const first = box.querySelector("mark");
  if (first) first.scrollIntoView({ block: "nearest" });
}

// Answer text with each [n] turned into a button opening source n.
function renderAnswer(element, answer) {
  element.replaceChildren();
  const byNumber = new Map(answer.sources.map((s) => [s.number, s]));
  let at = 0;
  for (const match of answer.text.matchAll(/\[(\d+)\]/g)) {
    element.append(answer.text.slice(at, match.index));
    const source = byNumber.get(Number(match[1]));
    if (source) {
      const button = document.createElement("button");
      button.className = "cite";
      button.textContent = match[0];
      button.title = source.doc_id;
      button.addEventListener("click", () => showChunk(source, answer));
      element.append(button);
    } else {
      element.append(match[0]);
    }
    at = match.index + match[0].length;
  }
  element.append(answer.text.slice(at));
}

function renderSources(list, answer) {
  list.replaceChildren();
  for (const source of answer.sources) {
    const item = document.createElement("li");
    const link = document.createElement("a");
    link.href = "#";
    link.textContent = `[${source.number}] ${source.doc_id}`;
    link.addEventListener("click", (event) => {
      event.preventDefault();
      showChunk(source, answer);
    });
    item.append(link);
    list.append(item);
  }
}

async function* events(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const name = (block.match(/^event: (.*)$/m) || [])[1];
      const data = (block.match(/^data: (.*)$/m) || [])[1];
      if (name && data) yield [name, JSON.parse(data)];
    }
  }
}

$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    $("ask").requestSubmit();
  }
});

$("ask").addEventListener("submit", async (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question) return;
  const turn = document.createElement("div");
  turn.className = "turn";
  const asked = document.createElement("div");
  asked.className = "question";
  asked.textContent = question;
  const answerBox = document.createElement("div");
  answerBox.className = "answer";
  const mode = document.createElement("div");
  mode.className = "mode";
  const sources = document.createElement("ol");
  sources.className = "sources";
  turn.append(asked, answerBox, mode, sources);
  $("log").append(turn);
  $("send").disabled = true;
  try {
    const response = await fetch("/v1/query", {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ question, stream: true }),
    });
    if (!response.ok) throw new Error(await failure(response));
    let answer = null;
    for await (const [name, data] of events(response)) {
      if (name === "sources") {
        answer = data;
        mode.textContent = `answer: ${data.mode}`;
      } else if (name === "delta") {
        answer.text += data.text;
        answerBox.textContent = answer.text;
      } else if (name === "done") {
        answer = data;
        renderAnswer(answerBox, answer);
        renderSources(sources, answer);
      } else if (name === "error") {
        throw new Error(data.error.message);
      }
    }
    turn.dataset.done = "true";
  } catch (error) {
    answerBox.classList.add("error");
    answerBox.textContent = `error: ${error.message}`;
  } finally {
    $("send").disabled = false;
    $("log").scrollTop = $("log").scrollHeight;
  }
  $("question").value = "";
});

function refresh() {
  health();
  listDocuments();
}

refresh();
