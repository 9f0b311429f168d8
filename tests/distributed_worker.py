"""One process of the two-process test in test_parallel.py (run as a subprocess)."""

import numpy as np


def main(process_id: int, coordinator: str, out: str) -> None:
    from ftjax import parallel

    parallel.initialize(True, coordinator_address=coordinator, num_processes=2,
                        process_id=process_id)
    import jax
    import test_parallel as t

    assert jax.process_count() == 2 and jax.device_count() == 4
    trainable, _ = t.with_strategy("jit", "conv5", rows=parallel.process_rows(t.BATCH))
    np.savez(out, **{f"a{j}": x for j, x in enumerate(jax.tree.leaves(trainable))})
