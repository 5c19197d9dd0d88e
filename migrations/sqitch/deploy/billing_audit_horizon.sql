-- Deploy raxx_queue:billing_audit_horizon to pg
-- requires: billing_action_log
BEGIN;

-- The audit sealer's horizon in one statement. The table lock waits for every append
-- in flight, the highest id is read under it, and the statement's own transaction
-- releases it: no message from the client is awaited while the lock is held. Taken
-- over several statements, a process frozen between two protocol messages (each
-- statement is two round trips behind a transaction pooler, where asyncpg keeps no
-- prepared statements) would hold the lock, and with it every webhook's audit append,
-- for as long as it stays frozen: Postgres ends idle transactions, not that state.
CREATE FUNCTION billing_audit_horizon(wait_at_most text) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('lock_timeout', wait_at_most, true);
    LOCK TABLE billing_action_log IN SHARE ROW EXCLUSIVE MODE;
    RETURN (SELECT coalesce(max(id), 0) FROM billing_action_log);
END
$$;

COMMIT;
