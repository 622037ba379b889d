"""Training: data sets and windows, the shared trainer, configs, evaluation."""
