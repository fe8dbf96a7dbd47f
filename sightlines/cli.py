"""The ``sightlines`` command line: every step is a command; the commands hold no logic.

Each command parses its arguments, calls one library function and prints the
result (text, or JSON with ``--json``). A :class:`~sightlines.errors.SightlinesError`
becomes a one-line message on stderr and the error's exit code: 1 for a
failure, 2 for a usage or config problem, 99 (:data:`~sightlines.errors.EXIT_SKIPPED`)
when there was nothing to do (e.g. a sightline without enough history).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from .errors import ConfigError, SightlinesError
from .result import StepResult

__all__ = ["main", "build_parser"]

log = logging.getLogger("sightlines.cli")


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date: use YYYY-MM-DD") from None


def _storage(args: argparse.Namespace) -> Any:
    from .storage import Storage

    return Storage(args.root)


def _client_config(storage: Any, client: str) -> Any:
    from .config import ClientConfig
    from .registry import load_registry

    reg = load_registry(storage)
    if client in reg.clients:
        return reg.config(client)
    return ClientConfig()


def _print_result(result: StepResult, as_json: bool) -> None:
    if as_json:
        print(json.dumps(result.to_dict(), indent=2, sort_keys=True, default=str))
    else:
        print(result.summary())


# -- commands -------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from .synth import generate_client

    storage = _storage(args)
    result = generate_client(storage.client(args.client), users=args.users, date=args.date, seed=args.seed,
                             bad_fraction=args.bad_fraction)
    _print_result(result, args.json)
    return 0


def _json_option(flag: str, text: str) -> Any:
    """The JSON value of a command-line option; a usage error (exit 2) when it is not JSON."""
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{flag} is not valid JSON ({exc}): {text[:80]!r}") from None


def cmd_clients(args: argparse.Namespace) -> int:
    from .registry import add_clients, load_registry, remove_clients, set_fleet

    storage = _storage(args)
    if args.clients_cmd == "add":
        config = _json_option("--config", args.config) if args.config else None
        if config is not None and not isinstance(config, dict):
            raise ConfigError("--config must be a JSON object, e.g. '{\"bad_fraction_max\": 0.1}'")
        if args.backend:
            config = {**(config or {}), "backend": args.backend}
        reg = add_clients(storage, args.names, config=config)
        print(f"{len(args.names)} client(s) added or updated; the registry has {len(reg.clients)} client(s)")
    elif args.clients_cmd == "remove":
        reg = remove_clients(storage, args.names)
        print(f"removed {len(args.names)} client(s); {len(reg.clients)} left (their data stays in storage)")
    elif args.clients_cmd == "fleet":
        settings: dict[str, Any] = {}
        if args.backend:
            settings["backend"] = args.backend
        if args.airflow:
            airflow = _json_option("--airflow", args.airflow)
            if not isinstance(airflow, dict):
                raise ConfigError("--airflow must be a JSON object, e.g. '{\"aws_conn_id\": \"sightlines_s3\"}'")
            settings["airflow"] = airflow
        reg = set_fleet(storage, **settings)
        print(f"fleet settings: {json.dumps(reg.fleet, sort_keys=True)}")
    else:
        reg = load_registry(storage)
        if args.json:
            print(json.dumps(reg.to_json(), indent=2, sort_keys=True))
        else:
            for name in reg.names():
                cfg = reg.clients[name]
                extra = f"  {json.dumps(cfg, sort_keys=True)}" if cfg else ""
                print(f"{name}{extra}")
            print(f"# {len(reg.clients)} client(s), fleet backend {reg.fleet.get('backend', 'local')}", file=sys.stderr)
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from .pipeline import learn_client_schema
    from .schema import load_schema

    storage = _storage(args)
    store = storage.client(args.client)
    if args.schema_cmd == "refresh":
        if args.date is None:
            raise ConfigError("schema refresh needs --date: the snapshot to learn from")
        schema = learn_client_schema(store, args.date, _client_config(storage, args.client))
        print(f"schema v{schema.version} of {args.client} learned from {args.date}: {len(schema.columns())} columns")
        return 0
    schema = load_schema(store)
    if schema is None:
        print(f"{args.client} has no schema yet: `sightlines step extract` learns one from the first snapshot")
        return 0
    if args.json:
        print(json.dumps(schema.to_dict(), indent=2, sort_keys=True))
        return 0
    print(f"schema v{schema.version} of {args.client} (learned from {schema.learned_from}, "
          f"{schema.sample_users:,} users sampled, {len(schema.columns())} columns)")
    for s in schema.scalars:
        lv = f" levels={list(s.levels)}" if s.levels else ""
        print(f"  {s.name:40s} {s.kind}{lv}")
    for lst in schema.lists:
        print(f"  {lst.name + '.len':40s} list length")
    for e in schema.events:
        print(f"  {e.name:40s} events (time={e.time_field}, numeric={list(e.numeric)}, flags={list(e.flags)}, "
              f"lengths={list(e.lengths)}, levels={ {k: list(v) for k, v in e.levels.items()} })")
    for ig in schema.ignored:
        print(f"  ignored: {ig}")
    return 0


def cmd_step(args: argparse.Namespace) -> int:
    from . import pipeline

    storage = _storage(args)
    config = _client_config(storage, args.client)
    kwargs: dict[str, Any] = {"config": config}
    if args.step == "train":
        if not args.sightline:
            raise ConfigError("step train needs --sightline NAME (see `sightlines catalog`)")
        kwargs["sightline"] = args.sightline
    elif args.sightline:
        raise ConfigError(f"--sightline only applies to the train step, not {args.step}")
    fn = pipeline.STEPS[args.step]
    result = pipeline.recorded(args.step, fn, args.client, args.date, storage, **kwargs)
    _print_result(result, args.json)
    return 0


#: exit code of ``run`` when only stale predictions could be republished
EXIT_STALE = 3


def cmd_run(args: argparse.Namespace) -> int:
    from .pipeline import run_daily

    storage = _storage(args)
    out = run_daily(args.client, args.date, storage, config=_client_config(storage, args.client))
    if args.json:
        print(json.dumps({"client": out.client, "date": out.date.isoformat(), "stale_days": out.stale_days,
                          "seconds": round(out.seconds, 2), "steps": [r.to_dict() for r in out.steps]},
                         indent=2, sort_keys=True, default=str))
    else:
        print(out.summary())
    if out.published is None:
        return 1
    return 0 if out.stale_days == 0 else EXIT_STALE


def cmd_show(args: argparse.Namespace) -> int:
    from .show import format_table, user_sightlines

    storage = _storage(args)
    store = storage.client(args.client)
    date, manifest, rows = user_sightlines(store, args.user, args.date.isoformat() if args.date else None)
    if args.json:
        print(json.dumps({"client": args.client, "user_id": args.user, "date": date,
                          "stale_days": manifest.get("stale_days", 0),
                          "sightlines": [r.__dict__ for r in rows]}, indent=2, sort_keys=True))
    else:
        print(format_table(args.client, args.user, date, manifest, rows))
    return 0


def cmd_catalog(args: argparse.Namespace) -> int:
    from .catalog import catalog

    storage = _storage(args)
    config = _client_config(storage, args.client) if args.client else None
    for s in catalog(config):
        if args.json:
            print(json.dumps(s.to_dict(), sort_keys=True))
        else:
            print(f"{s.name:12s} {s.description:45s} {s.role:9s} {s.aggregate:5s} {s.horizon:4d}d  {s.objective}")
    return 0


def cmd_fleet(args: argparse.Namespace) -> int:
    from .fleet import fleet_status, format_fleet_status, write_fleet_status
    from .registry import load_registry

    storage = _storage(args)
    clients = args.clients or load_registry(storage).names()
    status = fleet_status(storage, args.date, clients)
    if args.write:
        key = write_fleet_status(storage, status)
        print(f"# written to {storage.url_of(key)}", file=sys.stderr)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True, default=str))
    else:
        print(format_fleet_status(status, limit=args.limit))
    counts = status["counts"]
    return 0 if counts.get("failed", 0) == 0 and counts.get("missing", 0) == 0 else 1


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo

    return run_demo(root=args.root, clients=args.clients, users=args.users, date=args.date,
                    run=not args.generate_only, days=args.days)


# -- parser -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sightlines", description="Daily per-user behaviour predictions for client brands.")
    p.add_argument("--verbose", "-v", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp: argparse.ArgumentParser, *, client: bool = True, date: bool = True, date_required: bool = True) -> None:
        sp.add_argument("--root", default=None,
                        help="storage root: a directory or s3://bucket/prefix (default $SIGHTLINES_ROOT, then ./data)")
        if client:
            sp.add_argument("--client", required=True, help="client id")
        if date:
            sp.add_argument("--date", type=_date, required=date_required, help="run date YYYY-MM-DD")
        sp.add_argument("--json", action="store_true", help="print the result as JSON")

    g = sub.add_parser("generate", help="write a synthetic client's snapshot (demo, tests, benchmarks)")
    common(g)
    g.add_argument("--users", type=int, required=True)
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--bad-fraction", type=float, default=0.0, help="fraction of injected bad records")
    g.set_defaults(fn=cmd_generate)

    c = sub.add_parser("clients", help="the client registry")
    csub = c.add_subparsers(dest="clients_cmd", required=True)
    ca = csub.add_parser("add", help="add or update clients")
    common(ca, client=False, date=False)
    ca.add_argument("names", nargs="+")
    ca.add_argument("--config", help="JSON object of config overrides, e.g. '{\"bad_fraction_max\": 0.1}'")
    ca.add_argument("--backend", choices=("local", "mesos"), help="compute backend of these clients")
    cr = csub.add_parser("remove", help="remove clients from the registry")
    common(cr, client=False, date=False)
    cr.add_argument("names", nargs="+")
    cl = csub.add_parser("list", help="list clients")
    common(cl, client=False, date=False)
    cf = csub.add_parser("fleet", help="fleet-wide settings")
    common(cf, client=False, date=False)
    cf.add_argument("--backend", choices=("local", "mesos"), help="compute backend of every client without its own")
    cf.add_argument("--airflow", help="JSON of fleet-wide Airflow settings for the DAG file, e.g. "
                                      "'{\"aws_conn_id\": \"sightlines_s3\", \"pool\": \"sightlines\"}'")
    c.set_defaults(fn=cmd_clients)

    s = sub.add_parser("schema", help="show or refresh a client's feature schema")
    ssub = s.add_subparsers(dest="schema_cmd", required=True)
    common(ssub.add_parser("show"), date=False)
    common(ssub.add_parser("refresh"), date_required=False)
    s.set_defaults(fn=cmd_schema)

    st = sub.add_parser("step", help="run one step for one client and date")
    st.add_argument("step", choices=("extract", "sample", "train", "score", "publish"))
    common(st)
    st.add_argument("--sightline", help="the sightline (train only)")
    st.set_defaults(fn=cmd_step)

    r = sub.add_parser("run", help="the whole day of one client: extract, sample, train, score, publish")
    common(r)
    r.set_defaults(fn=cmd_run)

    sh = sub.add_parser("show", help="one user's sightlines, in words and human units")
    common(sh, date_required=False)
    sh.add_argument("--user", required=True, help="user id")
    sh.set_defaults(fn=cmd_show)

    ct = sub.add_parser("catalog", help="list the sightlines (of a client, with its additions)")
    ct.add_argument("--root", default=None)
    ct.add_argument("--client")
    ct.add_argument("--json", action="store_true")
    ct.set_defaults(fn=cmd_catalog)

    fl = sub.add_parser("fleet", help="fleet status of a date: fresh, stale N days, failed (why), missing")
    fsub = fl.add_subparsers(dest="fleet_cmd", required=True)
    fs = fsub.add_parser("status")
    common(fs, client=False)
    fs.add_argument("--clients", nargs="*", help="only these clients (default: the registry)")
    fs.add_argument("--write", action="store_true", help="also write fleet/{date}/status.json under the root")
    fs.add_argument("--limit", type=int, default=None, help="list at most this many non-fresh clients")
    fl.set_defaults(fn=cmd_fleet)

    d = sub.add_parser("demo", help="generate demo clients, run their day, show one user (the README's first command)")
    d.add_argument("--root", default=None)
    d.add_argument("--clients", type=int, default=3)
    d.add_argument("--users", type=int, default=8000)
    d.add_argument("--date", type=_date, default=None, help="run date (default: yesterday)")
    d.add_argument("--days", type=int, default=1,
                   help="snapshots per brand, ending on the run date (earlier ones are there to backfill)")
    d.add_argument("--generate-only", action="store_true", help="generate and register the demo brands, run nothing")
    d.set_defaults(fn=cmd_demo)
    return p


def _configure_logging(verbose: bool) -> None:
    level = logging.DEBUG if verbose else getattr(logging, os.environ.get("SIGHTLINES_LOG_LEVEL", "INFO").upper(),
                                                  logging.INFO)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("sightlines").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sightlines`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args.verbose)
    try:
        return int(args.fn(args) or 0)
    except SightlinesError as exc:
        print(f"sightlines: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("sightlines: interrupted", file=sys.stderr)
        return 130
