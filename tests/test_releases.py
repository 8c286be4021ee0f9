"""Version arithmetic of the upgrade check."""

import pytest

from swiftchat_api.services.releases import upgrade_answer, version_value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("2.1.0", 20100),
        ("0.0.1", 1),
        ("10.20.30", 102030),
        ("2.1", 0),
        ("v2.1.0", 0),
        ("2.1.0.1", 0),
        ("", 0),
        (None, 0),
    ],
)
def test_version_value(text, value):
    assert version_value(text) == value


def test_no_release_means_no_upgrade():
    assert upgrade_answer("0.0.0", "android", "1.0.0", "https://x") == {
        "needUpgrade": False,
        "version": "0.0.0",
        "url": "",
    }
