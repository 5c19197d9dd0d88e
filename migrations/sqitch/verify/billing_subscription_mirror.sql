-- Verify raxx_queue:billing_subscription_mirror on pg
SELECT queue_customer_id, plan_tier, status, current_period_end, grace_until, entitled,
       feature_locked_at, locked_from_tier, version, updated_at, pushed_version, push_attempts,
       next_push_at, push_lease_until, last_pushed_at, last_push_error
  FROM billing_subscription_mirror
 WHERE false;
