"""Every evidence flag the checks can raise has a Chinese label on the desk."""

from media.checks import CODES
from server.supervisor import FLAG_LABELS


def test_every_flag_code_has_a_desk_label():
    assert set(CODES) <= set(FLAG_LABELS)
    assert all(label and label.isprintable() for label in FLAG_LABELS.values())
