"""The eight genres as data: kit, drum lines, parts, harmony and mix (no code).

Steps are sixteenths, 16 per bar (32 = a two-bar pattern). Drums: "x" hit,
"o" soft hit. Parts: a letter starts a note ("x" root, "o" octave, "5" fifth,
"3" third; chords and arps use any letter), "-" holds, "." rests.
"""

from __future__ import annotations

from engine.synth.specs import DrumLine, GenreSpec, KickSpec, KitSpec, PartSpec, SnareSpec

FOUR = "x...x...x...x..."
OFFBEAT = "..x...x...x...x."
BACKBEAT = "....x.......x..."
EIGHTHS = "x.x.x.x.x.x.x.x."
SIXTEENTHS = "xoxoxoxoxoxoxoxo"
HOLD = "x---------------"

HOUSE = GenreSpec(
    id="house",
    kit=KitSpec(kick=KickSpec(f_start=150, f_end=52, decay=0.16, drive=1.4, click=0.2), open_decay=0.2),
    drums=(
        DrumLine("kick", FOUR, 1.0),
        DrumLine("clap", BACKBEAT, 0.8, min_energy=0.2),
        DrumLine("open_hat", OFFBEAT, 0.32),
        DrumLine("hat", "oxoooxoooxoooxoo", 0.16, min_energy=0.5),
        DrumLine("shaker", "oooooooooooooooo", 0.12, min_energy=0.65),
        DrumLine("perc", "......x.......x....x.....x....x.", 0.18, min_energy=0.75),
    ),
    bass=PartSpec("organ_bass", "..x-..x-..x-..o-", 0.55, low=33, gate=0.8),
    chords=PartSpec("stab", "...x-.x-....x-..", 0.2, low=57, min_energy=0.3, gate=0.7),
    pad=PartSpec("warm_pad", HOLD, 0.12, low=57, min_energy=0.55),
    lead=PartSpec("epiano", "", 0.16, low=69, min_energy=0.9),
    arp=None,
    progression_major=(1, 4, 0, 5),
    progression_minor=(0, 5, 3, 4),
    chord_size=4,
    swing=0.12,
    duck=0.35,
    lead_density=0.4,
    lead_echo=0.25,
    music_cutoff=(1400.0, 11000.0),
    reverb_music=0.25,
    music_level=1.6,
)

TECHNO = GenreSpec(
    id="techno",
    kit=KitSpec(
        kick=KickSpec(f_start=140, f_end=46, pitch_decay=0.025, decay=0.17, click=0.35, drive=2.6),
        hat_decay=0.025,
        open_decay=0.14,
        hat_hz=7000.0,
    ),
    drums=(
        DrumLine("kick", FOUR, 1.0),
        DrumLine("open_hat", OFFBEAT, 0.28, min_energy=0.25),
        DrumLine("hat", SIXTEENTHS, 0.2, min_energy=0.4, ghost=0.0),
        DrumLine("rim", "...x..x....x..x.", 0.22, min_energy=0.5),
        DrumLine("clap", BACKBEAT, 0.55, min_energy=0.65),
        DrumLine("ride", OFFBEAT, 0.12, min_energy=0.8),
    ),
    bass=PartSpec("rumble", ".xx..xx..xx..xx.", 0.55, low=28, gate=0.7),
    chords=PartSpec("dark_stab", "......x.........", 0.2, low=52, min_energy=0.3, gate=0.5),
    pad=PartSpec("warm_pad", HOLD, 0.07, low=52, min_energy=0.6),
    lead=None,
    arp=PartSpec("pluck", "x.xx.x.xx.x.xx.x", 0.11, low=57, min_energy=0.7, gate=0.5),
    progression_major=(0, 0, 3, 4),
    progression_minor=(0, 0, 5, 6),
    chord_size=3,
    bars_per_chord=2,
    duck=0.3,
    bass_cutoff=(200.0, 900.0),
    music_cutoff=(1000.0, 9000.0),
    reverb_music=0.45,
    reverb_drums=0.08,
    drums_level=0.7,
    bass_level=0.6,
    music_level=1.6,
)

