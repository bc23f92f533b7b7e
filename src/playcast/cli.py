"""Command-line entry points: `playcast up` (server + local host + demo game, one command).

Parses flags into Settings, wires the parts together, shows progress; no business logic here."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import typer
from rich.console import Console

from playcast.cli_host_tokens import app as host_token_app
from playcast.config import DEMO_APP_DIR, Settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="playcast: play, broadcast and chat.")
app.add_typer(host_token_app, name="host-token")
console = Console(stderr=True)

DEMO_DESCRIPTION = "playcast-demo"
DEMO_GROUP_DESCRIPTION = "default"
SHUTDOWN_GRACE_S = 3  # on SIGTERM, requests still running after this long are cancelled


APP_SOURCE_ROOT_HELP = ("A directory under which CreateApplication's ApplicationSourceUri may point (repeatable; "
                        "added to env PLAYCAST_APP_SOURCE_ROOTS, the uploads dir and the demo).")


def _settings(app_source_roots: list[Path] | None) -> Settings:
    """Settings from the environment plus the --app-source-root flags; a bad environment value ends the command."""
    try:
        settings = Settings()
    except ValueError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc
    settings.app_source_roots += [p.resolve() for p in app_source_roots or []]
    return settings


def _setup_logging(level: str) -> None:
    from playcast.logs import configure

    configure(level)


@app.command()
def up(
    port: int = typer.Option(None, help="HTTP port (env PLAYCAST_PORT, default 8000)."),
    data_dir: Path = typer.Option(None, help="Data directory (env PLAYCAST_DATA_DIR, default ./.playcast)."),
    slots: int = typer.Option(None, help="Stream slots on this host (env PLAYCAST_SLOTS, default 2)."),
    bind: str = typer.Option(None, help="Address to listen on (env PLAYCAST_BIND, default 127.0.0.1)."),
    warm: int = typer.Option(1, help="Warm (pre-launched) slots for the demo game's default stream group "
                                     "(its AlwaysOnCapacity and TargetIdleCapacity)."),
    demo: bool = typer.Option(True, help="Register the bundled demo game in a default stream group."),
    app_source_root: list[Path] = typer.Option(None, metavar="PATH", help=APP_SOURCE_ROOT_HELP),
    log_level: str = typer.Option("info", help="debug | info | warning"),
) -> None:
    """Run the server, one local host and (by default) the demo game: everything on this machine."""
    settings = _settings(app_source_root)
    if port is not None:
        settings.port = port
    if data_dir is not None:
        settings.data_dir = data_dir
    if slots is not None:
        settings.slots = slots
    if bind is not None:
        settings.bind_host = bind
    settings.data_dir = settings.data_dir.resolve()
    _setup_logging(log_level)
    try:
        asyncio.run(_run_up(settings, warm=warm if demo else 0, demo=demo))
    except KeyboardInterrupt:
        pass


async def _run_up(settings: Settings, *, warm: int, demo: bool, banner: str = "playcast is up") -> None:
    import uvicorn

    from playcast.assemble import assemble
    from playcast.events.uvicorn_ws import FastFrameWebSocketProtocol
    from playcast.events.wiring import WS_MAX_MESSAGE_BYTES
    from playcast.server import begin_shutdown

    built = await assemble(settings)
    creds, events, web_app = built.credentials, built.events, built.app
    config = uvicorn.Config(web_app, host=settings.bind_host, port=settings.port, log_config=None,
                            access_log=False, lifespan="on", ws=FastFrameWebSocketProtocol,
                            ws_max_size=WS_MAX_MESSAGE_BYTES, timeout_graceful_shutdown=SHUTDOWN_GRACE_S)
    server = _make_server_class()(config, on_shutdown=lambda: begin_shutdown(web_app))
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    serve = asyncio.ensure_future(server.serve())
    try:
        with console.status("starting server ...") as status:
            while not server.started:
                if serve.done():
                    serve.result()
                    return
                await asyncio.sleep(0.05)
            login = built.login_tokens.issue()  # the database is open now: any replica accepts it, once
            if demo:
                status.update("registering the demo game ...")
                await asyncio.to_thread(_ensure_demo, creds, settings, warm)
        console.print(f"[bold green]{banner}[/] (data: {settings.data_dir})")
        console.print(f"  player:      {settings.base_url}/login?token={login}", soft_wrap=True)
        console.print(f"  API:         {creds.endpoint_url}  region {creds.region_name}")
        console.print(f"  access key:  {creds.aws_access_key_id}")
        console.print(f"  secret key:  {creds.aws_secret_access_key}")
        console.print(f"  events:      {creds.events_realtime_url}  (HTTP {creds.events_http_url})", soft_wrap=True)
        console.print(f"  events key:  {creds.events_api_key}  (bus: {type(events.bus).__name__})")
        if settings.metrics_token is not None:
            console.print(f"  metrics:     {settings.base_url}/metrics  (Authorization: Bearer "
                          f"{settings.metrics_token})", soft_wrap=True)
        console.print(f"  credentials: {built.credentials_path}")
        print(f"PLAYCAST_READY {settings.base_url}/login?token={login}", flush=True)
        await serve
    finally:
        if not serve.done():
            server.should_exit = True
            await serve
        await built.close()


def _make_server_class() -> type:
    import contextlib
    from collections.abc import Callable

    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn without its own signal capture: `up` stops the server itself, then every session.

        `on_shutdown` runs as the server stops accepting, before uvicorn waits for the requests in flight."""

        def __init__(self, config: uvicorn.Config, on_shutdown: Callable[[], None]) -> None:
            super().__init__(config)
            self.on_shutdown = on_shutdown

        @contextlib.contextmanager
        def capture_signals(self):  # type: ignore[no-untyped-def, override]
            yield

        async def shutdown(self, sockets=None) -> None:  # type: ignore[no-untyped-def]
            self.on_shutdown()
            await super().shutdown(sockets)

    return Server


