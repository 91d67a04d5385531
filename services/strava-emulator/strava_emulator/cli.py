"""``strava-emulator serve``: run the emulator as a standalone server."""

from __future__ import annotations

import typer
import uvicorn

from strava_emulator.app import create_app
from strava_emulator.config import EmulatorConfig

cli = typer.Typer(add_completion=False, help="Strava API v3 emulator (sandbox mode).")


@cli.callback()
def _root() -> None:
    """Keeps `serve` a sub-command even while it is the only one."""


@cli.command()
def serve(
    port: int = typer.Option(8080, help="TCP port to listen on."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind."),
    seed: int = typer.Option(42, help="Seed for all generated data."),
    athletes: int = typer.Option(25, help="Sandbox athletes to create at start-up."),
    client_id: int = typer.Option(1000, help="The one registered application's client_id."),
    client_secret: str = typer.Option("sandbox-secret", help="Its client_secret."),
    callback_domain: str = typer.Option("localhost", help="Its Authorization Callback Domain."),
    history_days: int = typer.Option(120, help="Days of generated history per athlete."),
    webhook_retry_delay: float = typer.Option(
        120.0, help="Seconds before an unacknowledged webhook event is sent again."
    ),
    webhook_scan_seconds: float = typer.Option(
        1.0, help="How often newly uploaded generated activities become create events (0: off)."
    ),
    log_level: str = typer.Option("warning", help="uvicorn log level."),
) -> None:
    """Serve the OAuth pages, /api/v3 and the /_emulator admin API."""
    config = EmulatorConfig(
        seed=seed,
        athletes=athletes,
        client_id=client_id,
        client_secret=client_secret,
        callback_domain=callback_domain,
        history_days=history_days,
        webhook_retry_delay_seconds=webhook_retry_delay,
        webhook_scan_seconds=webhook_scan_seconds,
    )
    typer.echo(f"strava-emulator listening on http://{host}:{port} (seed {seed})")
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
    )
    server.run()


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
