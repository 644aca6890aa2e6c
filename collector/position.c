/*
 * collector_positions access. Every statement is parameterized; ring instances travel as
 * uuid text. The conditional UPDATE in tg_position_advance is what makes a batch's commit
 * apply at most once even if two collectors race or a COMMIT's reply was lost.
 */
#include "collector/position.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/uuid.h"

void tg_position_format_instance(const uint8_t instance[TG_RING_INSTANCE_ID_SIZE], char out[37])
{
    tg_uuid_t u;
    memcpy(u.bytes, instance, sizeof(u.bytes));
    tg_uuid_format(&u, out);
}

int tg_position_load(tg_collector_db_t *db, const char *node_id, tg_position_t *out)
{
    const char *params[] = {node_id};
    PGresult *res = tg_collector_db_query(db, "SELECT ring_instance::text, position FROM collector_positions WHERE node_id = $1", 1,
                                          params, PGRES_TUPLES_OK);
    if (res == NULL)
        return -1;
    int found = PQntuples(res) == 1;
    if (found) {
        tg_uuid_t u;
        const char *text = PQgetvalue(res, 0, 0);
        if (tg_uuid_parse(text, strlen(text), &u) != 0) {
            PQclear(res);
            return -1;
        }
        memcpy(out->instance, u.bytes, sizeof(out->instance));
        out->position = strtoull(PQgetvalue(res, 0, 1), NULL, 10);
    }
    PQclear(res);
    return found;
}

int tg_position_create(tg_collector_db_t *db, const char *node_id, const tg_position_t *pos)
{
    char instance[37], position[24];
    tg_position_format_instance(pos->instance, instance);
    snprintf(position, sizeof(position), "%" PRIu64, pos->position);
    const char *params[] = {node_id, instance, position};
    long n = tg_collector_db_command(db,
                                     "INSERT INTO collector_positions (node_id, ring_instance, position, updated_at) "
                                     "VALUES ($1, $2::uuid, $3::bigint, now()) ON CONFLICT (node_id) DO NOTHING",
                                     3, params);
    return n < 0 ? -1 : n == 1;
}

int tg_position_advance(tg_collector_db_t *db, const char *node_id, const tg_position_t *from, const tg_position_t *to)
{
    char from_instance[37], from_position[24], to_instance[37], to_position[24];
    tg_position_format_instance(from->instance, from_instance);
    tg_position_format_instance(to->instance, to_instance);
    snprintf(from_position, sizeof(from_position), "%" PRIu64, from->position);
    snprintf(to_position, sizeof(to_position), "%" PRIu64, to->position);
    const char *params[] = {node_id, from_instance, from_position, to_instance, to_position};
    long n = tg_collector_db_command(db,
                                     "UPDATE collector_positions SET ring_instance = $4::uuid, position = $5::bigint, "
                                     "updated_at = now() WHERE node_id = $1 AND ring_instance = $2::uuid AND position = $3::bigint",
                                     5, params);
    return n < 0 ? -1 : n == 1;
}