def _ensure_demo(creds: object, settings: Settings, warm: int) -> None:
    """Register the demo game and a default stream group through the public API, as any client would."""
    import boto3

    c = creds  # type: ignore[assignment]
    # the server itself, where it listens: the public URL (PLAYCAST_PUBLIC_URL) may be a proxy it cannot reach
    here = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(settings.bind_host, settings.bind_host)
    here = f"[{here}]" if ":" in here else here
    client = boto3.client(
        "gameliftstreams", endpoint_url=f"http://{here}:{settings.port}",
        region_name=c.region_name,  # type: ignore[attr-defined]
        aws_access_key_id=c.aws_access_key_id, aws_secret_access_key=c.aws_secret_access_key)  # type: ignore[attr-defined]
    apps = [a for a in _all(client.list_applications) if a.get("Description") == DEMO_DESCRIPTION
            and a.get("Status") in ("READY", "PROCESSING", "INITIALIZED")]
    if apps:
        app_id = apps[0]["Id"]
    else:
        app_id = client.create_application(
            Description=DEMO_DESCRIPTION, RuntimeEnvironment={"Type": "UBUNTU", "Version": "22_04_LTS"},
            ExecutablePath="playcast-demo", ApplicationSourceUri=str(DEMO_APP_DIR))["Id"]
    client.get_waiter("application_ready").wait(Identifier=app_id, WaiterConfig={"Delay": 1, "MaxAttempts": 120})
    groups = [g for g in _all(client.list_stream_groups) if g.get("Description") == DEMO_GROUP_DESCRIPTION
              and g.get("Status") not in ("DELETING", "ERROR", "EXPIRED")]
    # `--warm N`: N slots held for the demo (AlwaysOn) and N kept idle beside its sessions (TargetIdle), so a
    # fresh warm slot follows each one a player takes (capacity as GameLift Streams defines it: docs/capacity.md)
    location = {"LocationName": settings.effective_location, "AlwaysOnCapacity": warm, "TargetIdleCapacity": warm}
    if groups:
        group_id = groups[0]["Id"]
        client.update_stream_group(Identifier=group_id, LocationConfigurations=[location],
                                   DefaultApplicationIdentifier=app_id)
    else:
        group_id = client.create_stream_group(
            Description=DEMO_GROUP_DESCRIPTION, StreamClass="gen4n_high", DefaultApplicationIdentifier=app_id,
            LocationConfigurations=[location])["Id"]
    client.associate_applications(Identifier=group_id, ApplicationIdentifiers=[app_id])
    client.get_waiter("stream_group_active").wait(Identifier=group_id, WaiterConfig={"Delay": 1, "MaxAttempts": 120})


