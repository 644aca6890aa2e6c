# shm/: the shared-memory ring and shared counters. Depends on nothing else of ours.
