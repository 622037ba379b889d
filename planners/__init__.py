"""Planners (random shooting, CEM, MPPI) and the MPC loop, over batched latent rollouts."""
