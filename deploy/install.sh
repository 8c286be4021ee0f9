#!/usr/bin/env bash
# Install swiftchat-api on a host, for production: `sudo make install` or `sudo deploy/install.sh`,
# from a checkout of the repository. The README's Production deployment and the CloudFormation
# template's user data both run this; running it again upgrades in place.
#
#   - a system user (swiftchat) that owns nothing but the state directory;
#   - the code in /opt/swiftchat-api (root's, read-only to the service) and a venv there with the
#     runtime requirements only (requirements.txt, not the test tools), on Python 3.11 or newer;
#   - the settings in /etc/swiftchat-api/env (0640 root:swiftchat): any of the README's variables
#     set in this script's environment are written there (API_KEY_NAME=... AWS_REGION=... make install);
#     those already there and not given again are kept;
#   - the key store in /var/lib/swiftchat-api (SWIFTCHAT_STORE, unless you name another);
#   - /etc/systemd/system/swiftchat-api.service, enabled and started (or reloaded, on an upgrade);
#   - swiftchat-keys (the keys CLI, run as the service user) and swiftchat-serve (the server in the
#     foreground, for hosts without systemd) in /opt/swiftchat-api/bin, linked from /usr/local/bin.
#
# Without systemd (a container, a chroot, CI) everything but the last systemctl step is done, and
# the script says what it skipped and how to run the server.
#
# Settings of the install itself: SWIFTCHAT_USER (swiftchat), SWIFTCHAT_PREFIX (/opt/swiftchat-api),
# SWIFTCHAT_CONFIG_DIR (/etc/swiftchat-api), PYTHON (a python3.11 or newer to build the venv from).
set -euo pipefail
umask 022 # the service's user reads the code and the venv

source_dir=$(cd "$(dirname "$0")/.." && pwd)
user=${SWIFTCHAT_USER:-swiftchat}
prefix=${SWIFTCHAT_PREFIX:-/opt/swiftchat-api}
config_dir=${SWIFTCHAT_CONFIG_DIR:-/etc/swiftchat-api}
state_dir=/var/lib/swiftchat-api # the unit's StateDirectory=swiftchat-api
unit=/etc/systemd/system/swiftchat-api.service

say() { printf 'install: %s\n' "$*"; }
fail() {
  printf 'install: %s\n' "$*" >&2
  exit 1
}

[ "$(id -u)" = 0 ] || fail "run as root (sudo make install, or sudo deploy/install.sh)"
if [ ! -f "$source_dir/requirements.txt" ] || [ ! -d "$source_dir/swiftchat_api" ]; then
  fail "run from a checkout of swiftchat-api ($source_dir has no swiftchat_api/)"
fi

# -- the service's user -------------------------------------------------------------------------
nologin=$(command -v nologin || echo /usr/sbin/nologin)
if ! id "$user" >/dev/null 2>&1; then
  useradd --system --user-group --home-dir "$state_dir" --no-create-home --shell "$nologin" "$user"
  say "made the system user $user"
fi

# -- Python 3.11 or newer, that the service's user can run, with venv ---------------------------
runs_for_service() { # the interpreter works for the service's user (not one under /root, say)
  (cd / && setpriv --reuid="$user" --regid="$user" --init-groups "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))') 2>/dev/null
}
python=""
candidates=()
[ -n "${PYTHON:-}" ] && candidates+=("$PYTHON")
for name in python3.13 python3.12 python3.11 python3; do
  for dir in /usr/bin /usr/local/bin; do candidates+=("$dir/$name"); done
  found=$(command -v "$name" 2>/dev/null || true)
  [ -n "$found" ] && candidates+=("$found")
done
for candidate in "${candidates[@]}"; do
  if [ -x "$candidate" ] && runs_for_service "$candidate"; then
    python=$candidate
    break
  fi
done
if [ -z "$python" ]; then
  have=$(python3 --version 2>&1 || echo "no python3")
  fail "no Python 3.11 or newer with venv that $user can run (python3 here: $have). Install one, then run this again:
  Debian 12, Ubuntu 24.04:  apt-get install python3 python3-venv
  Ubuntu 22.04:             apt-get install python3.11 python3.11-venv
  Amazon Linux 2023:        dnf install python3.11
  RHEL, Rocky, Alma 9:      dnf install python3.11
  or name one: PYTHON=/path/to/python3.11 (installed where $user can read it, not under /root)"
fi
say "Python: $python ($("$python" --version 2>&1))"

# -- the code and its venv ----------------------------------------------------------------------
install -d -m 0755 "$prefix" "$prefix/bin"
staging=$(mktemp -d "$prefix/.new.XXXXXX")
trap 'rm -rf "$staging"' EXIT
(cd "$source_dir" && tar --exclude=__pycache__ -cf - swiftchat_api wsgi.py gunicorn.conf.py requirements.txt) |
  tar -xf - -C "$staging" --no-same-owner
chmod -R u=rwX,go=rX "$staging"
if [ -d "$prefix/.venv" ] && ! "$prefix/.venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  rm -rf "$prefix/.venv" # from an interpreter that is gone
fi
[ -x "$prefix/.venv/bin/python" ] || "$python" -m venv "$prefix/.venv"
"$prefix/.venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-cache-dir --root-user-action=ignore \
  -r "$staging/requirements.txt"
for item in swiftchat_api wsgi.py gunicorn.conf.py requirements.txt; do
  rm -rf "${prefix:?}/$item"
  mv "$staging/$item" "$prefix/$item"
done
git -C "$source_dir" rev-parse HEAD >"$prefix/REVISION" 2>/dev/null || echo unknown >"$prefix/REVISION"
say "code and venv in $prefix (revision $(cat "$prefix/REVISION"))"

fill() { # the @...@ values of a template in deploy/
  sed -e "s|@USER@|$user|g" -e "s|@PREFIX@|$prefix|g" -e "s|@CONFIG_DIR@|$config_dir|g" \
    -e "s|@STOP_SECONDS@|${stop_seconds:-130}|g" "$source_dir/deploy/$1"
}
for tool in swiftchat-keys swiftchat-serve; do
  fill "$tool" >"$prefix/bin/$tool"
  chmod 0755 "$prefix/bin/$tool"
  ln -sf "$prefix/bin/$tool" "/usr/local/bin/$tool"
done

# -- settings -----------------------------------------------------------------------------------
install -d -m 0755 "$config_dir"
env_file=$config_dir/env
[ -f "$env_file" ] || printf '# swiftchat-api settings (README: Configuration). KEY=value or KEY='"'"'value'"'"', one a line.\n' >"$env_file"
setting() { # set NAME to VALUE in the env file, replacing an earlier line for NAME
  case $2 in *"'"* | *$'\n'*) fail "$1 holds a quote or a newline; set it in $env_file by hand" ;; esac
  grep -v "^$1=" "$env_file" >"$env_file.new" || true
  printf "%s='%s'\n" "$1" "$2" >>"$env_file.new"
  mv "$env_file.new" "$env_file"
}
known='^(PORT|HOST|API_KEY|API_KEY_NAME|CLIENT_ROLE_ARN|METRICS_TOKEN|IMAGE_HELPER_MODEL_ID|MODELS_CACHE_SECONDS'
known+='|WEB_CONCURRENCY|WORKER_CONNECTIONS|GRACEFUL_TIMEOUT|LOG_LEVEL|ACCESS_LOG|PROMETHEUS_MULTIPROC_DIR'
known+='|AWS_REGION|AWS_DEFAULT_REGION|AWS_ENDPOINT_URL[A-Z_]*|SWIFTCHAT_[A-Z_]+|BEDROCK_[A-Z_]+|GUNICORN_[A-Z_]+'
known+='|UPGRADE_[A-Z_]+|OPENAI_[A-Z_]+)$'
given=0
while IFS= read -r name; do
  case $name in SWIFTCHAT_USER | SWIFTCHAT_PREFIX | SWIFTCHAT_CONFIG_DIR) continue ;; esac
  setting "$name" "${!name}"
  given=$((given + 1))
