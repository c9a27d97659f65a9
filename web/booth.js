// The booth's own controls on the console: who is at the desk, lock a style for some bars, build-and-drop,
// panic to the synth, the live blocklist, the log of what the booth did and the last hour's plot.
import { $, el, setText, safeGet, safeSet, keyedList, prettyStyle } from "./common.js";
import { drawHistory } from "./plot.js";

export const OPERATOR_KEY = "concert_dj_operator";
const POLL_MS = 5000; // how often the plot and the log refresh

export function operatorName() {
  return safeGet(OPERATOR_KEY) || "";
}

export function initBooth({ api, act, toast, labels }) {
  const op = $("#operator");
  op.value = operatorName();
  op.addEventListener("change", () => {
    safeSet(OPERATOR_KEY, op.value.trim().slice(0, 40));
    toast(op.value.trim() ? `Actions are logged as ${op.value.trim()}.` : "Actions are logged as “booth”.", "ok");
  });

  $("#lock-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const style = $("#lock-style").value.trim();
    const bars = Number($("#lock-bars").value);
    if (!style) return toast("Choose a style to lock.", "err");
    if (!Number.isInteger(bars) || bars < 1) return toast("Bars must be a whole number of at least 1.", "err");
    const r = await act("/api/dj/lock", { style, bars }, `Locked ${prettyStyle(style, labels) || style} for ${bars} bars.`);
    if (r.ok) refresh();
  });
  $("#unlock-btn").addEventListener("click", async () => {
    const r = await act("/api/dj/lock", { bars: 0 }, "Unlocked: the crowd steers again.");
    if (r.ok) refresh();
  });
  $("#drop-btn").addEventListener("click", async () => {
    const r = await api("/api/dj/drop", {});
    toast(r.ok ? `Build from bar ${r.data.build_at_bar}, drop on bar ${r.data.drop_at_bar}.` : `Failed: ${r.message}`,
      r.ok ? "ok" : "err");
    if (r.ok) refresh();
  });
  const panicBtn = $("#panic-btn");
  panicBtn.addEventListener("click", async () => {
    const on = panicBtn.getAttribute("aria-pressed") !== "true";
    const r = await act("/api/dj/panic", { on }, on ? "Panic: crossfading to the synth." : "Released: the model returns once it keeps up.");
    if (r.ok) setPanic(on, true);
  });
  $("#block-form").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const input = $("#block-word");
    const word = input.value.trim();
    if (!word) return toast("Type a word or phrase to block.", "err");
    const r = await act("/api/dj/blocklist", { add: [word] }, `Blocked “${word}”; matching suggestions left the board.`);
    if (r.ok) {
      input.value = "";
      renderBlocked(r.data.blocked);
      refresh();
    }
  });

  const blockRows = new Map();
  function renderBlocked(words) {
    setText($("#blocked-empty"), words.length ? "" : "Only the shipped list.");
    keyedList($("#blocked"), blockRows, words, (w) => w, (w) => {
      const b = el("button", { type: "button", class: "btn", "aria-label": `Unblock ${w}` }, "Unblock");
      b.addEventListener("click", async () => {
        const r = await act("/api/dj/blocklist", { remove: [w] }, `Unblocked “${w}”.`);
        if (r.ok) renderBlocked(r.data.blocked);
      });
      return { li: el("li", {}, el("span", { class: "name" }, w), b) };
    }, () => {});
  }

  function setPanic(on, available) {
    panicBtn.setAttribute("aria-pressed", on ? "true" : "false");
    panicBtn.classList.toggle("danger", !on);
    panicBtn.classList.toggle("primary", on);
    setText(panicBtn, on ? "Release panic" : "Panic: crossfade to the synth");
    panicBtn.disabled = !available;
    setText($("#panic-note"), available ? (on ? "The synth plays until you release it." : "")
      : "This set plays the synth itself: there is no other source to crossfade to.");
  }

  const logRows = new Map();
  function renderLog(actions) {
    const recent = actions.slice(-15).reverse();
    setText($("#log-empty"), recent.length ? "" : "Nothing yet.");
    keyedList($("#booth-log"), logRows, recent, (a) => `${a.at}:${a.action}`, (_key, a) => {
      const when = new Date(a.at * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
      return { li: el("li", {}, el("span", { class: "name" }, `${when} · ${a.who} · ${a.action}${describe(a)}`)) };
    }, () => {});
  }

  let samples = [];
  let busy = false;
  async function refresh() {
    if (busy) return;
    busy = true;
    try {
      const since = samples.length ? samples[samples.length - 1].at + 0.001 : 0;
      const r = await api(`/api/dj/history?since=${since}`, undefined, "GET");
      if (!r.ok) return;
      const cutoff = Date.now() / 1000 - 3600;
      samples = samples.concat(r.data.samples).filter((s) => s.at >= cutoff);
      const { svg, summary, legend } = drawHistory(samples, (s) => prettyStyle(s, labels) || s);
      $("#plot").replaceChildren(svg);
      setText($("#plot-summary"), summary);
      $("#plot-legend").replaceChildren(...(legend ?? []).map((l) => {
        const swatch = el("span", { class: "swatch", "aria-hidden": "true" });
        swatch.style.background = l.colour; // CSSOM, which the page's CSP allows (a style attribute it would not)
        return el("li", {}, swatch, `${prettyStyle(l.style, labels) || l.style} ${Math.round(l.share * 100)}%`);
      }));
      renderLog(r.data.actions);
      setPanic(r.data.panic, r.data.panic_available);
      const lock = r.data.locked;
      setText($("#lock-status"), lock ? `Locked: ${prettyStyle(lock.style, labels) || lock.style} until bar ${lock.until_bar}.` : "Not locked.");
    } finally {
      busy = false;
    }
  }
  api("/api/dj/blocklist", undefined, "GET").then((r) => r.ok && renderBlocked(r.data.blocked));
  refresh();
  setInterval(refresh, POLL_MS);
  return { refresh };
}

function describe(a) {
  const q = a.request ?? {};
  if (a.action === "lock") return q.bars === 0 ? " (unlock)" : ` ${q.style} for ${q.bars} bars`;
  if (a.action === "panic") return q.on === false ? " (released)" : " (on)";
  if (a.action === "blocklist") return q.add ? ` +${q.add.join(", ")}` : ` −${(q.remove ?? []).join(", ")}`;
  if (a.action === "prompt") return ` ${(q.prompt ?? []).map((p) => p.style).join(" + ")}`;
  if (a.action === "veto") return ` ${q.option}`;
  if (a.action === "mode") return ` ${q.mode}`;
  if (a.action === "voting") return ` ${q.voting}`;
  return "";
}
