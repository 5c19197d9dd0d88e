-- Verify raxx_queue:billing_action_log on pg
SELECT id, occurred_at, actor, action, queue_customer_id, stripe_object_id, event_id,
       request_id, summary, prev_hash, row_hash, sealed_at
  FROM billing_action_log
 WHERE false;
SELECT 'billing_action_log_guard()'::regprocedure;
