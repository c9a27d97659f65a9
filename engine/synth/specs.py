"""The vocabulary a genre is described in: drum kit, drum lines, pitched parts (data only)."""

from __future__ import annotations

from dataclasses import dataclass, field

DRUM_VOICES: tuple[str, ...] = ("kick", "snare", "clap", "hat", "open_hat", "shaker", "rim", "ride", "perc")


@dataclass(frozen=True)
class KickSpec:
    f_start: float = 160.0  # Hz, pitch at the attack
    f_end: float = 50.0  # Hz, resting pitch
    pitch_decay: float = 0.03  # s, time constant of the pitch drop
    decay: float = 0.16  # s, amplitude time constant
    click: float = 0.25  # level of the attack click, 0..1
    drive: float = 1.5  # tanh saturation (1 = nearly clean)


@dataclass(frozen=True)
class SnareSpec:
    tone: float = 185.0  # Hz, body pitch
    tone_decay: float = 0.05  # s
    noise_decay: float = 0.13  # s
    noise_hz: float = 3500.0  # Hz, centre of the noise band
    noise_level: float = 0.8  # noise vs body, 0..1
    gate: float = 0.0  # s of gated-reverb body (the 80s snare), 0 = none


@dataclass(frozen=True)
class KitSpec:
    kick: KickSpec = field(default_factory=KickSpec)
    snare: SnareSpec = field(default_factory=SnareSpec)
    hat_decay: float = 0.035  # s, closed hat
    open_decay: float = 0.22  # s, open hat
    hat_hz: float = 6000.0  # Hz, high-pass of the hats
    lowpass: float = 0.0  # Hz, low-pass on the whole kit (dusty drums); 0 = none


@dataclass(frozen=True)
class DrumLine:
    voice: str  # one of DRUM_VOICES
    steps: str  # 16 (one bar) or 32 (two bars) sixteenth steps: "x" hit, "o" soft hit, "." rest
    level: float  # linear gain
    min_energy: float = 0.0  # the line plays when energy >= this
    ghost: float = 0.0  # chance per rest step of a soft extra hit, at energy 1


@dataclass(frozen=True)
class PartSpec:
    """A pitched part: its timbre, rhythm and register."""

    timbre: str  # a name in engine.synth.instruments.TIMBRES
    steps: str  # 16 or 32 sixteenth steps: a note letter starts a note, "-" holds it, "." rests
    level: float  # linear gain
    low: int  # MIDI note: the register starts here (voicings sit in [low, low + 12))
    min_energy: float = 0.0  # the part plays when energy >= this
    gate: float = 0.9  # fraction of the written length actually held


@dataclass(frozen=True)
class GenreSpec:
    id: str  # genre id from engine.music.styles
    kit: KitSpec
    drums: tuple[DrumLine, ...]
    bass: PartSpec | None  # note letters: "x" root, "o" octave, "5" fifth, "3" third
    chords: PartSpec | None  # rhythmic chords (stabs, keys comping); note letters start a chord
    pad: PartSpec | None  # sustained chords, one per chord change; also carries breakdowns
    lead: PartSpec | None  # rhythm ignored: the melody generator writes the notes
    arp: PartSpec | None  # note letters step through the chord tones
    progression_major: tuple[int, ...]  # scale degrees (0-based), one per `bars_per_chord` bars
    progression_minor: tuple[int, ...]
    chord_size: int = 3  # 3 triads, 4 sevenths, 5 ninths
    bars_per_chord: int = 1
    swing: float = 0.0  # delay of every second swing unit, as a fraction of that unit
    swing_unit: int = 1  # sixteenths per swing unit: 1 swings sixteenths, 2 swings eighths
    humanize: float = 0.0  # s, random timing spread of hits
    duck: float = 0.0  # sidechain depth on bass and music when the kick hits, 0..1
    drums_level: float = 1.0  # bus gains
    bass_level: float = 0.8
    music_level: float = 1.0
    bass_cutoff: tuple[float, float] = (400.0, 2500.0)  # Hz, low-pass at brightness 0 and 1
    music_cutoff: tuple[float, float] = (1500.0, 12000.0)  # Hz, low-pass at brightness 0 and 1
    drums_cutoff: tuple[float, float] = (7000.0, 12000.0)  # Hz, low-pass at brightness 0 and 1
    reverb_drums: float = 0.06  # reverb sends
    reverb_music: float = 0.25
    crackle: float = 0.0  # vinyl crackle and hiss level
    bells: float = 0.0  # level of sparse bell melody (0 = none)
    lead_density: float = 0.5  # notes per sixteenth step of the melody, roughly, 0..1
    lead_echo: float = 0.3  # gain of the dotted-eighth echo on the lead
