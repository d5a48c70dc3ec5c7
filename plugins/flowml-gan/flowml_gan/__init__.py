"""flowml-gan: StyleGAN2 written in plain PyTorch (NVIDIA's parameter names, so official weights
load unchanged), a restricted unpickler for official ``.pkl`` snapshots, taps and weight edits."""