def _all(call) -> list[dict]:  # type: ignore[no-untyped-def]
    items: list[dict] = []
    token = None
    while True:
        page = call(**({"NextToken": token} if token else {}))
        items.extend(page.get("Items", []))
        token = page.get("NextToken")
        if not token:
            return items


@app.command()
def server(
    port: int = typer.Option(None, help="HTTP port (env PLAYCAST_PORT, default 8000)."),
    data_dir: Path = typer.Option(None, help="Data directory (env PLAYCAST_DATA_DIR, default ./.playcast)."),
    bind: str = typer.Option(None, help="Address to listen on (env PLAYCAST_BIND, default 127.0.0.1)."),
    slots: int = typer.Option(0, help="Stream slots run on this machine (0: API, pages and events only)."),
    app_source_root: list[Path] = typer.Option(None, metavar="PATH", help=APP_SOURCE_ROOT_HELP),
    log_level: str = typer.Option("info", help="debug | info | warning"),
) -> None:
    """Run one server replica: the API, the pages and the events service, without the demo game.

    Replicas share events through Redis (PLAYCAST_REDIS_URL) and state through PLAYCAST_DATABASE_URL; give them
    the same PLAYCAST_EVENTS_API_KEY (and PLAYCAST_EVENTS_SECRET unless they share the database)."""
    settings = _settings(app_source_root)
    if port is not None:
        settings.port = port
    if data_dir is not None:
        settings.data_dir = data_dir
    if bind is not None:
        settings.bind_host = bind
    settings.slots = slots
    settings.data_dir = settings.data_dir.resolve()
    _setup_logging(log_level)
    try:
        asyncio.run(_run_up(settings, warm=0, demo=False, banner="playcast server is up"))
    except KeyboardInterrupt:
        pass


@app.command()
def host(
    server: str = typer.Option(None, help="The control plane's URL, e.g. http://10.0.0.1:8000 (env PLAYCAST_SERVER_URL)."),
    token: str = typer.Option(None, help="A host token from `playcast host-token create` (env PLAYCAST_HOST_TOKEN)."),
    location: str = typer.Option(None, help="This host's location name (env PLAYCAST_LOCATION, default the region)."),
    slots: int = typer.Option(None, help="Stream slots on this host (env PLAYCAST_SLOTS, default 2)."),
    data_dir: Path = typer.Option(None, help="Host id, recordings and session records (env PLAYCAST_DATA_DIR)."),
    public_address: str = typer.Option(None, help="The address browsers reach this host at (env PLAYCAST_PUBLIC_ADDRESS)."),
    log_level: str = typer.Option("info", help="debug | info | warning"),
) -> None:
    """Run a host on this machine: its slots join the control plane at --server (reconnecting when it drops)."""
    from playcast.host.agent import HostRefused
    from playcast.host.service import run_host

    settings = _settings(None)
    for name, value in (("server_url", server), ("host_token", token), ("location", location), ("slots", slots),
                        ("data_dir", data_dir), ("public_address", public_address)):
        if value is not None:
            setattr(settings, name, value)
    settings.data_dir = settings.data_dir.resolve()
    _setup_logging(log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_host(settings, stop)

    try:
        asyncio.run(main())
    except HostRefused as exc:
        console.print(f"[bold red]the control plane refused this host:[/] {exc}")
        raise typer.Exit(3) from exc
    except ValueError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def version() -> None:
    """Print the version."""
    from playcast import __version__

    print(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
