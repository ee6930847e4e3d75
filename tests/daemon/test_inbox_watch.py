"""The inbox decisions, pure: a made-up clock, no files, no threads."""

from __future__ import annotations

from pathlib import Path

from styled.daemon.inbox import InboxWatch, Pending, Readiness

JOB = Pending(Path("/inbox/job"), "folder", "job")
FILE = Path("/inbox/job/photo.png")


def seen(size: int = 10, missing: tuple[str, ...] = (), writing: tuple[str, ...] = ()):
    return [(JOB, Readiness(files={FILE: (size, 1)}, missing=list(missing), writing=list(writing)))]


def test_a_job_is_claimed_only_after_its_files_held_still_for_the_settle_time():
    watch = InboxWatch(settle_seconds=2.0, missing_file_seconds=60.0)
    assert watch.plan(seen(), now=0.0, free_workers=1).settling == (JOB.path,)
    assert watch.plan(seen(size=20), now=1.5, free_workers=1).settling == (JOB.path,)  # it grew
    assert watch.plan(seen(size=20), now=3.0, free_workers=1).settling == (JOB.path,)  # 1.5 s still
    assert watch.plan(seen(size=20), now=3.6, free_workers=1).claim == (JOB,)


def test_a_settled_job_waits_for_a_free_worker():
    watch = InboxWatch(settle_seconds=0.0, missing_file_seconds=60.0)
    watch.plan(seen(), now=0.0, free_workers=0)
    assert watch.plan(seen(), now=1.0, free_workers=0).waiting == (JOB.path,)


def test_a_missing_file_delays_the_claim_until_missing_file_seconds():
    watch = InboxWatch(settle_seconds=0.0, missing_file_seconds=10.0)
    watch.plan(seen(missing=("style.png",)), now=0.0, free_workers=1)
    assert watch.plan(seen(missing=("style.png",)), now=5.0, free_workers=1).claim == ()
    assert watch.plan(seen(missing=("style.png",)), now=10.5, free_workers=1).claim == (JOB,)


def test_once_mode_claims_a_job_with_a_missing_file_at_once():
    watch = InboxWatch(settle_seconds=0.0, missing_file_seconds=60.0, patient=False)
    watch.plan(seen(missing=("style.png",)), now=0.0, free_workers=1)
    assert watch.plan(seen(missing=("style.png",)), now=0.1, free_workers=1).claim == (JOB,)


def test_files_being_written_block_the_claim_and_a_vanished_job_is_forgotten():
    watch = InboxWatch(settle_seconds=0.0, missing_file_seconds=60.0)
    assert watch.plan(seen(writing=("photo.png.part",)), now=0.0, free_workers=1).writing == (JOB.path,)
    watch.plan([], now=1.0, free_workers=1)
    assert watch.first_seen == {} and watch.plan(seen(), now=2.0, free_workers=1).new == (JOB,)
