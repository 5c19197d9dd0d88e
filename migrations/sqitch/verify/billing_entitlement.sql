-- Verify raxx_queue:billing_entitlement on pg
SELECT 1 / CASE WHEN billing_entitled('past_due', now() + interval '1 day', now())
                 AND NOT billing_entitled('unpaid', NULL, now())
                 AND billing_tier_rank('pro_plus') > billing_tier_rank('pro')
                 AND billing_usable_tier(false, 'pro') = 'free'
                 AND billing_usable_tier(true, 'pro') = 'pro'
            THEN 1 ELSE 0 END;
SELECT stripe_subscription_id, entitled FROM billing_current_subscription WHERE false;
SELECT queue_customer_id, status, subscribed_tier, plan_tier, entitled
  FROM billing_customer_state WHERE false;
