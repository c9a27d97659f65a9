"""`concert report DIR`: one self-contained HTML page of a recorded set (images inlined, no external assets).

    the steering timeline   the prompt's genre weights, the tempo and the votes per minute over the set,
                            a line wherever a change landed
    spectrogram strips      one per recorded hour (read by seeking: a few thousand windows, not the whole file)
    the crowd's figures     votes, phones, suggestions taken and refused, the booth's actions
    the tracks              what was heard from when, and who chose it

It also writes `setlist.json` beside the page (`concert.report.setlist.setlist_document`).
"""

from __future__ import annotations

import base64
import html
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from concert.report.setlist import SetRecord, read_setlist, setlist_document
from engine.music.styles import GENRES

SETLIST = "setlist.jsonl"
STRIP_COLUMNS = 1200  # spectrogram columns per recorded file
STRIP_WINDOW = 2048  # samples per column's FFT


@dataclass(frozen=True)
class Report:
    page: Path
    setlist: Path
    stats: dict[str, Any]


class ReportError(ValueError):
    """A folder that holds no recorded set; the message says what was looked for."""


def set_folder(path: Path) -> Path:
    """`path` itself if it holds a set's setlist, else its newest set folder (`--record` makes one per set)."""
    if (path / SETLIST).is_file():
        return path
    sets = sorted(p.parent for p in path.glob(f"*/{SETLIST}"))
    if not sets:
        raise ReportError(f"no {SETLIST} in {path} or its folders: give the folder --record wrote")
    return sets[-1]


def report(path: Path, out: Path | None = None) -> Report:
    folder = set_folder(path)
    rec = read_setlist((folder / SETLIST).read_text(errors="replace").splitlines())
    audio = sorted(p for p in folder.glob("audio-*") if p.suffix in (".flac", ".w64", ".wav"))
    audio = [p for p in audio if not (p.suffix == ".w64" and p.with_suffix(".flac").exists())]
    doc = setlist_document(folder.name, rec)
    setlist_path = folder / "setlist.json"
    setlist_path.write_text(json.dumps(doc, indent=1))
    page = out or folder / "report.html"
    page.write_text(_page(folder.name, rec, audio))
    return Report(page, setlist_path, doc["stats"])


# ----- images ---------------------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _colours(styles: list[str]) -> dict[str, Any]:
    """One colour per genre, always the same; the DJ's free-text styles get their own, paler ones."""
    from matplotlib import colormaps

    genres, other = colormaps["tab10"], colormaps["Pastel2"]
    known = {g.id: genres(i % 10) for i, g in enumerate(GENRES)}
    free = [s for s in styles if s not in known]
    return {**known, **{s: other(i % 8) for i, s in enumerate(free)}}


def timeline_png(rec: SetRecord) -> str | None:
    """The steering timeline as a base64 PNG; None before the first sample (a set shorter than 30 s)."""
    if not rec.points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = np.array([p.t for p in rec.points]) / 60.0  # minutes
    styles = sorted({s for p in rec.points for s in p.mix}, key=lambda s: -sum(p.mix.get(s, 0) for p in rec.points))
    weights = np.array([[p.mix.get(s, 0.0) for p in rec.points] for s in styles])  # (styles, points)
    colours, labels = _colours(styles), {g.id: g.label for g in GENRES}
    fig, (ax_mix, ax_bpm, ax_votes) = plt.subplots(3, 1, figsize=(12, 6), sharex=True, height_ratios=(3, 1.2, 1.2))
    ax_mix.stackplot(t, weights, labels=[labels.get(s, s) for s in styles], colors=[colours[s] for s in styles])
    ax_mix.set_ylim(0, 1)
    ax_mix.set_ylabel("prompt weight")
    ax_mix.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    for track in rec.tracks:
        for ax in (ax_mix, ax_bpm, ax_votes):
            ax.axvline(float(track["t"]) / 60.0, color="black", lw=0.6, alpha=0.4)
    ax_bpm.plot(t, [p.bpm for p in rec.points], color="tab:red")
    ax_bpm.set_ylabel("tempo, BPM")
    votes = np.array([p.votes for p in rec.points], dtype=float)
    per_min = np.diff(votes, prepend=votes[0]) / np.maximum(np.diff(t, prepend=t[0]), 1e-9)
    per_min[0] = 0.0
    ax_votes.bar(t, per_min, width=(t[-1] - t[0]) / max(1, len(t)) if len(t) > 1 else 0.4, color="tab:gray")
    ax_votes.set_ylabel("votes / min")
    ax_votes.set_xlabel("minutes into the set")
    data = _png(fig)
    plt.close(fig)
    return data


