-- Deploy raxx_queue:billing_grace to pg
BEGIN;

-- Grace after a failed payment (SPEC §4): every rule of the window, in one place.
-- A subscription keeps payment_failure_count and grace_until; entitlement reads
-- grace_until (billing_entitled: past_due and now < grace_until), and the grace-expiry
-- job (raxx_queue.billing.grace) pushes the mirror of windows that lapse without an
-- event. The writers in billing_apply_event call these three functions.

-- A subscription's status was stored: healthy ends the window and forgets failures;
-- past_due without a recorded failure opens a window now (the status can arrive
-- before invoice.payment_failed); anything else has no window to give.
CREATE FUNCTION billing_grace_on_status(
    p_status text, p_grace_until timestamptz, p_failures integer, p_at timestamptz,
    p_days integer, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
               WHEN p_status <> 'past_due' THEN NULL
               WHEN p_grace_until IS NULL AND p_failures = 0
                   THEN p_at + make_interval(days => p_days)
               ELSE p_grace_until
           END,
           CASE WHEN p_status IN ('active', 'trialing') THEN 0 ELSE p_failures END
$$;

-- A payment failed at p_at: the first failure opens a window of p_days, a second one
-- (counted, or said by Stripe's attempt_count even out of order) closes it at once;
-- a subscription that is not live (unpaid, ended) has no window.
CREATE FUNCTION billing_grace_on_failure(
    p_status text, p_grace_until timestamptz, p_failures integer, p_attempt_count integer,
    p_at timestamptz, p_days integer, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
               WHEN p_status NOT IN ('active', 'trialing', 'past_due') THEN NULL
               WHEN f.failures >= 2
                   THEN least(coalesce(p_grace_until, 'infinity'::timestamptz), p_at)
               ELSE least(coalesce(p_grace_until, 'infinity'::timestamptz),
                          p_at + make_interval(days => p_days))
           END,
           f.failures
      FROM (SELECT greatest(p_failures + 1, coalesce(p_attempt_count, 1)) AS failures) AS f
$$;

-- A payment succeeded at p_paid_at: it clears the failures before it, whatever order
-- the events arrive in; a failure recorded after it stands.
CREATE FUNCTION billing_grace_on_payment(
    p_grace_until timestamptz, p_failures integer, p_last_failed_at timestamptz,
    p_paid_at timestamptz, OUT grace_until timestamptz, OUT failures integer)
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN cleared THEN NULL ELSE p_grace_until END,
           CASE WHEN cleared THEN 0 ELSE p_failures END
      FROM (SELECT p_last_failed_at IS NULL OR p_last_failed_at <= p_paid_at AS cleared) AS c
$$;

COMMIT;
