"""Run one quality experiment: one JSON per (variant, seed) under results/<experiment>/, existing ones skipped.

    .venv/bin/python benchmarks/quality/run.py features
    .venv/bin/python benchmarks/quality/run.py joint --seeds 0 1 2
    .venv/bin/python benchmarks/quality/run.py llrd --quick          # a few steps, to check the plumbing
    .venv/bin/python benchmarks/quality/run.py all                   # everything (hours on 2 CPU cores)

``--only VARIANT`` runs a single variant. Experiments and their variants are listed in experiments.py.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import RESULTS, result_path, seed_everything, setup_threads, write_result  # noqa: E402


def _run_features(seeds: list[int], quick: bool, only: str | None) -> None:
    from features import run_features

    for seed in seeds[:1]:  # deterministic apart from the logistic-regression solver: one seed is enough
        path = result_path("features", "frozen_features", seed)
        if path.exists():
            print(f"skip {path.relative_to(RESULTS)} (exists)")
            continue
        seed_everything(seed)
        result = run_features(seed)
        write_result(path, {"experiment": "features", "variant": "frozen_features", "seed": seed, **result})
        print(f"wrote {path.relative_to(RESULTS)}: {result['metrics']}")


def _run_trained(experiment: str, seeds: list[int], quick: bool, only: str | None) -> None:
    from experiments import EXPERIMENTS, run_variant

    for variant in EXPERIMENTS[experiment]:
        if only and variant.name != only:
            continue
        for seed in seeds[: variant.max_seeds]:
            path = result_path(experiment, variant.name, seed)
            if quick:
                path = path.with_name("quick-" + path.name)
            if path.exists():
                print(f"skip {path.relative_to(RESULTS)} (exists)")
                continue
            seed_everything(seed)
            try:
                result = run_variant(experiment, variant, seed, quick)
            except Exception:  # one broken variant must not stop a night of runs
                traceback.print_exc()
                print(f"FAILED {experiment}/{variant.name} seed {seed}", flush=True)
                continue
            write_result(path, result)
            print(f"wrote {path.relative_to(RESULTS)}: {result['metrics']} ({result['wall_s']} s)", flush=True)


def _print_config(experiment: str, only: str | None, seed: int) -> None:
    """The YAML that ``mtst train`` takes, with the data directory written as ${MTST_DATA_DIR}."""
    import yaml
    from common import DATA
    from experiments import EXPERIMENTS, build_config

    variant = next((v for v in EXPERIMENTS.get(experiment, []) if v.name == only), None)
    if variant is None:
        raise SystemExit(f"--print-config needs --only VARIANT of a trained experiment, got {experiment}/{only}")
    raw = build_config(experiment, variant, seed, quick=False)
    raw["run"]["output_dir"] = f"runs/{experiment}/{variant.name}-seed{seed}"
    text = yaml.safe_dump(raw, sort_keys=False).replace(str(DATA), "${MTST_DATA_DIR}")
    print(f"# .venv/bin/mtst train THIS.yaml   (written by: run.py {experiment} --only {only} --print-config)")
    print(text, end="")


def main() -> None:
    from experiments import EXPERIMENTS

    names = ["features", *EXPERIMENTS]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("experiment", choices=[*names, "all"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--quick", action="store_true", help="tiny step budget; results marked quick-")
    parser.add_argument("--only", default=None, help="run one variant of the experiment")
    parser.add_argument("--print-config", action="store_true",
                        help="print the variant's config as YAML for `mtst train` (needs --only) and exit")
    args = parser.parse_args()
    if args.print_config:
        _print_config(args.experiment, args.only, args.seeds[0])
        return
    setup_threads()
    for name in names if args.experiment == "all" else [args.experiment]:
        if name == "features":
            _run_features(args.seeds, args.quick, args.only)
        else:
            _run_trained(name, args.seeds, args.quick, args.only)


if __name__ == "__main__":
    main()
