-- Verify raxx_queue:billing_link_customer on pg
SELECT 'billing_link_customer(text, text, text, text, text)'::regprocedure;
