"""control/capacity.py: GameLift Streams capacity arithmetic (always-on floors, target idle, ceilings) for groups
sharing one location's slots — plain cases and hypothesis properties."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from playcast.control.capacity import GroupLoad, Limits, limits_of, plan, refusal, requested


def test_limits_of_reads_the_location_settings() -> None:
    assert limits_of({"AlwaysOnCapacity": 1, "TargetIdleCapacity": 2, "MaximumCapacity": 5}) == Limits(1, 2, 5)
    assert limits_of({"AlwaysOnCapacity": 2, "OnDemandCapacity": 3}).ceiling == 5  # legacy: on demand on top
    assert limits_of({"AlwaysOnCapacity": 2}).ceiling is None  # no ceiling given: the hosts' slots
    assert limits_of({"TargetIdleCapacity": 2}).ceiling is None  # no ceiling given: the hosts' slots
    assert limits_of({"LocationName": "x"}) == Limits()


def test_requested_is_the_floor_or_sessions_plus_target_idle_within_the_ceiling() -> None:
    assert requested(GroupLoad("g", Limits(2, 0, 4), busy=0)) == 2
    assert requested(GroupLoad("g", Limits(2, 1, 4), busy=2)) == 3
    assert requested(GroupLoad("g", Limits(0, 3, 4), busy=3)) == 4
    assert requested(GroupLoad("g", Limits(0, 0, 1), busy=3)) == 3  # never below what runs


def test_always_on_is_held_for_its_group_only() -> None:
    loads = [GroupLoad("a", Limits(2, 0, 2), 0), GroupLoad("b", Limits(0, 0, 4), 0)]
    shares = plan(3, loads)
    assert (shares["a"].held, shares["a"].warm, shares["b"].warm) == (2, 2, 0)
    assert refusal(3, loads, "b") is None  # one slot nobody holds
    loads = [GroupLoad("a", Limits(2, 0, 2), 0), GroupLoad("b", Limits(0, 0, 4), 1)]
    assert "always-on" in (refusal(3, loads, "b") or "")  # the last two are a's floor
    assert refusal(3, loads, "a") is None


def test_floors_past_the_slots_are_short_in_group_order() -> None:
    shares = plan(3, [GroupLoad("a", Limits(2, 0, 2), 0), GroupLoad("b", Limits(2, 0, 2), 0)])
    assert (shares["a"].held, shares["a"].short, shares["b"].held, shares["b"].short) == (2, 0, 1, 1)


def test_target_idle_of_two_groups_never_adds_past_the_slots() -> None:
    shares = plan(3, [GroupLoad("a", Limits(0, 3, 5), 0), GroupLoad("b", Limits(0, 3, 5), 0)])
    assert shares["a"].warm + shares["b"].warm == 3 and abs(shares["a"].warm - shares["b"].warm) <= 1


def test_the_ceiling_refuses() -> None:
    loads = [GroupLoad("a", Limits(1, 0, 2), 2)]
    assert "reached" in (refusal(10, loads, "a") or "")
    assert refusal(10, [GroupLoad("a", Limits(1, 0, 2), 1)], "a") is None
    assert refusal(1, [GroupLoad("a", Limits(), 1)], "a") is not None  # no slot left on the hosts


limits = st.builds(Limits, st.integers(0, 4), st.integers(0, 4), st.one_of(st.none(), st.integers(0, 6)))
loads_st = st.lists(st.tuples(limits, st.integers(0, 4)), min_size=1, max_size=5).map(
    lambda items: [GroupLoad(f"g{i}", lim, busy) for i, (lim, busy) in enumerate(items)])


@given(st.integers(0, 12), loads_st)
def test_plan_never_oversubscribes_and_respects_floors_and_ceilings(slots: int, loads: list[GroupLoad]) -> None:
    shares = plan(slots, loads)
    busy = sum(g.busy for g in loads)
    warm = sum(s.warm for s in shares.values())
    assert warm <= max(0, slots - busy)  # sessions + warm never past the slots
    for g in loads:
        s = shares[g.group_id]
        assert 0 <= s.held <= s.warm
        assert g.busy + s.warm <= max(s.requested, g.busy)  # within what it asks for (so within its ceiling)
        floor = max(0, min(g.limits.always_on, s.requested) - g.busy)
        assert s.held + s.short == floor  # the floor is held or reported short, never silently dropped
    if busy + sum(s.held + s.short for s in shares.values()) <= slots:  # the floors fit: all are held
        assert all(s.short == 0 for s in shares.values())


@given(st.integers(0, 12), loads_st, st.data())
def test_admitting_a_session_never_breaks_anothers_floor(slots: int, loads: list[GroupLoad],
                                                          data: st.DataObject) -> None:
    """Starting a session whenever refusal() allows it keeps every other group's held floor: what others held
    before is still held after (and no slot is used twice)."""
    if sum(x.busy for x in loads) > slots:
        slots = sum(x.busy for x in loads)  # start from a location whose sessions fit
    for _ in range(6):
        i = data.draw(st.integers(0, len(loads) - 1))
        g = loads[i]
        before = plan(slots, loads)
        if refusal(slots, loads, g.group_id) is not None:
            continue
        loads = [*loads[:i], GroupLoad(g.group_id, g.limits, g.busy + 1), *loads[i + 1:]]
        after = plan(slots, loads)
        assert sum(x.busy for x in loads) + sum(s.held for s in after.values()) <= slots  # never oversubscribed
        for other in loads:
            if other.group_id != g.group_id:
                assert after[other.group_id].held >= before[other.group_id].held
        ceiling = g.limits.ceiling
        assert ceiling is None or g.busy + 1 <= ceiling
