"""Run under torchrun by tests/test_distributed.py: train a tiny GPT with DDP and check, after
every optimiser step, that every process holds exactly the same parameters."""
import json
import sys

import torch
import torch.distributed as dist

from book import distributed
from book.model import GPT, GPTConfig
from book.training import TrainConfig, train


def main(report_path):
    process, device = distributed.start("cpu")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=11, context_length=8, n_layer=1, n_head=2, d_model=8))
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    ids = torch.randint(11, (400,), generator=torch.Generator().manual_seed(1))
    config = TrainConfig(max_steps=6, batch_size=4, context_length=8, warmup_steps=1, eval_interval=3, eval_iters=2)
    differences = []

    def compare(step):
        flat = torch.cat([p.detach().flatten() for p in model.parameters()])
        gathered = [torch.empty_like(flat) for _ in range(process.world_size)]
        dist.all_gather(gathered, flat)
        differences.append(max(float((g - gathered[0]).abs().max()) for g in gathered))

    history = train(ddp, ids, ids, config, progress=False, on_step=compare, process=process)
    if process.is_main:
        with open(report_path, "w") as handle:
            json.dump({"differences": differences, "train_loss": history.train_loss,
                       "eval_steps": history.eval_steps}, handle)
    distributed.stop(process)


if __name__ == "__main__":
    main(sys.argv[1])
