"""The testbed's Python: stack facts and packages for tools and tests, the
throwaway PostgreSQL of the test suite, the peer check of the test hosts."""
