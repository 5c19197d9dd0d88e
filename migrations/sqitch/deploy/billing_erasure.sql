-- Deploy raxx_queue:billing_erasure to pg
-- requires: billing_customer
-- requires: processed_stripe_events
-- requires: billing_invoice
BEGIN;

-- Erasure of one person's data (a data-subject request): the customer row keeps its ids
-- and gains a tombstone (erased_at); its personal fields, and every personal field of
-- the Stripe events stored for it, are anonymised in place. Amounts, currencies, dates,
-- statuses and ids stay: they are the financial record. The triggers below keep a
-- tombstoned customer's data out of every later write (a Stripe retry, the catch-up, a
-- replay, a reconcile), whichever function makes it, so the writers need not know.
ALTER TABLE billing_customer ADD COLUMN erased_at timestamptz;

-- Ids of the Stripe objects (customers, charges, payment intents, payment methods,
-- invoices, disputes) of an erased customer: events about them that do not name the
-- customer (a dispute names its charge only) are its too. Only objects' own ids, never
-- what they point at: a pointer may be shared (a fixture's card, a platform object).
CREATE TABLE billing_erased_reference (
    ref text NOT NULL,
    queue_customer_id text NOT NULL,
    CONSTRAINT billing_erased_reference_pkey PRIMARY KEY (ref)
);

-- The category of a personal field of a Stripe object, by its key; NULL when the key
-- holds no personal data. The one list of what erasure and redaction remove.
CREATE FUNCTION billing_personal_category(p_key text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p_key IN ('email', 'customer_email', 'receipt_email', 'customer_email_address')
            THEN 'emails'
        WHEN p_key IN ('name', 'customer_name', 'account_holder_name', 'cardholder_name')
            THEN 'names'
        WHEN p_key IN ('phone', 'customer_phone')
            THEN 'phones'
        WHEN p_key IN ('address', 'customer_address', 'billing_address', 'shipping',
                       'customer_shipping', 'shipping_address', 'shipping_details',
                       'line1', 'line2', 'city', 'postal_code', 'state')
            THEN 'addresses'
        WHEN p_key IN ('last4', 'dynamic_last4', 'fingerprint', 'exp_month', 'exp_year', 'iin')
            THEN 'payment_methods'
        WHEN p_key IN ('tax_ids', 'customer_tax_ids', 'tax_id', 'ip', 'customer_purchase_ip')
            THEN 'identifiers'
        WHEN p_key IN ('metadata', 'description', 'evidence', 'custom_fields',
                       'uncategorized_text', 'customer_signature')
            THEN 'free_text'
    END
$$;

-- Whether a JSON value holds anything (a null, an empty string or an object of nulls
-- holds nothing to erase).
CREATE FUNCTION billing_json_has_value(p jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT p IS NOT NULL AND jsonb_path_exists(
        p, 'strict $.** ? (@.type() == "number" || @.type() == "boolean"
                           || (@.type() == "string" && @ != ""))')
$$;

-- A Stripe object (or event) with every personal field emptied, and how many fields of
-- each category were. Metadata keeps only queue_customer_id (an id Queue links by).
CREATE FUNCTION billing_redact_walk(p_value jsonb, INOUT counts jsonb, OUT redacted jsonb)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    k text;
    v jsonb;
    cat text;
    kept jsonb;
    item jsonb;
    items jsonb := '[]'::jsonb;
BEGIN
    IF jsonb_typeof(p_value) = 'array' THEN
        FOR item IN SELECT value FROM jsonb_array_elements(p_value) LOOP
            SELECT w.counts, w.redacted INTO counts, item FROM billing_redact_walk(item, counts) AS w;
            items := items || jsonb_build_array(item);
        END LOOP;
        redacted := items;
        RETURN;
    END IF;
    IF jsonb_typeof(p_value) IS DISTINCT FROM 'object' THEN
        redacted := p_value;
        RETURN;
    END IF;
    redacted := '{}'::jsonb;
    FOR k, v IN SELECT key, value FROM jsonb_each(p_value) LOOP
        cat := billing_personal_category(k);
        IF cat IS NULL THEN
            SELECT w.counts, w.redacted INTO counts, v FROM billing_redact_walk(v, counts) AS w;
        ELSIF k = 'metadata' AND jsonb_typeof(v) = 'object' THEN
            kept := CASE WHEN v ? 'queue_customer_id'
                         THEN jsonb_build_object('queue_customer_id', v -> 'queue_customer_id')
                         ELSE '{}'::jsonb END;
            IF billing_json_has_value(v - 'queue_customer_id') THEN
                counts := jsonb_set(counts, ARRAY[cat],
                                    to_jsonb(coalesce((counts ->> cat)::int, 0) + 1));
            END IF;
            v := kept;
        ELSIF billing_json_has_value(v) THEN
            counts := jsonb_set(counts, ARRAY[cat], to_jsonb(coalesce((counts ->> cat)::int, 0) + 1));
            v := 'null'::jsonb;
        END IF;
        redacted := redacted || jsonb_build_object(k, v);
    END LOOP;
END;
$$;

CREATE FUNCTION billing_redact_payload(p jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT w.redacted FROM billing_redact_walk(p, '{}'::jsonb) AS w
$$;

-- The Stripe customer an event's object belongs to: the customer itself, or the
-- object's `customer` (an id or an expanded customer).
CREATE FUNCTION billing_event_customer(p jsonb) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN p #>> '{data,object,object}' = 'customer' THEN p #>> '{data,object,id}'
        WHEN jsonb_typeof(p #> '{data,object,customer}') = 'object'
            THEN p #>> '{data,object,customer,id}'
        ELSE p #>> '{data,object,customer}'
    END
$$;

-- The id of an event's object and the ids it points at: an event is a customer's when
-- one of them is an object of that customer.
CREATE FUNCTION billing_event_refs(p jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT array_remove(ARRAY[
        p #>> '{data,object,id}',
        coalesce(p #>> '{data,object,charge,id}', p #>> '{data,object,charge}'),
        coalesce(p #>> '{data,object,payment_intent,id}', p #>> '{data,object,payment_intent}'),
        coalesce(p #>> '{data,object,payment_method,id}', p #>> '{data,object,payment_method}'),
        coalesce(p #>> '{data,object,latest_charge,id}', p #>> '{data,object,latest_charge}')
    ], NULL)
$$;

-- The erased customer (its queue_customer_id) an event belongs to, if any: by the
-- Stripe customer it names, the queue customer its object names (metadata, Checkout's
-- client_reference_id: another Stripe customer of the same person), or an object of
-- theirs it is or points at. plpgsql, so its plans are cached: it runs for every event.
CREATE FUNCTION billing_event_erased_customer(p_stripe_customer_id text, p jsonb)
RETURNS text
LANGUAGE plpgsql STABLE AS $$
DECLARE
    v_customer text := billing_event_customer(p);
    v_found text;
BEGIN
    SELECT c.queue_customer_id INTO v_found FROM billing_customer AS c
     WHERE c.erased_at IS NOT NULL
       AND c.stripe_customer_id IN (p_stripe_customer_id, v_customer)
     LIMIT 1;
    IF v_found IS NULL THEN
        SELECT c.queue_customer_id INTO v_found FROM billing_customer AS c
         WHERE c.erased_at IS NOT NULL
           AND c.queue_customer_id IN (p #>> '{data,object,metadata,queue_customer_id}',
                                       p #>> '{data,object,client_reference_id}');
    END IF;
    IF v_found IS NULL THEN
        SELECT r.queue_customer_id INTO v_found FROM billing_erased_reference AS r
         WHERE r.ref = ANY (billing_event_refs(p) || ARRAY[p_stripe_customer_id, v_customer])
         LIMIT 1;
    END IF;
    RETURN v_found;
END;
$$;

CREATE INDEX billing_customer_erased_idx
    ON billing_customer (stripe_customer_id) WHERE erased_at IS NOT NULL;

-- A tombstoned customer's personal fields stay empty, and the tombstone stays. A
-- Stripe customer an erased person's events named (another one of theirs, naming the
-- erased queue customer) is tombstoned as it is first stored.
CREATE FUNCTION billing_customer_tombstone() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        NEW.erased_at := coalesce(OLD.erased_at, NEW.erased_at);
    END IF;
    IF NEW.erased_at IS NULL AND NEW.stripe_customer_id IS NOT NULL
       AND EXISTS (SELECT 1 FROM billing_erased_reference AS r
                    WHERE r.ref = NEW.stripe_customer_id) THEN
        NEW.erased_at := now();
    END IF;
    IF NEW.erased_at IS NOT NULL THEN
        NEW.billing_email := NULL;
        NEW.billing_name := NULL;
        NEW.billing_address := NULL;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_customer_tombstone
    BEFORE INSERT OR UPDATE ON billing_customer
    FOR EACH ROW EXECUTE FUNCTION billing_customer_tombstone();

-- An event of an erased customer is redacted before it is stored; its object's id
-- joins the customer's references (a later event of the same dispute is theirs too).
CREATE FUNCTION billing_event_redact() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_customer text := billing_event_erased_customer(NEW.stripe_customer_id, NEW.payload);
BEGIN
    IF v_customer IS NOT NULL THEN
        NEW.payload := billing_redact_payload(NEW.payload);
        INSERT INTO billing_erased_reference (ref, queue_customer_id)
        SELECT NEW.payload #>> '{data,object,id}', v_customer
         WHERE NEW.payload #>> '{data,object,id}' IS NOT NULL
        ON CONFLICT DO NOTHING;
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER billing_event_redact
    BEFORE INSERT OR UPDATE OF payload ON processed_stripe_events
    FOR EACH ROW EXECUTE FUNCTION billing_event_redact();

-- An event stored while its customer's erasure was in flight (the event row is written
-- before the event takes the customer's lock, the erasure's update cannot see it): at
-- commit, when the erasure has committed, the row is redacted before anyone sees it.
CREATE FUNCTION billing_event_recheck() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF billing_event_erased_customer(NEW.stripe_customer_id, NEW.payload) IS NOT NULL THEN
        UPDATE processed_stripe_events
           SET payload = billing_redact_payload(payload)
         WHERE event_id = NEW.event_id
           AND payload IS DISTINCT FROM billing_redact_payload(payload);
    END IF;
    RETURN NULL;
END;
$$;

CREATE CONSTRAINT TRIGGER billing_event_recheck
    AFTER INSERT ON processed_stripe_events
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION billing_event_recheck();

-- Erase one customer: the caller holds the customer's lock (raxx_queue.db.locks) and
-- passes the Stripe customer it locked; QU020 if the row now names another.
-- Returns found = false for an unknown customer; else the categories and counts erased
-- (all zero when it was erased already and nothing came back).
CREATE FUNCTION billing_erase_customer(p_queue_customer_id text, p_locked_stripe_id text)
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
        OR (v_email IS NOT NULL AND strpos(lower(e.payload::text), v_email) > 0);
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
        SELECT e.event_id, e.payload FROM processed_stripe_events AS e
         WHERE e.event_id = ANY (v_event_ids)
         ORDER BY e.event_id
         FOR UPDATE
    LOOP
        SELECT * INTO w FROM billing_redact_walk(r.payload, '{}'::jsonb);
        IF w.redacted IS DISTINCT FROM r.payload THEN
            UPDATE processed_stripe_events AS e
               SET payload = w.redacted,
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

COMMIT;
