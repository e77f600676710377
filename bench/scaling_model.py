#!/usr/bin/env python3
"""Data-parallel tok/s on paper, from a measured step time and the gradient's size.

Each of N nodes keeps its own batch (weak scaling), so a step trains N times the tokens and
costs the node's compute time plus a ring all-reduce of the gradients:
    2·(N−1)/N · bytes / bandwidth  +  2·(N−1) · latency
With the all-reduce overlapped with the backward pass (gradients sent layer by layer as they
are ready, as PyTorch DDP does), only what outlasts the backward pass (about 2/3 of the step)
is added. Prints a markdown table for 1, 2, 4, 8 and 16 nodes on 10 and 100 Gb/s links.

    bench/scaling_model.py --name default --params 809856 --tokens 2048 --step-ms 93
"""
import argparse


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--name", required=True)
    p.add_argument("--params", type=int, required=True, help="parameters (fp32 gradients)")
    p.add_argument("--tokens", type=int, required=True, help="tokens per step on one node")
    p.add_argument("--step-ms", type=float, required=True, help="measured step time, one node")
    p.add_argument("--latency-us", type=float, default=20.0, help="per message (TCP ~20, RDMA ~3)")
    p.add_argument("--backward", type=float, default=2 / 3, help="backward share of a step")
    args = p.parse_args()

    grad_bytes = 4 * args.params
    compute = args.step_ms / 1e3
    print(f"{args.name}: {args.params:,} parameters = {grad_bytes / 1e6:.1f} MB of gradients, "
          f"{args.tokens:,} tokens per node-step, {args.step_ms:g} ms per step measured")
    print()
    print("| nodes | link | all-reduce ms | tok/s | efficiency | overlapped tok/s | overlapped eff. |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for gbits in (10, 100):
        bandwidth = gbits * 1e9 / 8
        for n in (1, 2, 4, 8, 16):
            comm = 0.0 if n == 1 else (
                2 * (n - 1) / n * grad_bytes / bandwidth + 2 * (n - 1) * args.latency_us / 1e6)
            step = compute + comm
            hidden = compute + max(0.0, comm - args.backward * compute)
            tok = n * args.tokens / step
            tok_overlap = n * args.tokens / hidden
            ideal = n * args.tokens / compute
            flag = " (communication dominates)" if comm > compute else ""
            print(f"| {n} | {gbits} Gb/s | {comm * 1e3:.1f} | {tok:,.0f} | {tok / ideal:.0%}{flag} "
                  f"| {tok_overlap:,.0f} | {tok_overlap / ideal:.0%} |")
    # Where the all-reduce of 16 nodes would take as long as the step.
    for gbits in (10, 100):
        comm16 = 2 * 15 / 16 * grad_bytes / (gbits * 1e9 / 8) + 30 * args.latency_us / 1e6
        print(f"\nAt {gbits} Gb/s, communication dominates 16 nodes once a step computes in under "
              f"{comm16 * 1e3:.1f} ms ({compute / comm16:.0f}× faster nodes than measured).")


if __name__ == "__main__":
    main()
