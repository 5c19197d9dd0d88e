-- Deploy raxx_queue:billing_link_customer to pg
-- requires: billing_link_customer@wave1
BEGIN;

-- Link a platform customer (queue_customer_id) to a Stripe customer: the one place
-- that creates, adopts and merges billing_customer rows. The caller holds the Stripe
-- customer's advisory lock (billing_customer_lock_key), or the queue customer's when
-- there is no Stripe customer. Two callers, each with the conflict behaviour it needs:
--
--   p_source 'request': Queue itself created (or found) the Stripe customer for this
--     queue customer (subscribe, POST /customers). A link to another live customer on
--     either side raises QU010 (409 CUSTOMER_LINK_CONFLICT); a link to a Stripe
--     customer that was deleted is replaced. p_email / p_name are what was sent.
--   p_source 'event': a Stripe event names the queue customer (metadata or Checkout's
--     client_reference_id). It is a hint: a conflict keeps the existing links and is
--     reported (conflict = true, audited by the event). The event's own personal data
--     was stored by its upsert, so p_email / p_name are NULL.
--
-- Either way a row Stripe events made before the queue customer was known (the
-- Stripe customer's orphan) is adopted, or merged into the queue customer's row.
-- Returns the queue customer now linked to the Stripe customer (NULL when none),
-- created (the queue customer had no row), linked (its Stripe customer was set or
-- changed) and conflict.
CREATE FUNCTION billing_link_customer(
    p_queue_customer_id text,
    p_stripe_customer_id text,
    p_email text,
    p_name text,
    p_source text
)
RETURNS TABLE (queue_customer_id text, created boolean, linked boolean, conflict boolean)
LANGUAGE plpgsql AS $$
DECLARE
    v_by_stripe billing_customer;
    v_by_queue billing_customer;
    v_request boolean := p_source = 'request';
BEGIN
    IF p_source NOT IN ('request', 'event') THEN
        RAISE EXCEPTION 'unknown link source %', p_source USING ERRCODE = 'QU003';
    END IF;
    IF p_stripe_customer_id IS NOT NULL THEN
        SELECT * INTO v_by_stripe FROM billing_customer AS c
         WHERE c.stripe_customer_id = p_stripe_customer_id FOR UPDATE;
    END IF;
    IF p_queue_customer_id IS NULL OR p_queue_customer_id !~ '^[A-Za-z0-9_-]{1,64}$' THEN
        -- an event naming no (valid) queue customer: nothing to link
        RETURN QUERY SELECT v_by_stripe.queue_customer_id, false, false, false;
        RETURN;
    END IF;
    SELECT * INTO v_by_queue FROM billing_customer AS c
     WHERE c.queue_customer_id = p_queue_customer_id FOR UPDATE;

    IF v_by_queue.id IS NOT NULL AND (p_stripe_customer_id IS NULL
                                      OR v_by_queue.id = v_by_stripe.id) THEN
        RETURN QUERY SELECT p_queue_customer_id, false, false, false;  -- linked already
        RETURN;
    END IF;

    -- the queue customer is linked to another Stripe customer
    IF v_by_queue.stripe_customer_id IS NOT NULL
       AND NOT (v_request AND v_by_queue.deleted_at IS NOT NULL) THEN
        IF v_request THEN
            RAISE EXCEPTION 'the queue customer is linked to another Stripe customer'
                  USING ERRCODE = 'QU010';
        END IF;
        RETURN QUERY SELECT v_by_stripe.queue_customer_id, false, false, true;
        RETURN;
    END IF;
    -- the Stripe customer is linked to another queue customer
    IF v_by_stripe.queue_customer_id IS NOT NULL THEN
        IF v_request THEN
            RAISE EXCEPTION 'the Stripe customer is linked to another queue customer'
                  USING ERRCODE = 'QU010';
        END IF;
        RETURN QUERY SELECT v_by_stripe.queue_customer_id, false, false, true;
        RETURN;
    END IF;

    IF v_by_queue.id IS NULL AND v_by_stripe.id IS NULL THEN
        INSERT INTO billing_customer AS c
               (queue_customer_id, stripe_customer_id, billing_email, billing_name)
        VALUES (p_queue_customer_id, p_stripe_customer_id, p_email, p_name)
        ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            -- a concurrent transaction created it since our read: decide again on its row
            RETURN QUERY SELECT l.queue_customer_id, false, l.linked, l.conflict
              FROM billing_link_customer(p_queue_customer_id, p_stripe_customer_id,
                                         p_email, p_name, p_source) AS l;
            RETURN;
        END IF;
        RETURN QUERY SELECT p_queue_customer_id, true, p_stripe_customer_id IS NOT NULL, false;
    ELSIF v_by_queue.id IS NULL THEN
        -- adopt the orphan
        UPDATE billing_customer AS c
           SET queue_customer_id = p_queue_customer_id,
               billing_email = coalesce(c.billing_email, p_email),
               billing_name = coalesce(c.billing_name, p_name),
               updated_at = now()
         WHERE c.id = v_by_stripe.id;
        RETURN QUERY SELECT p_queue_customer_id, true, true, false;
    ELSIF v_by_stripe.id IS NOT NULL THEN
        -- a row made from Stripe events and a row made by the platform: merge them
        DELETE FROM billing_customer AS c WHERE c.id = v_by_stripe.id;
        UPDATE billing_customer AS c
           SET stripe_customer_id = p_stripe_customer_id,
               billing_email = coalesce(v_by_stripe.billing_email, p_email, c.billing_email),
               billing_name = coalesce(v_by_stripe.billing_name, p_name, c.billing_name),
               billing_address = coalesce(v_by_stripe.billing_address, c.billing_address),
               deleted_at = v_by_stripe.deleted_at,
               source_event_created_at = v_by_stripe.source_event_created_at,
               updated_at = now()
         WHERE c.id = v_by_queue.id;
        RETURN QUERY SELECT p_queue_customer_id, false, true, false;
    ELSE
        -- the queue customer had no Stripe customer, or (a request) a deleted one
        UPDATE billing_customer AS c
           SET stripe_customer_id = p_stripe_customer_id,
               billing_email = coalesce(p_email, c.billing_email),
               billing_name = coalesce(p_name, c.billing_name),
               deleted_at = NULL,
               -- the guard's time belonged to the previous Stripe customer's events
               source_event_created_at = NULL,
               updated_at = now()
         WHERE c.id = v_by_queue.id;
        RETURN QUERY SELECT p_queue_customer_id, false, true, false;
    END IF;
END;
$$;

DROP FUNCTION billing_link_customer(text, text, text, text);

COMMIT;
