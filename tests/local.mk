# tests/: Criterion unit tests (tests/unit) and integration tests against a real
# PostgreSQL and a real tollgated (tests/integration).