def strip_png(path: Path) -> tuple[str, float]:
    """A spectrogram strip of one recorded file (base64 PNG) and the file's length in seconds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    with sf.SoundFile(path) as f:
        frames, rate = f.frames, f.samplerate
        starts = np.linspace(0, max(0, frames - STRIP_WINDOW), min(STRIP_COLUMNS, max(1, frames // STRIP_WINDOW)))
        window = np.hanning(STRIP_WINDOW).astype(np.float32)
        cols = []
        for s in starts.astype(int):
            f.seek(int(s))
            x = f.read(STRIP_WINDOW, dtype="float32", always_2d=True).mean(axis=1)  # (samples,)
            x = np.pad(x, (0, STRIP_WINDOW - len(x)))
            cols.append(np.abs(np.fft.rfft(x * window)))  # (bins,)
    spec = 20 * np.log10(np.stack(cols, axis=1) + 1e-6)  # (bins, columns)
    freqs = np.fft.rfftfreq(STRIP_WINDOW, 1 / rate)
    seconds = frames / rate
    fig, ax = plt.subplots(figsize=(12, 2.2))
    ax.pcolormesh(starts / rate / 60.0, freqs[1:], spec[1:], shading="auto", vmin=spec.max() - 80, vmax=spec.max())
    ax.set_yscale("log")
    ax.set_ylim(40, rate / 2)
    ax.set_ylabel("Hz")
    ax.set_xlabel(f"minutes into {path.name}")
    data = _png(fig)
    plt.close(fig)
    return data, seconds


# ----- the page -------------------------------------------------------------------------------------------------
CSS = """body{font:16px/1.5 system-ui,sans-serif;margin:0 auto;max-width:1100px;padding:1rem;color:#111;background:#fff}
h1{font-size:1.6rem}table{border-collapse:collapse;margin:.5rem 0 1.5rem}td,th{padding:.25rem .75rem;
border-bottom:1px solid #ccc;text-align:left}img{max-width:100%;height:auto}figure{margin:0 0 1.5rem}
figcaption{color:#444}.num{text-align:right;font-variant-numeric:tabular-nums}"""

FIGURES = (
    ("duration_s", "Length, seconds"),
    ("changes", "Changes heard"),
    ("crowd_changes", "… chosen by the crowd"),
    ("dj_changes", "… chosen by the DJ"),
    ("rounds", "Rounds closed"),
    ("votes", "Votes"),
    ("vote_changes", "Votes changed within a round"),
    ("peak_phones", "Most phones connected at once"),
    ("suggestions_accepted", "Suggestions taken onto the board"),
    ("suggestions_refused", "Suggestions refused"),
    ("booth_actions", "Booth actions"),
)


def _clock(t: float) -> str:
    t = int(t)
    return f"{t // 3600}:{t // 60 % 60:02d}:{t % 60:02d}"


def _page(name: str, rec: SetRecord, audio: list[Path]) -> str:
    esc = html.escape
    stats = rec.stats()
    parts = [
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Set report {esc(name)}</title>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<style>{CSS}</style></head><body><main>",
        f"<h1>Set report: {esc(name)}</h1><p>Started {esc(rec.started or 'at an unknown time')}.</p>",
        "<h2>The crowd</h2><table><tbody>",
        *(f"<tr><th scope='row'>{esc(label)}</th><td class='num'>{stats[key]}</td></tr>" for key, label in FIGURES),
        "</tbody></table>",
        "<h2>Steering</h2>",
    ]
    timeline = timeline_png(rec)
    if timeline is None:
        parts.append("<p>The set was too short for a timeline (one sample every 30 seconds).</p>")
    else:
        top = max(rec.points[-1].mix.items(), key=lambda kv: kv[1])[0] if rec.points[-1].mix else "—"
        alt = (
            f"Genre weights, tempo and votes per minute over {len(rec.points)} samples; "
            f"{len(rec.tracks)} changes marked; it ended on {top}."
        )
        parts.append(
            f"<figure><img alt='{esc(alt)}' src='data:image/png;base64,{timeline}'>"
            "<figcaption>Top: the prompt's genre weights. Middle: tempo. Bottom: votes per minute. "
            "Vertical lines: where a change was heard.</figcaption></figure>"
        )
    parts.append(
        "<h2>What played</h2><table><thead><tr><th>Time</th><th>What</th><th>Chosen by</th>"
        "<th class='num'>Votes</th></tr></thead><tbody>"
    )
    for t in rec.tracks:
        by = {"crowd": "the crowd", "dj": "the DJ", "opening": "the opening"}.get(str(t.get("by")), str(t.get("by")))
        parts.append(
            f"<tr><td>{_clock(float(t['t']))}</td><td>{esc(str(t.get('label', '')))}</td><td>{esc(by)}</td>"
            f"<td class='num'>{esc(str(t.get('votes', '')))}</td></tr>"
        )
    parts.append("</tbody></table>")
    if rec.booth:
        parts.append("<h2>The booth</h2><table><thead><tr><th>Time</th><th>Who</th><th>Action</th></tr></thead><tbody>")
        for b in rec.booth:
            parts.append(
                f"<tr><td>{_clock(float(b['t']))}</td><td>{esc(str(b.get('who', '')))}</td>"
                f"<td>{esc(str(b.get('action', '')))}</td></tr>"
            )
        parts.append("</tbody></table>")
    parts.append("<h2>Spectrograms, one strip per recorded hour</h2>")
    if not audio:
        parts.append("<p>No audio files in the folder.</p>")
    for path in audio:
        data, seconds = strip_png(path)
        alt = f"Spectrogram of {path.name}, {seconds / 60:.1f} minutes, 40 Hz to Nyquist on a log scale."
        parts.append(
            f"<figure><img alt='{esc(alt)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(path.name)}: {seconds / 60:.1f} minutes</figcaption></figure>"
        )
    parts.append("</main></body></html>")
    return "\n".join(parts)
