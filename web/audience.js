// The audience page: live ballots, voting, suggestions, listening.
import {
  $, el, setText, setAttr, connect, makeAnnouncer, prettyStyle, renderMix, fmtClock, plural,
  safeGet, safeSet, streamPlayer, mediaSession,
} from "./common.js";

const announce = makeAnnouncer($("#announcer"));
const labels = new Map(); // style id -> label, remembered across ballots
let state = null; // the latest state object
let connected = false;
let lostAt = 0; // performance.now() when the connection dropped (0: connected)
let lostAnnounced = false;
const deadlines = { dir: 0, moves: 0 }; // performance.now() when each round closes
const spans = { dir: [null, 1], moves: [null, 1] }; // [round id, estimated round length in seconds]
const pending = []; // requests awaiting ack/error, oldest first
let hinted = false; // said once that a vote can be changed

const loadJSON = (key, dflt) => {
  try {
    return JSON.parse(safeGet(key)) ?? dflt;
  } catch {
    return dflt;
  }
};
// my choice per ballot: {round, option, pending}
const mine = loadJSON("concert_mine", { dir: null, moves: null });
const upvoted = new Set(loadJSON("concert_upvoted", []).map(String));
const saveMine = () => safeSet("concert_mine", JSON.stringify({ dir: mine.dir, moves: mine.moves }));
const saveUpvoted = () => safeSet("concert_upvoted", JSON.stringify([...upvoted].slice(-200)));

const announceResults = $("#announce-results");
announceResults.checked = safeGet("concert_announce_results") !== "0";
announceResults.addEventListener("change", () =>
  safeSet("concert_announce_results", announceResults.checked ? "1" : "0"));

// ---------- connection ----------

const conn = connect({
  onStatus(s) {
    const box = $("#conn");
    if (s === "open") {
      connected = true;
      box.dataset.state = "open";
      setText($("#conn-text"), "Live");
      if (lostAnnounced) announce("Reconnected.");
      lostAt = 0;
      lostAnnounced = false;
      return;
    }
    if (!lostAt && state) lostAt = performance.now(); // only a drop after we were live counts
    connected = false;
    for (const p of pending.splice(0)) {
      // replies to these will never come on the new connection
      if (p.kind === "vote" && p.entry) p.entry.pending = false;
      if (p.kind === "suggest") setSending(false);
    }
    box.dataset.state = s === "connecting" && !state ? "connecting" : "retrying";
    setText($("#conn-text"), state ? "Reconnecting…" : "Connecting…");
    renderVoteButtons();
  },
  onMessage(msg) {
    switch (msg.type) {
      case "hello":
        if (msg.state) onState(msg.state, true);
        break;
      case "state":
        onState(msg, false);
        break;
      case "ack":
        onAck(msg);
        break;
      case "error":
        onError(msg);
        break;
      default:
        break;
    }
  },
});

setInterval(() => {
  // say it once if the connection stays down, not on every blip
  if (lostAt && !lostAnnounced && performance.now() - lostAt > 4000) {
    lostAnnounced = true;
    announce("Connection lost. Reconnecting…");
  }
}, 1000);

function take(pred) {
  const i = pending.findIndex(pred);
  return i < 0 ? null : pending.splice(i, 1)[0];
}

function ballotOf(round) {
  if (!state) return null;
  if (state.moves && round === state.moves.round) return "moves";
  if (round === state.round) return "dir";
  return null;
}

function optionLabel(key, id) {
  const opts = key === "moves" ? state?.moves?.options : state?.options;
  const o = (opts ?? []).find((x) => x.id === id);
  return o ? o.label : prettyStyle(id, labels);
}

// ---------- acks and errors ----------