done < <(compgen -e | grep -E "$known" || true)
grep -q '^SWIFTCHAT_STORE=' "$env_file" || setting SWIFTCHAT_STORE "sqlite:///$state_dir/swiftchat.db"
# Per-person keys are stored as hashes keyed with SWIFTCHAT_KEY_PEPPER; the public default would let
# anyone who can write to the store make a key. A new install gets a secret of its own. (Not an
# existing store's: its keys were made with the pepper it has, and would all stop working.)
if ! grep -q '^SWIFTCHAT_KEY_PEPPER=' "$env_file"; then
  if grep -q "^SWIFTCHAT_STORE='sqlite:" "$env_file"; then
    store_file=$(sed -n "s|^SWIFTCHAT_STORE='sqlite:///\(.*\)'\$|\1|p" "$env_file")
    if [ -n "$store_file" ] && [ ! -e "$store_file" ]; then
      setting SWIFTCHAT_KEY_PEPPER "$(head -c 32 /dev/urandom | base64 | tr -dc 'A-Za-z0-9')"
      say "made a secret SWIFTCHAT_KEY_PEPPER for the new key store"
    fi
  else
    say "WARNING: SWIFTCHAT_STORE is shared (Redis) and no SWIFTCHAT_KEY_PEPPER is set: per-person keys are refused"
    say "until you set the same secret on every instance in $env_file"
  fi
fi
chown "root:$user" "$env_file"
chmod 0640 "$env_file"
say "settings in $env_file ($given given now; the others kept)"
if ! grep -qE '^(API_KEY|API_KEY_NAME|SWIFTCHAT_EMULATOR)=' "$env_file"; then
  say "WARNING: $env_file names no key source: set API_KEY_NAME (or API_KEY) there, or the server will not start"
fi
graceful=$(sed -n "s/^GRACEFUL_TIMEOUT='\{0,1\}\([0-9]*\).*/\1/p" "$env_file" | tail -1)
stop_seconds=$((${graceful:-120} + 10))

# -- the key store's directory ------------------------------------------------------------------
# systemd's StateDirectory= makes it too, at every start; made here for hosts without systemd.
install -d -m 0750 -o "$user" -g "$user" "$state_dir"
# A store made by root before (flask keys ... under sudo) would lock the service out.
for file in "$state_dir"/swiftchat.db "$state_dir"/swiftchat.db-wal "$state_dir"/swiftchat.db-shm; do
  [ -e "$file" ] && chown "$user:$user" "$file"
done

# -- systemd ------------------------------------------------------------------------------------
fill swiftchat-api.service >"$unit.new"
mv "$unit.new" "$unit"
chmod 0644 "$unit"
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
  systemctl daemon-reload
  if systemctl is-active --quiet swiftchat-api; then
    systemctl reload swiftchat-api # new workers on the new code; open streams finish on the old ones
    say "swiftchat-api reloaded"
  else
    systemctl enable --now swiftchat-api
    say "swiftchat-api enabled and started: systemctl status swiftchat-api; journalctl -u swiftchat-api"
  fi
else
  say "systemd is not running here: skipped systemctl daemon-reload and enable --now"
  say "(the unit is in $unit for a host that boots with systemd)"
  say "run the server in the foreground with: swiftchat-serve   (as root; it runs as $user)"
fi
say "make keys with: swiftchat-keys create NAME   (as root or as $user)"
