"""A run refuses workers of different code revisions unless told otherwise."""
import pytest

from harness.run.preflight import PreflightError, check_revisions


def info(worker, revision):
    return {"worker_id": worker, "versions": {"identity.revision": revision} if revision else {}}


def test_one_revision_or_unknown_passes():
    check_revisions([info("a", "abc"), info("b", "abc"), info("c", None)], allowed=False)


def test_mixed_revisions_are_refused_naming_each_worker():
    infos = [info("jw2:gpu0", "abc"), info("jw3:gpu0", "def-dirty")]
    with pytest.raises(PreflightError, match=r"^workers run different code revisions \(jw2:gpu0 abc, jw3:gpu0 "
                                         r"def-dirty\): .* --allow-mixed-revisions$"):
        check_revisions(infos, allowed=False)
    check_revisions(infos, allowed=True)