function onAck(msg) {
  if (typeof msg.round === "number" && typeof msg.option === "string") {
    const p = take((x) => x.kind === "vote" && x.round === msg.round && x.option === msg.option);
    const key = p ? p.key : ballotOf(msg.round);
    if (!key) return;
    const cur = mine[key];
    if (cur && cur.round === msg.round && cur.option === msg.option) cur.pending = false;
    else if (!cur || cur.round < msg.round) mine[key] = { round: msg.round, option: msg.option, pending: false };
    // (same round, other option: a later tap is still on its way and its ack will follow)
    saveMine();
    renderVoteButtons();
    const label = p ? p.label : optionLabel(key, msg.option);
    if (key === "moves") announce(`Move vote counted: ${label}.`);
    else {
      announce(`Vote counted: ${label}.${hinted ? "" : " You can change it until the round closes."}`);
      hinted = true;
    }
    return;
  }
  if (msg.suggestion && typeof msg.suggestion === "object") {
    const sid = String(msg.suggestion.id);
    let p = take((x) => x.kind === "upvote" && x.id === sid);
    if (p) announce(`Upvoted “${p.text}”.`);
    else p = take((x) => x.kind === "suggest");
    if (p && p.kind === "suggest") {
      const input = $("#suggest-input");
      input.value = "";
      updateCount();
      clearSuggestError();
      setSending(false);
      const read = msg.suggestion.understood ? ` Understood as ${msg.suggestion.understood}.` : "";
      announce(`Thanks! Your suggestion “${msg.suggestion.text ?? p.text}” is in the list.${read}`);
    } else if (!p) {
      p = take((x) => x.kind === "upvote");
      if (p) announce(`Upvoted “${p.text}”.`);
    }
    if (state) renderSuggestions(mergeSuggestion(state.suggestions, msg.suggestion));
    return;
  }
  const p = take((x) => x.kind === "upvote" || x.kind === "ping");
  if (p && p.kind === "upvote") announce(`Upvoted “${p.text}”.`);
}

const VOTE_CODES = new Set(["wrong_round", "unknown_option", "voting_paused"]);

function onError(msg) {
  const code = String(msg.code ?? "");
  const text = typeof msg.message === "string" && msg.message ? msg.message : `Error: ${code || "unknown"}`;
  let p = null;
  if (VOTE_CODES.has(code)) p = take((x) => x.kind === "vote");
  else if (code === "refused") p = take((x) => x.kind === "suggest");
  else if (code === "unknown_suggestion") p = take((x) => x.kind === "upvote");
  else if (code === "unknown_type") p = take((x) => x.kind === "ping");
  if (!p) p = take((x) => x.kind !== "ping");
  if (p && p.kind === "ping") return; // a server without ping support: harmless
  if (p && p.kind === "vote") {
    const cur = mine[p.key];
    if (cur && cur.round === p.round && cur.option === p.option) {
      mine[p.key] = p.prev && p.prev.round === p.round ? { ...p.prev, pending: false } : null;
      saveMine();
    }
    renderVoteButtons();
    announce(`Vote not counted: ${text}`);
    return;
  }
  if (p && p.kind === "suggest") {
    setSending(false);
    showSuggestError(text);
    announce(`Suggestion not accepted: ${text}`);
    return;
  }
  if (p && p.kind === "upvote") {
    upvoted.delete(p.id);
    saveUpvoted();
    if (state) renderSuggestions(state.suggestions);
    announce(`Upvote not counted: ${text}`);
    return;
  }
  announce(text);
}

// ---------- state ----------

function onState(s, first) {
  const prev = state;
  state = s;
  for (const o of s.options ?? []) if (o.kind === "style") labels.set(o.id, o.label);
  const now = performance.now();
  if (typeof s.closes_in === "number") {
    deadlines.dir = now + s.closes_in * 1000;
    estimateSpan("dir", s.round, s.closes_in, s);
  }
  if (s.moves && typeof s.moves.closes_in === "number") {
    deadlines.moves = now + s.moves.closes_in * 1000;
    estimateSpan("moves", s.moves.round, s.moves.closes_in, s);
  }

  renderNow(s);
  renderBallot($("#dir-ballot"), "dir", s.round, s.options, s.tallies, s.votes);
  if (s.moves) renderBallot($("#moves-ballot"), "moves", s.moves.round, s.moves.options, s.moves.tallies, s.moves.votes);
  setText($("#dir-total"), `${plural(s.votes ?? 0, "vote", "votes")} this round`);
  setText($("#moves-total"), `${plural(s.moves?.votes ?? 0, "vote", "votes")} this round`);
  renderVoteButtons();
  renderPaused(s, prev, first);
  renderNotice(s, prev);
  renderMode(s, prev, first);
  renderResult(s, prev, first);
  renderSuggestions(s.suggestions);
  const n = s.clients ?? 0;
  setText($("#clients"), n ? `${plural(n, "person", "people")} connected` : "");
  tick();
}

