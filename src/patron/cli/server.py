"""Running the HTTP API, for `patron serve` and `patron demo`."""

from patron.cli.common import say
from patron.observability.logs import dict_config
from patron.settings import Settings


def run_server(host: str, port: int, workers: int) -> None:
    import uvicorn  # here, not at the top: only the commands that serve pay for importing the server

    say(f"Serving the Patron API on http://{host}:{port} (docs: http://{host}:{port}/docs)")
    # The factory reads its settings (PATRON_DATABASE_URL) from the environment: workers are separate processes.
    log_config = dict_config(Settings().log_format)
    uvicorn.run("patron.api.app:create_app", factory=True, host=host, port=port, workers=workers, log_config=log_config)
