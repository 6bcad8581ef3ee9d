"""The model benchmarks on a GPU, in bf16 with channels_last, sized to finish in a few minutes.

    python benchmarks/bench_gpu.py            (make bench-gpu; needs a CUDA GPU)

Same tables as bench_models.py: (a) Lightning vs a plain loop at the default synthetic size, (b) inference at
512 px per model (eager, channels_last, compiled, ONNX Runtime), (c) peak GPU memory of training at 512 px.
Extra arguments go to bench_models.py, e.g. --capacity capacity=paper.
"""

import sys

import torch
from bench_models import main

if __name__ == "__main__":
    if not torch.cuda.is_available():
        sys.exit("bench_gpu.py needs a CUDA GPU (torch.cuda.is_available() is False); on the CPU: make bench")
    main(
        [
            "--device",
            "cuda",
            "--precision",
            "bf16",
            "--channels-last",
            "--workers",
            "4",
            "--repeats",
            "2",
            "--infer-batch",
            "32",
            "--repeats-infer",
            "20",
            "--memory-batch",
            "16",
            "--matmul-size",
            "8192",
            *sys.argv[1:],
        ]
    )
