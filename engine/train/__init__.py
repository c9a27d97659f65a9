"""Training: the corpus, the codec and token-model trainers, evaluation."""
