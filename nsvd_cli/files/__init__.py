"""Files: atomic writes, checkpoints, the results layout, exports and references.

Nothing here knows about problems, networks or screens: this layer imports nothing of
nsvd but :mod:`nsvd_cli.errors`, and it alone knows the on-disk names and order.
"""

from nsvd_cli.files.atomic import (
    CHECKPOINT_NAME,
    PREVIOUS_CHECKPOINT_NAME,
    RESULTS_NAME,
    atomic_path,
    remove_stale_temporaries,
)
from nsvd_cli.files.checkpoint import (
    RunFileWarning,
    has_checkpoint,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)
from nsvd_cli.files.export import write_export
from nsvd_cli.files.reference import GridReference, read_reference, write_reference
from nsvd_cli.files.results import (
    IntervalArrays,
    Results,
    SingularArrays,
    network_arrays,
    network_state,
    read_results,
    write_results,
)
from nsvd_cli.files.run_folder import (
    METRICS_NAME,
    PLOTS_DIR,
    TENSORBOARD_DIR,
    run_lock,
    set_aside_previous_run,
)
from nsvd_cli.files.vtkhdf import PointArrays, write_vtkhdf

__all__ = [
    "CHECKPOINT_NAME",
    "METRICS_NAME",
    "PLOTS_DIR",
    "PREVIOUS_CHECKPOINT_NAME",
    "RESULTS_NAME",
    "TENSORBOARD_DIR",
    "GridReference",
    "IntervalArrays",
    "PointArrays",
    "Results",
    "RunFileWarning",
    "SingularArrays",
    "atomic_path",
    "has_checkpoint",
    "load_checkpoint",
    "network_arrays",
    "network_state",
    "read_checkpoint",
    "read_reference",
    "read_results",
    "remove_stale_temporaries",
    "run_lock",
    "save_checkpoint",
    "set_aside_previous_run",
    "write_export",
    "write_reference",
    "write_results",
    "write_vtkhdf",
]
