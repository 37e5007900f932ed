"""Write the nginx configuration `make serve` runs with (config/nginx.conf.template filled in).

    python scripts/nginx_conf.py --listen 127.0.0.1:8000 --upstream unix:/.../gunicorn.sock \
        --prefix var/nginx

The body limits come from the Django settings (so nginx and the application agree), the proxy's
read timeout from config/gunicorn.py. Prints the path of the file it wrote."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "config" / "nginx.conf.template"
MULTIPART_MARGIN = 1024 * 1024  # boundaries and form fields around the files themselves


def limits() -> dict[str, int]:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.conf import settings

    from config import gunicorn

    return {
        "BODY_DEFAULT": settings.DATA_UPLOAD_MAX_MEMORY_SIZE + MULTIPART_MARGIN,
        "BODY_BATCH": settings.BATCH_MAX_BYTES + MULTIPART_MARGIN,
        "BODY_VERSION": settings.MAX_ARTIFACT_BYTES + 2 * settings.MAX_DATASET_BYTES + MULTIPART_MARGIN,
        "READ_TIMEOUT": gunicorn.timeout + 10,
    }


def session_cookie() -> str:
    from django.conf import settings

    return settings.SESSION_COOKIE_NAME


def render(
    *,
    listen: str,
    upstream: str,
    prefix: Path,
    conn_per_ip: int,
    access_log: str,
    upload_conn_per_ip: int = 4,
    upload_rate: int = 30,
    upload_burst: int = 10,
) -> str:
    values: dict[str, object] = {
        **limits(),
        "SESSION_COOKIE": session_cookie(),
        "UPLOAD_CONN_PER_IP": upload_conn_per_ip,
        "UPLOAD_RATE": upload_rate,
        "UPLOAD_BURST": upload_burst,
        "LISTEN": listen,
        "UPSTREAM": upstream,
        "PREFIX": prefix,
        "CONN_PER_IP": conn_per_ip,
        "ACCESS_LOG": access_log,
        # As root, nginx's workers would run as `nobody`; they need only the socket and the
        # temporary folders, which nginx creates for them.
        "USER": "user nobody nogroup;" if os.geteuid() == 0 else "",
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", str(value))
    if "@" in "".join(line.split("#")[0] for line in text.splitlines()):
        raise SystemExit(f"{TEMPLATE} has a placeholder this script does not fill")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", required=True, help="host:port nginx listens on")
    parser.add_argument("--upstream", required=True, help="gunicorn's address: unix:/path or host:port")
    parser.add_argument("--prefix", required=True, type=Path, help="folder for the config, pid, logs, temp files")
    parser.add_argument("--conn-per-ip", type=int, default=int(os.environ.get("NGINX_CONN_PER_IP") or 64))
    parser.add_argument("--access-log", default="/dev/stdout")
    # The upload routes (batches, versions): concurrent uploads per address, new uploads per
    # minute per address, and how many beyond that rate may come at once.
    parser.add_argument("--upload-conn-per-ip", type=int, default=int(os.environ.get("NGINX_UPLOAD_CONN_PER_IP") or 4))
    parser.add_argument("--upload-rate", type=int, default=int(os.environ.get("NGINX_UPLOAD_PER_MINUTE") or 30))
    parser.add_argument("--upload-burst", type=int, default=int(os.environ.get("NGINX_UPLOAD_BURST") or 10))
    args = parser.parse_args()
    prefix = args.prefix.resolve()
    prefix.mkdir(parents=True, exist_ok=True)
    target = prefix / "nginx.conf"
    target.write_text(
        render(
            listen=args.listen,
            upstream=args.upstream,
            prefix=prefix,
            conn_per_ip=args.conn_per_ip,
            access_log=args.access_log,
            upload_conn_per_ip=args.upload_conn_per_ip,
            upload_rate=args.upload_rate,
            upload_burst=args.upload_burst,
        )
    )
    print(target)


if __name__ == "__main__":
    main()
