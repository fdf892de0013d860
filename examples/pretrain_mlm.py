"""MLM pretraining of EELBERT with transformers' Trainer (run_mlm.py-style; every TrainingArguments flag works).

Small budget on the shared corpus (minutes on 2 CPU cores):
    python examples/pretrain_mlm.py --preset uno --train_files ../shared/data/corpus/brown.txt \
        --max_seq_length 128 --max_steps 300 --output_dir out/uno-mlm

Data-parallel on CPU (gloo), same flags; without a GPU the script trains with --use_cpu true by itself:
    accelerate launch --multi_gpu --num_processes 2 examples/pretrain_mlm.py ...
    torchrun --nproc_per_node 2 examples/pretrain_mlm.py ...
(`accelerate launch --cpu --num_processes 2` starts one process unless given an MPI hostfile: that is
accelerate's multi-CPU design, so use one of the two commands above on a single machine.)

Real budgets: the paper pretrains for ~900k steps of 256 x 128 tokens; on a GPU, streaming a corpus larger than
memory (one shard per file; see docs/pretrain.md), start from
    --streaming true --train_files <corpus files> --validation_files <held-out file> --preset tiny \
    --max_steps 100000 --per_device_train_batch_size 256 --learning_rate 1e-3 --warmup_steps 2000 --bf16 true \
    --save_steps 5000 --eval_steps 5000
and add `--resume true` to continue an interrupted run from its last complete checkpoint. On 8 GPUs, or two
machines of 8 (NODE_RANK 0 and 1), with --per_device_train_batch_size 32:
    torchrun --nproc_per_node 8 examples/pretrain_mlm.py ...
    torchrun --nnodes 2 --nproc_per_node 8 --node_rank $NODE_RANK --rdzv_backend c10d \
        --rdzv_endpoint <first machine>:29500 examples/pretrain_mlm.py ...
"""

import sys

from eelbert_hf.apps.cli import main

if __name__ == "__main__":
    main(["pretrain", *sys.argv[1:]])
