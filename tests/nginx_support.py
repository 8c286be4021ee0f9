"""Run the shipped nginx site file (deploy/nginx/swiftchat-api.conf) on local ports, as it is but for them.

Used by tests/test_nginx.py and, as a program, by .ci/install-test:

    python tests/nginx_support.py DIRECTORY UPSTREAM_PORT HTTP_PORT HTTPS_PORT

writes DIRECTORY/nginx.conf (run it with ``nginx -p DIRECTORY -c nginx.conf -e stderr``).
"""

import os
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SITE = ROOT / "deploy" / "nginx" / "swiftchat-api.conf"
SNAKEOIL = ("/etc/ssl/certs/ssl-cert-snakeoil.pem", "/etc/ssl/private/ssl-cert-snakeoil.key")


def nginx():
    """Debian's nginx, or None."""
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.path.exists(p)), None)


def main_config(directory, site):
    """An nginx.conf in ``directory`` that serves ``site`` (a path) and keeps everything else in ``directory``."""
    directory = Path(directory)
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (directory / temp).mkdir(parents=True, exist_ok=True)
    mime = "include /etc/nginx/mime.types;" if os.path.exists("/etc/nginx/mime.types") else ""
    user = "user root;" if os.getuid() == 0 else ""  # the workers read the test's directory
    text = f"""
{user}
daemon off;
worker_processes 1;
pid {directory}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 1024; }}
http {{
    {mime}
    access_log off;
    client_body_temp_path {directory}/body;
    proxy_temp_path {directory}/proxy;
    fastcgi_temp_path {directory}/fastcgi;
    uwsgi_temp_path {directory}/uwsgi;
    scgi_temp_path {directory}/scgi;
    include {site};
}}
"""
    path = directory / "nginx.conf"
    path.write_text(text)
    return path


def local_site(directory, upstream_port, http_port, https_port, certificate=None):
    """The shipped site file with only its ports changed (and, where Debian's pair is missing, its certificate)."""
    text = SITE.read_text()
    text = text.replace("server 127.0.0.1:8080;", f"server 127.0.0.1:{upstream_port};")
    text = re.sub(r"listen \[::\]:\d+[^;]*;\n", "", text)  # loopback tests: IPv4 only
    text = text.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    text = text.replace("listen 443 ssl;", f"listen 127.0.0.1:{https_port} ssl;")
    if certificate is not None:
        text = text.replace(SNAKEOIL[0], certificate[0]).replace(SNAKEOIL[1], certificate[1])
    path = Path(directory) / "swiftchat-api.conf"
    path.write_text(text)
    return path


def certificate_pair(directory):
    """Debian's snakeoil pair when installed (package ssl-cert), else a self-signed pair made here."""
    if all(os.path.exists(path) for path in SNAKEOIL):
        return None
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem, key_pem = Path(directory) / "test.pem", Path(directory) / "test.key"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(pem), str(key_pem)


def write(directory, upstream_port, http_port, https_port):
    """The whole local setup in ``directory``: its nginx.conf path."""
    site = local_site(directory, upstream_port, http_port, https_port, certificate_pair(directory))
    return main_config(directory, site)


if __name__ == "__main__":
    target, upstream, plain, tls = sys.argv[1:5]
    print(write(target, int(upstream), int(plain), int(tls)))
