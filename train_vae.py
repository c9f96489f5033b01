"""Train the conditional Wan2.1 VAE decoder of LDF-VFI (the reference's train_vae.py).

    accelerate launch --config_file configs/accelerate/ddp.yaml train_vae.py --data data/lavib-hf \
        --vae_path /path/to/Wan2.1_VAE.pth --lpips_weights /path/to/alexnet.safetensors

See quick_start/train_vae.sh for the released recipe and ``python train_vae.py --help`` for every flag.
"""

import sys

from ldf_vfi.training.cli import main_vae

if __name__ == "__main__":
    sys.exit(main_vae())