function renderNow(s) {
  const np = s.now_playing ?? {};
  const genre = prettyStyle(np.genre, labels) || "—";
  setText($("#np-genre"), genre);
  setText($("#np-bpm"), np.bpm ? `${Math.round(np.bpm)} BPM` : "");
  setText($("#np-section"), np.section ? np.section[0].toUpperCase() + np.section.slice(1) : "");
  setText($("#np-bar"), typeof s.bar === "number" ? `Bar ${s.bar}` : "");
  const meter = $("#np-energy");
  const energy = typeof np.energy === "number" ? np.energy : 0;
  if (Number(meter.value) !== energy) meter.value = energy;
  setText(meter, `${Math.round(energy * 100)}%`);
  renderMix($("#np-mix"), $("#mixbar"), np.mix ?? s.prompt ?? [], labels);
  mediaSession(np, labels);
}

// ---------- ballots ----------

const ballots = { dir: new Map(), moves: new Map() }; // option id -> {li, btn, ...parts}

function renderBallot(list, key, round, options, tallies, votes) {
  list.dataset.round = String(round);
  const rows = ballots[key];
  const ids = (options ?? []).map((o) => o.id);
  const total = votes || Object.values(tallies ?? {}).reduce((a, b) => a + b, 0);
  let lead = -1;
  for (const id of ids) lead = Math.max(lead, tallies?.[id] ?? 0);
  for (const [id, row] of rows) {
    if (!ids.includes(id)) {
      row.li.remove();
      rows.delete(id);
    }
  }
  (options ?? []).forEach((o, idx) => {
    let row = rows.get(o.id);
    if (!row) {
      row = makeOption(key, o.id);
      rows.set(o.id, row);
    }
    const count = tallies?.[o.id] ?? 0;
    const pct = total ? Math.round((count * 100) / total) : 0;
    if (row.labelText.data !== o.label) row.labelText.data = o.label;
    setText(row.tag, o.kind === "suggestion" ? "crowd idea" : "");
    row.tag.hidden = !row.tag.textContent;
    setText(row.count, `${count} · ${pct}%`);
    setText(row.sr, `, ${plural(count, "vote", "votes")}, ${pct} percent${o.kind === "suggestion" ? ", crowd suggestion" : ""}`);
    row.fill.style.width = `${pct}%`;
    row.btn.dataset.count = String(count);
    row.btn.classList.toggle("lead", count > 0 && count === lead);
    // keep server order; move nodes only when needed (and keep focus)
    if (list.children[idx] !== row.li) {
      const hadFocus = row.li.contains(document.activeElement);
      list.insertBefore(row.li, list.children[idx] ?? null);
      if (hadFocus) row.btn.focus({ preventScroll: true });
    }
  });
}

function makeOption(key, id) {
  const labelText = document.createTextNode("");
  const label = el("span", { class: "opt-label" }, labelText);
  const tag = el("span", { class: "opt-tag", "aria-hidden": "true" });
  const minetag = el("span", { class: "opt-mine", "aria-hidden": "true" }, "✓ your vote");
  const count = el("span", { class: "opt-count", "aria-hidden": "true" });
  const sr = el("span", { class: "sr-only" });
  const fill = el("span", { class: "fill" });
  const btn = el("button", { type: "button", class: "opt", "aria-pressed": "false", "data-id": id },
    el("span", { class: "opt-top" }, label, tag, minetag, count), sr,
    el("span", { class: "opt-bar", "aria-hidden": "true" }, fill));
  btn.addEventListener("click", () => vote(key, id));
  const li = el("li", {}, btn);
  return { li, btn, labelText, tag, count, sr, fill };
}

