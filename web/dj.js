// The DJ console: live state, crowd control and the prompt override.
import { $, el, setText, setAttr, connect, prettyStyle, mixText, fmtClock, plural, keyedList } from "./common.js";
import { initBooth, operatorName } from "./booth.js";
import { initSound } from "./sound.js";

// ---------- token ----------
// The token comes in the URL once; it moves to sessionStorage and out of the
// address bar so a projected console does not show it to the room.

const TOKEN_KEY = "concert_dj_token";
let token = null;
{
  const params = new URLSearchParams(location.search);
  const fromUrl = params.get("token");
  try {
    if (fromUrl) sessionStorage.setItem(TOKEN_KEY, fromUrl);
    token = fromUrl || sessionStorage.getItem(TOKEN_KEY);
  } catch {
    token = fromUrl;
  }
  if (fromUrl) {
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", location.pathname + (rest ? `?${rest}` : "") + location.hash);
  }
}

const authError = $("#auth-error");
function showAuthError(text) {
  authError.textContent = text;
  authError.hidden = false;
  document.body.classList.add("no-auth");
}
if (!token) {
  showAuthError("Not authorized: this console needs the DJ token. Open it as /dj?token=YOUR_TOKEN " +
    "(the token given to `concert serve --dj-token`). Live state is shown below; the controls need the token.");
}

async function api(path, body, method = "POST") {
  if (!token) {
    showAuthError("Not authorized: no DJ token. Open this page as /dj?token=YOUR_TOKEN.");
    return { ok: false, message: "no DJ token" };
  }
  let res;
  try {
    const headers = { "Authorization": `Bearer ${token}`, "X-Operator": encodeURIComponent(operatorName()) };
    if (method === "POST") headers["Content-Type"] = "application/json";
    res = await fetch(path, {
      method,
      headers,
      body: method === "POST" ? JSON.stringify(body ?? {}) : undefined,
      cache: "no-store",
    });
  } catch (e) {
    return { ok: false, message: `network error: ${e.message || e}` };
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    data = null;
  }
  const message = data && (data.message || data.detail || data.error);
  if (res.status === 401 || res.status === 403) {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* ignore */
    }
    showAuthError(`Not authorized (${res.status}): the DJ token was rejected${message ? ` — ${message}` : ""}. ` +
      "Open this page again as /dj?token=YOUR_TOKEN.");
    return { ok: false, status: res.status, message: message || "unauthorized" };
  }
  if (!res.ok) return { ok: false, status: res.status, message: message || `HTTP ${res.status}` };
  if (!authError.hidden && token) {
    authError.hidden = true;
    document.body.classList.remove("no-auth");
  }
  return { ok: true, data };
}

function say(node, text, kind) {
  node.dataset.kind = kind;
  node.textContent = "";
  setTimeout(() => { node.textContent = text; }, 30);
}

// ---------- live state ----------

let state = null;
const labels = new Map();
let deadline = 0;

connect({
  device: false,
  onStatus(s) {
    const box = $("#conn");
    box.dataset.state = s === "open" ? "open" : "retrying";
    setText($("#conn-text"), s === "open" ? "Live" : "Reconnecting…");
  },
  onMessage(msg) {
    if (msg.type === "hello" && msg.state) render({ ...msg.state, join_url: msg.join_url ?? msg.state.join_url });
    else if (msg.type === "state") render(msg);
  },
});

let knownJoinUrl = null; // the server's public URL (it may differ from the one this console uses)
function joinUrl(s) {
  if (s && typeof s.join_url === "string" && s.join_url) knownJoinUrl = s.join_url;
  return knownJoinUrl || `${location.origin}/`;
}

