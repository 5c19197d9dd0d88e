-- Verify raxx_queue:billing_subscription on pg
SELECT stripe_subscription_id, stripe_customer_id, status, price_id, plan_tier,
       current_period_start, current_period_end, cancel_at_period_end, trial_end,
       canceled_at, ended_at, grace_until, payment_failure_count, last_payment_failed_at, last_paid_at,
       stripe_created_at, source_event_created_at, created_at, updated_at
  FROM billing_subscription
 WHERE false;
