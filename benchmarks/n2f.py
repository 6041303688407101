"""N2FNet regressor inference speed: frames per second at batch 1 and 32 for ViT-S/B/L/16, fp32 and bf16.

    python benchmarks/n2f.py [--device cuda|cpu] [--backbones vit_s16 vit_b16 vit_l16] [--batches 1 32] [--repeat 20]

A frame is one 256x256 input through backbone + FLAME module + camera module (random weights: speed does not
depend on them); FPS = batch * repeats / seconds after warm-up, synchronised. Output widths are FLAME's (300+6+100+2)."""
import argparse, time
import torch
from facebench.n2f.model import N2FNet, N2FConfig, ParamLayout

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--backbones', nargs='+', default=['vit_s16', 'vit_b16', 'vit_l16'])
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    ap.add_argument('--dtypes', nargs='+', default=['fp32', 'bf16'])
    ap.add_argument('--repeat', type=int, default=20)
    ap.add_argument('--size', type=int, default=256)
    a = ap.parse_args()
    dev = torch.device(a.device)
    if dev.type == 'cuda': torch.backends.cuda.matmul.allow_tf32 = False
    sync = (lambda: torch.cuda.synchronize(dev)) if dev.type == 'cuda' else (lambda: None)
    print(f"device {torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}; input {a.size}x{a.size}; FLAME layout")
    print(f"{'backbone':>9} {'dtype':>5} {'batch':>5} {'ms/batch':>9} {'FPS':>9}")
    for bb in a.backbones:
        net = N2FNet(ParamLayout(300, 6, 100, 2), N2FConfig(backbone=bb, image_size=a.size)).to(dev).eval()
        for dt in a.dtypes:
            for B in a.batches:
                x = torch.randn(B, 3, a.size, a.size, device=dev)
                f = torch.full((B, 2), 1500.0, device=dev); c = torch.full((B, 2), a.size / 2, device=dev)
                ctx = torch.autocast(dev.type, dtype=torch.bfloat16) if dt == 'bf16' else torch.autocast(dev.type, enabled=False)
                with torch.inference_mode(), ctx:
                    for _ in range(3): net(x, f, c)
                    sync(); t0 = time.perf_counter()
                    for _ in range(a.repeat): net(x, f, c)
                    sync(); s = (time.perf_counter() - t0) / a.repeat
                print(f"{bb:>9} {dt:>5} {B:>5} {s * 1000:9.2f} {B / s:9.1f}")
        del net
        if dev.type == 'cuda': torch.cuda.empty_cache()

if __name__ == '__main__':
    main()