function renderVoteButtons() {
  if (!state) return;
  const paused = state.voting === "paused";
  for (const key of ["dir", "moves"]) {
    const round = key === "dir" ? state.round : state.moves?.round;
    const m = mine[key];
    for (const [id, row] of ballots[key]) {
      const chosen = !!m && m.round === round && m.option === id;
      setAttr(row.btn, "aria-pressed", chosen ? "true" : "false");
      row.btn.classList.toggle("pending", chosen && !!m.pending);
      if (paused) row.btn.setAttribute("aria-disabled", "true");
      else row.btn.removeAttribute("aria-disabled");
    }
  }
}

function vote(key, id) {
  if (!state) return;
  const round = key === "dir" ? state.round : state.moves?.round;
  const label = optionLabel(key, id);
  if (state.voting === "paused") {
    announce("Voting is paused by the DJ. Your vote was not sent.");
    return;
  }
  const cur = mine[key];
  if (cur && cur.round === round && cur.option === id && !cur.pending) {
    announce(`You already voted for ${label}. Pick another option to change your vote.`);
    return;
  }
  if (!connected) {
    announce("Not connected right now. Try again in a moment.");
    return;
  }
  const prev = cur && cur.round === round ? { ...cur } : null;
  const entry = { round, option: id, pending: true };
  if (!conn.send({ type: "vote", round, option: id })) {
    announce("Not connected right now. Try again in a moment.");
    return;
  }
  mine[key] = entry;
  pending.push({ kind: "vote", key, round, option: id, label, prev, entry });
  saveMine();
  renderVoteButtons();
}

function renderNotice(s, prev) {
  const box = $("#notice");
  box.hidden = !s.notice;
  setText(box, s.notice ?? "");
  if (s.notice && (!prev || prev.notice !== s.notice)) announce(s.notice);
}

function renderPaused(s, prev, first) {
  const paused = s.voting === "paused";
  $("#paused").hidden = !paused;
  document.body.classList.toggle("voting-paused", paused);
  if (!first && prev && prev.voting !== s.voting) {
    announce(paused ? "Voting is paused by the DJ." : "Voting is open again.");
  }
}

const MODES = {
  democracy: "Most votes wins the next phrase.",
  blend: "The mix follows the vote shares: every vote counts.",
  anarchy: "Every vote nudges the music right away.",
};

function renderMode(s, prev, first) {
  const text = MODES[s.mode] ?? "";
  setText($("#mode-hint"), text);
  if (!first && prev && prev.mode !== s.mode && text) announce(`Mode changed to ${s.mode}: ${text}`);
}

function resultText(r, s) {
  const what = r.kind === "moves" ? `${r.label}` : `${r.label} won`;
  if (typeof r.lands_at_bar !== "number") return what;
  const left = typeof s.bar === "number" ? r.lands_at_bar - s.bar : null;
  if (left !== null && left <= 0) return `${what} — landed on bar ${r.lands_at_bar}`;
  return `${what} — lands on bar ${r.lands_at_bar}${left !== null ? ` (in ${plural(left, "bar", "bars")})` : ""}`;
}

const results = { direction: null, moves: null }; // the latest result of each kind

