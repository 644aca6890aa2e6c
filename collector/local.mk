# collector/: tollgate-collector, which drains the ring into PostgreSQL.