TRANCE = GenreSpec(
    id="trance",
    kit=KitSpec(kick=KickSpec(f_start=170, f_end=50, decay=0.14, drive=1.7, click=0.3)),
    drums=(
        DrumLine("kick", FOUR, 1.0),
        DrumLine("open_hat", OFFBEAT, 0.36),
        DrumLine("clap", BACKBEAT, 0.7, min_energy=0.3),
        DrumLine("hat", SIXTEENTHS, 0.14, min_energy=0.6),
        DrumLine("ride", OFFBEAT, 0.1, min_energy=0.75),
    ),
    bass=PartSpec("roll_bass", ".xxx.xxx.xxx.xxx", 0.5, low=33, gate=0.75),
    chords=None,
    pad=PartSpec("supersaw", HOLD, 0.2, low=57, min_energy=0.2),
    lead=PartSpec("saw_lead", "", 0.15, low=69, min_energy=0.7),
    arp=PartSpec("pluck", "xxxxxxxxxxxxxxxx", 0.13, low=69, min_energy=0.4, gate=0.5),
    progression_major=(5, 3, 0, 4),
    progression_minor=(0, 5, 2, 6),
    duck=0.5,
    music_cutoff=(1500.0, 12000.0),
    reverb_music=0.3,
    lead_density=0.6,
    lead_echo=0.35,
    drums_level=0.8,
    music_level=1.4,
)

DRUM_AND_BASS = GenreSpec(
    id="drum-and-bass",
    kit=KitSpec(
        kick=KickSpec(f_start=190, f_end=55, pitch_decay=0.02, decay=0.12, click=0.3, drive=1.5),
        snare=SnareSpec(tone=205, tone_decay=0.05, noise_decay=0.14, noise_hz=3800, noise_level=0.75),
        hat_decay=0.022,
    ),
    drums=(
        DrumLine("kick", "x.........x.....x.x.......x.....", 1.0),
        DrumLine("snare", BACKBEAT, 0.95, ghost=0.12),
        DrumLine("hat", EIGHTHS, 0.26),
        DrumLine("hat", ".o.o.o.o.o.o.o.o", 0.14, min_energy=0.45),
        DrumLine("ride", EIGHTHS, 0.09, min_energy=0.7),
        DrumLine("shaker", "oooooooooooooooo", 0.1, min_energy=0.85),
    ),
    bass=PartSpec("reese", "x---------x-----x---------x---5-", 0.4, low=28, gate=0.95),
    chords=None,
    pad=PartSpec("warm_pad", HOLD, 0.18, low=57, min_energy=0.0),
    lead=PartSpec("square_lead", "", 0.1, low=69, min_energy=0.75),
    arp=None,
    progression_major=(0, 4, 5, 3),
    progression_minor=(0, 5, 6, 4),
    chord_size=4,
    duck=0.2,
    bass_cutoff=(250.0, 1100.0),
    music_cutoff=(1300.0, 11000.0),
    lead_density=0.45,
    music_level=1.3,
)

HIP_HOP = GenreSpec(
    id="hip-hop",
    kit=KitSpec(
        kick=KickSpec(f_start=120, f_end=48, pitch_decay=0.04, decay=0.25, click=0.15, drive=2.0),
        snare=SnareSpec(tone=180, tone_decay=0.06, noise_decay=0.16, noise_hz=2500, noise_level=0.7),
        hat_decay=0.04,
        hat_hz=6000.0,
        lowpass=9000.0,
    ),
    drums=(
        DrumLine("kick", "x......x..x.....x......x.x...x..", 1.0),
        DrumLine("snare", BACKBEAT, 0.85, ghost=0.05),
        DrumLine("hat", SIXTEENTHS, 0.28, ghost=0.0),
        DrumLine("open_hat", "..............x.", 0.18, min_energy=0.55),
        DrumLine("rim", "...........o....", 0.2, min_energy=0.7),
    ),
    bass=PartSpec("sub", "x------x--x-----x------x-x---x--", 0.62, low=33, gate=0.9),
    chords=PartSpec("epiano", "x-----x---------", 0.28, low=57, gate=0.95),
    pad=None,
    lead=PartSpec("epiano", "", 0.16, low=69, min_energy=0.6),
    arp=None,
    progression_major=(0, 5, 1, 4),
    progression_minor=(0, 3, 5, 4),
    chord_size=4,
    swing=0.3,
    humanize=0.006,
    music_cutoff=(1200.0, 9000.0),
    crackle=0.12,
    lead_density=0.3,
    lead_echo=0.0,
    bass_level=0.45,
    music_level=1.3,
)

