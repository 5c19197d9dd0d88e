-- Deploy raxx_queue:billing_event_raw_copy to pg
-- requires: billing_write_costs
BEGIN;

-- A delivery's payload is stored as the text Stripe sent, not parsed into jsonb.
--
-- Postgres parsed every payload into jsonb (the statement's parameter), compressed the
-- larger binary form and wrote it to the WAL: about 0.11 ms of its CPU for a lone
-- full-size event (docs/performance.md, sixteenth look). The webhook lane now sends the
-- body as received, as a text parameter of its own, into `payload_raw`; the event's
-- `payload` is then a stub of its envelope and the ids of its object, which is all the
-- erasure check on insert reads. Rows written otherwise (catch-up, thin events,
-- recorded events) keep the whole payload in `payload` and no raw copy. Whatever reads
-- a stored event reads billing_event_payload(payload, payload_raw): the raw copy parsed
-- when there is one. Erasure and retention rewrite `payload` and clear the raw copy.
ALTER TABLE processed_stripe_events ADD COLUMN payload_raw text;
ALTER TABLE processed_stripe_events ALTER COLUMN payload_raw SET STORAGE MAIN;
DO $$
BEGIN
    EXECUTE 'ALTER TABLE processed_stripe_events ALTER COLUMN payload_raw SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- a server built without lz4 keeps pglz
END;
$$;

-- A stored event, whole: its raw copy parsed, else its payload.
CREATE FUNCTION billing_event_payload(p_payload jsonb, p_raw text) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(p_raw::jsonb, p_payload)
$$;

-- billing_apply_stripe_event of billing_invoice_mirror, storing the raw copy given
CREATE FUNCTION billing_apply_stripe_event(p jsonb, p_raw text)
RETURNS TABLE (outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_created timestamptz := billing_epoch(p, 'created');
    v_family text := p ->> 'family';
    v_customer text := p ->> 'stripe_customer_id';
    v_force boolean := coalesce((p ->> 'force')::boolean, false);
    v_outcome text := 'applied';
    v_stored text;
    v_before jsonb;
    v_after jsonb;
    v_queue_id text;
    v_conflict boolean := false;
    v_linked boolean := false;
    v_mirror_changed boolean := false;
    v_mirror_version bigint;
    v_mirror_before jsonb;
    v_mirror_after jsonb;
    v_access_change jsonb;
BEGIN
    -- a dispute names its payment, not its customer: the invoices told which it is
    IF v_family = 'dispute' AND v_customer IS NULL THEN
        SELECT coalesce(r.stripe_customer_id, i.stripe_customer_id) INTO v_customer
          FROM billing_payment_ref AS r
          LEFT JOIN billing_invoice AS i ON i.stripe_invoice_id = r.stripe_invoice_id
         WHERE r.payment_ref IN (p -> 'change' ->> 'charge_id',
                                 p -> 'change' ->> 'payment_intent_id')
         ORDER BY 1 NULLS LAST
         LIMIT 1;
    ELSIF v_family = 'payment' AND v_customer IS NULL THEN
        SELECT i.stripe_customer_id INTO v_customer FROM billing_invoice AS i
         WHERE i.stripe_invoice_id = p -> 'change' ->> 'stripe_invoice_id';
    END IF;

    INSERT INTO processed_stripe_events AS e
           (event_id, type, outcome, stripe_customer_id, event_created_at, api_version,
            livemode, source, request_id, payload, payload_raw)
    VALUES (p ->> 'event_id', p ->> 'type',
            CASE WHEN v_family IN ('ignored') THEN 'ignored' ELSE 'applied' END,
            v_customer, v_created, p ->> 'api_version',
            coalesce((p ->> 'livemode')::boolean, false), coalesce(p ->> 'source', 'webhook'),
            p ->> 'request_id', p -> 'payload', p_raw)
    ON CONFLICT ON CONSTRAINT processed_stripe_events_pkey DO NOTHING;
    IF NOT FOUND THEN
        RETURN QUERY SELECT 'duplicate', NULL::text, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;
    IF v_family = 'ignored' THEN
        RETURN QUERY SELECT 'ignored', NULL::text, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;

    IF v_customer IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(billing_customer_lock_key(v_customer));
    END IF;

    CASE v_family
        WHEN 'customer' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_customer(p, v_created, v_force) AS r;
        WHEN 'subscription' THEN
            SELECT r.stored, r.before, r.after INTO v_stored, v_before, v_after
              FROM billing_store_subscription(
                       p -> 'change', v_created,
                       CASE WHEN v_force THEN 'overwrite' ELSE 'raise' END,
                       (p ->> 'grace_days')::integer) AS r;
            v_outcome := CASE WHEN v_stored = 'stale' THEN 'stale' ELSE 'applied' END;
        WHEN 'invoice' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_invoice(p, v_created, v_force) AS r;
            INSERT INTO billing_payment_ref (payment_ref, stripe_customer_id, stripe_invoice_id)
            SELECT ref, v_customer, p ->> 'object_id'
              FROM jsonb_array_elements_text(coalesce(p -> 'change' -> 'payment_refs',
                                                      '[]'::jsonb)) AS ref
            ON CONFLICT ON CONSTRAINT billing_payment_ref_pkey DO NOTHING;
        WHEN 'payment' THEN
            INSERT INTO billing_payment_ref AS r
                   (payment_ref, stripe_customer_id, stripe_invoice_id)
            SELECT ref, v_customer, p -> 'change' ->> 'stripe_invoice_id'
              FROM jsonb_array_elements_text(coalesce(p -> 'change' -> 'payment_refs',
                                                      '[]'::jsonb)) AS ref
            ON CONFLICT ON CONSTRAINT billing_payment_ref_pkey DO UPDATE
               SET stripe_customer_id = coalesce(r.stripe_customer_id,
                                                 EXCLUDED.stripe_customer_id),
                   stripe_invoice_id = coalesce(r.stripe_invoice_id, EXCLUDED.stripe_invoice_id);
            v_after := jsonb_build_object(
                'payments', jsonb_array_length(coalesce(p -> 'change' -> 'payment_refs',
                                                        '[]'::jsonb)),
                'customer_known', v_customer IS NOT NULL);
        WHEN 'dispute' THEN
            SELECT r.outcome, r.before, r.after INTO v_outcome, v_before, v_after
              FROM billing_apply_dispute(p, v_customer, v_created, v_force) AS r;
        WHEN 'checkout' THEN
            v_after := (p -> 'change') - 'subscription'::text;
            -- a session carrying its subscription expanded: stored like any other
            IF jsonb_typeof(p -> 'change' -> 'subscription') = 'object' THEN
                SELECT r.stored INTO v_stored
                  FROM billing_store_subscription(
                           p -> 'change' -> 'subscription', v_created, 'keep',
                           (p ->> 'grace_days')::integer) AS r;
                v_after := v_after || jsonb_build_object('subscription_stored', v_stored);
            END IF;
        WHEN 'record' THEN
            v_after := p -> 'change';
        ELSE
            RAISE EXCEPTION 'unknown event family %', v_family USING ERRCODE = 'QU003';
    END CASE;

    -- linking is additive, so even a stale event may link its customer
    IF v_customer IS NOT NULL THEN
        SELECT l.queue_customer_id, l.conflict, l.created OR l.linked
          INTO v_queue_id, v_conflict, v_linked
          FROM billing_link_customer(p -> 'change' ->> 'queue_customer_id', v_customer,
                                     NULL, NULL, 'event') AS l;
    END IF;

    IF v_outcome = 'stale' THEN
        UPDATE processed_stripe_events SET outcome = 'stale' WHERE event_id = p ->> 'event_id';
        RETURN QUERY SELECT 'stale', v_queue_id, false, NULL::bigint, NULL::jsonb;
        RETURN;
    END IF;

    -- an invoice that wrote nothing of its subscription, and linked no one, changed
    -- nothing the mirror is computed from (billing_customer_state reads customers,
    -- subscriptions and disputes): no recomputation. Time alone moving access on (a
    -- grace window ending) is the expiry job's, by access_due_at, as without events.
    IF v_queue_id IS NOT NULL AND NOT (
           v_family = 'invoice' AND NOT v_linked
           AND jsonb_typeof(v_after -> 'subscription') IS DISTINCT FROM 'object') THEN
        -- a change of access goes in this event's audit row, with the rule that decided it
        SELECT m.changed, m.version, m.before, m.after, m.access_change
          INTO v_mirror_changed, v_mirror_version, v_mirror_before, v_mirror_after,
               v_access_change
          FROM billing_refresh_mirror(v_queue_id, NULL, NULL, NULL) AS m;
        v_mirror_changed := coalesce(v_mirror_changed, false);
    END IF;

    INSERT INTO billing_action_log
           (actor, action, queue_customer_id, stripe_object_id, event_id, request_id, summary)
    VALUES (coalesce(p ->> 'actor', 'stripe'), coalesce(p ->> 'action', 'stripe.' || (p ->> 'type')),
            v_queue_id,
            p ->> 'object_id', p ->> 'event_id', p ->> 'request_id',
            jsonb_strip_nulls(jsonb_build_object(
                'before', v_before, 'after', v_after,
                'link_conflict', CASE WHEN v_conflict THEN true END,
                'access', v_access_change,
                'mirror', CASE WHEN v_mirror_changed THEN
                    jsonb_build_object('version', v_mirror_version,
                                       'before', v_mirror_before, 'after', v_mirror_after)
                    END)));

    RETURN QUERY SELECT 'applied', v_queue_id, v_mirror_changed, v_mirror_version,
        v_access_change;
END;
$$;

-- the one-argument form (no raw copy), for the statements that send a whole payload
CREATE OR REPLACE FUNCTION billing_apply_stripe_event(p jsonb)
RETURNS TABLE (outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM billing_apply_stripe_event(p, NULL::text);
END;
$$;

-- billing_apply_stripe_events of billing_event_batch, with each event's raw copy
CREATE FUNCTION billing_apply_stripe_events(p jsonb, p_lock_timeout text, p_raws text[])
RETURNS TABLE (n integer, outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    i integer;
BEGIN
    IF jsonb_typeof(p) IS DISTINCT FROM 'array'
       OR coalesce(array_length(p_raws, 1), 0) > jsonb_array_length(p) THEN
        RAISE EXCEPTION 'billing_apply_stripe_events takes a JSON array, and no more raw copies than events' USING ERRCODE = '22023';
    END IF;
    PERFORM set_config('lock_timeout', p_lock_timeout, true);
    FOR i IN 0 .. jsonb_array_length(p) - 1 LOOP
        RETURN QUERY SELECT i + 1, r.outcome, r.queue_customer_id, r.mirror_changed,
                            r.mirror_version, r.access_change
                       FROM billing_apply_stripe_event(p -> i, p_raws[i + 1]) AS r;
    END LOOP;
END;
$$;

-- the two-argument form: no raw copies
CREATE OR REPLACE FUNCTION billing_apply_stripe_events(p jsonb, p_lock_timeout text)
RETURNS TABLE (n integer, outcome text, queue_customer_id text, mirror_changed boolean,
               mirror_version bigint, access_change jsonb)
LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY SELECT * FROM billing_apply_stripe_events(p, p_lock_timeout, NULL::text[]);
END;
$$;

-- An erased customer's event keeps no raw copy: the redacted payload replaces both.
CREATE OR REPLACE FUNCTION billing_event_redact() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_customer text;
BEGIN
    IF TG_OP = 'INSERT' AND NEW.stripe_customer_id IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(billing_customer_lock_key(NEW.stripe_customer_id));
    END IF;
    -- evaluated after the lock: a fresh snapshot, an erasure that held it committed
    v_customer := billing_event_erased_customer(NEW.stripe_customer_id, NEW.payload);
    IF v_customer IS NOT NULL THEN
        NEW.payload := billing_redact_payload(billing_event_payload(NEW.payload, NEW.payload_raw));
        NEW.payload_raw := NULL;
        INSERT INTO billing_erased_reference (ref, queue_customer_id)
        SELECT NEW.payload #>> '{data,object,id}', v_customer
         WHERE NEW.payload #>> '{data,object,id}' IS NOT NULL
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END;
$$;

DROP TRIGGER billing_event_redact ON processed_stripe_events;
CREATE TRIGGER billing_event_redact
    BEFORE INSERT OR UPDATE OF payload, payload_raw ON processed_stripe_events
    FOR EACH ROW EXECUTE FUNCTION billing_event_redact();

-- billing_erase_customer of billing_erasure, reading the whole stored event; an event it
-- redacts keeps no raw copy (one with nothing to redact keeps it: it holds nothing more)
CREATE OR REPLACE FUNCTION billing_erase_customer(p_queue_customer_id text, p_locked_stripe_id text)
RETURNS TABLE (found boolean, stripe_customer_id text, erased_at timestamptz,
               already_erased boolean, erased jsonb)
LANGUAGE plpgsql AS $$
DECLARE
    v_row billing_customer;
    v_stripe text;
    v_email text;
    v_customer_counts jsonb := '{}'::jsonb;
    v_payload_counts jsonb := '{}'::jsonb;
    v_events integer := 0;
    v_invoices integer := 0;
    v_refs text[];
    v_event_ids text[];
    v_was_erased boolean;
    r record;
    w record;
BEGIN
    SELECT * INTO v_row FROM billing_customer AS c
     WHERE c.queue_customer_id = p_queue_customer_id FOR UPDATE;
    IF v_row.id IS NULL THEN
        RETURN QUERY SELECT false, NULL::text, NULL::timestamptz, false, NULL::jsonb;
        RETURN;
    END IF;
    v_stripe := v_row.stripe_customer_id;
    IF v_stripe IS DISTINCT FROM p_locked_stripe_id THEN
        RAISE EXCEPTION 'the customer''s Stripe link changed' USING ERRCODE = 'QU020';
    END IF;
    v_email := lower(nullif(v_row.billing_email, ''));
    v_was_erased := v_row.erased_at IS NOT NULL;

    IF v_row.billing_email IS NOT NULL AND v_row.billing_email <> '' THEN
        v_customer_counts := v_customer_counts || '{"emails": 1}';
    END IF;
    IF v_row.billing_name IS NOT NULL AND v_row.billing_name <> '' THEN
        v_customer_counts := v_customer_counts || '{"names": 1}';
    END IF;
    IF billing_json_has_value(v_row.billing_address) THEN
        v_customer_counts := v_customer_counts || '{"addresses": 1}';
    END IF;
    UPDATE billing_customer AS c
       SET erased_at = coalesce(c.erased_at, now()), updated_at = now()
     WHERE c.id = v_row.id
    RETURNING * INTO v_row;

    -- the hosted invoice page shows the name and address Stripe holds
    UPDATE billing_invoice AS i SET hosted_invoice_url = NULL, updated_at = now()
     WHERE i.stripe_customer_id = v_stripe AND i.hosted_invoice_url IS NOT NULL;
    GET DIAGNOSTICS v_invoices = ROW_COUNT;

    -- the customer's events: by the Stripe customer or the queue customer they
    -- name, or carrying its e-mail (in any case); and the ids of their objects, with
    -- those of events erased before
    SELECT coalesce(array_agg(e.event_id), '{}'),
           coalesce(array_agg(DISTINCT e.payload #>> '{data,object,id}')
                    FILTER (WHERE e.payload #>> '{data,object,id}' IS NOT NULL), '{}')
      INTO v_event_ids, v_refs
      FROM processed_stripe_events AS e
     WHERE e.stripe_customer_id = v_stripe
        OR billing_event_customer(e.payload) = v_stripe
        OR p_queue_customer_id IN (e.payload #>> '{data,object,metadata,queue_customer_id}',
                                   e.payload #>> '{data,object,client_reference_id}')
        OR (v_email IS NOT NULL
            AND strpos(lower(billing_event_payload(e.payload, e.payload_raw)::text), v_email) > 0);
    v_refs := v_refs || ARRAY(SELECT x.ref FROM billing_erased_reference AS x
                               WHERE x.queue_customer_id = p_queue_customer_id);
    -- events about those objects that do not name the customer (a dispute, a refund)
    SELECT v_event_ids || coalesce(array_agg(e.event_id), '{}'),
           v_refs || coalesce(array_agg(e.payload #>> '{data,object,id}')
                              FILTER (WHERE e.payload #>> '{data,object,id}' IS NOT NULL),
                              '{}')
      INTO v_event_ids, v_refs
      FROM processed_stripe_events AS e
     WHERE billing_event_refs(e.payload) && v_refs
       AND NOT e.event_id = ANY (v_event_ids);
    INSERT INTO billing_erased_reference (ref, queue_customer_id)
    SELECT DISTINCT ref, p_queue_customer_id FROM unnest(v_refs) AS ref
    ON CONFLICT DO NOTHING;

    FOR r IN
        SELECT e.event_id, billing_event_payload(e.payload, e.payload_raw) AS payload
          FROM processed_stripe_events AS e
         WHERE e.event_id = ANY (v_event_ids)
         ORDER BY e.event_id
         FOR UPDATE
    LOOP
        SELECT * INTO w FROM billing_redact_walk(r.payload, '{}'::jsonb);
        IF w.redacted IS DISTINCT FROM r.payload THEN
            UPDATE processed_stripe_events AS e
               SET payload = w.redacted,
                   payload_raw = NULL,
                   stripe_customer_id = coalesce(e.stripe_customer_id, v_stripe)
             WHERE e.event_id = r.event_id;
            v_events := v_events + 1;
            SELECT coalesce(jsonb_object_agg(key, total), '{}') INTO v_payload_counts
              FROM (SELECT key, sum(value::int) AS total
                      FROM (SELECT * FROM jsonb_each_text(v_payload_counts)
                            UNION ALL SELECT * FROM jsonb_each_text(w.counts)) AS both_counts
                     GROUP BY key) AS summed;
        END IF;
    END LOOP;

    RETURN QUERY SELECT true, v_stripe, v_row.erased_at, v_was_erased,
        jsonb_build_object(
            'customer', v_customer_counts,
            'event_payloads', v_events,
            'event_fields', v_payload_counts,
            'invoice_links', v_invoices);
END;
$$;

-- billing_strip_old_payloads of billing_event_retention, stripping the whole stored
-- event and clearing its raw copy
CREATE OR REPLACE FUNCTION billing_strip_old_payloads(p_before timestamptz, p_limit integer)
RETURNS TABLE (stripped integer, bytes_before bigint, bytes_after bigint)
LANGUAGE sql AS $$
    WITH due AS (
        SELECT e.event_id,
               pg_column_size(e.payload) + coalesce(pg_column_size(e.payload_raw), 0) AS size
          FROM processed_stripe_events AS e
         WHERE e.payload_stripped_at IS NULL AND e.received_at < p_before
         ORDER BY e.received_at
         LIMIT p_limit
           FOR UPDATE SKIP LOCKED
    ), done AS (
        UPDATE processed_stripe_events AS e
           SET payload = billing_strip_payload(billing_event_payload(e.payload, e.payload_raw)),
               payload_raw = NULL, payload_stripped_at = now()
          FROM due
         WHERE e.event_id = due.event_id
        RETURNING due.size, pg_column_size(e.payload) AS size_after
    )
    SELECT count(*)::integer, coalesce(sum(size), 0)::bigint, coalesce(sum(size_after), 0)::bigint
      FROM done
$$;

COMMIT;
