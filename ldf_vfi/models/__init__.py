"""Networks of LDF-VFI: the local-attention Wan2.1 DiT and the (conditional) Wan2.1 causal VAE."""