LOFI = GenreSpec(
    id="lofi",
    kit=KitSpec(
        kick=KickSpec(f_start=110, f_end=50, pitch_decay=0.03, decay=0.18, click=0.05, drive=1.2),
        snare=SnareSpec(tone=200, tone_decay=0.05, noise_decay=0.12, noise_hz=2200, noise_level=0.6),
        hat_decay=0.03,
        hat_hz=3500.0,
        lowpass=6500.0,
    ),
    drums=(
        DrumLine("kick", "x.........x.....x.......x.x.....", 0.9),
        DrumLine("snare", BACKBEAT, 0.55),
        DrumLine("hat", EIGHTHS, 0.24, ghost=0.15),
        DrumLine("shaker", "..o...o...o...o.", 0.12, min_energy=0.5),
    ),
    bass=PartSpec("upright", "x------.x-----5.", 0.55, low=33, gate=0.85),
    chords=PartSpec("epiano", "x-----------x---", 0.3, low=55, gate=0.95),
    pad=None,
    lead=PartSpec("soft_lead", "", 0.12, low=67, min_energy=0.4),
    arp=None,
    progression_major=(1, 4, 0, 5),
    progression_minor=(0, 3, 6, 2),
    chord_size=5,
    swing=0.3,
    swing_unit=2,
    humanize=0.01,
    bass_cutoff=(250.0, 900.0),
    music_cutoff=(800.0, 5000.0),
    drums_cutoff=(4500.0, 9000.0),
    crackle=0.5,
    lead_density=0.25,
    lead_echo=0.0,
    music_level=1.5,
)

AMBIENT = GenreSpec(
    id="ambient",
    kit=KitSpec(kick=KickSpec(f_start=100, f_end=45, decay=0.25, click=0.0, drive=1.0), lowpass=3000.0),
    drums=(
        DrumLine("kick", "x.......x.......", 0.35, min_energy=0.35),
        DrumLine("shaker", OFFBEAT, 0.15, min_energy=0.3),
    ),
    bass=PartSpec("drone", HOLD, 0.2, low=45, gate=1.0),
    chords=None,
    pad=PartSpec("glass_pad", HOLD, 0.3, low=57),
    lead=None,
    arp=PartSpec("bell", "x.....x...x.....", 0.1, low=69, min_energy=0.45, gate=0.5),
    progression_major=(0, 3, 5, 3),
    progression_minor=(0, 5, 3, 6),
    chord_size=4,
    bars_per_chord=2,
    music_cutoff=(2000.0, 10000.0),
    reverb_music=0.7,
    reverb_drums=0.4,
    bells=0.5,
    music_level=0.6,
)

SYNTHWAVE = GenreSpec(
    id="synthwave",
    kit=KitSpec(
        kick=KickSpec(f_start=150, f_end=50, decay=0.18, drive=1.5, click=0.25),
        snare=SnareSpec(tone=180, tone_decay=0.07, noise_decay=0.2, noise_hz=3000, noise_level=0.75, gate=0.28),
        hat_decay=0.03,
    ),
    drums=(
        DrumLine("kick", "x.......x.......", 1.0),
        DrumLine("snare", BACKBEAT, 0.85),
        DrumLine("hat", EIGHTHS, 0.22, ghost=0.3),
        DrumLine("open_hat", "..............x.", 0.16, min_energy=0.6),
        DrumLine("perc", "................" + "............xxxx", 0.2, min_energy=0.8),
    ),
    bass=PartSpec("synth_bass", "x.o.x.o.x.o.x.o.", 0.5, low=33, gate=0.8),
    chords=None,
    pad=PartSpec("supersaw", HOLD, 0.16, low=57, min_energy=0.0),
    lead=PartSpec("saw_lead", "", 0.15, low=69, min_energy=0.55),
    arp=PartSpec("pluck", "x.x.x.x.x.x.x.x.", 0.08, low=69, min_energy=0.8, gate=0.5),
    progression_major=(0, 4, 5, 3),
    progression_minor=(0, 5, 2, 6),
    duck=0.2,
    music_cutoff=(1500.0, 12000.0),
    reverb_music=0.3,
    lead_density=0.35,
    lead_echo=0.35,
    drums_level=1.2,
    music_level=1.6,
)

SPECS: tuple[GenreSpec, ...] = (HOUSE, TECHNO, TRANCE, DRUM_AND_BASS, HIP_HOP, LOFI, AMBIENT, SYNTHWAVE)
