// The listener page: one big play/pause button for the endless /stream, plus now playing.
import { $, el, setText, connect, prettyStyle, renderMix, streamPlayer, mediaSession } from "./common.js";

const labels = new Map();
const audio = $("#audio");
const btn = $("#play");
const status = $("#player-status");

const STATES = {
  idle: ["▶", "Play", "Tap Play to listen"],
  connecting: ["■", "Stop", "Connecting to the live stream…"],
  playing: ["■", "Stop", "Playing live"],
  buffering: ["■", "Stop", "Buffering…"],
  retrying: ["■", "Stop", "Stream interrupted. Reconnecting…"],
  blocked: ["▶", "Play", "Your browser blocked playback. Tap Play again."],
};

const player = streamPlayer(audio, (s) => {
  const [icon, label, text] = STATES[s] ?? STATES.idle;
  setText($("#play-icon"), icon);
  setText($("#play-label"), label);
  btn.dataset.state = s;
  status.dataset.state = s;
  setText(status, text);
});
btn.addEventListener("click", () => player.toggle());
if ("mediaSession" in navigator) {
  try {
    navigator.mediaSession.setActionHandler("play", () => player.playing || player.play());
    navigator.mediaSession.setActionHandler("pause", () => player.playing && player.stop());
    navigator.mediaSession.setActionHandler("stop", () => player.playing && player.stop());
  } catch {
    /* not supported */
  }
}

// The recent setlist: fetched again only when the state says another change has landed.
let landed = -1;
const clock = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
function byline(p) {
  if (p.by === "crowd") return `the crowd's choice${p.votes ? `, ${p.votes} vote${p.votes === 1 ? "" : "s"}` : ""}`;
  if (p.by === "dj") return "the DJ's choice";
  return "the opening";
}
async function refreshPlayed(n) {
  if (n === landed) return;
  landed = n;
  try {
    const r = await fetch("/api/setlist", { cache: "no-store" });
    if (!r.ok) return;
    const { recent } = await r.json();
    const list = $("#played");
    list.replaceChildren(
      ...recent.slice(0, 10).map((p) => {
        const when = el("time", { datetime: new Date(p.at * 1000).toISOString() }, clock.format(new Date(p.at * 1000)));
        return el("li", {}, when, " ", el("strong", {}, String(p.label ?? p.winner ?? "")), ` — ${byline(p)}`);
      }),
    );
    $("#played-empty").hidden = recent.length > 0;
  } catch {
    landed = -1; // try again with the next state
  }
}

connect({
  device: false,
  onStatus(s) {
    const box = $("#conn");
    box.dataset.state = s === "open" ? "open" : "retrying";
    setText($("#conn-text"), s === "open" ? "Live" : "Reconnecting…");
  },
  onMessage(msg) {
    const s = msg.type === "hello" ? msg.state : msg.type === "state" ? msg : null;
    if (!s) return;
    for (const o of s.options ?? []) if (o.kind === "style") labels.set(o.id, o.label);
    const np = s.now_playing ?? {};
    setText($("#np-genre"), prettyStyle(np.genre, labels) || "—");
    setText($("#np-bpm"), np.bpm ? `${Math.round(np.bpm)} BPM` : "");
    setText($("#np-section"), np.section ? np.section[0].toUpperCase() + np.section.slice(1) : "");
    setText($("#np-bar"), typeof s.bar === "number" ? `Bar ${s.bar}` : "");
    renderMix($("#np-mix"), $("#mixbar"), np.mix ?? s.prompt ?? [], labels);
    mediaSession(np, labels);
    if (typeof s.landed === "number") refreshPlayed(s.landed);
  },
});
