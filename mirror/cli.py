"""The command line: parse arguments, call one command module, map errors to exit codes.

Every command is a thin call into mirror.commands (or mirror.config); the
only logic here is turning a MirrorError into its message and its exit code
(mirror.errors.EXIT_CODES), in main(), the one place that does it.
"""

import argparse
import os
import sys
from pathlib import Path

from .config import dotconfig, extra_vars, kconfig, settings
from .errors import DockerError, KconfigToolError, MirrorError, exit_code
from .host.client_files import ClientPaths

DEFAULT_CONFIG = os.environ.get("KCONFIG_CONFIG", ".config")


def cmd_config(args) -> int:
    tool_args = list(args.args)
    if args.tool == "defconfig":
        if len(tool_args) != 1:
            raise KconfigToolError("usage: config defconfig NAME (a file in defconfigs/)")
        tool_args = ["--kconfig", str(kconfig.KCONFIG), str(kconfig.defconfig_path(tool_args[0]))]
    elif args.tool == "savedefconfig":
        tool_args = ["--kconfig", str(kconfig.KCONFIG), *tool_args]
    else:
        tool_args = [str(kconfig.KCONFIG), *tool_args]
    return kconfig.run_tool(args.tool, tool_args, config=args.config)


def cmd_extra_vars(args) -> int:
    config = dotconfig.load(args.config)
    settings.from_dotconfig(config)  # refuse to publish values that do not validate
    path = extra_vars.write(config, args.out)
    print(f"wrote {path}")
    return 0


def cmd_check(args) -> int:
    from .config import exposure
    loaded = settings.load(args.config)
    upstreams = ", ".join(f"{u.registry} on {u.endpoint.listen}" for u in loaded.upstreams)
    print(f"{args.config}: OK ({'enabled' if loaded.enabled else 'disabled'}; {upstreams})")
    for line in exposure.warnings(loaded) if loaded.enabled else ():
        print(line, file=sys.stderr)
    return 0


# The command line's overrides of .config (kdevops' docker-mirror-setup.sh DIR PORT NAME):
# (option, symbol, type, help). Setup passes them on to the keeper and the refresh it starts.
OVERRIDES = (
    ("--path", "DOCKER_MIRROR_PATH", str, "mirror directory (overrides DOCKER_MIRROR_PATH)"),
    ("--port", "DOCKER_MIRROR_PORT", int, "Docker Hub mirror port (overrides DOCKER_MIRROR_PORT)"),
    ("--name", "DOCKER_MIRROR_CONTAINER_PREFIX", str,
     "container name prefix (overrides DOCKER_MIRROR_CONTAINER_PREFIX)"),
)


def add_overrides(parser: argparse.ArgumentParser) -> None:
    for option, _, kind, text in OVERRIDES:
        parser.add_argument(option, type=kind, help=text)


def override_args(args) -> list[str]:
    """The overrides given, as words of a command line that repeats them."""
    words = []
    for option, _, _, _ in OVERRIDES:
        value = getattr(args, option[2:])
        if value is not None:
            words += [option, str(value)]
    return words


def load_settings(args) -> settings.Settings:
    """.config, with the command line's overrides (when the command takes them)."""
    config = dotconfig.load(args.config)
    overrides = {symbol: getattr(args, option[2:], None) for option, symbol, _, _ in OVERRIDES}
    overrides = {symbol: value for symbol, value in overrides.items() if value is not None}
    if overrides:
        config = config.with_values(overrides, origin="command line")
    return settings.from_dotconfig(config)


def cmd_docker_mirror(args) -> int:
    from .commands import install
    from .engine.client import connect
    from .config import exposure
    loaded = load_settings(args)
    for line in exposure.warnings(loaded) if loaded.enabled else ():
        print(line, file=sys.stderr)
    report = install.docker_mirror(loaded, connect(), boot=args.boot, mirror_args=override_args(args))
    for upstream in loaded.upstreams:
        if upstream.key in report.actions:
            print(f"{upstream.registry}: {report.modes[upstream.key]} mirror on "
                  f"{upstream.endpoint.listen} ({report.actions[upstream.key]})")
    return 0


def cmd_watch(args) -> int:
    from datetime import datetime

    from .commands import keeper
    from .engine.client import connect

    def log(line: str) -> None:
        # The journal stamps each line itself; a log file needs the time written in.
        stamp = "" if os.environ.get("JOURNAL_STREAM") else f"{datetime.now():%Y-%m-%d %H:%M:%S} "
        print(f"{stamp}{line}", flush=True)

    return keeper.run(lambda: load_settings(args), connect, log=log)


