# The PyTorch column of `npm run bench -- --cases-only`: the same three cases (shapes, batch,
# trainable set, loss) on diffusers' UNet2DConditionModel, median seconds of 3 runs after a warm-up,
# with as many threads as sdlora uses. Optional: needs torch and the diffusers source (v0.30.3 was
# used) on PYTHONPATH; nothing in sdlora depends on it.
#   python3 bench/pytorch_cases.py [--threads N] [--device cpu|cuda] [--only sd15-train]
import argparse, contextlib, os, statistics, time

import torch
from diffusers.models.unets.unet_2d_condition import UNet2DConditionModel

p = argparse.ArgumentParser()
p.add_argument('--threads', type=int, default=os.cpu_count())
p.add_argument('--device', default='cpu')
p.add_argument('--only', default='')
p.add_argument('--runs', type=int, default=3)
p.add_argument('--px', type=int, default=0, help='sd15-train image size (default: 256 on cpu as the issue-15 case, 512 on cuda)')
p.add_argument('--batch', type=int, default=0, help='sd15-train batch (default: 1 on cpu, 2 on cuda)')
a = p.parse_args()
torch.set_num_threads(a.threads)
torch.manual_seed(0)
dev = torch.device(a.device)

SD15 = dict(sample_size=64, in_channels=4, out_channels=4, block_out_channels=(320, 640, 1280, 1280),
            down_block_types=('CrossAttnDownBlock2D',) * 3 + ('DownBlock2D',),
            up_block_types=('UpBlock2D',) + ('CrossAttnUpBlock2D',) * 3,
            layers_per_block=2, attention_head_dim=8, cross_attention_dim=768, norm_num_groups=32)
TINY = dict(SD15, block_out_channels=(32, 64), down_block_types=('DownBlock2D', 'CrossAttnDownBlock2D'),
            up_block_types=('CrossAttnUpBlock2D', 'UpBlock2D'), cross_attention_dim=32)


def sync():
    if dev.type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, runs):
    fn(); sync()
    ts, cs = [], []
    for _ in range(runs):
        c0, t0 = time.process_time(), time.perf_counter(); fn(); sync()
        ts.append(time.perf_counter() - t0); cs.append(time.process_time() - c0)
    # CPU seconds (all threads) next to wall seconds: on a shared machine the wall time mostly
    # measures the neighbours; the CPU time is the work done.
    return statistics.median(ts), statistics.median(cs)


class LoRA(torch.nn.Module):
    """base(x) + up(down(x)) * alpha/dim on a frozen Linear or 1x1 Conv2d (kohya's LoRA module)."""
    def __init__(self, base, dim, alpha):
        super().__init__()
        self.base, self.scale = base, alpha / dim
        if isinstance(base, torch.nn.Conv2d):
            self.down = torch.nn.Conv2d(base.in_channels, dim, 1, bias=False)
            self.up = torch.nn.Conv2d(dim, base.out_channels, 1, bias=False)
        else:
            self.down = torch.nn.Linear(base.in_features, dim, bias=False)
            self.up = torch.nn.Linear(dim, base.out_features, bias=False)
        torch.nn.init.zeros_(self.up.weight)

    def forward(self, x, *args, **kw):
        return self.base(x) + self.up(self.down(x)) * self.scale


def add_lora(unet, dim):
    targets = []
    for name, mod in unet.named_modules():
        if type(mod).__name__ != 'Transformer2DModel':
            continue
        for sub_name, sub in mod.named_modules():
            if isinstance(sub, torch.nn.Linear) or (isinstance(sub, torch.nn.Conv2d) and sub.kernel_size == (1, 1)):
                targets.append((mod, sub_name))
    for mod, sub_name in targets:
        parent = mod
        *path, leaf = sub_name.split('.')
        for part in path:
            parent = getattr(parent, part)
        setattr(parent, leaf, LoRA(getattr(parent, leaf), dim, dim))
    return len(targets)


rows = []
print(f'PyTorch {torch.__version__}, {a.device}, {torch.get_num_threads()} thread(s)', flush=True)
if a.only in ('', 'tiny'):
    unet = UNet2DConditionModel(**TINY).to(dev)
    x, ctx, t = torch.randn(2, 4, 32, 32, device=dev), torch.randn(2, 77, 32, device=dev), torch.tensor([10, 500], device=dev)
    def step():
        unet.zero_grad(set_to_none=True)
        torch.nn.functional.mse_loss(unet(x, t, ctx).sample, x).backward()
    rows.append(('tiny UNet fwd+bwd, all weights trainable, 2x4x32x32, ctx 77x32', *timed(step, 5)))
    print(rows[-1], flush=True)
if a.only in ('', 'sd15'):
    unet = UNet2DConditionModel(**SD15).to(dev)
    x, ctx, t = torch.randn(1, 4, 32, 32, device=dev), torch.randn(1, 77, 768, device=dev), torch.tensor([500], device=dev)
    def fwd():
        with torch.no_grad():
            unet(x, t, ctx)
    rows.append(('SD1.5 UNet fwd, random weights, 1x4x32x32, ctx 77x768', *timed(fwd, a.runs)))
    print(rows[-1], flush=True)
    del unet
if a.only in ('', 'sd15-train'):
    unet = UNet2DConditionModel(**SD15)
    unet.requires_grad_(False)
    n = add_lora(unet, 64)
    # On cuda: bench/run.ts --sd15-train's step (f16 frozen base under autocast, checkpointing).
    if a.device != 'cpu':
        unet.enable_gradient_checkpointing()
    unet.to(dev)
    lat = (a.px or (256 if a.device == 'cpu' else 512)) // 8
    b = a.batch or (1 if a.device == 'cpu' else 2)
    x, ctx, t = torch.randn(b, 4, lat, lat, device=dev), torch.randn(b, 77, 768, device=dev), torch.tensor([500] * b, device=dev)
    def train():
        unet.zero_grad(set_to_none=True)
        # (torch 1.13 refuses an f16 autocast on cpu even when disabled)
        with torch.autocast('cuda', dtype=torch.float16) if dev.type == 'cuda' else contextlib.nullcontext():
            out = unet(x, t, ctx).sample
        torch.nn.functional.mse_loss(out.float(), x).backward()
    rows.append((f'SD1.5 LoRA step dim 64 ({n} modules), f32 base, MSE fwd+bwd, {b}x4x{lat}x{lat}', *timed(train, a.runs)))

print(f'\nPyTorch {torch.__version__}, {a.device}, {torch.get_num_threads()} thread(s)\n')
print('| case | pytorch median s | pytorch CPU s |')
print('|---|---:|---:|')
for name, sec, cpu in rows:
    print(f'| {name} | {sec:.3f} | {cpu:.2f} |')
