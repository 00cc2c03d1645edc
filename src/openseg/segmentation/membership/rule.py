"""The one rule of segment membership: how a (profile, segment) pair moves when it is evaluated.

Every writer follows it: the batch diff of a job (in SQL, over bitmaps) and the per-profile path
(streaming, edge). ``tests/segmentation/test_membership_rule.py`` holds both to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

#: Statuses of a profile that is in the segment.
IN_STATUSES = ("realized", "existing")
REALIZED, EXISTING, EXITED = "realized", "existing", "exited"
ENTERED = "entered"


@dataclass(frozen=True)
class PairState:
    """A profile's membership of one segment: ``status`` and ``lastQualificationTime`` as AEP shows them."""

    status: str
    last_qualification_time: datetime

    @property
    def is_in(self) -> bool:
        return self.status in IN_STATUSES


@dataclass(frozen=True)
class Transition:
    """The outcome of one evaluation of a pair: its new state (None: never in) and its history event."""

    state: PairState | None
    event: str | None


def transition(previous: PairState | None, qualifies: bool, at: datetime) -> Transition:
    """Apply one evaluation at ``at`` to a pair.

    In now and not before (or exited before): ``realized``, an ``entered`` event. In before and now:
    ``existing``. In before, out now: ``exited`` at ``at``, an ``exited`` event. Exited before and still
    out: it stays ``exited`` with the time it left. ``lastQualificationTime`` of a member is the time of
    its last evaluation.
    """
    was_in = previous is not None and previous.is_in
    if qualifies:
        if was_in:
            return Transition(PairState(EXISTING, at), None)
        return Transition(PairState(REALIZED, at), ENTERED)
    if was_in:
        return Transition(PairState(EXITED, at), EXITED)
    return Transition(previous, None)
