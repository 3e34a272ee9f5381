"""One leader among replicas: the advisory lock is exclusive and passes on when released."""

from subsidyhub.service.leader import Leadership


def test_only_one_replica_leads_until_it_lets_go(ledger_db):
    first, second = Leadership(ledger_db), Leadership(ledger_db)
    try:
        assert first.holds()
        assert first.holds()  # keeps it
        if ledger_db.is_sqlite:
            # One process owns an embedded database: there is nothing to share.
            assert second.holds()
            return
        assert not second.holds()
        first.release()
        assert second.holds()
        assert not first.holds()
    finally:
        first.release()
        second.release()
