-- Verify raxx_queue:billing_grace on pg
SELECT 1 / CASE WHEN (billing_grace_on_status('active', now(), 3, now(), 7)).failures = 0
                 AND (billing_grace_on_failure('active', NULL, 0, 1, now(), 7)).grace_until
                     > now()
                 AND (billing_grace_on_payment(now(), 1, NULL, now())).grace_until IS NULL
            THEN 1 ELSE 0 END;
