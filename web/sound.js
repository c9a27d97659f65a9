// The console's "Sound and outputs" panel: /healthz every few seconds (what plays, what is buffered, what was
// lost, who listens, how each Icecast push is doing). Problems go to a polite status line.
import { $, el, setText } from "./common.js";

const POLL_MS = 3000;

function listeners(l) {
  if (!l) return "—";
  return `${l.mp3 ?? 0} MP3 · ${l.opus ?? 0} Opus`;
}

export function initSound() {
  let lastProblem = "";
  async function refresh() {
    let h;
    try {
      const r = await fetch("/healthz", { cache: "no-store" });
      h = await r.json();
    } catch {
      h = { status: "unreachable" };
    }
    setText($("#h-status"), h.status ?? "—");
    $("#h-status").dataset.state = h.status ?? "";
    setText($("#h-audible"), h.audible === "fallback" ? "the synth (covering)" : h.audible ? `the ${h.backend} backend` : "—");
    setText($("#h-buffered"), typeof h.buffered_seconds === "number" ? `${h.buffered_seconds.toFixed(1)} s` : "—");
    setText($("#h-dropped"), typeof h.dropped_audio_seconds === "number" ? `${h.dropped_audio_seconds.toFixed(1)} s` : "—");
    setText($("#h-listeners"), listeners(h.worker_listeners ?? h.listeners));
    const pushes = h.icecast ?? [];
    $("#h-icecast").replaceChildren(
      ...pushes.map((p) =>
        el("li", {}, el("strong", {}, p.connected ? "Pushing" : "Reconnecting"), ` to ${p.target}`,
          p.connected ? ` · ${(p.bytes_sent / 1e6).toFixed(1)} MB sent` : p.last_error ? ` · ${p.last_error}` : ""),
      ),
    );
    const problem = h.status === "ok" ? "" : h.primary_error || h.message || (h.status ? `The set is ${h.status}.` : "");
    if (problem !== lastProblem) {
      setText($("#h-problem"), problem);
      lastProblem = problem;
    }
  }
  refresh();
  setInterval(refresh, POLL_MS);
}
