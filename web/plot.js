// The console's picture of where the crowd has steered: the prompt's genre weights as stacked bands over the
// last hour, the tempo as a line over them and the votes per minute as bars beneath. Pure: samples in, an SVG
// element and a one-paragraph text summary (for screen readers and the tooltip-less) out. No external assets.

const NS = "http://www.w3.org/2000/svg";
const W = 720; // viewBox width, user units
const BANDS_H = 150; // height of the genre bands
const VOTES_H = 40; // height of the votes strip
const GAP = 12;
const H = BANDS_H + GAP + VOTES_H + 18; // with the time axis labels

// one colour per genre id, distinguishable in light and dark mode; unknown ids cycle through the rest
const COLOURS = {
  house: "#e8a33d", techno: "#5b8def", trance: "#b86bd8", "drum-and-bass": "#e0584f",
  "hip-hop": "#47b37a", lofi: "#c9a27a", ambient: "#4fb7c5", synthwave: "#e36fb0",
};
const SPARE = ["#9aa5b1", "#d1c04b", "#7c8cf0", "#6fcf97"];

function node(tag, attrs = {}, text) {
  const n = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, String(v));
  if (text !== undefined) n.textContent = text;
  return n;
}

export function colourOf(style, order) {
  return COLOURS[style] ?? SPARE[order.indexOf(style) % SPARE.length];
}

// samples: [{at, bar, mix: {style: weight}, bpm, votes, clients}], oldest first
export function drawHistory(samples, labelOf = (s) => s) {
  const svg = node("svg", { viewBox: `0 0 ${W} ${H}`, class: "history-plot", "aria-hidden": "true", focusable: "false" });
  if (samples.length < 2) return { svg, summary: "Not enough of the set yet to draw: the plot fills in bar by bar." };
  const t0 = samples[0].at;
  const t1 = samples[samples.length - 1].at;
  const span = Math.max(1, t1 - t0);
  const x = (t) => ((t - t0) / span) * W;
  const styles = [];
  for (const s of samples) for (const k of Object.keys(s.mix)) if (!styles.includes(k)) styles.push(k);

  // stacked bands: one polygon per genre, its lower edge the sum of the genres before it
  const lower = samples.map(() => 0);
  const share = {};
  for (const style of styles) {
    const top = samples.map((s, i) => lower[i] + (s.mix[style] ?? 0));
    const pts = samples.map((s, i) => `${x(s.at).toFixed(1)},${(BANDS_H * (1 - top[i])).toFixed(1)}`);
    const back = samples.map((s, i) => `${x(s.at).toFixed(1)},${(BANDS_H * (1 - lower[i])).toFixed(1)}`).reverse();
    svg.append(node("polygon", { points: [...pts, ...back].join(" "), fill: colourOf(style, styles), opacity: 0.85 }));
    share[style] = samples.reduce((a, s) => a + (s.mix[style] ?? 0), 0) / samples.length;
    samples.forEach((_, i) => { lower[i] = top[i]; });
  }

  // tempo over the bands, on its own scale (labelled at both ends)
  const bpms = samples.map((s) => s.bpm).filter((b) => b > 0);
  const lo = Math.min(...bpms);
  const hi = Math.max(...bpms);
  const pad = Math.max(2, (hi - lo) * 0.15);
  const y = (b) => BANDS_H - ((b - (lo - pad)) / (hi - lo + 2 * pad)) * BANDS_H;
  const line = samples.filter((s) => s.bpm > 0).map((s) => `${x(s.at).toFixed(1)},${y(s.bpm).toFixed(1)}`);
  svg.append(node("polyline", { points: line.join(" "), fill: "none", stroke: "currentColor", "stroke-width": 2 }));
  svg.append(node("text", { x: 4, y: 12, class: "plot-label" }, `${Math.round(hi)} BPM`));
  svg.append(node("text", { x: 4, y: BANDS_H - 4, class: "plot-label" }, `${Math.round(lo)} BPM`));

  // votes per minute: the counter's rise over each minute, as bars
  const minutes = Math.max(1, Math.ceil(span / 60));
  const perMinute = new Array(minutes).fill(0);
  for (let i = 1; i < samples.length; i++) {
    const m = Math.min(minutes - 1, Math.floor((samples[i].at - t0) / 60));
    perMinute[m] += Math.max(0, samples[i].votes - samples[i - 1].votes);
  }
  const most = Math.max(1, ...perMinute);
  const bw = W / minutes;
  const base = BANDS_H + GAP + VOTES_H;
  perMinute.forEach((v, m) => {
    const h = (v / most) * VOTES_H;
    svg.append(node("rect", { x: (m * bw).toFixed(1), y: (base - h).toFixed(1), width: Math.max(1, bw - 1).toFixed(1), height: h.toFixed(1), class: "plot-votes" }));
  });
  const ago = span < 90 ? `${Math.round(span)} seconds` : `${Math.round(span / 60)} minutes`;
  svg.append(node("text", { x: 0, y: H - 2, class: "plot-label" }, `${ago} ago`));
  svg.append(node("text", { x: W, y: H - 2, class: "plot-label", "text-anchor": "end" }, "now"));

  const ranked = styles.slice().sort((a, b) => share[b] - share[a]);
  const total = samples[samples.length - 1].votes - samples[0].votes;
  const summary = `Last ${ago}: ` +
    ranked.slice(0, 4).map((s) => `${labelOf(s)} ${Math.round(share[s] * 100)}%`).join(", ") +
    `; tempo ${Math.round(lo)} to ${Math.round(hi)} BPM, now ${Math.round(bpms[bpms.length - 1] ?? 0)}; ` +
    `${total} votes, at most ${Math.max(...perMinute)} in a minute.`;
  return { svg, summary, legend: ranked.map((s) => ({ style: s, colour: colourOf(s, styles), share: share[s] })) };
}
