"""Train the LDF-VFI diffusion transformer (the reference's train_dit.py).

    accelerate launch --config_file configs/accelerate/zero1.yaml train.py --data data/lavib-hf \
        --model_path /path/to/Wan2.1-T2V-1.3B-Diffusers/transformer --vae_path /path/to/Wan2.1_VAE.pth

See quick_start/train_dit.sh for the released recipe and ``python train.py --help`` for every flag.
"""

import sys

from ldf_vfi.training.cli import main_dit

if __name__ == "__main__":
    sys.exit(main_dit())
