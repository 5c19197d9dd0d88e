-- Verify raxx_queue:billing_event_catchup on pg
SELECT job, holder, lease_until, next_run_at, updated_at FROM billing_job_lease WHERE false;
SELECT id, job, holder, started_at, finished_at, outcome, report FROM billing_job_run WHERE false;

-- the table checks, or the domains that later took their place (billing_write_costs)
SELECT 1 / count(*) FROM pg_constraint
 WHERE conname IN ('billing_action_log_actor_check', 'billing_actor_check')
   AND pg_get_constraintdef(oid) LIKE '%catchup%';
SELECT 1 / count(*) FROM pg_constraint
 WHERE conname IN ('processed_stripe_events_source_check', 'billing_event_source_check')
   AND pg_get_constraintdef(oid) LIKE '%catchup%'
   AND pg_get_constraintdef(oid) LIKE '%thin%';
