"""`pretrain`: train a backbone with one method; writes a checkpoint that `checkpoint:PATH` evaluates."""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmark.commands import common


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("pretrain", parents=[common.plugins()],
                            help="pretrain a backbone with a method; writes a checkpoint for checkpoint:PATH")
    parser.add_argument("--method", required=True, help="see `ls methods`")
    parser.add_argument("--dataset", default="fashion_mnist", help="source dataset (its train split)")
    parser.add_argument("--arch", default="resnet18", help="timm architecture")
    parser.add_argument("--arch-kwarg", action="append", default=[], metavar="KEY=VALUE",
                        help="timm.create_model argument, e.g. channels=[32,64,128,256]; repeatable")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="method hyperparameter, e.g. temperature=0.5; repeatable")
    parser.add_argument("--small-stem", action="store_true", help="3x3 stride-1 first conv for 32-64 px inputs")
    parser.add_argument("--input-size", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--steps-per-epoch", type=int, default=None, help="default: one pass over the data")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--train-subset", type=int, default=None, help="a seeded stratified subset of the images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True, help="checkpoint path (an interrupted run resumes)")
    parser.add_argument("--data-root", type=Path, default=None)
    parser.add_argument("--device", default="cpu")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from benchmark.training.loop import PretrainConfig, pretrain

    config = PretrainConfig(method=args.method, out=args.out, dataset=args.dataset, arch=args.arch,
                            arch_kwargs=common.key_values(args.arch_kwarg, "--arch-kwarg"), small_stem=args.small_stem,
                            input_size=args.input_size, epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                            batch_size=args.batch_size, lr=args.lr, seed=args.seed, train_subset=args.train_subset,
                            method_params=common.key_values(args.param, "--param"), data_root=args.data_root,
                            device=args.device)
    path = pretrain(config)
    print(f"wrote {path}; evaluate it with: python3 cli.py evaluate --model checkpoint:{path}")
    return 0
