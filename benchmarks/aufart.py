"""AUFART throughput: inference images/s at batch 1 and 32 (whole network and AU extractor alone) and training steps/s.

    python benchmarks/aufart.py [--device cpu|cuda] [--preset tiny|small|full] [--variant paper|code] [--batches 1 32] [--repeat 3] [--n-vertices 1000]

`full` is the paper's size (two ResNet-50 at 224 px, 512-wide head); `tiny` the CPU test preset (32 px); `small` the
CPU learning preset (64 px, `AufartTrainConfig.cpu_learning`). Random
weights: throughput does not depend on them. The first call of each configuration is a warm-up and is not timed.
A training step is one `aufart_step` (predict, decode the built-in head at `--n-vertices`, render over the input, AU
extractor on the render, losses) plus backward and the optimiser step."""
import argparse, time
import torch
from facebench.aufart.nets import Aufart, AufartConfig
from facebench.aufart.train import AufartTrainConfig, aufart_step, make_datasets
from facebench.models.load import load_model

def sync(device):
    if device.type == 'cuda': torch.cuda.synchronize()

def timed(fn, device, repeat):
    fn(); sync(device)
    t = time.perf_counter()
    for _ in range(repeat): fn()
    sync(device)
    return (time.perf_counter() - t) / repeat

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    ap.add_argument('--preset', default='tiny', choices=['tiny', 'small', 'full'])
    ap.add_argument('--variant', default='paper', choices=['paper', 'code'])
    ap.add_argument('--batches', type=int, nargs='+', default=[1, 32])
    ap.add_argument('--repeat', type=int, default=3)
    ap.add_argument('--train-batch', type=int, default=8)
    ap.add_argument('--n-vertices', type=int, default=1000, help='vertex count of the built-in head')
    a = ap.parse_args()
    dev = torch.device(a.device)
    S = {'tiny': 32, 'small': 64, 'full': 224}[a.preset]
    model = load_model('builtin', device=dev, n_vertices=a.n_vertices)
    net = Aufart(AufartConfig.for_model(model, a.variant, image_size=S, preset=a.preset)).to(dev).eval()
    print(f"AUFART {a.variant}, preset {a.preset} ({S}x{S}); built-in head {model.n_vertices} vertices; device {dev}; "
          f"threads {torch.get_num_threads()}")
    print(f"{'what':>22} {'batch':>5} {'s/batch':>9} {'images/s':>9}")
    for B in a.batches:
        x = torch.rand(B, 3, S, S, device=dev)
        with torch.no_grad():
            for name, fn in (('AUFART inference', lambda: net(x)), ('AU extractor alone', lambda: net.au_net(x))):
                s = timed(fn, dev, a.repeat)
                print(f"{name:>22} {B:>5} {s:>9.4f} {B / s:>9.1f}")
    cfg = AufartTrainConfig(variant=a.variant, net_preset=a.preset, image_size=S, n_train=max(a.train_batch, 8), n_val=1, progress=False)
    train, _ = make_datasets(model, cfg)
    train = train.to(dev)
    opt = torch.optim.Adam(net.head.parameters(), 1e-4)
    net.train()
    idx = torch.arange(a.train_batch, device=dev) % len(train)
    def step():
        so = aufart_step(net, model, train[idx], cfg)
        opt.zero_grad(); so.loss.backward(); opt.step()
    s = timed(step, dev, a.repeat)
    print(f"{'training step':>22} {a.train_batch:>5} {s:>9.4f} {1 / s:>9.2f} steps/s")

if __name__ == '__main__':
    main()
