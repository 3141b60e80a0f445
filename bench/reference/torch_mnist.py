"""PyTorch reference for tinymnist's side-by-side benchmark (bench/compare.ts).

Trains the same architecture as tinymnist's presets with the same recipe
(Adam, one-cycle: linear warm-up from lr/25 over 20% of steps then cosine to
lr/1000, label smoothing 0.1, batch 64, one pass), on the same data, with the
same number of threads, then measures test accuracy and inference speed.
Prints one JSON object on the last line of stdout.

    python3 bench/reference/torch_mnist.py --data-dir ../shared/mnist --preset tiny
"""
import argparse
import gzip
import json
import math
import os
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# Calls before timing inference at batch 1, and calls timed, on both sides of bench/compare.ts.
BATCH1_CALLS = 1000


def read_idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    rank = data[3]
    dims = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(rank)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def load(data_dir, prefix):
    images = read_idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)  # [N,1,28,28]
    return (x - 0.1307) / 0.3081, torch.from_numpy(labels.astype(np.int64))


def block(cin, cout, bias, ceil_mode=False):
    # ceil_mode pools an odd last row and column on their own: TensorFlow's "same" padding.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=bias), nn.BatchNorm2d(cout, momentum=0.1),
            nn.ReLU(), nn.MaxPool2d(2, ceil_mode=ceil_mode)]


def build(preset):
    if preset == "seed":  # conv 8-16-16, dropout 0.25, dense 32, dense 10: 8,618 params
        return nn.Sequential(*block(1, 8, True), *block(8, 16, True), *block(16, 16, True),
                             nn.Dropout(0.25), nn.Flatten(), nn.Linear(144, 32), nn.ReLU(),
                             nn.Linear(32, 10))
    if preset == "small":  # tiny with the last pool padded (7 -> 4): dense 512 -> 10, 19,258 params
        return nn.Sequential(*block(1, 16, False), *block(16, 32, False),
                             *block(32, 32, False, ceil_mode=True), nn.Flatten(), nn.Linear(512, 10))
    # tiny: conv 16-32-32 without bias, BN, ReLU, max-pool; dense 288 -> 10: 17,018 params
    return nn.Sequential(*block(1, 16, False), *block(16, 32, False), *block(32, 32, False),
                         nn.Flatten(), nn.Linear(288, 10))


def lr_at(step, total, peak):
    warm = max(1, round(0.2 * total))
    start, end = peak / 25, peak / 1000
    if step < warm:
        return start + (peak - start) * step / warm
    t = min(1.0, (step - warm) / max(1, total - 1 - warm))
    return end + (peak - end) * 0.5 * (1 + math.cos(math.pi * t))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--preset", default="tiny", choices=["small", "tiny", "seed"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    x_train, y_train = load(args.data_dir, "train")
    x_test, y_test = load(args.data_dir, "t10k")
    model = build(args.preset)
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    n, b = len(x_train), args.batch_size
    steps = math.ceil(n / b)
    order = torch.randperm(n)
    model.train()
    started = time.perf_counter()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, steps, args.lr)
        idx = order[step * b:(step + 1) * b]
        loss = F.cross_entropy(model(x_train[idx]), y_train[idx], label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    train_seconds = time.perf_counter() - started
    model.eval()
    with torch.no_grad():
        correct = sum((model(x_test[i:i + 1000]).argmax(1) == y_test[i:i + 1000]).sum().item()
                      for i in range(0, len(x_test), 1000))
        accuracy = correct / len(x_test)

        def rate(batch, repeats):
            for _ in range(BATCH1_CALLS if batch == 1 else 1):  # warm-up, as bench/compare.ts
                model(x_test[:batch])
            t0 = time.perf_counter()
            for r in range(repeats):
                model(x_test[:batch])
            return batch * repeats / (time.perf_counter() - t0)

        inference_1 = rate(1, BATCH1_CALLS)
        inference_1000 = rate(1000, 10)
    print(json.dumps({
        "framework": f"PyTorch {torch.__version__}", "preset": args.preset, "params": params,
        "threads": args.threads, "batchSize": b, "trainSeconds": train_seconds,
        "trainImagesPerSecond": n / train_seconds, "testAccuracy": accuracy,
        "inferenceBatch1": inference_1, "inferenceBatch1000": inference_1000,
    }))


if __name__ == "__main__":
    main()
