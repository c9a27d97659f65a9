"""Procedural style synth: endless, steerable music for every genre in engine.music.styles.

Entry point: `engine.synth.source.StyleSynth(SynthConfig(...), prompt)`, an
`engine.source.AudioSource` that renders one bar per `next_chunk()`.

Layers, bottom up:
  tempo.py        beats -> seconds -> samples under a gliding tempo (closed form)
  schedule.py     prompt changes on the bar clock: landing bars and glides
  harmony.py      scales, diatonic chords, voicings
  wavetable.py    band-limited loops; instruments.py  timbres and notes
  drums.py        one-shots; specs.py + genres.py  the eight genres as data
  melody.py       phrase-level motifs, arps, bells; arrange.py  what plays per bar
  bus.py, filters.py, effects.py, fx.py  mixing with carries, filters, reverb, risers
  voice.py        one genre's layer; source.py  the blend and the AudioSource
  analysis.py     tempo / brightness / level estimators for tests
  bench.py        `bench_synth()`, the speed benchmark
"""
