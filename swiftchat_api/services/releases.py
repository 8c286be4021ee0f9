"""The app-update check: the newest SwiftChat release tag and what it means for one app."""

import json
import logging
import re

import urllib3

log = logging.getLogger(__name__)

# Bounded: the tags come from elsewhere, and a 5,000-digit part is past what int() takes.
_VERSION = re.compile(r"([0-9]{1,6})\.([0-9]{1,6})\.([0-9]{1,6})")
MAX_ANSWER_BYTES = 1024 * 1024
_PACKAGES = {"android": "SwiftChat.apk", "mac": "SwiftChat.dmg"}
NO_RELEASE = "0.0.0"


def version_value(text):
    """major·10000 + minor·100 + patch for a three-part numeric version; 0 for anything else."""
    match = _VERSION.fullmatch(text.strip()) if isinstance(text, str) else None
    if not match:
        return 0
    major, minor, patch = (int(part) for part in match.groups())
    return major * 10000 + minor * 100 + patch


def latest_tag(http, url, timeout):
    """The highest well-formed version among the tags at url; NO_RELEASE if it cannot be had."""
    try:
        response = http.request(
            "GET",
            url,
            headers={"Accept": "application/vnd.github+json", "User-Agent": "swiftchat-api"},
            timeout=urllib3.Timeout(total=timeout),
            retries=False,
            preload_content=False,
        )
        try:
            if response.status != 200:
                raise ValueError(f"HTTP {response.status}")
            data = response.read(MAX_ANSWER_BYTES + 1)
        finally:
            response.release_conn()
        if len(data) > MAX_ANSWER_BYTES:
            raise ValueError(f"an answer over {MAX_ANSWER_BYTES} bytes")
        names = [tag.get("name") for tag in json.loads(data) if isinstance(tag, dict)]
    except (urllib3.exceptions.HTTPError, ValueError, TypeError, AttributeError, RecursionError) as error:
        log.warning("release lookup at %s failed: %s", url, error)
        return NO_RELEASE
    valid = [name for name in names if version_value(name)]
    return max(valid, key=version_value, default=NO_RELEASE)


def upgrade_answer(latest, os_name, version, download_prefix):
    """The /api/upgrade answer for an app on os_name at version, given the latest tag."""
    current, newest = version_value(version), version_value(latest)
    need = bool(current and newest > current)
    package = _PACKAGES.get(os_name.lower())
    url = f"{download_prefix.rstrip('/')}/{latest}/{package}" if need and package else ""
    return {"needUpgrade": need, "version": latest, "url": url}
