-- Verify raxx_queue:billing_access_policy on pg
SELECT 'billing_refresh_mirror(text, text, text, text)'::regprocedure;
SELECT 'billing_apply_dispute(jsonb, text, timestamptz, boolean)'::regprocedure;
-- every status is decided by some rule
SELECT 1 / CASE WHEN NOT EXISTS (
    SELECT 1 FROM unnest('{none,incomplete,incomplete_expired,trialing,active,past_due,canceled,unpaid,paused}'::text[]) AS st
     WHERE (SELECT access FROM billing_access(st, NULL, NULL, false, false, now())) IS NULL)
    THEN 1 ELSE 0 END;
SELECT queue_customer_id, access, access_reason, access_rule, access_due_at, dispute_open
  FROM billing_customer_state WHERE false;
SELECT access, access_reason, access_rule, access_changed_at, access_due_at
  FROM billing_subscription_mirror WHERE false;
