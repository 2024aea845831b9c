"""The risk gate's formal proofs (tools/formal.py, harness tests/formal/risk_props.py).

Each proof of ``tools.formal.PROOFS`` runs through SymbiYosys (yowasp-sby, z3) and
must end as it expects: PASS for a proof, FAIL for the negative control (which shows the
assumptions leave accepted orders reachable, so the proofs are not vacuous).
"""

from __future__ import annotations

import pytest

from tools import formal

PROOFS = list(formal.PROOFS.values())


@pytest.mark.slow
@pytest.mark.parametrize("proof", PROOFS, ids=[p.name for p in PROOFS])
def test_proof(proof: formal.Proof) -> None:
    r = formal.run(proof)
    want = "FAIL (a counterexample)" if proof.expect_fail else "PASS"
    assert r.passed, (f"{proof.name}: {r.status}, expected {want}; {proof.what}\n"
                      f"{r.log_tail}\nlogs and any counterexample: {r.workdir}")