def cmd_serve_status(args) -> int:
    from .commands import observe, observe_serve
    loaded = load_settings(args)
    if args.textfile:
        # One sample and the textfile, then exit (a cron job or timer instead of the service).
        service = observe_serve.Service(loaded)
        service.tick()
        print(observe.write_textfile(loaded, service.collectors) or
              "no DOCKER_MIRROR_OBSERVE_TEXTFILE_DIR configured: sampled only")
        return 0
    return observe_serve.serve(loaded, log=lambda line: print(line, flush=True))


def cmd_remove(args) -> int:
    from .commands import remove
    from .engine.client import connect
    loaded = load_settings(args)
    try:
        client = connect()
    except DockerError as err:
        client = None
        print(f"warning: {err}; containers are left as they are", file=sys.stderr)

    def confirm(question: str) -> bool:
        # PURGE=1 is the answer where nobody can be asked (CI, a pipe).
        if not sys.stdin.isatty():
            return True
        try:
            return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")
        except EOFError:
            return False

    found = remove.remove(loaded, client, purge_cache=args.purge, confirm=confirm)
    if not found and not args.purge:
        print(f"nothing of the mirror in {loaded.path} is set up on this host")
    return 0


def cmd_refresh(args) -> int:
    from .commands import refresh, warm
    from .engine.client import connect
    loaded = load_settings(args)
    log_path = Path(os.path.abspath(args.log)) if args.log else None
    echo = print if sys.stdout.isatty() or args.verbose else None
    return refresh.run(loaded, connect(), log_path=log_path, wait=not args.no_wait,
                       echo=echo, warm=warm.warm)


def cmd_pull(args) -> int:
    """A forced, blocking refresh, printing as it goes (mirror-docker-images.sh)."""
    from .commands import archive, refresh, scan, warm
    from .config.image_lists import read_list_file
    from .engine.client import connect
    config = dotconfig.load(args.config)
    loaded = settings.from_dotconfig(config)
    extra, errors = [], []
    if args.list:
        extra, errors = read_list_file(os.path.abspath(args.list))
    if args.scan or args.scan_dir:
        extra += scan.mirrored(scan.scan(config, args.scan_dir), loaded)

    def work(settings_, log, client) -> list[str]:
        failed = warm.warm(settings_, log, client, extra=extra, extra_errors=errors)
        if args.archive:
            failed += archive.archive_images(settings_, client, log=log, prune=args.prune, extra=extra)
        return list(dict.fromkeys(failed))

    return refresh.run(loaded, connect(), wait=not args.no_wait, echo=print, warm=work)


def cmd_scan(args) -> int:
    from .commands import scan
    print(scan.format_listing(scan.scan(dotconfig.load(args.config), args.dirs)), end="")
    return 0


def cmd_status(args) -> int:
    import json

    from .commands import status
    from .engine.client import connect
    loaded = settings.load(args.config)
    try:
        client = connect()
    except DockerError:
        client = None  # still report what the storage tree and ports say
    doc = status.gather(loaded, client)
    print(json.dumps(doc, indent=2) if args.json else status.format_text(doc), end="\n")
    return status.exit_code(doc)


def cmd_gc(args) -> int:
    from .commands import refresh
    from .engine.client import connect
    refresh.collect_now(settings.load(args.config), connect(), dry_run=args.dry_run)
    return 0


def cmd_check_mirror(args) -> int:
    from .commands import status
    text, code = status.check(settings.load(args.config), args.check, args.image)
    if text is not None:
        print(text)
    return code


def cmd_image_url(args) -> int:
    from .commands import rewrite
    for reference in rewrite.mirror_images(args.refs, settings.load(args.config),
                                           probe=not args.no_probe):
        print(reference)
    return 0


def cmd_clients(args) -> int:
    from .commands import clients
    paths = ClientPaths(*(Path(p) for p in (args.daemon_json, args.docker_pid,
                                                     args.containerd_config, args.certs_dir)))
    report = clients.apply(settings.load(args.config), paths, reload=not args.no_reload)
    print("\n".join(report.lines))
    return 0


def cmd_clients_undo(args) -> int:
    from .commands import clients
    report = clients.undo(settings.load(args.config), reload=not args.no_reload)
    print("\n".join(report.lines))
    return 0


