"""Test support shared by several test modules: hypothesis strategies (:mod:`.strategies`),
child interpreters (:mod:`.processes`) and the harness of the tests that kill a writer process
(:mod:`.kill`)."""