function renderResult(s, prev, first) {
  const r = s.last_result;
  const pr = prev?.last_result;
  const changed = !!r && (!pr || pr.round !== r.round || pr.kind !== r.kind || pr.winner !== r.winner);
  if (r) results[r.kind === "moves" ? "moves" : "direction"] = r;
  for (const [kind, boxId, textId] of [["direction", "#result-box", "#result"], ["moves", "#moves-result-box", "#moves-result"]]) {
    const res = results[kind];
    const box = $(boxId);
    box.hidden = !res;
    if (!res) continue;
    const m = kind === "moves" ? mine.moves : mine.dir;
    const yours = !!m && m.round === res.round && m.option === res.winner;
    setText($(textId), resultText(res, s) + (yours ? ". Your pick!" : ""));
    box.classList.toggle("yours", yours);
    if (first || !changed || res !== r) continue;
    box.classList.remove("flash");
    void box.offsetWidth; // restart the highlight animation
    box.classList.add("flash");
    const votedIn = !!m && m.round === res.round;
    if (announceResults.checked && (kind === "direction" || votedIn)) {
      const base = (kind === "moves" ? `Live moves: ${res.label}` : `${res.label} won`) +
        (typeof res.lands_at_bar === "number" ? `, lands on bar ${res.lands_at_bar}` : "");
      announce(`${base}.${yours ? " Your pick!" : ""}`);
    }
  }
}

// ---------- countdowns ----------

// Rounds close on phrase boundaries: the first time a round is seen, its length
// is the time left rounded up to whole phrases (exact when seen as it opens).
function estimateSpan(key, round, closesIn, s) {
  if (spans[key][0] === round) return;
  const bpm = s.now_playing?.bpm || 120;
  const phrase = ((s.round_bars || 8) * 4 * 60) / bpm;
  spans[key] = [round, Math.max(phrase, Math.ceil(closesIn / phrase - 0.05) * phrase)];
}

const srBucket = { dir: null, moves: null };

function tick() {
  if (!state) return;
  const now = performance.now();
  const paused = state.voting === "paused";
  for (const key of ["dir", "moves"]) {
    const roundSecs = spans[key][1];
    const left = Math.max(0, (deadlines[key] - now) / 1000);
    const frozen = paused;
    setText($(`#${key}-clock`), frozen ? "Paused" : fmtClock(left));
    const fill = $(`#${key}-timebar`);
    const w = frozen ? "0%" : `${Math.min(100, (left / roundSecs) * 100).toFixed(1)}%`;
    if (fill.style.width !== w) fill.style.width = w;
    // the screen-reader text changes rarely: in 10-second steps, then "closing"
    let bucket;
    if (frozen) bucket = "paused";
    else if (left < 5) bucket = "closing";
    else bucket = String(Math.round(left / 10) * 10 || 5);
    if (srBucket[key] !== bucket) {
      srBucket[key] = bucket;
      setText($(`#${key}-clock-sr`),
        bucket === "paused" ? "Voting paused" : bucket === "closing" ? "Closing now" : `Closes in about ${bucket} seconds`);
    }
  }
}
setInterval(tick, 250);

// ---------- suggestions ----------

const sugRows = new Map(); // suggestion id -> row

function mergeSuggestion(list, sug) {
  const out = (list ?? []).slice();
  if (!sug || sug.id === undefined) return out;
  const i = out.findIndex((x) => String(x.id) === String(sug.id));
  if (i >= 0) out[i] = { ...out[i], ...sug };
  else out.push(sug);
  if (state) state.suggestions = out;
  return out;
}

function renderSuggestions(list) {
  const ol = $("#suggestions");
  const items = (list ?? []).slice(0, 30);
  $("#sug-empty").hidden = items.length > 0;
  const ids = items.map((x) => String(x.id));
  for (const [id, row] of sugRows) {
    if (!ids.includes(id)) {
      row.li.remove();
      sugRows.delete(id);
    }
  }
  items.forEach((sg, idx) => {
    const id = String(sg.id);
    let row = sugRows.get(id);
    if (!row) {
      row = makeSuggestion(id);
      sugRows.set(id, row);
    }
    const n = sg.upvotes ?? 0;
    row.text = String(sg.text ?? "");
    setText(row.textEl, row.text);
    const read = sg.understood ? String(sg.understood) : "";
    setText(row.readEl, read ? `understood as ${read}` : "");
    row.readEl.hidden = !read;
    setText(row.count, String(n));
    setText(row.sr, `Upvote “${row.text}”${read ? `, understood as ${read}` : ""}, ${plural(n, "upvote", "upvotes")}`);
    setAttr(row.btn, "aria-pressed", upvoted.has(id) ? "true" : "false");
    row.btn.dataset.count = String(n);
    if (ol.children[idx] !== row.li) {
      const hadFocus = row.li.contains(document.activeElement);
      ol.insertBefore(row.li, ol.children[idx] ?? null);
      if (hadFocus) row.btn.focus({ preventScroll: true });
    }
  });
}

