import dagster as dg

from cpvae_assets.io_manager import LakeIOManager
from cpvae_assets.resources import LakeResource, LincsRemoteResource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(
        resources={
            "io_manager": LakeIOManager(),
            "lake": LakeResource(),
            "lincs_remote": LincsRemoteResource(),
        }
    )
