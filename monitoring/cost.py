"""`make cost ENV=...`: what an environment will cost per month, estimated from its synthesized templates.

    python -m monitoring.cost --env prod [--cdk-out cdk.out/prod] [--top 8] [--assume requests_millions=300] [--json]

Per stack, at the service's minimum and maximum task counts, from the dated list-price table of the
environment's region (monitoring/prices/<region>.json) and stated usage assumptions. It is an estimate:
no free tier, no savings plans or reserved instances, no data transfer out to the internet, no taxes.
Exit codes: 0 printed, 2 bad flags, no templates or no price table.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from environments.config import CDK_JSON, ConfigError, load_from_cdk_json
from monitoring.cost_model import PRICES_DIR, Estimate, Usage, estimate, load_prices, load_templates

REPO_ROOT = Path(__file__).resolve().parent.parent


def render(result: Estimate, top: int, template_dir: Path) -> list[str]:
    p = result.prices
    lines = [
        f"Monthly cost ESTIMATE for '{result.env}' ({result.region}, {p['currency']}): list prices, not a quote.",
        f"Prices: monitoring/prices/{result.region}.json, as of {p['as_of']} (recorded {p['recorded']}): {p['source']}",
        f"Templates: {template_dir}",
        "",
        f"{'stack':<28}{'at min tasks':>14}{'at max tasks':>14}",
    ]
    for stack, (low, high) in sorted(result.per_stack().items()):
        lines.append(f"{stack:<28}{low:>14,.2f}{high:>14,.2f}")
    lines += [f"{'total per month':<28}{result.total('min'):>14,.2f}{result.total('max'):>14,.2f}", "",
              "Biggest items (at max tasks) and what changes them:"]
    for rank, item in enumerate(result.biggest(top), 1):
        lines.append(f"{rank:>3}. {item.monthly_max:>10,.2f}  {item.item} [{item.stack.rsplit('-', 1)[-1]}]: "
                     f"{item.quantity}; change: {item.levers}")
    usage = ", ".join(f"{key}={value:g}" for key, value in asdict(result.usage).items())
    lines += ["", f"Usage assumptions (override with --assume KEY=VALUE): {usage}",
              f"{p['hours_per_month']} h per month; Multi-AZ RDS = {p['rds_multi_az_factor']}x single-AZ; Fargate "
              f"Spot = {p['fargate']['spot_fraction_of_on_demand']:.0%} of on-demand; no free tier, savings plans, "
              "internet data transfer or taxes; Container Insights (enhanced) observations and Performance Insights not included."]
    if result.unpriced:
        lines.append("Not priced (add to monitoring/cost_model.py): "
                     + ", ".join(f"{key} x{count}" for key, count in sorted(result.unpriced.items())))
    missing = [item.item for item in result.items if "NO PRICE" in item.item]
    if missing:
        lines.append(f"Missing prices (add them to monitoring/prices/{result.region}.json): {', '.join(missing)}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.cost", description=__doc__.splitlines()[0])
    parser.add_argument("--env", required=True, help="environment name from cdk.json (dev, prod, ...)")
    parser.add_argument("--cdk-out", type=Path, help="synthesized templates (default: cdk.out/<env>)")
    parser.add_argument("--cdk-json", type=Path, default=CDK_JSON, help="configuration (region)")
    parser.add_argument("--prices", type=Path, default=PRICES_DIR, help="directory of <region>.json price tables")
    parser.add_argument("--top", type=int, default=8, help="how many of the biggest items to list (default 8)")
    parser.add_argument("--assume", action="append", default=[], metavar="KEY=VALUE",
                        help="override a usage assumption, e.g. requests_millions=300 (repeatable)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args(argv)
    if args.top < 1:
        parser.error(f"--top must be at least 1, got {args.top}")
    overrides = {}
    for pair in args.assume:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            parser.error(f"--assume takes KEY=VALUE, got {pair!r}")
        overrides[key] = value
    try:
        usage = Usage().with_overrides(overrides)
        config = load_from_cdk_json(args.env, args.cdk_json)
        template_dir = args.cdk_out or REPO_ROOT / "cdk.out" / args.env
        result = estimate(load_templates(template_dir, args.env), load_prices(config.region, args.prices), usage,
                          env=args.env)
    except (ValueError, ConfigError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({"env": result.env, "region": result.region, "estimate": True,
                          "prices_as_of": result.prices["as_of"], "total_min": round(result.total("min"), 2),
                          "total_max": round(result.total("max"), 2),
                          "per_stack": {k: {"min": round(v[0], 2), "max": round(v[1], 2)}
                                        for k, v in result.per_stack().items()},
                          "items": [asdict(item) for item in result.items], "usage": asdict(result.usage),
                          "unpriced": result.unpriced}, indent=2))
    else:
        print("\n".join(render(result, args.top, template_dir)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
