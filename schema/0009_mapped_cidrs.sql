-- 0009_mapped_cidrs: allowedIps written before tollgated stored IPv4-mapped ranges as
-- IPv4. tollgated matches ::ffff:a.b.c.d/n (n >= 96) as the IPv4 range a.b.c.d/(n-96),
-- while PostgreSQL compared it as IPv6, so a child of an IPv6-only token (["::/0"]) could
-- be created with ["::ffff:0.0.0.0/96"] and then admit every IPv4 client. Since
-- server/routes/token_body.c canonicalizes on input, only rows written before can hold
-- that form. This migration
--   1. rewrites every such range as the IPv4 range the server matches (nothing changes
--      for the server, which already read it so), and
--   2. revokes, now, every live token created with an API token whose allowedIps are no
--      longer inside its creator's (a child that escaped its confinement this way), and
--      their descendants. The revoked_at change fires 0005's trigger, so every node's
--      workers drop them (NOTIFY tollgate_revocations) when this commits.

UPDATE api_tokens t
   SET allowed_ips = ARRAY(
         SELECT CASE WHEN family(c) = 6 AND masklen(c) >= 96 AND c <<= '::ffff:0.0.0.0/96'::cidr
                     THEN set_masklen(('0.0.0.0'::inet + (host(c)::inet - '::ffff:0.0.0.0'::inet)), masklen(c) - 96)::cidr
                     ELSE c END
           FROM unnest(t.allowed_ips) WITH ORDINALITY AS u(c, i) ORDER BY i)
 WHERE EXISTS (SELECT 1 FROM unnest(t.allowed_ips) AS u(c)
                WHERE family(c) = 6 AND masklen(c) >= 96 AND c <<= '::ffff:0.0.0.0/96'::cidr);

WITH RECURSIVE escaped AS (
    SELECT c.id FROM api_tokens c JOIN api_tokens p ON p.id = c.created_by
     WHERE p.allowed_ips IS NOT NULL
       AND (c.allowed_ips IS NULL OR EXISTS (
              SELECT 1 FROM unnest(c.allowed_ips) AS x(net)
               WHERE NOT EXISTS (SELECT 1 FROM unnest(p.allowed_ips) AS y(net) WHERE x.net <<= y.net)))
    UNION
    SELECT t.id FROM api_tokens t JOIN escaped e ON t.created_by = e.id
)
UPDATE api_tokens SET revoked_at = now()
 WHERE id IN (SELECT id FROM escaped) AND (revoked_at IS NULL OR revoked_at > now());