function render(s) {
  state = s;
  for (const o of s.options ?? []) if (o.kind === "style") labels.set(o.id, o.label);
  for (const p of s.prompt ?? []) if (p.style && !labels.has(p.style)) labels.set(p.style, null);
  if (typeof s.closes_in === "number") deadline = performance.now() + s.closes_in * 1000;

  const url = joinUrl(s);
  setText($("#join-url"), url.replace(/^https?:\/\//, "").replace(/\/$/, ""));
  setText($("#proj-url"), url.replace(/^https?:\/\//, "").replace(/\/$/, ""));
  setAttr($("#qr"), "alt", `QR code to join: ${url}`);
  setAttr($("#proj-qr"), "alt", `QR code to join: ${url}`);

  const np = s.now_playing ?? {};
  setText($("#s-genre"), prettyStyle(np.genre, labels) || "—");
  setText($("#s-bpm"), np.bpm ? String(Math.round(np.bpm * 10) / 10) : "—");
  setText($("#s-section"), np.section ?? "—");
  setText($("#s-energy"), typeof np.energy === "number" ? `${Math.round(np.energy * 100)}%` : "—");
  setText($("#s-bar"), typeof s.bar === "number" ? String(s.bar) : "—");
  setText($("#s-clients"), String(s.clients ?? "—"));
  setText($("#s-mode"), s.mode ?? "—");
  setText($("#s-voting"), s.voting ?? "—");
  setText($("#s-mix"), mixText(np.mix, labels) || "—");
  setText($("#s-prompt"), mixText(s.prompt, labels) || "—");
  const r = s.last_result;
  setText($("#s-result"), r
    ? `${r.kind === "moves" ? "Moves" : "Direction"} round ${r.round}: ${r.label} (${r.winner}), lands on bar ${r.lands_at_bar}`
    : "—");
  setText($("#proj-now"), `Now: ${prettyStyle(np.genre, labels) || "—"}${np.bpm ? ` · ${Math.round(np.bpm)} BPM` : ""}`);

  const paused = s.voting === "paused";
  setText($("#voting-btn"), paused ? "Resume voting" : "Pause voting");
  $("#voting-btn").classList.toggle("primary", paused);
  for (const radio of document.querySelectorAll('input[name="mode"]')) {
    if (document.activeElement !== radio) radio.checked = radio.value === s.mode;
  }

  setText($("#dj-round"), `${plural(s.votes ?? 0, "vote", "votes")}`);
  setText($("#dj-votes"), `Round ${s.round}`);
  renderOptions($("#dj-options"), optRows, s.options ?? [], s.tallies ?? {}, s.votes, true);
  if (s.moves) {
    setText($("#dj-moves-round"), plural(s.moves.votes ?? 0, "vote", "votes"));
    renderOptions($("#dj-moves"), moveRows, s.moves.options ?? [], s.moves.tallies ?? {}, s.moves.votes, false);
  }
  renderSuggestions(s.suggestions ?? []);
  updateStyleList(s);

  const raw = $("#raw");
  if (raw.closest("details").open) raw.textContent = JSON.stringify(s, null, 2);
  tick();
}
$("#raw").closest("details").addEventListener("toggle", () => state && render(state));

const optRows = new Map();
const moveRows = new Map();
const sugRows = new Map();

function renderOptions(list, rows, options, tallies, votes, vetoable) {
  const total = votes || Object.values(tallies).reduce((a, b) => a + b, 0);
  keyedList(list, rows, options, (o) => o.id,
    (id) => {
      const name = el("span", { class: "name" });
      const tag = el("span", { class: "tag" });
      const num = el("span", { class: "num" });
      const li = el("li", {}, name, num);
      const row = { li, name, tag, num, label: id };
      name.append(tag);
      if (vetoable && id !== "stay") {
        row.veto = el("button", { type: "button", class: "btn danger" }, "Veto");
        row.veto.addEventListener("click", () => veto(id, row.label));
        li.append(row.veto);
      }
      return row;
    },
    (row, o) => {
      row.label = o.label;
      const n = tallies[o.id] ?? 0;
      const pct = total ? Math.round((n * 100) / total) : 0;
      if (row.name.firstChild !== row.tag) setText(row.name.firstChild, o.label);
      else row.name.insertBefore(document.createTextNode(o.label), row.tag);
      setText(row.tag, o.kind && o.kind !== "style" ? o.kind : "");
      row.tag.hidden = !row.tag.textContent;
      setText(row.num, `${n} · ${pct}%`);
      if (row.veto) setAttr(row.veto, "aria-label", `Veto ${o.label}`);
    });
}

function renderSuggestions(list) {
  $("#dj-sug-empty").hidden = list.length > 0;
  keyedList($("#dj-suggestions"), sugRows, list, (sg) => sg.id,
    (id) => {
      const name = el("span", { class: "name" });
      const num = el("span", { class: "num" });
      const btn = el("button", { type: "button", class: "btn danger" }, "Veto");
      const row = { li: el("li", {}, name, num, btn), name, num, btn, text: "" };
      btn.addEventListener("click", () => veto(`s:${id}`, row.text));
      return row;
    },
    (row, sg) => {
      row.text = String(sg.text ?? "");
      setText(row.name, row.text);
      setText(row.num, `▲ ${sg.upvotes ?? 0}`);
      setAttr(row.btn, "aria-label", `Veto suggestion “${row.text}”`);
    });
}

function tick() {
  if (!state) return;
  const left = Math.max(0, (deadline - performance.now()) / 1000);
  setText($("#dj-clock"), state.voting === "paused" ? "Paused" : fmtClock(left));
}
setInterval(tick, 250);

// ---------- controls ----------

const ctlMsg = $("#ctl-msg");
let toastTimer = null;

function toast(text, kind) {
  clearTimeout(toastTimer);
  say(ctlMsg, text, kind);
  toastTimer = setTimeout(() => { ctlMsg.textContent = ""; }, kind === "err" ? 12000 : 6000);
}

const landing = (data) => (data && typeof data.lands_at_bar === "number" ? ` Lands on bar ${data.lands_at_bar}.` : "");

async function act(path, body, okText) {
  const r = await api(path, body);
  toast(r.ok ? okText + landing(r.data) : `Failed: ${r.message}`, r.ok ? "ok" : "err");
  return r;
}

$("#voting-btn").addEventListener("click", () => {
  const next = state && state.voting === "paused" ? "open" : "paused";
  act("/api/dj/voting", { voting: next }, next === "paused" ? "Voting paused: the crowd is locked." : "Voting open again.");
});
$("#skip-btn").addEventListener("click", () => act("/api/dj/skip", {}, "Round closed."));
for (const radio of document.querySelectorAll('input[name="mode"]')) {
  radio.addEventListener("change", () => {
    if (radio.checked) act("/api/dj/mode", { mode: radio.value }, `Mode: ${radio.value}.`);
  });
}
if (token) initBooth({ api, act, toast, labels });
initSound();

function veto(option, label) {
  act("/api/dj/veto", { option }, `Vetoed ${label || option}.`);
}

// ---------- prompt override ----------

const rowsBox = $("#prompt-rows");
let rowSeq = 0;

function addRow(style = "", weight = 1) {
  rowSeq += 1;
  const n = rowSeq;
  const styleIn = el("input", { type: "text", id: `p-style-${n}`, list: "style-list", required: true, spellcheck: "false" });
  styleIn.value = style;
  const weightIn = el("input", { type: "number", id: `p-weight-${n}`, min: "0", max: "1", step: "0.05", inputmode: "decimal", required: true });
  weightIn.value = String(weight);
  const row = el("div", { class: "prompt-row" },
    el("div", { class: "field" }, el("label", { for: `p-style-${n}` }, "Style"), styleIn),
    el("div", { class: "field" }, el("label", { for: `p-weight-${n}` }, "Weight"), weightIn));
  const remove = el("button", { type: "button", class: "btn" }, "Remove");
  const renumber = () => {
    [...rowsBox.children].forEach((r, i) => {
      const b = r.querySelector("button");
      if (b) b.setAttribute("aria-label", `Remove style ${i + 1}`);
      r.querySelectorAll("label")[0].textContent = `Style ${i + 1}`;
      r.querySelectorAll("label")[1].textContent = `Weight ${i + 1}`;
    });
  };
  remove.addEventListener("click", () => {
    if (rowsBox.children.length <= 1) return;
    row.remove();
    renumber();
    rowsBox.querySelector("input")?.focus();
  });
  row.append(remove);
  rowsBox.append(row);
  renumber();
  return styleIn;
}
addRow("", 1);

$("#add-row").addEventListener("click", () => addRow("", 0.5).focus());
$("#copy-current").addEventListener("click", () => {
  const mix = state?.prompt?.length ? state.prompt : state?.now_playing?.mix;
  if (!mix?.length) return;
  rowsBox.replaceChildren();
  for (const m of mix) addRow(m.style, Math.round(m.weight * 100) / 100);
  const np = state.now_playing ?? {};
  if (np.bpm) $("#p-bpm").value = String(Math.round(np.bpm));
  if (typeof np.energy === "number") $("#p-energy").value = String(Math.round(np.energy * 100) / 100);
  say($("#prompt-msg"), "Copied the current mix into the form.", "ok");
});

function updateStyleList(s) {
  const ids = new Set();
  for (const o of s.options ?? []) if (o.kind === "style") ids.add(o.id);
  for (const p of s.prompt ?? []) ids.add(p.style);
  for (const m of s.now_playing?.mix ?? []) ids.add(m.style);
  for (const k of labels.keys()) ids.add(k);
  const dl = $("#style-list");
  const have = new Set([...dl.children].map((o) => o.value));
  for (const id of ids) if (!have.has(id)) dl.append(el("option", { value: id }));
}

$("#prompt-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const msg = $("#prompt-msg");
  const prompt = [];
  for (const r of rowsBox.children) {
    const [styleIn, weightIn] = r.querySelectorAll("input");
    const style = styleIn.value.trim();
    const weight = Number(weightIn.value);
    if (!style) continue;
    if (!Number.isFinite(weight) || weight < 0) {
      say(msg, `Weight for “${style}” must be a number ≥ 0.`, "err");
      weightIn.focus();
      return;
    }
    prompt.push({ style, weight });
  }
  if (!prompt.length) {
    say(msg, "Add at least one style.", "err");
    rowsBox.querySelector("input")?.focus();
    return;
  }
  const body = { prompt };
  const bpm = $("#p-bpm").value.trim();
  const energy = $("#p-energy").value.trim();
  if (bpm) body.bpm = Number(bpm);
  if (energy) body.energy = Number(energy);
  const r = await api("/api/dj/prompt", body);
  say(msg, r.ok ? `Now playing: ${prompt.map((p) => `${p.style} ${p.weight}`).join(", ")}.${landing(r.data)}`
    : `Failed: ${r.message}`, r.ok ? "ok" : "err");
});

// a QR image that fails to load must not leave a blank square on the projector
for (const img of [$("#qr"), $("#proj-qr")]) {
  const broken = () => {
    if (img.hidden) return;
    img.hidden = true;
    img.after(el("p", { class: "error" }, "The QR code could not be loaded: share the address below."));
  };
  img.addEventListener("error", broken, { once: true });
  if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) broken(); // failed before this ran
}

// ---------- projector ----------

const projector = $("#projector");
let lastFocus = null;
function openProjector() {
  lastFocus = document.activeElement;
  projector.hidden = false;
  $("#proj-close").focus();
  if (projector.requestFullscreen) projector.requestFullscreen().catch(() => {});
}
function closeProjector() {
  projector.hidden = true;
  if (document.fullscreenElement) document.exitFullscreen().catch(() => {});
  if (lastFocus) lastFocus.focus();
}
$("#project-btn").addEventListener("click", openProjector);
$("#proj-close").addEventListener("click", closeProjector);
projector.addEventListener("keydown", (ev) => {
  if (ev.key === "Escape") closeProjector();
  if (ev.key === "Tab") {
    ev.preventDefault(); // the close button is the only control
    $("#proj-close").focus();
  }
});
document.addEventListener("fullscreenchange", () => {
  if (!document.fullscreenElement && !projector.hidden) closeProjector();
});
