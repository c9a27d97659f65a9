"""concert's audio engine: styles, prompts, streaming sources, the style synth."""