def cmd_restore(args) -> int:
    from .commands import refresh
    from .engine.client import connect
    failures = refresh.restore_now(settings.load(args.config), connect(), paths=args.archives or None)
    return 1 if failures else 0


def cmd_k8s(args) -> int:
    from .commands import k8s
    config = dotconfig.load(args.config)
    report = k8s.render(settings.from_dotconfig(config), config, args.out, k8s.options(vars(args)))
    print("\n".join(report.warnings), file=sys.stderr, end="\n" if report.warnings else "")
    print("\n".join(report.lines))
    return 0


def cmd_engine(args) -> int:
    from .commands import engine
    from .engine.client import connect
    report = engine.run(rebuild=args.rebuild, apt=args.apt, test=args.test,
                        image=not args.no_image, connect=connect)
    print("\n".join(report.lines))
    return 0


def cmd_docs(args) -> int:
    from .config import options_reference
    print(f"wrote {options_reference.write()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python3 -m mirror",
                                     description="Kconfig-driven Docker registry mirror.")
    parser.add_argument("--config", default=DEFAULT_CONFIG,
                        help="the .config to read (default: $KCONFIG_CONFIG or .config)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = commands.add_parser("config", help="run a Kconfig tool on this tree")
    config.add_argument("tool", choices=kconfig.TOOLS)
    config.add_argument("args", nargs=argparse.REMAINDER)
    config.set_defaults(func=cmd_config)

    extra = commands.add_parser("extra-vars", help="write extra_vars.yaml from .config")
    extra.add_argument("--out", default="extra_vars.yaml")
    extra.set_defaults(func=cmd_extra_vars)

    commands.add_parser("check", help="validate .config").set_defaults(func=cmd_check)

    engine = commands.add_parser("engine", help="build the registry engine (distribution from the "
                                 "distribution's source package, with patches/distribution/) and its image, "
                                 "once per machine")
    engine.add_argument("--rebuild", action="store_true",
                        help="build again, fetching Debian's source anew (a cached build is reused otherwise)")
    engine.add_argument("--test", action="store_true",
                        help="then run Go's own tests of the proxy and the azure driver in the patched tree")
    engine.add_argument("--apt", action="store_true",
                        help="may add a deb-src source, run apt-get update and install the build's packages "
                        "(make deps); otherwise a missing one is an error")
    engine.add_argument("--no-image", action="store_true", help="the binary only, no image")
    engine.set_defaults(func=cmd_engine)

    commands.add_parser("docs", help="write docs/options.md, the options reference, from the Kconfig tree"
                        ).set_defaults(func=cmd_docs)

    for name in ("docker-mirror", "mirror"):
        setup = commands.add_parser(name, help="set up the Docker registry mirror" if name != "mirror"
                                    else "set up every enabled mirror (the Docker mirror included)")
        setup.add_argument("--boot", action="store_true",
                           help="the mirrors alone: re-check upstreams, (re)start the containers; "
                           "no units, keeper or refresh (what the keeper does at each check)")
        add_overrides(setup)
        setup.set_defaults(func=cmd_docker_mirror)

    watch = commands.add_parser("watch", help="keep the mirrors up (the keeper that docker-mirror "
                                "starts: a systemd unit, or a background process)")
    add_overrides(watch)
    watch.set_defaults(func=cmd_watch)

    serve_status = commands.add_parser("serve-status", help="the metrics (/metrics) and status page (/) "
                                       "service that docker-mirror starts when DOCKER_MIRROR_OBSERVE is on")
    serve_status.add_argument("--textfile", action="store_true",
                              help="take one sample, write the textfile collector's file and exit")
    add_overrides(serve_status)
    serve_status.set_defaults(func=cmd_serve_status)

    remove = commands.add_parser("remove", help="take down what docker-mirror set up (keeper, units, "
                                 "containers, NFS export); the cache stays unless --purge")
    remove.add_argument("--purge", action="store_true",
                        help="also delete the mirror directory and its cache (asks first on a terminal)")
    add_overrides(remove)
    remove.set_defaults(func=cmd_remove)

    refresh = commands.add_parser("refresh", help="one refresh run (what the timer starts)")
    refresh.add_argument("--log", help="log file (default: logs/update-<time>.log)")
    refresh.add_argument("--no-wait", action="store_true",
                         help="exit at once when another refresh is running")
    refresh.add_argument("-v", "--verbose", action="store_true", help="also print the log lines")
    add_overrides(refresh)
    refresh.set_defaults(func=cmd_refresh)

    pull = commands.add_parser("pull", help="warm the mirror with the images to keep, now")
    pull.add_argument("list", nargs="?", help="a file of more images, one reference per line")
    pull.add_argument("--scan", action="store_true",
                      help="also warm the images the project's Kconfig, .config and templates use")
    pull.add_argument("--scan-dir", action="append", default=[], metavar="DIR",
                      help="also warm the images YAML files under DIR use (repeatable; implies --scan)")
    pull.add_argument("--archive", action="store_true",
                      help="then save each image to images/archives/ for offline hosts")
    pull.add_argument("--prune", action="store_true",
                      help="with --archive: remove archives of images no longer listed")
    pull.add_argument("--no-wait", action="store_true",
                      help="exit at once when another refresh is running")
    pull.set_defaults(func=cmd_pull)

    scan = commands.add_parser("scan", help="list the image references workflows use")
    scan.add_argument("dirs", nargs="*", metavar="DIR", help="more directories of YAML files to scan")
    scan.set_defaults(func=cmd_scan)

    status = commands.add_parser("status", help="show what the mirror holds and whether it answers")
    status.add_argument("--json", action="store_true", help="one JSON document")
    status.set_defaults(func=cmd_status)

    gc = commands.add_parser("gc", help="drop what the cache's lifecycle policy says, and free its disk "
                             "(distribution's garbage-collect; the mirror stops meanwhile)")
    gc.add_argument("--dry-run", action="store_true",
                    help="list what would go and the bytes it would free; change nothing")
    gc.set_defaults(func=cmd_gc)

    check = commands.add_parser("check-mirror", help="kdevops-style checks (check_docker_mirror.sh)")
    check.add_argument("check", metavar="CHECK",
                       help="DOCKER_MIRROR_URL, DOCKER_MIRROR_EXISTS, DOCKER_MIRROR_DIR or IMAGE_EXISTS")
    check.add_argument("image", nargs="?", help="the image, for IMAGE_EXISTS")
    check.set_defaults(func=cmd_check_mirror)

    image_url = commands.add_parser(
        "image-url", help="print each image reference as pulled through the mirror "
        "(unchanged when not mirrored, disabled or not answering)")
    image_url.add_argument("refs", nargs="+", metavar="REF", help="an image reference, e.g. minio/minio:latest")
    image_url.add_argument("--no-probe", action="store_true",
                           help="rewrite without asking whether the mirror answers")
    image_url.set_defaults(func=cmd_image_url)

    restore = commands.add_parser("restore", help="load image archives back into the mirror "
                                  "(pull-through mirrors included), checking each .sha256")
    restore.add_argument("archives", nargs="*", metavar="ARCHIVE",
                         help="archive files or names (default: every archive in images/archives)")
    restore.set_defaults(func=cmd_restore)

    from .commands.k8s import OPTIONS as K8S_OPTIONS
    k8s_cmd = commands.add_parser("k8s", help="write the Kubernetes manifests of the mirror "
                                  "(Deployments, Services, Secret, ConfigMaps, CronJobs, a DaemonSet)")
    k8s_cmd.add_argument("--out", metavar="DIR", help="where to write them (default: k8s/ beside .config)")
    for option, text in K8S_OPTIONS:
        k8s_cmd.add_argument(option, help=text)
    k8s_cmd.set_defaults(func=cmd_k8s)

    clients_cmd = commands.add_parser(
        "clients", help="point this host's Docker and containerd at the mirror (undo: clients-undo)")
    for option, default in zip(("--daemon-json", "--docker-pid", "--containerd-config", "--certs-dir"),
                               (ClientPaths.daemon_json, ClientPaths.docker_pid,
                                ClientPaths.containerd_config, ClientPaths.certs_dir)):
        clients_cmd.add_argument(option, default=str(default), help=f"default: {default}")
    clients_cmd.add_argument("--no-reload", action="store_true", help="do not reload dockerd")
    clients_cmd.set_defaults(func=cmd_clients)
    clients_undo = commands.add_parser(
        "clients-undo", help="take back exactly what 'clients' added (paths come from its record)")
    clients_undo.add_argument("--no-reload", action="store_true", help="do not reload dockerd")
    clients_undo.set_defaults(func=cmd_clients_undo)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except MirrorError as err:
        print(f"error: {err}", file=sys.stderr)
        return exit_code(err)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
