"""Training of LDF-VFI on accelerate: the DiT (REFERENCE_SPEC 7) and the conditional VAE decoder (spec 8).

Entry points: ``train.py`` / ``train_vae.py`` (:mod:`~ldf_vfi.training.cli`); flags in
:mod:`~ldf_vfi.training.args`; the shared run machinery (data stream, checkpoints, resume, logging) in
:mod:`~ldf_vfi.training.loop`.
"""