function makeSuggestion(id) {
  const textEl = el("span", { class: "sug-text" });
  const readEl = el("span", { class: "sug-read small", hidden: true });
  const count = el("span", { class: "sug-count" });
  const sr = el("span", { class: "sr-only" });
  const btn = el("button", { type: "button", class: "upvote", "aria-pressed": "false", "data-id": id },
    el("span", { "aria-hidden": "true", class: "sug-vis" }, el("span", { class: "arrow" }, "▲"), count), sr);
  const words = el("span", { class: "sug-words" }, textEl, readEl);
  const row = { li: el("li", {}, words, btn), textEl, readEl, count, sr, btn, text: "" };
  btn.addEventListener("click", () => upvote(id, row));
  return row;
}

function upvote(id, row) {
  if (upvoted.has(id)) {
    announce(`You already upvoted “${row.text}”.`);
    return;
  }
  if (!conn.send({ type: "upvote", suggestion: id })) {
    announce("Not connected right now. Try again in a moment.");
    return;
  }
  upvoted.add(id);
  saveUpvoted();
  pending.push({ kind: "upvote", id, text: row.text });
  setAttr(row.btn, "aria-pressed", "true");
}

const form = $("#suggest-form");
const input = $("#suggest-input");

function updateCount() {
  setText($("#suggest-count"), `${input.value.length}/80`);
}
input.addEventListener("input", () => {
  updateCount();
  if (!$("#suggest-error").hidden) clearSuggestError();
});

function showSuggestError(text) {
  const e = $("#suggest-error");
  e.textContent = text;
  e.hidden = false;
  input.setAttribute("aria-invalid", "true");
}

function clearSuggestError() {
  const e = $("#suggest-error");
  e.hidden = true;
  e.textContent = "";
  input.removeAttribute("aria-invalid");
}

let sendingTimer = null;
function setSending(on) {
  const b = $("#suggest-send");
  clearTimeout(sendingTimer);
  if (on) {
    b.setAttribute("aria-disabled", "true");
    sendingTimer = setTimeout(() => setSending(false), 8000); // never lock the form for good
  } else b.removeAttribute("aria-disabled");
}

form.addEventListener("submit", (ev) => {
  ev.preventDefault();
  if ($("#suggest-send").getAttribute("aria-disabled") === "true") return;
  const text = input.value.trim();
  if (!text) {
    showSuggestError("Type a style or mood first.");
    announce("Type a style or mood first.");
    input.focus();
    return;
  }
  if (!conn.send({ type: "suggest", text })) {
    showSuggestError("Not connected right now. Try again in a moment.");
    announce("Not connected right now. Try again in a moment.");
    return;
  }
  pending.push({ kind: "suggest", text });
  setSending(true);
});

// ---------- listening ----------

const audio = $("#audio");
const listenBtn = $("#listen-btn");
const LISTEN = {
  idle: ["▶", ""],
  connecting: ["■", "Connecting…"],
  playing: ["■", "Playing"],
  buffering: ["■", "Buffering…"],
  retrying: ["■", "Reconnecting…"],
  blocked: ["▶", "Tap again to play"],
};
const player = streamPlayer(audio, (s) => {
  const [icon, text] = LISTEN[s] ?? LISTEN.idle;
  setText($("#listen-icon"), icon);
  setText($("#listen-status"), text);
  setAttr(listenBtn, "aria-pressed", s === "idle" || s === "blocked" ? "false" : "true");
  if (s === "playing" || s === "blocked") announce(s === "playing" ? "Playing." : "Tap again to play.");
});
listenBtn.addEventListener("click", () => player.toggle());
