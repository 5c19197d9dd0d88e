-- Revert raxx_queue:billing_action_log from pg
BEGIN;
DROP TABLE billing_action_log;
DROP FUNCTION billing_action_log_guard();
COMMIT;
