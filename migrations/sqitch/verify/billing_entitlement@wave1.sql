-- Verify raxx_queue:billing_entitlement on pg
SELECT 1 / CASE WHEN billing_entitled('past_due', now() + interval '1 day', now())
                 AND NOT billing_entitled('unpaid', NULL, now())
                 AND billing_tier_rank('pro_plus') > billing_tier_rank('pro')
            THEN 1 ELSE 0 END;
SELECT stripe_subscription_id, entitled FROM billing_current_subscription WHERE false;
